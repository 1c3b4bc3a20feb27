"""The head study's claims: its one-at-a-time sweeps, their regimes and the verdicts of
head.iterations, head.lr, head.margin and head.n (``head.lr`` at a fixed t and at matched
eta * t; docs/theory.md section 6)."""

from __future__ import annotations

import dataclasses

import numpy as np

from stabtheory import claims
from stabtheory.data.families import FAMILIES
from stabtheory.simulations.head.compute import HeadStudy
from stabtheory.simulations.head.spec import NOTIONS, HeadStudySpec
from stabtheory.statistics import binomial_interval

__all__ = [
    "LOSS_SPLIT",
    "PLACEBO",
    "PREDICTED_BY",
    "design",
    "judge_claims",
    "judge_placebo",
    "margin_parameter",
    "regime_label",
    "sweep",
    "t_index",
]

#: The placebo claim: a sweep over re-seeded copies of one configuration, where no effect
#: exists; any decisive verdict is a false decision of the pipeline (docs/theory.md section 6).
PLACEBO = claims.Claim(
    "placebo", "placebo: re-seeded copies of one configuration differ only by chance", "copy", 0
)


def t_index(steps: np.ndarray, t: int) -> int:
    return int(np.argmin(np.abs(steps - t)))


def margin_parameter(config: dict) -> float:
    """The swept margin of a config dict: its family's nominal margin (``config_key``: the
    planted margin, the generic band's half-width), or the mean measured max margin of its
    draws (a family without one, e.g. digits pairs)."""
    key = FAMILIES[config["family"]].config_key
    return float(config[key] if key else config["gamma"])


def sweep(study: HeadStudy, family: str, loss: str, claim_id: str) -> list[int]:
    """Config indices of ``claim_id``'s one-at-a-time sweep in (family, loss): the configs
    that differ from the family's base in the swept field only (lr, margin or n), ordered by
    the swept parameter."""
    base = study.spec.base(loss, family)
    free = {"head.lr": ("lr",), "head.margin": ("gamma", "pair"), "head.n": ("n",)}[claim_id]
    pinned = {f: getattr(base, f) for f in free}
    ks = [k for k, cfg in enumerate(study.plan) if dataclasses.replace(cfg, **pinned) == base]
    if claim_id == "head.margin":
        return sorted(ks, key=lambda k: margin_parameter(study.configs[k]))
    return sorted(ks, key=lambda k: getattr(study.plan[k], free[0]))


def regime_label(family: str, loss: str, claim_id: str, spec: HeadStudySpec) -> str:
    """The family part of a regime's name (what kind of evidence it is)."""
    return f"{FAMILIES[family].regime(claim_id, spec.margins_of(family))}, {loss}"


#: Per notion, the theorems whose bound gives the exponent a regime's elasticity is set
#: beside (the first one checked and applicable along the sweep).
PREDICTED_BY = {
    "direction": (("head.H3", "loo.direction"), ("head.H1", "loo.direction")),
    "weights": (("head.C1", "loo.weights"),),
    "loss": (("head.C1", "loo.loss"),),
    # C-1 bounds each part of the split loss change, and the clipped loss's (1-Lipschitz cap)
    "loss.misclassified": (("head.C1", "loo.loss"),),
    "loss.correct": (("head.C1", "loo.loss"),),
    "clipped_loss": (("head.C1", "loo.loss"),),
}


def _judge(study, claim, params, ks, rows, notion, **kwargs):
    """:func:`~stabtheory.claims.verdict` of one sweep (config indices ``ks`` at checkpoint
    ``rows``) with the elasticity its bound predicts (:data:`PREDICTED_BY`)."""
    bounds, theorem = study.bound_sweep(ks, rows, PREDICTED_BY[notion])
    values = [study.stability[k][notion][row] for k, row in zip(ks, rows, strict=True)]
    return claims.verdict(claim, params, values, bounds=bounds, predicted_by=theorem, **kwargs)


def design(family: str, claim_id: str) -> str:
    """The design of ``claim_id``'s regimes in ``family``: its ``n_design`` for ``head.n``,
    natural otherwise (docs/theory.md section 6)."""
    return FAMILIES[family].n_design if claim_id == "head.n" else "natural"


def _iterations(study: HeadStudy, key: str, notion: str, pairs, times) -> claims.Verdict:
    """head.iterations under one notion (``key`` its stability key): instability against t,
    early and late ranges, per family and loss (one vote each: the same runs)."""
    spec, steps = study.spec, study.steps
    claim = claims.HEAD_CLAIMS["head.iterations"]
    regimes = []
    for family, loss in pairs:
        k = study.plan.index(spec.base(loss, family))
        cut = times["early"]
        for name, sl in (("early", slice(0, cut + 1)), ("late", slice(cut, None))):
            t_range = f"t in [{steps[sl][0]}, {steps[sl][-1]}]"
            regime = f"{family}, {loss}, {name} ({t_range})"
            if key == "weights":  # ||w(t)|| grows like log t / gamma on separable data
                regime += ", grows by construction"
            rows = list(range(len(steps)))[sl]
            regimes.append(
                _judge(
                    study,
                    claim,
                    steps[sl].astype(float),
                    [k] * len(rows),
                    rows,
                    key,
                    regime=regime,
                    runs=f"{family}, {loss}",
                    design="positive-control" if key == "weights" else "natural",
                )
            )
    figure = f"claims_{key.split('.')[0].replace('clipped_', '')}.png"
    return claims.combine(claim, notion, regimes, figure=figure)


