r"""The stabilizer study's verdicts: one per method with a claim, with regimes on every testbed.

**The rule is symmetric and the stability endpoint alone decides** (the mechanism is reported
beside and never changes a verdict): a regime is ``supported`` when stability is raised,
``refuted`` when it is lowered, ``inconclusive`` otherwise.

**A testbed counts only where it shows the phenomenon.** A claim is about stabilizing
fine-tuning where runs fail; a testbed's regimes count toward the verdict only when plain
fine-tuning's seeds there are classified ``"failures"`` by
:func:`stabtheory.attention.classify` (some seeds at the majority class while the others
succeed). The MLP testbeds (``synthetic``, ``digits``) show no failed run in the default
design: their regimes are shown, not counted, and the name says why. The attention testbed's
regimes (:mod:`stabtheory.simulations.stabilizers.attention`: paired seeds over draws, failure
rate and log std ratio, fixed budget and loss target) decide.

On an MLP testbed, per spread measure (a regime): stability is raised when the ratio
method / plain is at most 1/1.1 and its interval lies below 1 (for the accuracy std, **and**
the Brown-Forsythe p-value is below ``alpha`` = 0.05), lowered symmetrically; ``replicates``
are the seeds of one task draw and one pre-training (conditional on them).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stabtheory.claims import MIN_EFFECT, Claim, RegimeVerdict, Verdict, combine
from stabtheory.simulations.stabilizers import attention as att
from stabtheory.simulations.stabilizers.results import StabilizerStudy
from stabtheory.simulations.stabilizers.spec import REFERENCE
from stabtheory.stabilizers import Comparison, Method

__all__ = [
    "MEASURES",
    "STATISTIC",
    "StabilizerRegime",
    "StabilizerVerdict",
    "claim_of",
    "comparison",
    "judge_claims",
]

#: The statistic of the stability part of a verdict (the ``effect`` of a regime).
STATISTIC = (
    "attention testbed (counted where plain fine-tuning shows failures): effect = failure-rate "
    "ratio arm / plain (McNemar exact test on seed pairs pooled over draws; CI the union of "
    "a paired hierarchical bootstrap and the exact conditional interval) or exp(mean "
    "per-draw log std ratio of test accuracy) "
    "(t-interval over draws), Holm over the claim's four p-values, decisive when p_holm <= "
    f"0.05, the effect <= 1/{MIN_EFFECT} (>= {MIN_EFFECT}) and its CI below (above) 1; "
    "MLP testbeds: effect = ratio method / plain of the seed spread (test-accuracy std, with the "
    "Brown-Forsythe p-value; or test-prediction disagreement), percentile-bootstrap 95% CI "
    "(seeds resampled within each method); stability is raised (lowered) only when the CI "
    f"lies below (above) 1, the ratio is <= 1/{MIN_EFFECT} (>= {MIN_EFFECT}) "
    "and, for the accuracy std, p < alpha; the stability endpoint alone decides (symmetric), "
    "the mechanism statistic and its interval are in 'mechanism'"
)

#: The two faces of ``seed.std`` (docs/theory.md section 1) that the verdicts use as regimes.
MEASURES = ("test accuracy", "test predictions")


@dataclasses.dataclass(frozen=True)
class StabilizerRegime(RegimeVerdict):
    """A claim's verdict on one testbed and spread measure (design ``"natural"``).

    The inherited fields hold the stability statistic: ``effect`` the spread ratio
    ``s_method / s_plain`` (std of test accuracy over seeds, or prediction disagreement),
    ``effect_ci`` its bootstrap interval, ``replicates`` the seeds, ``parameter_values``
    ``[mechanism plain, mechanism method]`` and ``instability`` ``[s_plain, s_method]``;
    ``tau``, ``ci`` and the sign test are NaN (two arms, no sweep to rank). The added
    fields give the rest.

    Attributes:
      p_value: Brown-Forsythe p-value (method vs plain); NaN for the disagreement.
      mechanism: the mechanism statistic, its interval and what it says, in words.
      mechanism_verdict: ``"as predicted"``, ``"opposite"`` or ``"no detectable change"``.
      stability_verdict: ``"raised"``, ``"lowered"`` or ``"no detectable change"``.
    """

    p_value: float = math.nan
    mechanism: str = ""
    mechanism_verdict: str = ""
    stability_verdict: str = ""

    def statistic(self) -> dict:
        p = float(self.p_value)
        finite = math.isfinite(p)
        return {
            **super().statistic(),
            "p_value": p if finite else None,
            "test": "Brown-Forsythe" if finite else None,
        }

    def to_dict(self) -> dict:
        return {
            **super().to_dict(),
            "mechanism": {
                "text": self.mechanism,
                "verdict": self.mechanism_verdict,
                "stability": self.stability_verdict,
            },
        }


@dataclasses.dataclass(frozen=True)
class StabilizerVerdict(Verdict):
    """A :class:`stabtheory.claims.Verdict` whose statistic is the std ratio (see ``STATISTIC``)."""

    statistic_name = STATISTIC


def claim_of(method: Method) -> Claim:
    """The claim a method with a ``claim`` text is tested on (id: the method's name)."""
    return Claim(method.name, method.claim, "method", -1)


def comparison(study: StabilizerStudy, method: Method, task: str) -> Comparison:
    """What ``method``'s mechanism and figure hooks see of testbed ``task``."""
    return Comparison(
        per_seed=study.per_seed[task],
        measured=study.mechanisms.get(task, {}).get(method.name, {}),
        reference=REFERENCE,
        methods=tuple(m.name for m in study.spec.methods),
        testbed=task,
        n_boot=study.spec.n_boot,
        level=study.spec.level,
    )


def _seeds(study: StabilizerStudy, task: str, method: str) -> int:
    """The seeds behind a comparison of ``method`` with plain (the smaller of the two)."""
    ps = study.per_seed.get(task, {})
    counts = [len(next(iter(ps[m].values()))) for m in (method, REFERENCE) if ps.get(m)]
    return min(counts) if counts else int(study.spec.seeds)


def _regime(study: StabilizerStudy, method: Method, task: str, measure: str) -> StabilizerRegime:
    spec = study.spec
    row, plain = study.row(task, method.name), study.row(task, REFERENCE)
    if measure == "test accuracy":
        ratio, (lo, hi), p = row["std_ratio"], row["std_ratio_ci"], row["bf_p"]
        significant = np.isfinite(p) and p < spec.alpha
        spread = [plain["acc_std"], row["acc_std"]]
    else:  # no variance test for the disagreement: its bootstrap interval alone decides
        ratio, (lo, hi), p = row["disagreement_ratio"], row["disagreement_ratio_ci"], math.nan
        significant = True
        spread = [plain["disagreement"], row["disagreement"]]
    # A spread change counts only when significant and non-negligible (docs/theory.md sec. 6).
    if significant and hi < 1.0 and ratio <= 1.0 / MIN_EFFECT:
        stab = "raised"
    elif significant and lo > 1.0 and ratio >= MIN_EFFECT:
        stab = "lowered"
    else:
        stab = "no detectable change"
    mech = method.mechanism(comparison(study, method, task))
    word_mech = mech.verdict
    word = {"raised": "supported", "lowered": "refuted"}.get(stab, "inconclusive")
    shows = plain.get("classification") == "failures"
    why = (
        ""
        if shows
        else f" [not counted: plain fine-tuning is '{plain.get('classification', 'unknown')}' "
        "here, no failed run: the testbed does not show the phenomenon the claim is about]"
    )
    return StabilizerRegime(
        regime=f"{task}, {measure}{why}",
        verdict=word,
        tau=math.nan,
        ci=(math.nan, math.nan),
        parameter_values=mech.values,
        instability=spread,
        design="natural",
        replicates=_seeds(study, task, method.name),
        effect=ratio,
        effect_ci=(lo, hi),
        counted=shows,
        p_value=p,
        mechanism=f"{mech.text}: {word_mech}",
        mechanism_verdict=word_mech,
        stability_verdict=stab,
    )


def judge_claims(study: StabilizerStudy) -> list[StabilizerVerdict]:
    """A verdict (notion ``seed.std``) for every method of the spec that has a claim, in order.

    Regimes: every testbed, times the two measures of ``seed.std`` (:data:`MEASURES`): the
    std of test accuracy (std ratio, bootstrap interval and Brown-Forsythe test) and the
    disagreement of the test predictions (its ratio and bootstrap interval).
    """
    verdicts = []
    a_spec = study.spec.attention
    for method in study.spec.methods:
        if not method.claim:
            continue
        regimes = [
            _regime(study, method, task, measure)
            for task in study.spec.testbeds
            for measure in MEASURES
        ]
        attention = []
        if study.attention and method.name in {a.method for a in a_spec.arms()}:
            table = study.attention_table
            attention = att.attention_regimes(study.attention, method.name, a_spec, table)
        v = combine(
            claim_of(method),
            "seed.std",
            [*attention, *regimes],
            # the figure of the testbed that decides: the attention one where it ran
            figure="stabilizers_attention.png" if attention else f"stabilizers_{method.name}.png",
        )
        details = [
            f"attention {r.arm}, {r.regime.split(', ')[1]}: {r.endpoint} ratio "
            f"{r.effect:.3f} [{r.effect_ci[0]:.3f}, {r.effect_ci[1]:.3f}], p={r.p_value:.3g}"
            f"{'' if not r.counted else f' (Holm {r.p_holm:.3g})'}: stability "
            f"{r.stability_verdict} -> {r.verdict}"
            for r in attention
            if a_spec.primary(method.name).name == r.arm
        ]
        if attention:
            lead = next(r for r in attention if r.arm == a_spec.primary(method.name).name)
            details.append(f"attention mechanism ({lead.arm}): {lead.mechanism}")
        for task in study.spec.testbeds:
            acc, pred = (r for r in regimes if r.regime.startswith(f"{task},"))
            details.append(
                f"{task}: {acc.mechanism}; test-accuracy std ratio {acc.effect:.3f} "
                f"[{acc.effect_ci[0]:.3f}, {acc.effect_ci[1]:.3f}], Brown-Forsythe "
                f"p={acc.p_value:.3g}: stability {acc.stability_verdict} -> {acc.verdict}; "
                f"prediction disagreement ratio {pred.effect:.3f} "
                f"[{pred.effect_ci[0]:.3f}, {pred.effect_ci[1]:.3f}]: stability "
                f"{pred.stability_verdict} -> {pred.verdict}"
            )
        fields = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
        fields["explanation"] = f"{v.explanation}. " + "; ".join(details)
        verdicts.append(StabilizerVerdict(**fields))
    return verdicts
