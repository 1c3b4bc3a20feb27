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
    "PLACEBO",
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


def design(family: str, claim_id: str) -> str:
    """The design of ``claim_id``'s regimes in ``family``: its ``n_design`` for ``head.n``,
    natural otherwise (docs/theory.md section 6)."""
    return FAMILIES[family].n_design if claim_id == "head.n" else "natural"


def judge_claims(study: HeadStudy) -> list:
    """Verdicts for head.iterations, head.lr, head.margin and head.n under every notion: one
    regime per (family, loss) and time (head.lr: fixed t and matched eta * t)."""
    spec, steps = study.spec, study.steps
    times = {"early": t_index(steps, spec.early_t), "late": len(steps) - 1}
    verdicts = []
    pairs = [(f, loss) for f in spec.families for loss in spec.losses_of(f)]
    for notion in NOTIONS:
        # head.iterations: instability against t, early and late ranges, per family and loss.
        claim = claims.HEAD_CLAIMS["head.iterations"]
        regimes = []
        for family, loss in pairs:
            k = study.plan.index(spec.base(loss, family))
            values = study.stability[k][notion]
            cut = times["early"]
            for name, sl in (("early", slice(0, cut + 1)), ("late", slice(cut, None))):
                t_range = f"t in [{steps[sl][0]}, {steps[sl][-1]}]"
                regime = f"{family}, {loss}, {name} ({t_range})"
                if notion == "weights":  # ||w(t)|| grows like log t / gamma on separable data
                    regime += ", grows by construction"
                regimes.append(
                    claims.verdict(
                        claim,
                        steps[sl].astype(float),
                        list(values[sl]),
                        regime=regime,
                        design="positive-control" if notion == "weights" else "natural",
                    )
                )
        verdicts.append(
            claims.combine(claim, f"loo.{notion}", regimes, figure=f"claims_{notion}.png")
        )
        # head.lr: fixed t and matched eta * t.
        claim = claims.HEAD_CLAIMS["head.lr"]
        regimes = []
        ti_ref = t_index(steps, spec.t_ref)
        matched = spec.matched_steps
        for family, loss in pairs:
            ks = sweep(study, family, loss, "head.lr")
            lrs = [study.configs[j]["lr"] for j in ks]
            label = regime_label(family, loss, "head.lr", spec)
            fixed = [study.stability[j][notion][ti_ref] for j in ks]
            regimes.append(  # eta at fixed t also moves eta * t: confounded
                claims.verdict(
                    claim,
                    lrs,
                    fixed,
                    regime=f"{label}, fixed t={steps[ti_ref]} (moves eta*t)",
                    design="confounded",
                )
            )
            ts = [matched[study.plan[j].lr] for j in ks]
            at = [
                study.stability[j][notion][t_index(steps, t)] for j, t in zip(ks, ts, strict=True)
            ]
            shown = ", ".join(str(t) for t in ts)
            regimes.append(
                claims.verdict(
                    claim,
                    lrs,
                    at,
                    regime=f"{label}, matched eta*t={spec.lr * spec.t_ref:g} (t={shown})",
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
                        claims.verdict(
                            claim,
                            params,
                            [study.stability[j][notion][ti] for j in ks],
                            regime=f"{label}, {name} (t={steps[ti]})",
                            design=design(family, claim_id),
                        )
                    )
            verdicts.append(
                claims.combine(claim, f"loo.{notion}", regimes, figure=f"claims_{notion}.png")
            )
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
            index = [float(c) for c in range(len(ks))]
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
