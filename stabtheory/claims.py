"""The paper's claims (docs/theory.md section 5) turned into verdicts from sweeps.

A :class:`Claim` predicts the sign of d(instability)/d(parameter); :func:`verdict` judges one
regime of a sweep from per-sample instabilities over independent data draws (Kendall's tau-b
with a hierarchical bootstrap interval, and the effect ratio between the ends of the sweep,
decided by :func:`decide`); :func:`combine` turns the regimes of one claim and notion into
its :class:`Verdict` (only counted regimes decide it: natural variation inside the theory; the
others are shown). The rule and its statistics are in docs/theory.md section 6.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from stabtheory.statistics import sweep_statistics

__all__ = [
    "DESIGNS",
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
    "excluding 1 on tau's side; sign_p: exact sign test on the per-draw taus (secondary)"
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
            "replicates": int(self.replicates),
            "parameter_values": [_float(x) for x in self.parameter_values],
            "instability": [_float(x) for x in self.instability],
        }


def decide(
    tau_ci: tuple[float, float],
    effect: float,
    effect_ci: tuple[float, float],
    predicted_sign: int,
    *,
    min_effect: float = MIN_EFFECT,
) -> str:
    """The verdict rule of one regime (see the module docstring).

    Example:
      >>> decide((0.2, 1.0), 1.5, (1.2, 1.9), +1), decide((0.2, 1.0), 1.05, (1.01, 1.1), +1)
      ('supported', 'inconclusive')
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
    return "supported" if tau_side == predicted_sign else "refuted"


def verdict(
    claim: Claim,
    parameter_values: Sequence[float],
    per_sample: Sequence[np.ndarray],
    *,
    regime: str = "all",
    design: str = "natural",
    counted: bool | None = None,
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
      n_boot, level, seed: the hierarchical bootstrap.
      min_effect: the smallest decisive effect ratio (and 1 / it for a decrease).

    Returns:
      :class:`RegimeVerdict` decided by :func:`decide` on the statistics of
      :func:`stabtheory.statistics.sweep_statistics`.

    Example:
      >>> x = [1, 2, 4, 8]
      >>> falling = [1.0 / g + 0.01 * np.random.default_rng(g).random((10, 20)) for g in x]
      >>> r = verdict(HEAD_CLAIMS["head.margin"], x, falling, regime="planted")
      >>> r.verdict, r.tau, r.replicates, r.draws_down
      ('supported', -1.0, 10, 10)
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}.")
    if counted is None:
        counted = design == "natural"
    s = sweep_statistics(parameter_values, per_sample, n_boot=n_boot, level=level, seed=seed)
    word = decide(s.tau_ci, s.effect, s.effect_ci, claim.predicted_sign, min_effect=min_effect)
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
    )


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim's overall verdict under one stability notion.

    Attributes:
      replicates: the smallest number of data draws over the counted regimes.
      effect, effect_ci: the effect of the first counted regime whose verdict is the claim's
        (else the first decisive counted regime, else the first counted regime).
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

    #: The description of the regimes' statistic (``statistic.name`` in ``report.json``).
    statistic_name = STATISTIC

    def to_dict(self) -> dict:
        """The claim's entry under ``claims`` in ``report.json`` (NaN becomes None)."""
        return {
            "id": self.claim,
            "notion": self.notion,
            "verdict": self.verdict,
            "explanation": self.explanation,
            "replicates": int(self.replicates),
            "effect": {"ratio": _float(self.effect), "ci": [_float(c) for c in self.effect_ci]},
            "statistic": {"name": self.statistic_name},
            "regimes": [r.to_dict() for r in self.regimes],
            "figure": self.figure,
        }


def combine(claim: Claim, notion: str, regimes: Sequence[RegimeVerdict], figure=None) -> Verdict:
    """Overall verdict from the counted regimes' verdicts.

    Only counted regimes (:attr:`RegimeVerdict.counted`: natural variation inside the theory)
    decide. Among them, a claim is ``regime-dependent`` when some support it and others refute
    it, ``supported`` or ``refuted`` when the decisive regimes agree and make at least half of
    the counted regimes, and ``inconclusive`` otherwise, or when no regime is counted. The
    regimes that are shown but not counted (controls, confounded or outside the theory) are
    listed in the explanation with their design.
    """
    regimes = tuple(regimes)
    if not regimes:
        raise ValueError(f"no regimes to combine for {claim.id} ({notion}).")
    counted = [r for r in regimes if r.counted]
    shown = [r for r in regimes if not r.counted]
    words = {r.verdict for r in counted}
    by = {w: [r.regime for r in counted if r.verdict == w] for w in words}
    listing = "; ".join(f"{w} in {', '.join(by[w])}" for w in sorted(by))
    decisive = words - {"inconclusive"}
    if not counted:
        word, why = "inconclusive", "no counted regime (natural variation inside the theory)"
    elif len(decisive) == 2:
        word, why = "regime-dependent", listing
    elif not decisive:
        word, why = "inconclusive", "no counted regime is decisive"
    else:
        (sign,) = decisive
        if len(by[sign]) == len(counted):
            word, why = sign, f"{sign} in every counted regime"
        elif 2 * len(by[sign]) >= len(counted):
            word, why = sign, f"{sign} in most counted regimes, none contradicts: {listing}"
        else:
            word, why = "inconclusive", f"decisive in a minority of counted regimes only: {listing}"
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
    )
