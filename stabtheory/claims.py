"""The paper's claims (THEORY.md section 5) turned into verdicts from sweeps.

A claim says that stability improves when a parameter moves one way: e.g. ``head.margin``,
"a larger margin gives more stability", predicts that the *instability* (the mean
leave-one-out value of a notion) decreases as the margin grows. The statistic is Kendall's
tau between the swept parameter and the mean instability, with a bootstrap interval obtained
by resampling the samples ``i`` within every configuration (a paired bootstrap when every
configuration has the same samples). In one regime the verdict is

* ``supported``: the interval lies strictly on the predicted side of 0,
* ``refuted``: it lies strictly on the other side,
* ``inconclusive``: it contains 0 (or the instability does not change at all).

An effect smaller than float64 noise (a spread of the means below 1e-9 of their size) is never
decisive. Over several regimes (loss, early or late training, testbed, model), a claim is
``regime-dependent`` when some regimes support it and others refute it (the verdict names
which), ``supported`` or ``refuted`` when the decisive regimes agree and make at least half of
all regimes (the others being inconclusive, which the explanation lists), and
``inconclusive`` otherwise. The intervals resample the samples of one dataset draw: verdicts
are conditional on that draw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = ["HEAD_CLAIMS", "Claim", "RegimeVerdict", "Verdict", "combine", "kendall_tau", "verdict"]


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


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b between two sequences (ties handled as in tau-b).

    Example:
      >>> kendall_tau([1, 2, 3], [3, 2, 1])
      -1.0
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(len(x), 1)
    dx, dy = dx[iu], dy[iu]
    denom = np.sqrt(np.sum(dx != 0) * np.sum(dy != 0))
    return float(np.sum(dx * dy) / denom) if denom > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class RegimeVerdict:
    """The verdict of one claim in one regime."""

    regime: str
    verdict: str
    tau: float
    ci: tuple[float, float]
    parameter_values: list
    instability: list


def verdict(
    claim: Claim,
    parameter_values: Sequence[float],
    per_sample: Sequence[np.ndarray],
    *,
    regime: str = "all",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> RegimeVerdict:
    """Verdict of a claim in one regime from per-sample instabilities at each parameter value.

    Args:
      claim: the :class:`Claim`.
      parameter_values: the swept values, one per configuration.
      per_sample: per configuration, the per-sample instability values (lengths may differ).
      regime: a name for the regime.

    Returns:
      :class:`RegimeVerdict` with Kendall's tau of (parameter, mean instability) and its
      bootstrap interval (resampling samples within every configuration).
    """
    rng = np.random.default_rng(seed)
    means = np.array([np.mean(v) for v in per_sample])
    tau = kendall_tau(parameter_values, means)
    sizes = {len(v) for v in per_sample}
    if len(sizes) == 1:  # the same samples in every configuration: a paired bootstrap
        idx = rng.integers(0, sizes.pop(), size=(n_boot, len(per_sample[0])))
        boot_means = np.stack([np.asarray(v)[idx].mean(axis=1) for v in per_sample], axis=1)
    else:
        boot_means = np.stack(
            [
                np.asarray(v)[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
                for v in per_sample
            ],
            axis=1,
        )  # (n_boot, configs)
    taus = np.array([kendall_tau(parameter_values, row) for row in boot_means])
    alpha = (1 - level) / 2
    lo, hi = float(np.quantile(taus, alpha)), float(np.quantile(taus, 1 - alpha))
    s = claim.predicted_sign
    # No effect smaller than float64 noise is called decisive.
    negligible = np.ptp(means) <= 1e-9 * np.max(np.abs(means))
    if negligible or (lo <= 0 <= hi):
        word = "inconclusive"
    elif (lo > 0 and s > 0) or (hi < 0 and s < 0):
        word = "supported"
    else:
        word = "refuted"
    return RegimeVerdict(
        regime, word, tau, (lo, hi), list(map(float, parameter_values)), means.tolist()
    )


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim's overall verdict under one stability notion."""

    claim: str
    notion: str
    verdict: str
    explanation: str
    regimes: tuple[RegimeVerdict, ...]
    figure: str | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.claim,
            "notion": self.notion,
            "verdict": self.verdict,
            "explanation": self.explanation,
            "statistic": {
                "name": "Kendall tau-b of (parameter, mean instability), bootstrap 95% CI "
                "(resampling samples within each configuration)",
                "regimes": [dataclasses.asdict(r) for r in self.regimes],
            },
            "figure": self.figure,
        }


def combine(claim: Claim, notion: str, regimes: Sequence[RegimeVerdict], figure=None) -> Verdict:
    """Overall verdict from the regimes' verdicts (see the module docstring)."""
    words = {r.verdict for r in regimes}
    by = {w: [r.regime for r in regimes if r.verdict == w] for w in words}
    listing = "; ".join(f"{w} in {', '.join(by[w])}" for w in sorted(by))
    decisive = words - {"inconclusive"}
    if len(decisive) == 2:
        word, why = "regime-dependent", listing
    elif not decisive:
        word, why = "inconclusive", "no regime is decisive"
    else:
        (sign,) = decisive
        if len(by[sign]) == len(regimes):
            word, why = sign, f"{sign} in every regime"
        elif 2 * len(by[sign]) >= len(regimes):
            word, why = sign, f"{sign} in most regimes, none contradicts: {listing}"
        else:
            word, why = "inconclusive", f"decisive in a minority of regimes only: {listing}"
    return Verdict(claim.id, notion, word, why, tuple(regimes), figure)
