"""The full fine-tuning study of ``stabtheory verify``: Theorems FT-1, FT-1L, FT-2 and the
``ft.*`` claims, on the Taylor model and on the real network.

For every configuration, S and all n sets S\\i are solved (CG, vmapped over masks) and trained
(GD on the quadratic and on the real network, vmapped over masks) from the pre-trained
weights. Sweeps, one at a time around a base configuration, on each testbed:

* ``n``: sample size (nested subsets of one task sample);
* ``input_scale``: multiplies the inputs, which scales the per-sample gradients (the Lipschitz
  constant ``rho``);
* ``pretrain_steps``: pre-training length, which moves ``w0`` and so the weight distance;
* ``interpolation``: ``w0 + alpha (w* - w0)`` with ``w*`` the real network fine-tuned on S,
  a direct knob on the weight distance;
* ``lam``: the pull toward ``w0``; ``lr_fraction``: the step as a fraction of ``1/lambda_max``.

The claims are judged with Kendall's tau between the *measured* quantity the claim names
(``n``, ``rho = max_i rho_i``, ``||w_S - w0||``) and the mean leave-one-out instability.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from stabtheory import claims as _claims
from stabtheory.bounds import finetune as _ft
from stabtheory.simulations import engine
from stabtheory.simulations.base import DrawResult, Study, draws_by_config

__all__ = [
    "FT_CLAIMS",
    "FTConfig",
    "FineTuneStudy",
    "FineTuneStudySpec",
    "run_finetune_study",
]

FT_CLAIMS = {
    c.id: c
    for c in (
        _claims.Claim("ft.n", "full FT: larger sample size n gives more stability", "n", -1),
        _claims.Claim(
            "ft.lipschitz", "full FT: smaller Lipschitz constant gives more stability", "rho", +1
        ),
        _claims.Claim(
            "ft.distance",
            "full FT: smaller distance between w0 and the fine-tuned optimum gives more stability",
            "distance",
            +1,
        ),
    )
}

# (what the instability is measured on, the FTEvidence.empirical kind)
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
    """One configuration of the full fine-tuning study."""

    task: str
    n: int
    lam: float
    input_scale: float
    pretrain_steps: int
    alpha: float
    lr_fraction: float


@dataclasses.dataclass(frozen=True)
class FineTuneStudySpec:
    """What the full fine-tuning study sweeps (see the module docstring).

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
    lr_fractions: tuple[float, ...] = (0.1, 0.9)
    steps: tuple[int, ...] = (1, 3, 10, 30, 100, 300, 1000)
    full_sweeps_on: tuple[str, ...] = ("synthetic",)
    replicates: int = 5
    seed: int = 0

    def base(self, task: str) -> FTConfig:
        """The base configuration of ``task`` (the centre of every one-at-a-time sweep)."""
        return FTConfig(task, self.n, self.lam, 1.0, self.pretrain_steps, 0.0, self.lr_fraction)

    def plan(self) -> list[FTConfig]:
        """The configurations: one-at-a-time sweeps around each task's base, no duplicates.
        The base comes first in each task (the interpolation knob needs its optimum)."""
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
            lr_fractions=(0.9,),
            steps=(1, 10, 100, 300),
            replicates=2,
        )


@dataclasses.dataclass
class FineTuneStudy(Study):
    """Results of :func:`run_finetune_study` (:class:`~stabtheory.simulations.base.Study`):
    one config dict per :class:`FTConfig` (its fields and the measured quantities, mean over
    draws), one check row per (config, theorem) over every draw, ``{kind: (C, draws, n)}``,
    and the per-draw :class:`~stabtheory.simulations.base.DrawResult` s."""

    spec: FineTuneStudySpec


