"""The full fine-tuning study's claims: ft.n, ft.lipschitz, ft.distance and the loss-scaling
control, judged with Kendall's tau between the *measured* quantity a claim names (``n``,
``rho = max_i rho_i``, ``||w_S - w0||``, ``c``) and the mean leave-one-out instability.

Every sweep carries its design (:data:`KNOBS`): a natural knob is observational, and
inconclusive when another bound quantity moves by :data:`MIN_SPREAD` or more; the zero-sum
tilt and the curvature-matched shift are controlled; the loss scaling is a control.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stabtheory import claims
from stabtheory.simulations.finetune.compute import FineTuneStudy
from stabtheory.simulations.finetune.spec import MEASURES

__all__ = ["COVARIATES", "FT_CLAIMS", "KNOBS", "MIN_SPREAD", "judge_claims", "sweeps"]

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
            "control.scale",
            "negative control: scaling the loss by c with lam -> c lam, eta -> eta / c changes "
            "no claim statistic (judged as the loo.weights instability against c; predicted "
            "sign 0, so any decisive trend refutes the control)",
            "scale",
            0,
        ),
    )
}


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
                    r = claims.verdict(claim, xs, values, regime=name, design=design)
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
                    claims.combine(
                        claim, notion, regimes, figure=f"claims_ft_{notion.split('.')[1]}.png"
                    )
                )
    return verdicts
