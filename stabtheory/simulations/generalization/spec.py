"""The generalization check's configurations (:class:`HeadGenConfig`, :class:`FineTuneGenConfig`)
and what it runs (:class:`GeneralizationSpec`)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from stabtheory.data.families import FAMILIES
from stabtheory.linear_heads import LOSSES

__all__ = ["FineTuneGenConfig", "GeneralizationSpec", "HeadGenConfig"]


@dataclasses.dataclass(frozen=True)
class HeadGenConfig:
    """One head-tuning configuration: GD on a linear head from zero for a fixed number of steps.

    Attributes:
      family: a data family (:data:`~stabtheory.data.families.FAMILIES`); one draw is its
        sample of ``2n + n_test`` points in a uniformly random order (exchangeable), split
        into S, S' and the test set.
      loss: the training loss, ``"logistic"`` or ``"exponential"``.
      n: the size of S (and of S').
      lr, t: the GD step and the number of steps.
      gamma: the margin parameter of a ``"gamma"`` family; ``None`` in a ``"pair"`` family.
      pair: a ``"pair"`` family's digits; ``None`` otherwise.
      n_test: the test set size; ``None`` in a ``"pair"`` family: the rest of its finite
        pool (S, S' and the test set are drawn from it without replacement).
    """

    family: str
    loss: str
    n: int
    lr: float
    t: int
    gamma: float | None = None
    pair: tuple[int, int] | None = None
    n_test: int | None = 2000

    #: the ``study`` field of the report's rows
    study: ClassVar[str] = "head"

    @property
    def label(self) -> str:
        data = f"{self.pair[0]}v{self.pair[1]}" if self.pair else f"gamma={self.gamma:g}"
        return f"head {self.family} {data}, {self.loss}, n={self.n}, t={self.t}"


@dataclasses.dataclass(frozen=True)
class FineTuneGenConfig:
    """One full fine-tuning configuration: A(S) is the minimiser of the Taylor model of the
    L2-SP objective around the pre-trained ``w0`` (Gauss-Newton curvature), evaluated with the
    true network's loss.

    Attributes:
      task: a fine-tuning task (:data:`~stabtheory.full_finetuning.TASKS`) whose training and
        test samples are i.i.d. (``"synthetic"``).
      n: the size of S (and of S').
      lam: the L2-SP pull.
      pretrain_steps: the encoder's pre-training length (one encoder for every draw).
      n_test: the test set size.
      loss: the training loss (the network's logistic loss).
    """

    task: str
    n: int
    lam: float
    pretrain_steps: int
    n_test: int
    loss: str = "logistic"

    #: the ``study`` field of the report's rows
    study: ClassVar[str] = "finetune"

    @property
    def label(self) -> str:
        return f"FT {self.task} Taylor minimiser, lam={self.lam:g}, n={self.n}"


@dataclasses.dataclass(frozen=True)
class GeneralizationSpec:
    """What the generalization check runs (docs/theory.md section 7).

    Every configuration runs on ``replicates`` independent draws of (S, S', test set); each
    configuration gives two rows, its training loss and the 0-1 loss.

    Attributes:
      families: head tuning's data families.
      losses: head tuning's training losses.
      n, lr, t: head tuning's sample size, GD step and number of steps.
      d, radius: dimension and radius of generated data.
      gamma: the margin parameter of the ``"gamma"`` families (the generic band's half-width).
      pair: the digits pair of the ``"pair"`` families.
      n_test: the test set size of the generated families.
      ft_tasks: the full fine-tuning tasks (empty: no fine-tuning rows).
      ft_n, ft_lam, ft_pretrain_steps, ft_n_test: full fine-tuning's sample size, L2-SP pull,
        pre-training length and test set size.
      alpha: the family-wise level: every interval is at level ``1 - alpha / rows``
        (Bonferroni over every row of the table).
      replicates: independent draws per configuration.
      seed: seed of the draws (draw r uses :func:`~stabtheory.simulations.engine.draw_seed`
        (seed, r)) and of the fine-tuning encoder's initialisation.
      max_runs: at most this many training runs (2n + 1 per draw) in one chunk.
    """

    families: tuple[str, ...] = ("generic", "digits")
    losses: tuple[str, ...] = ("logistic", "exponential")
    n: int = 32
    lr: float = 0.3
    t: int = 1000
    d: int = 8
    radius: float = 1.0
    gamma: float = 0.1
    pair: tuple[int, int] = (1, 2)
    n_test: int = 2000
    ft_tasks: tuple[str, ...] = ("synthetic",)
    ft_n: int = 32
    ft_lam: float = 0.05
    ft_pretrain_steps: int = 300
    ft_n_test: int = 2000
    alpha: float = 0.05
    replicates: int = 50
    seed: int = 0
    max_runs: int = 4096

    def __post_init__(self):
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"families must be among {tuple(FAMILIES)}, got {self.families}.")
        if set(self.losses) - set(LOSSES):
            raise ValueError(f"losses must be among {LOSSES}, got {self.losses}.")
        if self.replicates < 2:
            raise ValueError(
                f"the intervals over draws need replicates >= 2, got {self.replicates}."
            )
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}.")
        if min(self.n, self.ft_n) < 2 or self.t < 1:
            raise ValueError(f"need n, ft_n >= 2 and t >= 1; got {self.n}, {self.ft_n}, {self.t}.")

    @classmethod
    def quick(cls) -> GeneralizationSpec:
        """A reduced check for ``verify --quick``: generic data and the synthetic task, small
        n, 10 draws (the digits family needs the encoder's pre-training)."""
        return cls(families=("generic",), n=16, t=300, ft_n=16, replicates=10)

    def plan(self) -> list[HeadGenConfig | FineTuneGenConfig]:
        """The configurations: every family and loss of head tuning, then every task of full
        fine-tuning."""
        plan: list[HeadGenConfig | FineTuneGenConfig] = []
        for family in self.families:
            paired = FAMILIES[family].sweeps == "pair"
            for loss in self.losses:
                plan.append(
                    HeadGenConfig(
                        family,
                        loss,
                        self.n,
                        self.lr,
                        self.t,
                        gamma=None if paired else self.gamma,
                        pair=tuple(self.pair) if paired else None,
                        n_test=None if paired else self.n_test,
                    )
                )
        plan += [
            FineTuneGenConfig(task, self.ft_n, self.ft_lam, self.ft_pretrain_steps, self.ft_n_test)
            for task in self.ft_tasks
        ]
        return plan

    @property
    def rows(self) -> int:
        """The number of rows of the table: two losses per configuration."""
        return 2 * len(self.plan())

    @property
    def level(self) -> float:
        """The level of every interval: ``1 - alpha / rows`` (Bonferroni)."""
        return 1.0 - self.alpha / self.rows

    @property
    def width(self) -> int:
        """The feature width of the head programs (every family padded to it with zeros)."""
        return max([self.d, *(FAMILIES[f].width or self.d for f in self.families)])