def _compute(spec: FineTuneStudySpec, chunk: engine.Chunk) -> list[DrawResult]:
    """Every configuration of one (task, draw), in plan order (the base one first)."""
    from stabtheory import finetune

    n_max = max((*spec.ns, spec.n))
    optimum = None
    results = []
    for cfg, draw in chunk.items:
        seed = engine.draw_seed(spec.seed, draw)
        bed = finetune.make_testbed(
            cfg.task,
            n=n_max,
            pretrain_steps=cfg.pretrain_steps,
            input_scale=cfg.input_scale,
            seed=seed,
            init_seed=seed,
        )
        X, y = bed.X[: cfg.n], bed.y[: cfg.n]
        w0 = jnp.asarray(bed.w0)
        if cfg.alpha > 0:
            w0 = w0 + cfg.alpha * (optimum - w0)
        ev = _ft.ft_evidence(
            bed.apply,
            w0,
            X,
            y,
            lam=cfg.lam,
            lr_fraction=cfg.lr_fraction,
            steps=spec.steps,
            info={
                "task": cfg.task,
                "input_scale": cfg.input_scale,
                "pretrain_steps": cfg.pretrain_steps,
                "alpha": cfg.alpha,
                "lr_fraction": cfg.lr_fraction,
            },
        )
        if cfg == spec.base(cfg.task):
            optimum = jnp.asarray(ev.w_real[0, -1])
        gd = _ft.check_ft2(ev, "gd.weights")
        real = _ft.check_ft2(ev, "real.weights")
        raw = gd.bound  # the FT-2 bound (same quantities) beside the real network's LOO
        # only where FT-2 applies to the Taylor model (its bound is NaN elsewhere): else None
        ok = gd.applicable_at
        over = real.empirical[ok] > raw[ok] + gd.tol * np.maximum(1, raw[ok])
        measured = {
            **{key: ev.config[key] for key in ("p", "lr")},
            "rho": float(ev.rho.max()),
            "distance": ev.distance,
            "Lam": float(ev.Lam.min()),
            "beta": float(ev.beta_i.max()),
            "taylor_departure": _ft.real_departure(ev),
            "loss_gap": _ft.loss_gap(ev),
            "real_exceeds_ft2": int(np.sum(over)) if ok.any() else None,
        }
        checks = (_ft.check_ft1(ev), _ft.check_ft1l(ev), gd, real)
        stability = {kind: ev.empirical(kind) for _, kinds in MEASURES.items() for _, kind in kinds}
        results.append(DrawResult(cfg, draw, measured, checks, stability))
    return results


def chunks(spec: FineTuneStudySpec) -> list[engine.Chunk]:
    """One chunk per (task, draw): the task's configurations in plan order."""
    plan = spec.plan()
    return [
        engine.Chunk("finetune", (task,), tuple((c, r) for c in plan if c.task == task), spec)
        for r in range(spec.replicates)
        for task in spec.tasks
    ]


def _merge_measured(members: list[DrawResult]) -> dict:
    """The measured quantities over the draws: means (the departure and loss gap: max; the
    count of points over FT-2: sum, ``None`` where FT-2 applied in no draw)."""
    m = [it.measured for it in members]
    over = [x["real_exceeds_ft2"] for x in m if x["real_exceeds_ft2"] is not None]
    return {
        "p": m[0]["p"],
        "lr": float(np.mean([x["lr"] for x in m])),
        **{q: float(np.mean([x[q] for x in m])) for q in ("rho", "distance", "Lam", "beta")},
        "taylor_departure": float(max(x["taylor_departure"] for x in m)),
        "loss_gap": float(max(x["loss_gap"] for x in m)),
        "real_exceeds_ft2": int(sum(over)) if over else None,
    }


