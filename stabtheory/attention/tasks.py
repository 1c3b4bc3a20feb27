"""Downstream binary tasks of the attention testbed: labels read off a sequence's latent
variables, inputs drawn with the corpus's emission shift.

A task draw has a balanced training set of ``n`` sequences and a balanced test set: sequences
are drawn from the HMM (with ``shift``, see :mod:`stabtheory.attention.corpus`), labelled by
the task's function of the latent variables, and as many of each label kept (so the majority
class is exactly one half). The task kinds (:data:`TASKS`):

- ``"genre"``: is the genre in the first half ``{0, ..., G/2 - 1}``? (what pre-training's
  sequence objective predicts, grouped in two);
- ``"parity"``: is the genre odd? (another grouping of the same latent);
- ``"visits"``: does the hidden path visit state 0 at least twice? (a latent the pre-training
  objectives never name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from stabtheory.attention.corpus import HMMConfig, Sample, sample

__all__ = ["TASKS", "TaskConfig", "TaskData", "make_task"]

TASKS: dict[str, Callable[[Sample, HMMConfig], np.ndarray]] = {
    "genre": lambda s, c: s.genres < c.genres // 2,
    "parity": lambda s, c: s.genres % 2 == 1,
    "visits": lambda s, c: (s.states == 0).sum(axis=1) >= 2,
}


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """One draw of a downstream task (hashable).

    Attributes:
      kind: a key of :data:`TASKS`.
      n: training-set size (even); n_test: test-set size (even).
      shift: the emission shift in ``[0, 1]`` (0: the pre-training distribution).
      seed: the seed of the draw (independent of the corpus's seeds).
    """

    kind: str = "genre"
    n: int = 256
    n_test: int = 1000
    shift: float = 0.0
    seed: int = 1

    def __post_init__(self):
        if self.kind not in TASKS:
            raise ValueError(f"task kind must be one of {tuple(TASKS)}, got {self.kind!r}.")
        if self.n % 2 or self.n_test % 2 or self.n < 2:
            raise ValueError(
                f"n and n_test must be even and positive, got {self.n}, {self.n_test}."
            )


@dataclasses.dataclass(frozen=True)
class TaskData:
    """A task draw: ``X`` (n, L) int32, ``y`` (n,) int32 in {0, 1}; the same for the test set."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def majority(self) -> float:
        """The test accuracy of predicting the majority class of the test set."""
        return float(max(self.y_test.mean(), 1.0 - self.y_test.mean()))


def make_task(corpus: HMMConfig, task: TaskConfig) -> TaskData:
    """Draw a balanced task (see the module docstring); deterministic in its arguments.

    Example:
      >>> d = make_task(HMMConfig(), TaskConfig(n=8, n_test=10))
      >>> d.X.shape, int(d.y.sum()), d.majority
      ((8, 16), 4, 0.5)
    """
    label = TASKS[task.kind]
    need = (task.n + task.n_test) // 2
    pos, neg, draw = [], [], 0
    while sum(len(p) for p in pos) < need or sum(len(q) for q in neg) < need:
        s = sample(corpus, 4 * need, seed=task.seed * 1000 + draw, shift=task.shift)
        y = label(s, corpus)
        pos.append(s.tokens[y])
        neg.append(s.tokens[~y])
        draw += 1
        if draw > 50:
            raise ValueError(f"task {task.kind!r} is too unbalanced to draw {need} of each label.")
    pos, neg = np.concatenate(pos)[:need], np.concatenate(neg)[:need]
    h = task.n // 2
    rng = np.random.default_rng([task.seed, 0x7A5C])

    def mix(a, b):
        X = np.concatenate([a, b])
        y = np.concatenate([np.ones(len(a)), np.zeros(len(b))]).astype(np.int32)
        order = rng.permutation(len(y))
        return X[order], y[order]

    X, y = mix(pos[:h], neg[:h])
    X_test, y_test = mix(pos[h:], neg[h:])
    return TaskData(X, y, X_test, y_test)
