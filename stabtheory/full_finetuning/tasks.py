"""Downstream binary tasks for fine-tuning: the :class:`Task` record and the registry of task kinds.

A task kind (:class:`TaskKind`) builds a :class:`Task` and says which of its settings fix the
unlabeled source pool used for pre-training; :func:`register_task` adds one to :data:`TASKS`
(the synthetic and digits kinds register themselves in their own modules).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["TASKS", "Task", "TaskKind", "register_task"]


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A downstream binary task with its unlabeled pre-training source pool.

    Attributes:
      X, y: training inputs (n, d_in) and labels (n,) in {-1, +1}, numpy float64.
      X_test, y_test: held-out inputs and labels, drawn like the training set.
      X_source: unlabeled source inputs for self-supervised pre-training (n_source, d_in);
        independent of the task's ``n`` and ``seed``.
      name: a short description.
      info: what generated it (seeds, shift, classes, positive fraction, ...).
    """

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_source: np.ndarray
    name: str
    info: dict


@dataclasses.dataclass(frozen=True, eq=False)
class TaskKind:
    """A kind of task a testbed can be built on (an entry of :data:`TASKS`).

    Attributes:
      name: the key in :data:`TASKS` (``TestbedConfig.task``).
      make: ``make(n, seed=seed, **kwargs) -> Task``.
      source_kwargs: the keyword arguments of ``make`` that fix the unlabeled source pool
        (and so the pre-training); the others (``n``, ``seed``, a shift, classes, ...) do not.
      testbed_kwargs: ``testbed_kwargs(config) -> (d_in, kwargs)``: the input dimension and
        the keyword arguments of ``make`` set by a
        :class:`~stabtheory.full_finetuning.TestbedConfig`'s task fields (``d_in``,
        ``n_test``, ``shift``, ``classes``); raises ``ValueError`` for fields that do not
        apply to this kind.
    """

    name: str
    make: Callable[..., Task]
    source_kwargs: tuple[str, ...]
    testbed_kwargs: Callable[[Any], tuple[int, dict]]

    def task(self, kwargs: tuple[tuple[str, Any], ...], *, n: int, seed: int) -> Task:
        """The task with keyword arguments ``kwargs`` (``(name, value)`` pairs)."""
        return self.make(n, seed=seed, **dict(kwargs))

    def source_pool(self, kwargs: tuple[tuple[str, Any], ...]) -> np.ndarray:
        """The unlabeled source inputs of the tasks with these keyword arguments."""
        return self.task(kwargs, n=2, seed=0).X_source  # the pool ignores n and seed


#: Task kinds by name, in registration order.
TASKS: dict[str, TaskKind] = {}


def register_task(kind: TaskKind) -> TaskKind:
    """Add ``kind`` to :data:`TASKS` (a name can be registered once); returns it."""
    if kind.name in TASKS:
        raise ValueError(f"a task kind named {kind.name!r} is already registered.")
    TASKS[kind.name] = kind
    return kind