#: The loss notion of head.iterations split by whether the held-out point is misclassified
#: by u_S\\i, and the clipped loss (:func:`~stabtheory.simulations.head.compute.loss_parts`):
#: (stability key, notion).
LOSS_SPLIT = (
    ("loss.misclassified", "loo.loss (held-out point misclassified by u_S\\i)"),
    ("loss.correct", "loo.loss (held-out point classified correctly by u_S\\i)"),
    ("clipped_loss", "loo.clipped_loss (loss capped at l(0))"),
)


def judge_claims(study: HeadStudy) -> list:
    """Verdicts for head.iterations, head.lr, head.margin and head.n under every notion: one
    regime per (family, loss) and time (head.lr: fixed t and matched eta * t)."""
    spec, steps = study.spec, study.steps
    times = {"early": t_index(steps, spec.early_t), "late": len(steps) - 1}
    verdicts = []
    pairs = [(f, loss) for f in spec.families for loss in spec.losses_of(f)]
    for notion in NOTIONS:
        verdicts.append(_iterations(study, notion, f"loo.{notion}", pairs, times))
        # head.lr: fixed t and matched eta * t.
        claim = claims.HEAD_CLAIMS["head.lr"]
        regimes = []
        ti_ref = t_index(steps, spec.t_ref)
        matched = spec.matched_steps
        for family, loss in pairs:
            ks = sweep(study, family, loss, "head.lr")
            lrs = [study.configs[j]["lr"] for j in ks]
            label = regime_label(family, loss, "head.lr", spec)
            runs = f"{family}, {loss}"
            regimes.append(  # eta at fixed t also moves eta * t: confounded
                _judge(
                    study,
                    claim,
                    lrs,
                    ks,
                    [ti_ref] * len(ks),
                    notion,
                    regime=f"{label}, fixed t={steps[ti_ref]} (moves eta*t)",
                    runs=runs,
                    design="confounded",
                )
            )
            ts = [matched[study.plan[j].lr] for j in ks]
            shown = ", ".join(str(t) for t in ts)
            regimes.append(
                _judge(
                    study,
                    claim,
                    lrs,
                    ks,
                    [t_index(steps, t) for t in ts],
                    notion,
                    regime=f"{label}, matched eta*t={spec.lr * spec.t_ref:g} (t={shown})",
                    runs=runs,
                )
            )
        verdicts.append(
            claims.combine(claim, f"loo.{notion}", regimes, figure=f"claims_{notion}.png")
        )
        for claim_id in ("head.margin", "head.n"):
            claim = claims.HEAD_CLAIMS[claim_id]
            regimes = []
            for family, loss in pairs:
                ks = sweep(study, family, loss, claim_id)
                if claim_id == "head.n":
                    params = [study.configs[j]["n"] for j in ks]
                else:
                    params = [margin_parameter(study.configs[j]) for j in ks]
                label = regime_label(family, loss, claim_id, spec)
                for name, ti in times.items():
                    regimes.append(
                        _judge(
                            study,
                            claim,
                            params,
                            ks,
                            [ti] * len(ks),
                            notion,
                            regime=f"{label}, {name} (t={steps[ti]})",
                            runs=f"{family}, {loss}",
                            design=design(family, claim_id),
                        )
                    )
            verdicts.append(
                claims.combine(claim, f"loo.{notion}", regimes, figure=f"claims_{notion}.png")
            )
    verdicts += [_iterations(study, key, notion, pairs, times) for key, notion in LOSS_SPLIT]
    return verdicts


def judge_placebo(study: HeadStudy) -> dict:
    """The placebo claims and the pipeline's false-decision rate (``report.json``'s
    ``placebo``): for every family and loss, the base configuration and its re-seeded copies
    (:attr:`HeadStudySpec.placebo_copies`) swept over the copy index and judged by the same
    statistics as every claim, under every notion, early and late. ``rate`` is the share judged
    other than ``inconclusive``, ``ci`` its exact 95% interval. The claims of one family and
    loss share their runs, so they are not independent trials."""
    spec, steps = study.spec, study.steps
    times = {"early": t_index(steps, spec.early_t), "late": len(steps) - 1}
    regimes = []
    for family in spec.families:
        for loss in spec.losses_of(family):
            base = spec.base(loss, family)
            ks = [
                study.plan.index(dataclasses.replace(base, copy=c))
                for c in range(spec.placebo_copies)
            ]
            if len(ks) < 2:
                continue
            index = [float(c + 1) for c in range(len(ks))]  # > 0: the elasticity takes logs
            for notion in NOTIONS:
                for name, ti in times.items():
                    regimes.append(
                        claims.verdict(
                            PLACEBO,
                            index,
                            [study.stability[k][notion][ti] for k in ks],
                            regime=f"{family}, {loss}, loo.{notion}, {name} (t={steps[ti]})",
                            design="placebo",
                        )
                    )
    decisive = sum(r.verdict != "inconclusive" for r in regimes)
    total = len(regimes)
    return {
        "claims": total,
        "decisive": decisive,
        "rate": decisive / total if total else None,
        "ci": list(binomial_interval(decisive, total)) if total else None,
        "copies": spec.placebo_copies,
        "regimes": [r.to_dict() for r in regimes],
    }
