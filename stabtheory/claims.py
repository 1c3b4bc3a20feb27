"""The paper's claims (docs/theory.md section 5) turned into verdicts from sweeps.

A :class:`Claim` predicts the sign of d(instability)/d(parameter); :func:`verdict` judges one
regime of a sweep from per-sample instabilities over independent data draws (Kendall's tau-b
with a hierarchical bootstrap interval, the effect ratio between the ends of the sweep and the
per-draw elasticity with its t-interval, decided by :func:`decide`); :func:`combine` turns the
regimes of one claim and notion into its :class:`Verdict`: only counted regimes decide it
(natural variation inside the theory; the others are shown), their p-values pass a Holm
correction, and regimes that reuse the same runs are one vote. The rule and its statistics
are in docs/theory.md section 6.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from stabtheory.elasticities import Elasticity, elasticity, holm
from stabtheory.statistics import sweep_statistics

__all__ = [
    "DESIGNS",
    "FAMILY_WISE",
    "HEAD_CLAIMS",
    "MIN_EFFECT",
    "STATISTIC",
    "Claim",
    "RegimeVerdict",
    "Verdict",
    "combine",
    "decide",
    "verdict",
]

#: The smallest decisive effect: ratio of mean instabilities between the ends of a sweep.
MIN_EFFECT = 1.1

#: The family-wise error rate of a claim's counted regimes (Holm's correction).
FAMILY_WISE = 0.05

#: Regime designs (docs/theory.md section 6): ``natural`` variation of the algorithm's inputs
#: (the only design counted toward a verdict), ``confounded`` (the knob also moves a quantity
#: the claim does not name), ``positive-control`` (the outcome follows from an identity: it
#: checks the implementation), ``software-control`` (an invariance of the code, e.g. identical
#: trajectories) and ``placebo`` (a null knob measuring the false-decision rate).
DESIGNS = ("natural", "confounded", "positive-control", "software-control", "placebo")

#: What a regime's ``statistic`` and ``effect`` are, and how they decide.
STATISTIC = (
    "Kendall tau-b of (parameter, mean instability) with a hierarchical bootstrap 95% CI "
    "(resampling data draws, then samples within each draw); effect = mean instability at "
    f"the largest / smallest parameter value, CI from the same replicates; decisive only when "
    f"the tau CI excludes 0 and the effect is >= {MIN_EFFECT} or <= 1/{MIN_EFFECT} with its CI "
    "excluding 1 on tau's side, and the elasticity (per-draw least-squares slope of log mean "
    "instability against log parameter) has a Student-t 95% CI on tau's side; a counted "
    f"regime also needs its t-test p-value, Holm-adjusted over the claim's counted regimes, "
    f"<= {FAMILY_WISE}; regimes reusing the same runs are one vote; sign_p: exact sign test "
    "on the per-draw taus (secondary)"
)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim: ``parameter`` and the sign of d(instability)/d(parameter) it predicts."""

    id: str
    text: str
    parameter: str
    predicted_sign: int


HEAD_CLAIMS = {
    c.id: c
    for c in (
        Claim("head.iterations", "head tuning: more iterations give more stability", "t", -1),
        Claim("head.lr", "head tuning: smaller learning rate gives more stability", "lr", +1),
        Claim("head.margin", "head tuning: larger margin gives more stability", "gamma", -1),
        Claim("head.n", "head tuning: larger sample size gives more stability", "n", -1),
    )
}


