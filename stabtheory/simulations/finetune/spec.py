"""The full fine-tuning study's configuration (:class:`FTConfig`), what it sweeps
(:class:`FineTuneStudySpec`) and what its instabilities are measured on (:data:`MEASURES`)."""

from __future__ import annotations

import dataclasses

__all__ = ["MEASURES", "FTConfig", "FineTuneStudySpec", "padded_size"]

#: Per claim notion, what its instability is measured on: (label, ``FTEvidence.empirical``
#: kind).
MEASURES = {
    "loo.weights": (
        ("Taylor minimiser", "min.weights"),
        ("Taylor GD", "gd.weights"),
        ("real network GD", "real.weights"),
    ),
    "loo.loss": (("Taylor minimiser", "min.loss"), ("real network GD", "real.loss")),
}


@dataclasses.dataclass(frozen=True)
class FTConfig:
    """One configuration of the full fine-tuning study.

    ``tilt``, ``shift``, ``scale`` are the controlled designs
    (:class:`~stabtheory.full_finetuning.FTDesign`), in units of the same draw's base
    configuration: ``kappa = tilt * median_i rho_i``, ``s = shift * ||w_S - w0||`` along
    ``v = (w_S - w0) / ||w_S - w0||`` (so the distance becomes ``(1 + shift)`` times the
    base's), and the loss scale ``c = scale``. ``task_shift``: the synthetic task's mean shift
    from the pre-training distribution
    (:attr:`~stabtheory.full_finetuning.TestbedConfig.shift`; ``None`` for a task without
    one)."""

    task: str
    n: int
    lam: float
    input_scale: float
    pretrain_steps: int
    alpha: float
    lr_fraction: float
    task_shift: float | None = None
    tilt: float = 0.0
    shift: float = 0.0
    scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class FineTuneStudySpec:
    """What the full fine-tuning study sweeps (see :mod:`stabtheory.simulations.finetune`).

    ``replicates`` independent draws per configuration: draw ``r`` pre-trains the encoder
    from its own initialisation seed and draws its own task sample (both
    :func:`~stabtheory.simulations.engine.draw_seed` (seed, r)).
    """

    tasks: tuple[str, ...] = ("synthetic", "digits")
    n: int = 32
    ns: tuple[int, ...] = (16, 32, 48)
    lam: float = 0.05
    lams: tuple[float, ...] = (0.01, 0.05, 0.2)
    input_scales: tuple[float, ...] = (0.5, 1.0, 2.0)
    pretrain_steps: int = 300
    pretrain_sweep: tuple[int, ...] = (0, 300, 3000)
    interpolation: tuple[float, ...] = (0.0, 0.5, 0.9)
    lr_fraction: float = 0.9
    lr_fractions: tuple[float, ...] = (0.1, 0.3, 0.9)
    #: the synthetic task's shift from the pre-training distribution: its base and sweep
    task_shift: float = 0.5
    task_shifts: tuple[float, ...] = (0.0, 0.5, 2.0)
    #: GD checkpoints; at the default step (0.9 / lambda_max) the Taylor GD is within
    #: ~1e-3 of its minimiser by t = 300 on both tasks (eta Lam t ~ 6), so 1000 is not run.
    steps: tuple[int, ...] = (1, 3, 10, 30, 100, 300)
    #: the base configuration's real runs (S and every S\\i) go on after the last checkpoint
    #: to the stationarity tolerance (``||grad F_s|| <= 1e-3 ||grad F_s(w0)||``) or this many
    #: more steps; the other configurations stop at the last checkpoint (the CPU budget)
    stationary_steps: int = 3000
    full_sweeps_on: tuple[str, ...] = ("synthetic",)
    tilts: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    shifts: tuple[float, ...] = (1.0, 3.0)
    scales: tuple[float, ...] = (0.25, 4.0)
    controlled_on: tuple[str, ...] = ("synthetic",)
    early_step: int = 10
    replicates: int = 10
    seed: int = 0
    #: training runs per chunk (``size + 1`` per (configuration, draw) at its padded size;
    #: at least one item): a chunk is one compiled program
    max_runs: int = 1024

    @property
    def n_max(self) -> int:
        """The largest sample size of the plan (each testbed draws this many samples)."""
        return max((*self.ns, self.n))

    def base(self, task: str) -> FTConfig:
        """The base configuration of ``task`` (the centre of every one-at-a-time sweep)."""
        shift = self.task_shift if task == "synthetic" else None
        return FTConfig(
            task, self.n, self.lam, 1.0, self.pretrain_steps, 0.0, self.lr_fraction, shift
        )

    def plan(self) -> list[FTConfig]:
        """The configurations: one-at-a-time sweeps around each task's base, no duplicates.
        The base comes first in each task (the report's order)."""
        plan: list[FTConfig] = []
        for task in self.tasks:
            base = self.base(task)
            variants = [base] + [dataclasses.replace(base, n=v) for v in self.ns]
            variants += [dataclasses.replace(base, pretrain_steps=v) for v in self.pretrain_sweep]
            variants += [dataclasses.replace(base, alpha=v) for v in self.interpolation]
            if task in self.full_sweeps_on:
                variants += [dataclasses.replace(base, input_scale=v) for v in self.input_scales]
                variants += [dataclasses.replace(base, lam=v) for v in self.lams]
                variants += [dataclasses.replace(base, lr_fraction=v) for v in self.lr_fractions]
                if base.task_shift is not None:
                    variants += [dataclasses.replace(base, task_shift=v) for v in self.task_shifts]
            if task in self.controlled_on:
                variants += [dataclasses.replace(base, tilt=v) for v in self.tilts]
                variants += [dataclasses.replace(base, shift=v) for v in self.shifts]
                variants += [dataclasses.replace(base, scale=v) for v in self.scales]
            plan += [v for v in dict.fromkeys(variants) if v not in plan]
        return plan

    @classmethod
    def quick(cls) -> FineTuneStudySpec:
        return cls(
            tasks=("synthetic",),
            n=16,
            ns=(8, 16),
            lams=(0.05,),
            input_scales=(0.5, 1.0),
            pretrain_sweep=(0, 300),
            interpolation=(0.0, 0.8),
            lr_fractions=(0.3, 0.9),
            task_shifts=(0.5, 2.0),
            steps=(1, 10, 100, 300),
            stationary_steps=1000,
            tilts=(1.0, 8.0),
            shifts=(3.0,),
            scales=(4.0,),
            replicates=2,
        )


def padded_size(spec: FineTuneStudySpec, n: int) -> int:
    """The sample size a configuration of size ``n`` runs at: the base ``n`` for sizes up to
    it, the largest swept size above it (padding samples have weight zero)."""
    return min(size for size in (spec.n, spec.n_max) if size >= n)
