"""The digits task: binary problems from scikit-learn's bundled 8x8 digits (offline, ``d_in = 64``).

:func:`load_digits` reads the images once, :func:`digits_task` splits them into a source pool
and a task; the kind registers itself as ``TASKS["digits"]``.
"""

from __future__ import annotations

import functools

import numpy as np

from stabtheory.full_finetuning.tasks import Task, TaskKind, register_task

__all__ = ["digits_task", "load_digits"]


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 bundled digits: pixels / 16 (1797, 64) float64 and targets (1797,).

    No download (the data ship with scikit-learn); read once per process.

    Example:
      >>> X, target = load_digits()
      >>> X.shape, float(X.max()), int(target.max())
      ((1797, 64), 1.0, 9)
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a test dependency
        raise ImportError(
            "digits_task needs scikit-learn (its bundled digits data, no download): "
            "pip install scikit-learn."
        ) from e
    digits = sklearn_digits()
    return digits.data.astype(np.float64) / 16.0, digits.target.astype(np.int64)


def _digit_labels(target: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray, str]:
    """(in-task mask, labels in {-1, +1}, name) for a class specification."""
    if isinstance(classes, str):
        if classes != "even_odd":
            raise ValueError(f"classes must be a pair, a digit or 'even_odd', got {classes!r}.")
        return np.ones(target.shape, bool), np.where(target % 2 == 0, 1.0, -1.0), "even-odd"
    if isinstance(classes, int | np.integer):
        if not 0 <= classes <= 9:
            raise ValueError(f"one-vs-rest digit must be in 0..9, got {classes}.")
        return (
            np.ones(target.shape, bool),
            np.where(target == classes, 1.0, -1.0),
            f"{classes}-vs-rest",
        )
    a, b = (int(c) for c in classes)
    if a == b or not (0 <= a <= 9 and 0 <= b <= 9):
        raise ValueError(f"classes must be two different digits in 0..9, got {classes!r}.")
    return np.isin(target, (a, b)), np.where(target == a, 1.0, -1.0), f"{a}v{b}"


def digits_task(
    n: int = 64,
    classes: tuple[int, int] | int | str = (3, 8),
    seed: int = 0,
    *,
    n_test: int | None = None,
    standardize: bool = False,
    source_fraction: float = 1 / 3,
    source_seed: int = 0,
) -> Task:
    """Binary task from scikit-learn's bundled 8x8 digits (offline, ``d_in = 64``).

    The 1797 images are split once, by ``source_seed``, into an unlabeled *source* pool
    (``source_fraction`` of them, every class, for pre-training) and a *task* pool. The task
    keeps the images of ``classes`` from the task pool (for one-vs-rest, the "rest" images
    are subsampled to as many as the positives, so the pool is balanced); the training set is
    a uniform random subset of ``n`` of them and the test set the rest (or ``n_test`` of it).

    Args:
      n: training set size.
      classes: a pair ``(a, b)`` (``a`` is +1, ``b`` is -1), a digit ``c`` (``c`` against the
        rest) or ``"even_odd"`` (even digits are +1).
      seed: which images form the training and test sets.
      n_test: test set size (default: all remaining images of the task pool).
      standardize: features are pixel values / 16 in [0, 1]; with ``True`` they are then
        standardised with the source pool's mean and standard deviation (constant pixels
        are only centred).
      source_fraction: share of the images in the source pool.
      source_seed: the source/task split.

    Returns:
      A :class:`~stabtheory.full_finetuning.Task`.

    Example:
      >>> t = digits_task(20, (3, 8), n_test=10)
      >>> t.X.shape, t.X_test.shape, float(t.X.min()) >= 0.0, float(t.X.max()) <= 1.0
      ((20, 64), (10, 64), True, True)
    """
    X_all, target = load_digits()
    rng = np.random.default_rng([source_seed, 0xD161])
    perm = rng.permutation(len(target))
    n_src = round(source_fraction * len(target))
    src, pool = perm[:n_src], perm[n_src:]
    in_task, labels, name = _digit_labels(target, classes)
    pool = pool[in_task[pool]]
    rng_task = np.random.default_rng([source_seed, seed, 0xD162])
    if isinstance(classes, int | np.integer):
        pos, neg = pool[labels[pool] > 0], pool[labels[pool] < 0]
        neg = rng_task.choice(neg, size=min(len(pos), len(neg)), replace=False)
        pool = np.sort(np.concatenate([pos, neg]))
    n = int(n)
    available = len(pool) - n
    if n < 2 or available < 1:
        raise ValueError(
            f"digits {name}: the task pool has {len(pool)} images; need 2 <= n < {len(pool)}, "
            f"got n={n}. Lower n or source_fraction."
        )
    n_test = available if n_test is None else int(n_test)
    if not 1 <= n_test <= available:
        raise ValueError(f"digits {name}: n_test must be in 1..{available}, got {n_test}.")
    order = rng_task.permutation(pool)
    train, test = order[:n], order[n : n + n_test]
    X_source = X_all[src]
    if standardize:
        mu, sd = X_source.mean(0), X_source.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        X_all, X_source = (X_all - mu) / sd, (X_source - mu) / sd
    info = {
        "task": "digits",
        "classes": classes,
        "n": n,
        "n_test": n_test,
        "d_in": 64,
        "standardize": bool(standardize),
        "seed": int(seed),
        "source_seed": int(source_seed),
        "positive_fraction": float(np.mean(labels[train] > 0)),
    }
    return Task(
        X_all[train],
        labels[train],
        X_all[test],
        labels[test],
        X_source,
        f"digits-{name}",
        info,
    )


def _testbed_kwargs(config) -> tuple[int, dict]:
    if config.shift is not None:
        raise ValueError("shift applies to task='synthetic' only (digits has its own data).")
    if config.d_in not in (None, 64):
        raise ValueError(f"digits images have d_in = 64, got d_in={config.d_in}.")
    classes = (3, 8) if config.classes is None else config.classes
    if isinstance(classes, list):
        classes = tuple(classes)
    n_test = None if config.n_test is None else int(config.n_test)
    return 64, {"classes": classes, "n_test": n_test}


register_task(
    TaskKind(
        "digits",
        digits_task,
        ("source_fraction", "source_seed", "standardize"),
        _testbed_kwargs,
    )
)