def _float(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


@dataclasses.dataclass(frozen=True)
class RegimeVerdict:
    """The verdict of one claim in one regime.

    Attributes:
      regime: the regime's name.
      verdict: ``supported``, ``refuted`` or ``inconclusive``.
      tau, ci: Kendall tau-b of (parameter, mean instability) and its bootstrap interval.
      parameter_values, instability: the sweep and its mean instabilities.
      design: one of :data:`DESIGNS`.
      counted: whether the regime counts toward the claim's verdict: only a ``natural`` one
        can, and not when it lies outside the theory (its name then says why).
      replicates: the number of independent data draws (smallest over configurations).
      effect, effect_ci: the effect ratio (largest / smallest parameter value) and its interval.
      sign_p, draws_up, draws_down: the sign test on the per-draw taus: its p-value and the
        numbers of draws whose tau is > 0 and < 0.
      slope: the :class:`~stabtheory.elasticities.Elasticity` (per-draw log-log slope, its
        t-interval and p-value, and the exponent the bound predicts), or ``None``.
      predicted_by: the theorem whose bound gives ``slope.predicted`` (``None``: none).
      runs: the runs the regime is measured on; regimes with the same ``runs`` (early and late
        checkpoints, the minimiser and GD of the same draws) are one vote in :func:`combine`.
      p_holm: the slope's p-value Holm-adjusted over the claim's counted regimes (set by
        :func:`combine`; NaN before, and for regimes that are not counted).
    """

    regime: str
    verdict: str
    tau: float
    ci: tuple[float, float]
    parameter_values: list
    instability: list
    design: str = "natural"
    replicates: int = 1
    effect: float = math.nan
    effect_ci: tuple[float, float] = (math.nan, math.nan)
    sign_p: float = math.nan
    draws_up: int = 0
    draws_down: int = 0
    counted: bool = True
    slope: Elasticity | None = None
    predicted_by: str | None = None
    runs: str = ""
    p_holm: float = math.nan

    def __post_init__(self):
        if self.design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {self.design!r}.")
        if self.counted and self.design != "natural":
            raise ValueError(f"a {self.design} regime is shown, never counted ({self.regime}).")

    def statistic(self) -> dict:
        """The regime's ``statistic`` entry of ``report.json``."""
        return {
            "tau": _float(self.tau),
            "ci": [_float(c) for c in self.ci],
            "sign_p": _float(self.sign_p),
            "draws_up": int(self.draws_up),
            "draws_down": int(self.draws_down),
        }

    def to_dict(self) -> dict:
        """The regime's entry under ``regimes`` in ``report.json`` (NaN becomes None)."""
        return {
            "name": self.regime,
            "design": self.design,
            "counted": bool(self.counted),
            "verdict": self.verdict,
            "statistic": self.statistic(),
            "effect": {"ratio": _float(self.effect), "ci": [_float(c) for c in self.effect_ci]},
            "slope": None if self.slope is None else self.slope_dict(),
            "runs": self.runs or self.regime,
            "replicates": int(self.replicates),
            "parameter_values": [_float(x) for x in self.parameter_values],
            "instability": [_float(x) for x in self.instability],
        }

    def slope_dict(self) -> dict:
        """The regime's ``slope`` entry of ``report.json``."""
        e = self.slope
        return {
            "estimate": _float(e.estimate),
            "ci": [_float(c) for c in e.ci],
            "predicted": _float(e.predicted),
            "predicted_by": self.predicted_by,
            "p": _float(e.p),
            "p_holm": _float(self.p_holm),
            "draws": int(e.draws),
        }


def decide(
    tau_ci: tuple[float, float],
    effect: float,
    effect_ci: tuple[float, float],
    predicted_sign: int,
    *,
    slope_ci: tuple[float, float] | None = None,
    min_effect: float = MIN_EFFECT,
) -> str:
    """The verdict rule of one regime (see the module docstring): tau's interval excludes 0,
    the effect ratio is decisive on tau's side and, when ``slope_ci`` is given, the
    elasticity's interval excludes 0 on tau's side too.

    Example:
      >>> decide((0.2, 1.0), 1.5, (1.2, 1.9), +1), decide((0.2, 1.0), 1.05, (1.01, 1.1), +1)
      ('supported', 'inconclusive')
      >>> decide((0.2, 1.0), 1.5, (1.2, 1.9), +1, slope_ci=(-0.1, 0.4))
      'inconclusive'
    """
    lo, hi = tau_ci
    tau_side = 1 if lo > 0 else -1 if hi < 0 else 0  # NaN ends give 0
    elo, ehi = effect_ci
    if effect >= min_effect and elo > 1:
        effect_side = 1
    elif 0 <= effect <= 1 / min_effect and ehi < 1:
        effect_side = -1
    else:  # negligible, interval covering 1, or undefined (NaN)
        effect_side = 0
    if tau_side == 0 or effect_side != tau_side:
        return "inconclusive"
    if slope_ci is not None:
        slo, shi = slope_ci
        if (1 if slo > 0 else -1 if shi < 0 else 0) != tau_side:
            return "inconclusive"
    return "supported" if tau_side == predicted_sign else "refuted"


def verdict(
    claim: Claim,
    parameter_values: Sequence[float],
    per_sample: Sequence[np.ndarray],
    *,
    regime: str = "all",
    design: str = "natural",
    counted: bool | None = None,
    runs: str = "",
    draw_parameters=None,
    bounds: Sequence[np.ndarray] | None = None,
    predicted_by: str | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    min_effect: float = MIN_EFFECT,
) -> RegimeVerdict:
    """Verdict of a claim in one regime from per-sample instabilities at each parameter value.

    Args:
      claim: the :class:`Claim`.
      parameter_values: the swept values, one per configuration.
      per_sample: per configuration, the per-sample instability values: ``(n,)`` for one
        data draw or ``(draws, n)`` (sizes may differ between configurations).
      regime: a name for the regime.
      design: one of :data:`DESIGNS`.
      counted: whether the regime counts toward the verdict; by default exactly when its
        design is ``natural``. Pass ``False`` for natural variation outside the theory.
      runs: the runs the regime is measured on (regimes that share them are one vote);
        by default the regime's own.
      draw_parameters: ``(configs, draws)`` parameter values measured on each draw, for the
        elasticity (default: ``parameter_values`` for every draw).
      bounds: a bound's per-sample values in the layout of ``per_sample``: the elasticity it
        predicts along the sweep (:attr:`~stabtheory.elasticities.Elasticity.predicted`), and
        ``predicted_by`` the theorem it comes from.
      n_boot, level, seed: the hierarchical bootstrap (``level`` also the t-interval's).
      min_effect: the smallest decisive effect ratio (and 1 / it for a decrease).

    Returns:
      :class:`RegimeVerdict` decided by :func:`decide` on the statistics of
      :func:`stabtheory.statistics.sweep_statistics` and
      :func:`stabtheory.elasticities.elasticity`.

    Example:
      >>> x = [1, 2, 4, 8]
      >>> falling = [1.0 / g + 0.01 * np.random.default_rng(g).random((10, 20)) for g in x]
      >>> r = verdict(HEAD_CLAIMS["head.margin"], x, falling, regime="planted")
      >>> r.verdict, r.tau, r.replicates, r.draws_down, round(r.slope.estimate, 2)
      ('supported', -1.0, 10, 10, -0.98)
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}.")
    if counted is None:
        counted = design == "natural"
    s = sweep_statistics(parameter_values, per_sample, n_boot=n_boot, level=level, seed=seed)
    x = parameter_values if draw_parameters is None else draw_parameters
    slope = elasticity(x, per_sample, bounds=bounds, level=level)
    # An elasticity undefined on several draws (a mean instability of exactly 0 somewhere: no
    # logarithm) does not veto; tau and the effect decide, and Holm takes the sign test's p.
    # One draw alone is never decisive (no interval over draws).
    undefined = slope.draws < 2 and s.replicates >= 2
    word = decide(
        s.tau_ci,
        s.effect,
        s.effect_ci,
        claim.predicted_sign,
        slope_ci=None if undefined else slope.ci,
        min_effect=min_effect,
    )
    return RegimeVerdict(
        regime,
        word,
        s.tau,
        s.tau_ci,
        list(map(float, parameter_values)),
        s.means.tolist(),
        design=design,
        replicates=s.replicates,
        effect=s.effect,
        effect_ci=s.effect_ci,
        sign_p=s.sign.p,
        draws_up=s.sign.up,
        draws_down=s.sign.down,
        counted=counted,
        slope=slope,
        predicted_by=predicted_by if bounds is not None else None,
        runs=runs or regime,
    )


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim's overall verdict under one stability notion.

    Attributes:
      replicates: the smallest number of data draws over the counted regimes.
      effect, effect_ci: the effect of the first counted regime whose verdict is the claim's
        (else the first decisive counted regime, else the first counted regime).
      text: the claim as the paper states it (:attr:`Claim.text`).
    """

    claim: str
    notion: str
    verdict: str
    explanation: str
    regimes: tuple[RegimeVerdict, ...]
    figure: str | None = None
    replicates: int = 0
    effect: float = math.nan
    effect_ci: tuple[float, float] = (math.nan, math.nan)
    text: str = ""

    #: The description of the regimes' statistic (``statistic.name`` in ``report.json``).
    statistic_name = STATISTIC

    def to_dict(self) -> dict:
        """The claim's entry under ``claims`` in ``report.json`` (NaN becomes None)."""
        return {
            "id": self.claim,
            "text": self.text,
            "notion": self.notion,
            "verdict": self.verdict,
            "explanation": self.explanation,
            "replicates": int(self.replicates),
            "effect": {"ratio": _float(self.effect), "ci": [_float(c) for c in self.effect_ci]},
            "statistic": {"name": self.statistic_name},
            "regimes": [r.to_dict() for r in self.regimes],
            "figure": self.figure,
        }


def _holm(counted: list[RegimeVerdict]) -> list[RegimeVerdict]:
    """The counted regimes with their Holm-adjusted slope p-values; a decisive regime whose
    adjusted p-value exceeds :data:`FAMILY_WISE` becomes ``inconclusive``. Regimes judged by
    another statistic (no ``slope``, e.g. the stabilizer study's two-sample comparisons) keep
    their verdict and are not in the family."""
    tested = [k for k, r in enumerate(counted) if r.slope is not None]
    pvalues = [_p(counted[k]) for k in tested]
    adjusted = dict(zip(tested, holm(pvalues), strict=True))
    out = list(counted)
    for k, a in adjusted.items():
        r = counted[k]
        word = r.verdict if a <= FAMILY_WISE else "inconclusive"
        out[k] = dataclasses.replace(r, p_holm=float(a), verdict=word)
    return out


def _p(r: RegimeVerdict) -> float:
    """A regime's p-value for Holm: its elasticity's t-test, or, where the elasticity is
    undefined (a mean instability of 0), the sign test on its per-draw taus."""
    return r.slope.p if math.isfinite(r.slope.p) else r.sign_p


def _votes(counted: list[RegimeVerdict]) -> dict[str, str]:
    """One vote per set of runs: the decisive verdict its regimes agree on, ``inconclusive``
    when none is decisive, ``regime-dependent`` when they disagree."""
    votes: dict[str, set] = {}
    for r in counted:
        votes.setdefault(r.runs or r.regime, set()).add(r.verdict)
    out = {}
    for runs, words in votes.items():
        decisive = words - {"inconclusive"}
        out[runs] = (
            "inconclusive" if not decisive else decisive.pop() if len(decisive) == 1 else "both"
        )
    return out


def combine(claim: Claim, notion: str, regimes: Sequence[RegimeVerdict], figure=None) -> Verdict:
    """Overall verdict from the counted regimes' verdicts.

    Only counted regimes (:attr:`RegimeVerdict.counted`: natural variation inside the theory)
    decide. Their slope p-values are Holm-adjusted together (a decisive regime above
    :data:`FAMILY_WISE` becomes ``inconclusive``), and regimes measured on the same runs
    (:attr:`RegimeVerdict.runs`) are one vote. Among the votes, a claim is
    ``regime-dependent`` when some support it and others refute it (or one vote's regimes
    disagree), ``supported`` or ``refuted`` when the decisive votes agree and make at least half
    of the votes, and ``inconclusive`` otherwise, or when no regime is counted. The regimes
    that are shown but not counted (controls, confounded or outside the theory) are listed in
    the explanation with their design.
    """
    regimes = tuple(regimes)
    if not regimes:
        raise ValueError(f"no regimes to combine for {claim.id} ({notion}).")
    counted = _holm([r for r in regimes if r.counted])
    judged = iter(counted)
    regimes = tuple(next(judged) if r.counted else r for r in regimes)
    shown = [r for r in regimes if not r.counted]
    votes = _votes(counted)
    by: dict[str, list[str]] = {}
    for runs, word in votes.items():
        for w in ("supported", "refuted") if word == "both" else (word,):
            by.setdefault(w, []).append(runs)
    listing = "; ".join(f"{w} in {', '.join(by[w])}" for w in sorted(by))
    decisive = set(by) - {"inconclusive"}
    n_votes = len(votes)
    if not counted:
        word, why = "inconclusive", "no counted regime (natural variation inside the theory)"
    elif len(decisive) == 2:
        word, why = "regime-dependent", listing
    elif not decisive:
        word, why = "inconclusive", "no counted vote is decisive"
    else:
        (sign,) = decisive
        if len(by[sign]) == n_votes:
            word, why = sign, f"{sign} in every counted vote"
        elif 2 * len(by[sign]) >= n_votes:
            word, why = sign, f"{sign} in most counted votes, none contradicts: {listing}"
        else:
            word, why = "inconclusive", f"decisive in a minority of counted votes only: {listing}"
    if counted:
        why += f" ({len(counted)} counted regimes in {n_votes} votes, Holm at {FAMILY_WISE})"
    if shown:
        why += "; shown, not counted: " + "; ".join(
            f"{r.verdict} in {r.regime} [{r.design}]" for r in shown
        )
    pool = counted or list(regimes)
    lead = (
        next((r for r in pool if r.verdict == word), None)
        or next((r for r in pool if r.verdict != "inconclusive"), None)
        or pool[0]
    )
    return Verdict(
        claim.id,
        notion,
        word,
        why,
        regimes,
        figure,
        replicates=min(r.replicates for r in pool),
        effect=lead.effect,
        effect_ci=tuple(lead.effect_ci),
        text=claim.text,
    )
