"""The full fine-tuning study's computation: its chunks, one chunk's evidence program, the
checks and measured quantities of each (configuration, draw), and the results
(:class:`FineTuneStudy`).

The (configuration, draw) items of one task and padded sample size run as one program
(:func:`~stabtheory.bounds.finetune.ft_evidence_batch`: a loop over them on the CPU, a vmap
on accelerators), in chunks of one capacity (``max_runs``), so a study compiles one program
per (task, size).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from stabtheory.bounds import check_all
from stabtheory.bounds.finetune import (
    FTEvidence,
    FTProblem,
    FTReference,
    curvature_ratio,
    ft_evidence_batch,
    ft_reference,
    hessian_min_eig,
    loss_gap,
    real_departure,
    stationarity,
)
from stabtheory.simulations import engine
from stabtheory.simulations.finetune.spec import (
    MEASURES,
    FineTuneStudySpec,
    FTConfig,
    padded_size,
)
from stabtheory.simulations.protocol import DrawResult, Study, draws_by_config

__all__ = [
    "REAL",
    "STATIONARY_KEYS",
    "FineTuneStudy",
    "assemble",
    "chunks",
    "compute",
    "draw_result",
    "merge_measured",
    "stationary_measures",
]

#: The notion that sets a Taylor-model bound beside the real network's leave-one-out
#: stability (outside the theorems, never applicable).
REAL = "loo.weights (real)"


@dataclasses.dataclass
class FineTuneStudy(Study):
    """Results of the full fine-tuning study
    (:class:`~stabtheory.simulations.protocol.Study`): one config dict per :class:`FTConfig`
    (its fields and the measured quantities, mean over draws), one check row per (config,
    theorem, notion) over every draw, ``{kind: (C, draws, n)}``, and the per-draw
    :class:`~stabtheory.simulations.protocol.DrawResult` s."""

    spec: FineTuneStudySpec


def _needs_reference(cfg: FTConfig) -> bool:
    return cfg.alpha > 0 or cfg.tilt > 0 or cfg.shift > 0


def compute(spec: FineTuneStudySpec, chunk: engine.Chunk) -> list[DrawResult]:
    """Every (configuration, draw) item of one chunk as one compiled evidence program.

    One testbed per (draw, pre-training length, task shift) (``input_scale`` multiplies its
    inputs); configurations set in units of their draw's base (``alpha``, ``tilt``, ``shift``) take
    the base's optimum from :func:`~stabtheory.bounds.finetune.ft_reference`. Every item
    is padded to the chunk's sample size and the batch to its capacity, so a (task, size)
    group compiles once whatever the plan and the number of draws."""
    from stabtheory import full_finetuning as ff  # flax: imported when a chunk is computed

    task, size, capacity = chunk.group
    beds: dict[tuple[int, int, float | None], ff.Testbed] = {}
    refs: dict[int, FTReference] = {}

    def bed_of(cfg: FTConfig, draw: int) -> ff.Testbed:
        key = (draw, cfg.pretrain_steps, cfg.task_shift)
        if key not in beds:
            seed = engine.draw_seed(spec.seed, draw)
            beds[key] = ff.make_testbed(
                ff.TestbedConfig(
                    task=task,
                    n=spec.n_max,
                    pretrain_steps=cfg.pretrain_steps,
                    shift=cfg.task_shift,
                    seed=seed,
                    init_seed=seed,
                )
            )
        return beds[key]

    problems = []
    for cfg, draw in chunk.items:
        bed = bed_of(cfg, draw)
        X, y = cfg.input_scale * bed.X[: cfg.n], bed.y[: cfg.n]
        w0 = np.asarray(bed.w0)
        design = ff.FTDesign(scale=cfg.scale, seed=engine.draw_seed(spec.seed, draw))
        if _needs_reference(cfg):
            base = spec.base(task)
            if draw not in refs:
                base_bed = bed_of(base, draw)
                refs[draw] = ft_reference(
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
        to_tolerance = spec.stationary_steps if cfg == spec.base(task) else 0
        problems.append(
            FTProblem(
                w0,
                X,
                y,
                cfg.lam,
                None,
                cfg.lr_fraction,
                design=design,
                info=info,
                max_steps=to_tolerance,
            )
        )
    evidence = ft_evidence_batch(
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
        draw_result(cfg, draw, ev) for (cfg, draw), ev in zip(chunk.items, evidence, strict=True)
    ]


def draw_result(cfg: FTConfig, draw: int, ev: FTEvidence) -> DrawResult:
    """The checks, measured quantities and instabilities of one (configuration, draw).

    The checks are every applicable theorem's (:func:`~stabtheory.bounds.check_all`, in
    registry order); ``real_exceeds_ft2`` counts the (sample, t) points where the real
    network's leave-one-out change exceeds the bound it is set beside (:data:`REAL`), at the
    checkpoints where that bound applies to the Taylor model (``None``: nowhere)."""
    checks = tuple(check_all(ev))
    real = next(c for c in checks if c.notion == REAL)
    # the same theorem's check on the Taylor model (its bound is NaN where it does not apply)
    taylor = next(c for c in checks if c.theorem == real.theorem and c.notion != REAL)
    raw = taylor.bound
    ok = taylor.applicable_at
    over = real.empirical[ok] > raw[ok] + taylor.tol * np.maximum(1, raw[ok])
    measured = {
        **{key: ev.config[key] for key in ("p", "lr")},
        "rho": float(ev.rho.max()),
        "distance": ev.distance,
        "Lam": float(ev.Lam.min()),
        "beta": float(ev.beta_i.max()),
        "taylor_departure": real_departure(ev),
        "loss_gap": loss_gap(ev),
        "real_exceeds_ft2": int(np.sum(over)) if ok.any() else None,
        "edge_of_stability": ev.edge_of_stability,
        "hessian_min_eig": hessian_min_eig(ev),
        "hessian_min_rel": float(curvature_ratio(ev)[0]),
        "hessian_min_rel_path": float(curvature_ratio(ev).min()),
        "stationarity": stationarity(ev),
        **stationary_measures(ev),
    }
    stability = {kind: ev.empirical(kind) for _, kinds in MEASURES.items() for _, kind in kinds}
    return DrawResult(cfg, draw, measured, checks, stability)


#: The measured quantities of :func:`stationary_measures`.
STATIONARY_KEYS = ("stationary", "stationary_steps", "real_over_taylor_min")


def stationary_measures(ev: FTEvidence) -> dict:
    """Where the real runs were trained to the stationarity tolerance (``max_steps > 0``):
    ``stationary`` (every run reached it), ``stationary_steps`` (the steps the runs took
    after the last checkpoint) and ``real_over_taylor_min`` (the real network's mean
    leave-one-out weight change there over the Taylor minimiser's, 1 for a faithful Taylor
    model); ``None`` each elsewhere."""
    if ev.w_stat is None or not ev.config.get("max_steps"):
        return dict.fromkeys(STATIONARY_KEYS)
    real = np.linalg.norm(ev.w_stat[1:] - ev.w_stat[0], axis=1).mean()
    return {
        "stationary": ev.stationary,
        "stationary_steps": ev.stat_steps,
        "real_over_taylor_min": float(real / ev.empirical("min.weights").mean()),
    }


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


def merge_measured(members: list[DrawResult]) -> dict:
    """The measured quantities over the draws: means (the departure, loss gap, edge of
    stability and stationarity: max; the true Hessian's smallest eigenvalue and ratios: min;
    the count of points over FT-2: sum, ``None`` where FT-2 applied in no draw)."""
    m = [it.measured for it in members]
    over = [x["real_exceeds_ft2"] for x in m if x["real_exceeds_ft2"] is not None]
    return {
        "p": m[0]["p"],
        "lr": float(np.mean([x["lr"] for x in m])),
        **{q: float(np.mean([x[q] for x in m])) for q in ("rho", "distance", "Lam", "beta")},
        "taylor_departure": float(max(x["taylor_departure"] for x in m)),
        "loss_gap": float(max(x["loss_gap"] for x in m)),
        **{q: float(max(x[q] for x in m)) for q in ("edge_of_stability", "stationarity")},
        **{
            q: float(min(x[q] for x in m))
            for q in ("hessian_min_eig", "hessian_min_rel", "hessian_min_rel_path")
        },
        "real_exceeds_ft2": int(sum(over)) if over else None,
        **_merge_stationary(m),
    }


def _merge_stationary(m: list[dict]) -> dict:
    """:func:`stationary_measures` over the draws: all stationary, the most steps, the mean
    ratio (``None`` each where no draw was trained to the tolerance)."""
    got = [x for x in m if x.get("stationary") is not None]
    if not got:
        return dict.fromkeys(STATIONARY_KEYS)
    return {
        "stationary": all(x["stationary"] for x in got),
        "stationary_steps": max(x["stationary_steps"] for x in got),
        "real_over_taylor_min": float(np.mean([x["real_over_taylor_min"] for x in got])),
    }


def assemble(spec: FineTuneStudySpec, results: list) -> FineTuneStudy:
    """The study from its chunks' results: one config dict per planned configuration (its
    fields and the measured quantities over the draws)."""
    by_config = draws_by_config(results)
    study = FineTuneStudy(spec)
    for cfg in spec.plan():
        members = by_config[cfg]
        config = {
            **dataclasses.asdict(cfg),
            **merge_measured(members),
            "replicates": len(members),
        }
        study.add_config(config, members)
    return study
