"""The full fine-tuning study of ``stabtheory verify``: Theorems FT-1, FT-1c, FT-1L, FT-2 and
the ``ft.*`` claims, on the Taylor model and on the real network.

For every configuration and draw, S and all n sets S\\i are solved (CG, vmapped over masks)
and trained (GD on the quadratic and on the real network, vmapped over masks) from the
pre-trained weights. The (configuration, draw) items of one task and padded sample size run
as one program (:func:`~stabtheory.bounds.finetune.ft_evidence_batch`: a loop over them on
the CPU, a vmap on accelerators), in chunks of one capacity (``max_runs``), so a study
compiles one program per (task, size).
Sweeps, one at a time around a base configuration, on each testbed:

* observational (natural knobs): ``n``; ``input_scale`` (moves ``rho``); ``pretrain_steps``
  and ``interpolation`` ``w0 + alpha (w* - w0)`` (move the weight distance); ``lam``;
  ``lr_fraction``. Such a regime is inconclusive when another bound quantity moves by
  :data:`MIN_SPREAD` or more;
* controlled (:class:`~stabtheory.quadratic.FTDesign`): the zero-sum tilt (``rho`` alone,
  ``ft.lipschitz``) and the curvature-matched shift (the distance alone, ``ft.distance``,
  judged early and late);
* control: the loss scaling by ``c`` (claim ``control.scale``, must show no effect).

The claims are judged with Kendall's tau between the *measured* quantity the claim names
(``n``, ``rho = max_i rho_i``, ``||w_S - w0||``, ``c``) and the mean leave-one-out instability.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
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
        _claims.Claim(
            "control.scale",
            "negative control: scaling the loss by c with lam -> c lam, eta -> eta / c changes "
            "no claim statistic (judged as the loo.weights instability against c; predicted "
            "sign 0, so any decisive trend refutes the control)",
            "scale",
            0,
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
    """One configuration of the full fine-tuning study.

    ``tilt``, ``shift``, ``scale`` are the controlled designs
    (:class:`~stabtheory.quadratic.FTDesign`), in units of the same draw's base
    configuration: ``kappa = tilt * median_i rho_i``, ``s = shift * ||w_S - w0||`` along
    ``v = (w_S - w0) / ||w_S - w0||`` (so the distance becomes ``(1 + shift)`` times the
    base's), and the loss scale ``c = scale``."""

    task: str
    n: int
    lam: float
    input_scale: float
    pretrain_steps: int
    alpha: float
    lr_fraction: float
    tilt: float = 0.0
    shift: float = 0.0
    scale: float = 1.0


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
    #: GD checkpoints; at the default step (0.9 / lambda_max) the Taylor GD is within
    #: ~1e-3 of its minimiser by t = 300 on both tasks (eta Lam t ~ 6), so 1000 is not run.
    steps: tuple[int, ...] = (1, 3, 10, 30, 100, 300)
    full_sweeps_on: tuple[str, ...] = ("synthetic",)
    tilts: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    shifts: tuple[float, ...] = (1.0, 3.0)
    scales: tuple[float, ...] = (0.25, 4.0)
    controlled_on: tuple[str, ...] = ("synthetic",)
    early_step: int = 10
    replicates: int = 5
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
        return FTConfig(task, self.n, self.lam, 1.0, self.pretrain_steps, 0.0, self.lr_fraction)

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
            lr_fractions=(0.9,),
            steps=(1, 10, 100, 300),
            tilts=(1.0, 8.0),
            shifts=(3.0,),
            scales=(4.0,),
            replicates=2,
        )


@dataclasses.dataclass
class FineTuneStudy(Study):
    """Results of :func:`run_finetune_study` (:class:`~stabtheory.simulations.base.Study`):
    one config dict per :class:`FTConfig` (its fields and the measured quantities, mean over
    draws), one check row per (config, theorem) over every draw, ``{kind: (C, draws, n)}``,
    and the per-draw :class:`~stabtheory.simulations.base.DrawResult` s."""

    spec: FineTuneStudySpec


def padded_size(spec: FineTuneStudySpec, n: int) -> int:
    """The sample size a configuration of size ``n`` runs at: the base ``n`` for sizes up to
    it, the largest swept size above it (padding samples have weight zero)."""
    return min(size for size in (spec.n, spec.n_max) if size >= n)


def _needs_reference(cfg: FTConfig) -> bool:
    return cfg.alpha > 0 or cfg.tilt > 0 or cfg.shift > 0