def run_finetune_study(
    spec: FineTuneStudySpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: engine.Executor | None = None,
) -> FineTuneStudy:
    """Run the full fine-tuning study: expand, solve, train, check every FT theorem, judge.

    Args:
      spec: what to sweep; the default :class:`FineTuneStudySpec` when ``None``.
      progress: called as ``progress(done, total, label)`` after each chunk (when no
        ``executor`` is given).
      executor: the :class:`~stabtheory.simulations.engine.Executor`; in-memory by default.
    """
    spec = spec or FineTuneStudySpec()
    executor = executor or engine.Executor(progress=progress)
    start = time.perf_counter()
    results = executor.run(
        chunks(spec),
        lambda c: _compute(spec, c),
        label=lambda c: f"FT {c.group[0]} draw {c.items[0][1]}: {len(c.items)} configs",
    )
    by_config = draws_by_config(results)
    study = FineTuneStudy(spec)
    for cfg in spec.plan():
        members = by_config[cfg]
        config = {
            **dataclasses.asdict(cfg),
            **_merge_measured(members),
            "replicates": len(members),
        }
        study.add_config(config, members)
    study.verdicts = judge_claims(study)
    study.runtime_s = time.perf_counter() - start
    return study


def sweeps(study: FineTuneStudy) -> dict[str, list[tuple[str, str, list[int]]]]:
    """For each claim, the (task, knob, config indices) sweeps that inform it."""
    spec = study.spec
    out: dict[str, list] = {"ft.n": [], "ft.lipschitz": [], "ft.distance": []}
    knobs = {
        "ft.n": ("n",),
        "ft.lipschitz": ("input_scale",),
        "ft.distance": ("pretrain_steps", "alpha"),
    }
    for task in spec.tasks:
        base = dataclasses.asdict(spec.base(task))
        for claim_id, free_knobs in knobs.items():
            for free in free_knobs:
                idx = study.find(**{key: v for key, v in base.items() if key != free})
                if len({study.configs[k][free] for k in idx}) >= 2:
                    out[claim_id].append((task, free, idx))
    return out


#: A sweep whose measured parameter spans less than this ratio (max / min) is not decisive:
#: the knob barely moved the quantity the claim is about.
MIN_SPREAD = 1.2

#: Quantities of the FT-1/FT-2 bounds reported beside each sweep, since a knob moves several.
COVARIATES = ("n", "rho", "distance", "beta", "Lam")


def _spread(values) -> float:
    values = np.asarray(values, float)
    return float(values.max() / values.min()) if values.min() > 0 else float("inf")


def judge_claims(study: FineTuneStudy) -> list:
    """Verdicts for ft.n, ft.lipschitz, ft.distance under loo.weights and loo.loss.

    A regime whose measured parameter spans less than :data:`MIN_SPREAD` (max / min) is
    inconclusive whatever the instability does. Every regime's name lists how much each
    bound quantity moved along its sweep (max / min), so that confounding is visible: e.g.
    interpolating ``w0`` toward ``w*`` lowers ``rho`` as well as the distance.
    """
    late = len(study.spec.steps) - 1
    verdicts = []
    for claim_id, claim_sweeps in sweeps(study).items():
        claim = FT_CLAIMS[claim_id]
        for notion, measures in MEASURES.items():
            regimes = []
            for task, knob, idx in claim_sweeps:
                xs = [study.configs[k][claim.parameter] for k in idx]
                moved = ", ".join(
                    f"{q} x{_spread([study.configs[k][q] for k in idx]):.2f}" for q in COVARIATES
                )
                for label, kind in measures:
                    row = 0 if kind.startswith("min") else late
                    values = [study.stability[k][kind][row] for k in idx]
                    name = f"{task}, {label}, swept {knob} (moved: {moved})"
                    r = _claims.verdict(claim, xs, values, regime=name)
                    if _spread(xs) < MIN_SPREAD:
                        r = dataclasses.replace(
                            r,
                            verdict="inconclusive",
                            regime=f"{name}; {claim.parameter} spans only "
                            f"x{_spread(xs):.2f} < x{MIN_SPREAD}",
                        )
                    regimes.append(r)
            if regimes:
                verdicts.append(
                    _claims.combine(
                        claim, notion, regimes, figure=f"claims_ft_{notion.split('.')[1]}.png"
                    )
                )
    return verdicts
