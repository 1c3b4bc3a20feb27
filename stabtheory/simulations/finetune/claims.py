"""The full fine-tuning study's claims: ft.n, ft.lipschitz, ft.distance and the loss-scaling
control, judged with Kendall's tau between the *measured* quantity a claim names (``n``,
``rho = max_i rho_i``, ``||w_S - w0||``, ``c``) and the mean leave-one-out instability.

Every regime carries its design (:data:`KNOBS`, docs/theory.md section 6): natural knobs are
counted on the Taylor model, and confounded when another bound quantity moves by
:data:`MIN_SPREAD` or more (n excepted: what it moves is its mechanism, judged as a total
effect); the zero-sum tilt and the curvature-matched shift are positive controls on the Taylor
model; the loss scaling is a software control. The real network is counted only where it
passes assumption (d) (:data:`~stabtheory.bounds.finetune.DEPARTURE_THRESHOLD`), and its
inexact shift is confounded.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stabtheory import claims
from stabtheory.bounds.finetune import DEPARTURE_THRESHOLD
from stabtheory.simulations.finetune.compute import FineTuneStudy
from stabtheory.simulations.finetune.spec import MEASURES

__all__ = [
    "COVARIATES",
    "FT_CLAIMS",
    "KNOBS",
    "MIN_SPREAD",
    "PER_DRAW",
    "PREDICTED_BY",
    "design",
    "judge_claims",
    "sweeps",
]

#: The claims of the full fine-tuning study (docs/theory.md section 5).
FT_CLAIMS = {
    c.id: c
    for c in (
        claims.Claim("ft.n", "full FT: larger sample size n gives more stability", "n", -1),
        claims.Claim(
            "ft.lipschitz", "full FT: smaller Lipschitz constant gives more stability", "rho", +1
        ),
        claims.Claim(
            "ft.distance",
            "full FT: smaller distance between w0 and the fine-tuned optimum gives more stability",
            "distance",
            +1,
        ),
        claims.Claim(
            "ft.lr",
            "full FT (FT-2): a smaller learning rate is more stable early (GD at a fixed early "
            "step t)",
            "lr",
            +1,
        ),
        claims.Claim(
            "ft.steps",
            "full FT (FT-2): fewer gradient steps are more stable early (t up to the early "
            "checkpoint)",
            "t",
            +1,
        ),
        claims.Claim(
            "control.scale",
            "software control: scaling the loss by c with lam -> c lam, eta -> eta / c leaves "
            "every trajectory unchanged (shown as the loo.weights instability against c; "
            "predicted sign 0; never counted)",
            "scale",
            0,
        ),
    )
}


#: The knobs of each claim's sweeps and what kind of manipulation each is (:func:`design`):
#: ``total`` natural variation judged by its total effect (what it moves is its mechanism),
#: ``natural`` natural variation (confounded when another bound quantity moves),
#: ``identity`` a manipulation decided by an identity on the Taylor model and exact on the
#: real network (the zero-sum tilt), ``inexact`` one decided by an identity on the Taylor
#: model and not exact on the real network (the shift: its per-sample terms do not sum to
#: zero under the real curvature), ``software`` an invariance of the code (loss scaling).
KNOBS = {
    "ft.n": (("n", "total"),),
    "ft.lipschitz": (("input_scale", "natural"), ("tilt", "identity")),
    "ft.distance": (
        ("task_shift", "natural"),
        ("pretrain_steps", "natural"),
        ("alpha", "natural"),
        ("lam", "natural"),
        ("shift", "inexact"),
    ),
    "ft.lr": (("lr_fraction", "natural"),),
    "control.scale": (("scale", "software"),),
}

#: Per measured kind (:data:`~stabtheory.simulations.finetune.spec.MEASURES`), the bound whose
#: elasticity along a sweep is set beside the measured one: (theorem, notion). The real
#: network has the Taylor model's bound beside it (outside the theorems).
PREDICTED_BY = {
    "min.weights": ("ft.FT1", "loo.weights"),
    "gd.weights": ("ft.FT2", "loo.weights (gd)"),
    "real.weights": ("ft.FT2", "loo.weights (gd)"),
    "min.loss": ("ft.FT1L", "loo.loss"),
    "real.loss": ("ft.FT1L", "loo.loss"),
}

#: Quantities measured on every draw (a claim's parameter other than these is the same in
#: every draw of a configuration).
PER_DRAW = ("rho", "distance", "lr")


def design(kind: str, *, real: bool, faithful: bool) -> tuple[str, bool, str]:
    """``(design, counted, why not counted)`` of a regime of a knob of this ``kind``
    (:data:`KNOBS`), measured on the real network (``real``) or the Taylor model; ``faithful``:
    every configuration of the sweep passes assumption (d).

    Example:
      >>> design("identity", real=False, faithful=False)
      ('positive-control', False, 'decided by an identity on the Taylor model')
      >>> design("natural", real=True, faithful=False)[:2]
      ('natural', False)
    """
    if kind == "software":
        return "software-control", False, "an invariance of the code"
    if not real:
        if kind in ("identity", "inexact"):
            return "positive-control", False, "decided by an identity on the Taylor model"
        return "natural", True, ""
    if kind == "inexact":
        return "confounded", False, "not exact on the real network"
    if not faithful:
        return "natural", False, "outside the Taylor regime: assumption (d) fails"
    return "natural", True, ""


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
    early = steps.index(study.spec.early_step) if study.spec.early_step in steps else 1
    if knob == "lr_fraction":  # FT-2's prediction in eta: GD early (the minimiser has no eta)
        return [
            (f"early (t={steps[early]})", label, kind, early)
            for label, kind in measures
            if not kind.startswith("min")
        ]
    if knob == "shift":  # FT-2's transient term: early (t small) and late (the minimiser, t last)
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
    """Verdicts for ft.n, ft.lipschitz, ft.distance, ft.lr, ft.steps and the control, per
    notion.

    Every regime carries its design (:func:`design`). A regime whose measured parameter spans
    less than :data:`MIN_SPREAD` (max / min) is inconclusive whatever the instability does; a
    ``natural`` knob's regime is confounded (shown, not counted) when another bound quantity
    (:data:`COVARIATES`) moves by :data:`MIN_SPREAD` or more, and its name says which. Every
    regime's name lists how much each bound quantity moved along its sweep (max / min). The
    control is judged under ``loo.weights`` only (loss values scale by ``c`` by
    construction).
    """
    verdicts = []
    for claim_id, claim_sweeps in sweeps(study).items():
        claim = FT_CLAIMS[claim_id]
        kinds = dict(KNOBS[claim_id])
        for notion in MEASURES:
            if claim_id == "control.scale" and notion != "loo.weights":
                continue
            regimes = []
            for task, knob, idx in claim_sweeps:
                kind = kinds[knob]
                faithful = all(
                    study.configs[k]["taylor_departure"] <= DEPARTURE_THRESHOLD for k in idx
                )
                xs = [study.configs[k][claim.parameter] for k in idx]
                spreads = {q: _spread([study.configs[k][q] for k in idx]) for q in COVARIATES}
                moved = ", ".join(f"{q} x{v:.2f}" for q, v in spreads.items())
                confounded = [
                    q for q, v in spreads.items() if q != claim.parameter and v >= MIN_SPREAD
                ]
                per_draw = (
                    study.per_draw(idx, claim.parameter) if claim.parameter in PER_DRAW else None
                )
                for prefix, label, measure, row in _regime_measures(study, knob, notion):
                    values = [study.stability[k][measure][row] for k in idx]
                    bounds, theorem = study.bound_sweep(
                        idx,
                        [0 if measure.startswith("min") else row] * len(idx),
                        [PREDICTED_BY[measure]],
                    )
                    real = measure.startswith("real")
                    shown, counted, why = design(kind, real=real, faithful=faithful)
                    if shown == "natural" and kind == "natural" and confounded:
                        shown, counted = "confounded", False
                        why = "confounded: " + ", ".join(
                            f"{q} moves x{spreads[q]:.2f}" for q in confounded
                        )
                        why += f" >= x{MIN_SPREAD}"
                    name = f"{task}, {label}, swept {knob} ({shown}; moved: {moved})"
                    name = f"{prefix}: {name}" if prefix else name
                    name = f"{name}; {why}" if why else name
                    r = claims.verdict(
                        claim,
                        xs,
                        values,
                        regime=name,
                        design=shown,
                        counted=counted,
                        runs=f"{task}, swept {knob}",
                        draw_parameters=per_draw,
                        bounds=bounds,
                        predicted_by=theorem,
                    )
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
                    claims.combine(
                        claim, notion, regimes, figure=f"claims_ft_{notion.split('.')[1]}.png"
                    )
                )
    return verdicts + _judge_steps(study)


def _judge_steps(study: FineTuneStudy) -> list:
    """``ft.steps``: the leave-one-out change of GD against t up to the early checkpoint, on
    each task's base configuration (Taylor GD counted; the real network counted only where
    it passes assumption (d)), beside the elasticity of the FT-2 bound along the same t."""
    claim = FT_CLAIMS["ft.steps"]
    steps = list(study.spec.steps)
    early = steps.index(study.spec.early_step) if study.spec.early_step in steps else 1
    rows = list(range(early + 1))
    if len(rows) < 2:
        return []
    verdicts = []
    for notion in MEASURES:
        regimes = []
        for task in study.spec.tasks:
            (k,) = study.find(**dataclasses.asdict(study.spec.base(task)))
            faithful = study.configs[k]["taylor_departure"] <= DEPARTURE_THRESHOLD
            for label, measure in MEASURES[notion]:
                if measure.startswith("min"):
                    continue
                shown, counted, why = design(
                    "natural", real=measure.startswith("real"), faithful=faithful
                )
                name = f"{task}, {label}, t in [{steps[0]}, {steps[early]}] ({shown})"
                bounds, theorem = study.bound_sweep([k] * len(rows), rows, [PREDICTED_BY[measure]])
                regimes.append(
                    claims.verdict(
                        claim,
                        [float(steps[r]) for r in rows],
                        [study.stability[k][measure][r] for r in rows],
                        regime=f"{name}; {why}" if why else name,
                        design=shown,
                        counted=counted,
                        runs=f"{task}, base",
                        bounds=bounds,
                        predicted_by=theorem,
                    )
                )
        if regimes:
            figure = f"claims_ft_{notion.split('.')[1]}.png"
            verdicts.append(claims.combine(claim, notion, regimes, figure=figure))
    return verdicts