def _compute(spec: FineTuneStudySpec, chunk: engine.Chunk) -> list[DrawResult]:
    """Every (configuration, draw) item of one chunk as one compiled evidence program.

    One testbed per (draw, pre-training length) (``input_scale`` multiplies its inputs);
    configurations set in units of their draw's base (``alpha``, ``tilt``, ``shift``) take
    the base's optimum from :func:`~stabtheory.bounds.finetune.ft_reference`. Every item
    is padded to the chunk's sample size and the batch to its capacity, so a (task, size)
    group compiles once whatever the plan and the number of draws."""
    from stabtheory import finetune, quadratic

    task, size, capacity = chunk.group
    beds: dict[tuple[int, int], finetune.Testbed] = {}
    refs: dict[int, _ft.FTReference] = {}

    def bed_of(cfg: FTConfig, draw: int) -> finetune.Testbed:
        key = (draw, cfg.pretrain_steps)
        if key not in beds:
            seed = engine.draw_seed(spec.seed, draw)
            beds[key] = finetune.make_testbed(
                task, n=spec.n_max, pretrain_steps=cfg.pretrain_steps, seed=seed, init_seed=seed
            )
        return beds[key]

    problems = []
    for cfg, draw in chunk.items:
        bed = bed_of(cfg, draw)
        X, y = cfg.input_scale * bed.X[: cfg.n], bed.y[: cfg.n]
        w0 = np.asarray(bed.w0)
        design = quadratic.FTDesign(scale=cfg.scale, seed=engine.draw_seed(spec.seed, draw))
        if _needs_reference(cfg):
            base = spec.base(task)
            if draw not in refs:
                base_bed = bed_of(base, draw)
                refs[draw] = _ft.ft_reference(
                    base_bed.apply,
                    base_bed.w0,
                    base_bed.X[: base.n],
                    base_bed.y[: base.n],
                    lam=base.lam,
                    lr_fraction=base.lr_fraction,
                    steps=spec.steps,
                )
            ref = refs[draw]
            if cfg.alpha:
                w0 = w0 + cfg.alpha * (ref.w_real - w0)
            design = dataclasses.replace(
                design,
                tilt=cfg.tilt * float(np.median(ref.rho)),
                shift=cfg.shift * ref.distance,
                v=ref.direction,
            )
        info = {
            "task": task,
            "input_scale": cfg.input_scale,
            "pretrain_steps": cfg.pretrain_steps,
            "alpha": cfg.alpha,
            "lr_fraction": cfg.lr_fraction,
        }
        problems.append(
            _ft.FTProblem(w0, X, y, cfg.lam, None, cfg.lr_fraction, design=design, info=info)
        )
    evidence = _ft.ft_evidence_batch(
        beds[next(iter(beds))].apply,
        problems,
        steps=spec.steps,
        pad_to=size,
        capacity=capacity,
        mesh=engine.item_mesh(),
        # fixed-length loops on accelerators; on the CPU they only compile longer (the
        # default study took 175 s against 138 s with traced checkpoints, measured)
        static_steps=jax.default_backend() != "cpu",
    )
    return [
        _draw_result(cfg, draw, ev) for (cfg, draw), ev in zip(chunk.items, evidence, strict=True)
    ]


def _draw_result(cfg: FTConfig, draw: int, ev: _ft.FTEvidence) -> DrawResult:
    """The checks, measured quantities and instabilities of one (configuration, draw)."""
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
    checks = (_ft.check_ft1(ev), _ft.check_ft1c(ev), _ft.check_ft1l(ev), gd, real)
    stability = {kind: ev.empirical(kind) for _, kinds in MEASURES.items() for _, kind in kinds}
    return DrawResult(cfg, draw, measured, checks, stability)


