"""The paper's claims (docs/theory.md section 5) turned into verdicts from sweeps.

A claim says that stability improves when a parameter moves one way: e.g. ``head.margin``,
"a larger margin gives more stability", predicts that the *instability* (the mean
leave-one-out value of a notion) decreases as the margin grows. The statistic is Kendall's
tau between the swept parameter and the mean instability (over data draws and samples), with
a hierarchical bootstrap interval: the independent data draws are resampled, then the samples
``i`` within each draw (paired across configurations that share their draws and samples). In
one regime the verdict is

* ``supported``: the interval lies strictly on the predicted side of 0,
* ``refuted``: it lies strictly on the other side,
* ``inconclusive``: it contains 0 (or the instability does not change at all).

An effect smaller than float64 noise (a spread of the means below 1e-9 of their size) is never
decisive. Over several regimes (loss, early or late training, testbed, model), a claim is
``regime-dependent`` when some regimes support it and others refute it (the verdict names
which), ``supported`` or ``refuted`` when the decisive regimes agree and make at least half of
all regimes (the others being inconclusive, which the explanation lists), and
``inconclusive`` otherwise. With a single draw the interval can only resample samples within
it, and the verdict is conditional on that draw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = [
    "HEAD_CLAIMS",
    "Claim",
    "RegimeVerdict",
    "Verdict",
    "bootstrap_means",
    "combine",
    "kendall_tau",
    "verdict",
]


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


def kendall_tau(x: Sequence[float], y) -> float | np.ndarray:
    """Kendall's tau-b between two sequences (ties handled as in tau-b).

    ``y`` may also be a 2-D array (rows of values, e.g. bootstrap replicates): then one tau per
    row is returned.

    Example:
      >>> kendall_tau([1, 2, 3], [3, 2, 1])
      -1.0
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    iu = np.triu_indices(len(x), 1)
    dx = np.sign(x[:, None] - x[None, :])[iu]
    dy = np.sign(y[..., :, None] - y[..., None, :])[..., iu[0], iu[1]]
    denom = np.sqrt(np.sum(dx != 0) * np.sum(dy != 0, axis=-1))
    num = np.sum(dx * dy, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), 0.0)
    return float(tau) if tau.ndim == 0 else tau


@dataclasses.dataclass(frozen=True)
class RegimeVerdict:
    """The verdict of one claim in one regime."""

    regime: str
    verdict: str
    tau: float
    ci: tuple[float, float]
    parameter_values: list
    instability: list


def _as_draws(values) -> np.ndarray:
    """Per-sample instabilities as a (draws, samples) array: a 1-D array is one draw."""
    a = np.asarray(values, float)
    if a.ndim not in (1, 2) or a.size == 0:
        raise ValueError(f"per-sample values must be (n,) or (draws, n), got shape {a.shape}.")
    return a[None] if a.ndim == 1 else a


def bootstrap_means(per_sample: Sequence[np.ndarray], n_boot: int, rng) -> np.ndarray:
    """Hierarchical bootstrap of the mean instability of every configuration: (n_boot, configs).

    Each configuration's values are (draws, n): the draws are resampled with replacement,
    then the samples within every chosen draw. When every configuration has the same numbers
    of draws and samples, they share the resampled indices (a paired bootstrap: draw ``r``
    and sample ``i`` are the same data in every configuration of a one-at-a-time sweep).
    """
    arrays = [_as_draws(v) for v in per_sample]
    shapes = {a.shape for a in arrays}

    def indices(R: int, n: int):
        draws = rng.integers(0, R, size=(n_boot, R))
        samples = rng.integers(0, n, size=(n_boot, R, n))
        return draws, samples

    if len(shapes) == 1:
        draws, samples = indices(*shapes.pop())
        return np.stack([a[draws[..., None], samples].mean(axis=(1, 2)) for a in arrays], axis=1)
    cols = []
    for a in arrays:
        draws, samples = indices(*a.shape)
        cols.append(a[draws[..., None], samples].mean(axis=(1, 2)))
    return np.stack(cols, axis=1)


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
      per_sample: per configuration, the per-sample instability values: ``(n,)`` for one
        data draw or ``(draws, n)`` (sizes may differ between configurations).
      regime: a name for the regime.

    Returns:
      :class:`RegimeVerdict` with Kendall's tau of (parameter, mean instability) and its
      bootstrap interval (:func:`bootstrap_means`: draws, then samples within a draw).
    """
    rng = np.random.default_rng(seed)
    means = np.array([np.mean(v) for v in per_sample])
    tau = kendall_tau(parameter_values, means)
    boot_means = bootstrap_means(per_sample, n_boot, rng)  # (n_boot, configs)
    taus = kendall_tau(parameter_values, boot_means)
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
                "name": "Kendall tau-b of (parameter, mean instability), hierarchical "
                "bootstrap 95% CI (resampling data draws, then samples within each draw)",
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
