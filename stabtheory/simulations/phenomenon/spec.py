"""What the phenomenon study runs: the task, the settings grid, the seeds."""

from __future__ import annotations

import dataclasses

from stabtheory.attention.phenomenon import Setting, default_grid

__all__ = ["PhenomenonSpec"]


@dataclasses.dataclass(frozen=True)
class PhenomenonSpec:
    """The phenomenon study's specification (hashable).

    Attributes:
      task: the task kind (:data:`~stabtheory.attention.TASKS`).
      shift: the emission shift of the task's inputs.
      n_test: test-set size (balanced: the majority class is 1/2).
      settings: the :class:`~stabtheory.attention.Setting` s.
      seeds: seeds per setting (head initialisation and data order).
      task_seed: the seed of the task draw (one draw, shared by every setting of one ``n``).
      level: the level of the Clopper-Pearson intervals.
    """

    task: str = "genre"
    shift: float = 0.0
    n_test: int = 1000
    settings: tuple[Setting, ...] = default_grid()
    seeds: int = 50
    task_seed: int = 1
    level: float = 0.95

    def __post_init__(self):
        if self.seeds < 2 or not self.settings:
            raise ValueError("need seeds >= 2 and at least one setting.")

    @classmethod
    def quick(cls) -> PhenomenonSpec:
        """A reduced run for ``verify --quick``: two settings at n = 64, 20 seeds."""
        return cls(
            n_test=400,
            settings=(
                Setting(64, "adam-no-bias-correction", 3e-3, 40, sweep="n at fixed steps"),
                Setting(64, "adam", 3e-3, 40, sweep="n at fixed steps"),
            ),
            seeds=20,
        )