def chunks(spec: FineTuneStudySpec) -> list[engine.Chunk]:
    """The (configuration, draw) items grouped by (task, padded size), draw after draw, in
    chunks of capacity ``max(1, max_runs // (size + 1))`` items.

    Every chunk of a group has the same capacity (the program fills the last one up with
    placeholders), so a group compiles once whatever the plan and the number of draws. The
    price: placeholders that a vmap computes (on accelerators) and drops; on the CPU they
    are skipped."""
    groups: dict[tuple[str, int], list] = {}
    for task in spec.tasks:
        configs = [c for c in spec.plan() if c.task == task]
        for r in range(spec.replicates):
            for cfg in configs:
                groups.setdefault((task, padded_size(spec, cfg.n)), []).append((cfg, r))
    out = []
    for (task, size), members in groups.items():
        per = max(1, spec.max_runs // (size + 1))
        for c in range(0, len(members), per):
            part = tuple(members[c : c + per])
            out.append(engine.Chunk("finetune", (task, size, per), part, spec))
    return out


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
        label=lambda c: f"FT {c.group[0]} n<={c.group[1]}: {len(c.items)} config x draws",
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


#: The knobs of each claim's sweeps and their design: natural knobs are observational, the
#: zero-sum tilt and the curvature-matched shift are controlled, the loss scaling a control.
KNOBS = {
    "ft.n": (("n", "observational"),),
    "ft.lipschitz": (("input_scale", "observational"), ("tilt", "controlled")),
    "ft.distance": (
        ("pretrain_steps", "observational"),
        ("alpha", "observational"),
        ("shift", "controlled"),
    ),
    "control.scale": (("scale", "control"),),
}


def sweeps(study: FineTuneStudy) -> dict[str, list[tuple[str, str, list[int]]]]:
    """For each claim, the (task, knob, config indices) sweeps that inform it (:data:`KNOBS`)."""
    spec = study.spec
    out: dict[str, list] = {claim_id: [] for claim_id in KNOBS}
    for task in spec.tasks:
        base = dataclasses.asdict(spec.base(task))
        for claim_id, knobs in KNOBS.items():
            for free, _ in knobs:
                idx = study.find(**{key: v for key, v in base.items() if key != free})
                if len({study.configs[k][free] for k in idx}) >= 2:
                    out[claim_id].append((task, free, idx))
    return out


#: A sweep whose measured parameter spans less than this ratio (max / min) is not decisive:
#: the knob barely moved the quantity the claim is about.
MIN_SPREAD = 1.2

#: Quantities of the FT-1/FT-2 bounds reported beside each sweep, since a knob moves several.
#: An observational regime is inconclusive when one of them other than the claim's parameter
#: moves by :data:`MIN_SPREAD` or more (it is confounded).
COVARIATES = ("n", "rho", "distance", "beta", "Lam")


def _spread(values) -> float:
    values = np.asarray(values, float)
    return float(values.max() / values.min()) if values.min() > 0 else float("inf")


def _regime_measures(study: FineTuneStudy, knob: str, notion: str):
    """``(regime prefix, label, kind, checkpoint row)`` of one sweep under one notion."""
    steps = list(study.spec.steps)
    late = len(steps) - 1
    measures = MEASURES[notion]
    if knob == "shift":  # FT-2's transient term: early (t small) and late (the minimiser, t last)
        early = steps.index(study.spec.early_step) if study.spec.early_step in steps else 1
        rows = [(f"early (t={steps[early]})", label, kind, early) for label, kind in measures]
        rows = [r for r in rows if not r[2].startswith("min")]
        rows += [
            (
                "late (minimiser)" if kind.startswith("min") else f"late (t={steps[late]})",
                label,
                kind,
                0 if kind.startswith("min") else late,
            )
            for label, kind in measures
        ]
        return rows
    return [("", label, kind, 0 if kind.startswith("min") else late) for label, kind in measures]


def judge_claims(study: FineTuneStudy) -> list:
    """Verdicts for ft.n, ft.lipschitz, ft.distance and the control, per notion.

    Every regime carries its design (:data:`KNOBS`). A regime whose measured parameter spans
    less than :data:`MIN_SPREAD` (max / min) is inconclusive whatever the instability does;
    an observational regime is also inconclusive when another bound quantity
    (:data:`COVARIATES`) moves by :data:`MIN_SPREAD` or more, and its name says which. Every
    regime's name lists how much each bound quantity moved along its sweep (max / min). The
    control is judged under ``loo.weights`` only (loss values scale by ``c`` by
    construction).
    """
    verdicts = []
    for claim_id, claim_sweeps in sweeps(study).items():
        claim = FT_CLAIMS[claim_id]
        designs = dict(KNOBS[claim_id])
        for notion in MEASURES:
            if claim_id == "control.scale" and notion != "loo.weights":
                continue
            regimes = []
            for task, knob, idx in claim_sweeps:
                design = designs[knob]
                xs = [study.configs[k][claim.parameter] for k in idx]
                spreads = {q: _spread([study.configs[k][q] for k in idx]) for q in COVARIATES}
                moved = ", ".join(f"{q} x{v:.2f}" for q, v in spreads.items())
                confounded = [
                    q for q, v in spreads.items() if q != claim.parameter and v >= MIN_SPREAD
                ]
                for prefix, label, kind, row in _regime_measures(study, knob, notion):
                    values = [study.stability[k][kind][row] for k in idx]
                    name = f"{task}, {label}, swept {knob} ({design}; moved: {moved})"
                    name = f"{prefix}: {name}" if prefix else name
                    r = _claims.verdict(claim, xs, values, regime=name, design=design)
                    if _spread(xs) < MIN_SPREAD:
                        r = dataclasses.replace(
                            r,
                            verdict="inconclusive",
                            regime=f"{name}; {claim.parameter} spans only "
                            f"x{_spread(xs):.2f} < x{MIN_SPREAD}",
                        )
                    elif design == "observational" and confounded:
                        r = dataclasses.replace(
                            r,
                            verdict="inconclusive",
                            regime=f"{name}; confounded: "
                            + ", ".join(f"{q} moves x{spreads[q]:.2f}" for q in confounded)
                            + f" >= x{MIN_SPREAD}",
                        )
                    regimes.append(r)
            if regimes:
                verdicts.append(
                    _claims.combine(
                        claim, notion, regimes, figure=f"claims_ft_{notion.split('.')[1]}.png"
                    )
                )
    return verdicts
