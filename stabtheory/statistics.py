r"""The statistics every study's verdicts and figures use (docs/theory.md section 6).

* :func:`bootstrap_means`: hierarchical bootstrap of a sweep's mean instabilities (data draws
  resampled, then the samples within each chosen draw; paired across configurations whose
  ``(draws, n)`` shapes agree).
* :func:`kendall_tau`: Kendall's tau-b, vectorised over rows (bootstrap replicates, draws).
* :func:`sweep_statistics`: everything a claim's verdict reads from one sweep: tau with its
  interval, the effect ratio (mean instability at the largest parameter value over the mean at
  the smallest) with its interval from the *same* bootstrap replicates, and the sign test on
  the per-draw taus (:func:`sign_test`).
* The per-draw elasticities and the Holm correction are in :mod:`stabtheory.elasticities`.
* :func:`bootstrap_mean_ci`: the percentile interval of a mean over samples
  (:class:`stabtheory.linear_heads.StabilityEstimate`).
* :func:`binomial_interval`: the exact (Clopper-Pearson) interval of a rate, e.g. the
  placebo claims' false-decision rate.
* Two-sample statistics of the stabilizer study: :func:`std_ratio`, :func:`bootstrap_ratio`,
  :func:`mean_difference`, :func:`mean_ratio`, :func:`brown_forsythe` (and
  :func:`sample_std`).

Every bootstrap interval is a percentile interval (:func:`percentile_interval`).

>>> rng = np.random.default_rng(0)
>>> per_sample = [1.0 / x + 0.01 * rng.standard_normal((10, 20)) for x in (1, 2, 4)]
>>> s = sweep_statistics([1, 2, 4], per_sample, n_boot=200)
>>> s.tau, s.tau_ci, s.replicates, round(s.effect, 2)
(-1.0, (-1.0, -1.0), 10, 0.25)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "NOISE_TIE",
    "SignTest",
    "SweepStatistics",
    "as_draws",
    "binomial_interval",
    "bootstrap_mean_ci",
    "bootstrap_means",
    "bootstrap_ratio",
    "bootstrap_std_ci",
    "brown_forsythe",
    "disagreement",
    "effect_ratio",
    "kendall_tau",
    "mean_difference",
    "mean_ratio",
    "per_draw_tau",
    "percentile_interval",
    "sample_std",
    "sign_test",
    "std_ratio",
    "sweep_statistics",
]


# --------------------------------------------------------------------------------------------
# Building blocks


def as_draws(values) -> np.ndarray:
    """Per-sample values as a ``(draws, samples)`` float array: a 1-D array is one draw."""
    a = np.asarray(values, float)
    if a.ndim not in (1, 2) or a.size == 0:
        raise ValueError(f"per-sample values must be (n,) or (draws, n), got shape {a.shape}.")
    return a[None] if a.ndim == 1 else a


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates.

    NaN replicates (a statistic undefined on that resample, e.g. 0 / 0) are left out; with
    infinite replicates the interval's ends are order statistics (no interpolation with inf).
    ``(nan, nan)`` when no replicate is defined.

    Example:
      >>> percentile_interval([1.0, 2.0, np.nan, 3.0], 1.0)
      (1.0, 3.0)
    """
    v = np.asarray(values, float).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (math.nan, math.nan)
    a = (1.0 - level) / 2.0
    method = "linear" if np.all(np.isfinite(v)) else "inverted_cdf"
    lo, hi = np.quantile(v, [a, 1.0 - a], method=method)
    return float(lo), float(hi)


def _ratio(num, den):
    """``num / den`` for non-negative means: ``inf`` when only ``den`` is 0, NaN when both
    are 0 or either is negative (a ratio of instabilities needs both >= 0)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, np.nan))
    return np.where((num < 0) | (den < 0), np.nan, r)


#: Instabilities that differ by less than this, relative to the largest of their row, are
#: tied in the claims' Kendall tau: float64 noise is not an order (e.g. a Taylor minimiser
#: that is the same in theory for every configuration of a controlled sweep).
NOISE_TIE = 1e-9


def kendall_tau(x: Sequence[float], y, *, tie_tol: float = 0.0) -> float | np.ndarray:
    """Kendall's tau-b between two sequences (ties handled as in tau-b).

    .. math::
        \\tau_b = \\frac{\\sum_{i<j} \\operatorname{sign}(x_i - x_j)\\operatorname{sign}(y_i - y_j)}
        {\\sqrt{(n_0 - n_x)(n_0 - n_y)}},

    with ``n_0 - n_x`` the pairs not tied in ``x`` (0 when every pair is tied in either).
    ``y`` may be an array ``(..., len(x))`` (rows of values, e.g. bootstrap replicates or
    data draws): then one tau per row is returned. Two ``y`` values within ``tie_tol`` times
    the largest ``|y|`` of their row count as tied (0: exact comparisons).

    Example:
      >>> kendall_tau([1, 2, 3], [3, 2, 1])
      -1.0
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    iu = np.triu_indices(len(x), 1)
    dx = np.sign(x[:, None] - x[None, :])[iu]
    diff = (y[..., :, None] - y[..., None, :])[..., iu[0], iu[1]]
    scale = np.max(np.abs(y), axis=-1, keepdims=True)
    dy = np.where(np.abs(diff) > tie_tol * scale, np.sign(diff), 0.0)
    denom = np.sqrt(np.sum(dx != 0) * np.sum(dy != 0, axis=-1))
    num = np.sum(dx * dy, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), 0.0)
    return float(tau) if tau.ndim == 0 else tau


def bootstrap_means(per_sample: Sequence[np.ndarray], n_boot: int, rng) -> np.ndarray:
    """Hierarchical bootstrap of the mean of every configuration: ``(n_boot, configs)``.

    Each configuration's values are ``(draws, n)`` (or ``(n,)``, one draw): the draws are
    resampled with replacement, then the samples within every chosen draw. When every
    configuration has the same ``(draws, n)`` they share the resampled indices (a paired
    bootstrap: draw ``r`` and sample ``i`` are the same data in every configuration of a
    one-at-a-time sweep); when they have the same number of draws but not the same ``n`` (an
    n sweep of nested subsets of each draw) they share the resampled draws and resample their
    samples apart; otherwise each configuration is resampled independently.

    Example:
      >>> b = bootstrap_means([np.ones((3, 4)), 2 * np.ones((3, 4))], 5, np.random.default_rng(0))
      >>> b.shape, bool(np.all(b[:, 1] == 2.0))
      ((5, 2), True)
    """
    arrays = [as_draws(v) for v in per_sample]
    shapes = {a.shape for a in arrays}

    def indices(R: int, n: int):
        draws = rng.integers(0, R, size=(n_boot, R))
        samples = rng.integers(0, n, size=(n_boot, R, n))
        return draws, samples

    if len(shapes) == 1:
        draws, samples = indices(*shapes.pop())
        return np.stack([a[draws[..., None], samples].mean(axis=(1, 2)) for a in arrays], axis=1)
    if len({a.shape[0] for a in arrays}) == 1:  # paired draws, samples apart
        R = arrays[0].shape[0]
        draws = rng.integers(0, R, size=(n_boot, R))
        cols = []
        for a in arrays:
            samples = rng.integers(0, a.shape[1], size=(n_boot, R, a.shape[1]))
            cols.append(a[draws[..., None], samples].mean(axis=(1, 2)))
        return np.stack(cols, axis=1)
    cols = []
    for a in arrays:
        draws, samples = indices(*a.shape)
        cols.append(a[draws[..., None], samples].mean(axis=(1, 2)))
    return np.stack(cols, axis=1)


def effect_ratio(parameter_values: Sequence[float], means) -> float | np.ndarray:
    """Mean instability at the largest parameter value over the mean at the smallest.

    ``means`` is ``(..., configs)`` (e.g. bootstrap replicates); configurations that share the
    extreme value are averaged. ``inf`` when only the smallest end's mean is 0; NaN when both
    are 0 or a mean is negative.

    Example:
      >>> effect_ratio([4, 1, 2], [3.0, 1.5, 2.0])
      2.0
    """
    x, m = np.asarray(parameter_values, float), np.asarray(means, float)
    top = m[..., x == x.max()].mean(axis=-1)
    bottom = m[..., x == x.min()].mean(axis=-1)
    r = _ratio(top, bottom)
    return float(r) if r.ndim == 0 else r


# --------------------------------------------------------------------------------------------
# Sign test on per-draw Kendall tau


@dataclasses.dataclass(frozen=True)
class SignTest:
    """Exact two-sided sign test.

    Attributes:
      p: two-sided binomial p-value of ``up`` successes in ``up + down`` trials at 1/2
        (:math:`\\min(1, 2 P[X \\le \\min(up, down)])`); 1 when there are no trials.
      up, down, ties: the numbers of positive, negative and zero values (ties are dropped).
    """

    p: float
    up: int
    down: int
    ties: int


def sign_test(values) -> SignTest:
    """Exact sign test of ``values`` against 0 (e.g. per-draw Kendall taus).

    Example:
      >>> sign_test([0.5, 1.0, 0.2, -0.1, 0.0])
      SignTest(p=0.625, up=3, down=1, ties=1)
    """
    v = np.asarray(values, float).ravel()
    v = v[~np.isnan(v)]
    up, down = int(np.sum(v > 0)), int(np.sum(v < 0))
    n, k = up + down, min(up, down)
    tail = sum(math.comb(n, j) for j in range(k + 1))
    p = min(1.0, 2 * tail / 2**n) if n else 1.0
    return SignTest(float(p), up, down, int(v.size - n))


def per_draw_tau(parameter_values: Sequence[float], per_sample: Sequence[np.ndarray]):
    """Kendall tau of (parameter, per-draw mean instability), one per draw: ``(draws,)``.

    Draw ``r`` of every configuration is one replicate of the sweep, so every configuration
    needs the same number of draws (their sample sizes may differ); ``None`` otherwise.
    """
    arrays = [as_draws(v) for v in per_sample]
    if len({a.shape[0] for a in arrays}) != 1:
        return None
    means = np.stack([a.mean(axis=1) for a in arrays], axis=1)  # (draws, configs)
    return np.atleast_1d(kendall_tau(parameter_values, means, tie_tol=NOISE_TIE))


# --------------------------------------------------------------------------------------------
# A sweep's statistics


@dataclasses.dataclass(frozen=True)
class SweepStatistics:
    """The statistics of one sweep (see :func:`sweep_statistics`).

    Attributes:
      means: mean instability of every configuration (over draws and samples).
      tau, tau_ci: Kendall tau-b of (parameter, mean) and its hierarchical-bootstrap interval.
      effect, effect_ci: :func:`effect_ratio` and its interval (the same replicates as tau's).
      sign: :class:`SignTest` on the per-draw taus (``p`` NaN when the draws do not pair).
      replicates: the number of data draws (the smallest over configurations).
    """

    means: np.ndarray
    tau: float
    tau_ci: tuple[float, float]
    effect: float
    effect_ci: tuple[float, float]
    sign: SignTest
    replicates: int


def sweep_statistics(
    parameter_values: Sequence[float],
    per_sample: Sequence[np.ndarray],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> SweepStatistics:
    """Tau, effect ratio (each with its hierarchical-bootstrap interval) and the sign test.

    Args:
      parameter_values: the swept values, one per configuration.
      per_sample: per configuration, ``(n,)`` (one data draw) or ``(draws, n)`` values.
      n_boot, level, seed: bootstrap replicates, interval level, PRNG seed.
    """
    if len(parameter_values) != len(per_sample):
        raise ValueError(
            f"{len(parameter_values)} parameter values for {len(per_sample)} configurations."
        )
    arrays = [as_draws(v) for v in per_sample]
    means = np.array([a.mean() for a in arrays])
    boot = bootstrap_means(arrays, n_boot, np.random.default_rng(seed))  # (n_boot, configs)
    taus = per_draw_tau(parameter_values, arrays)
    sign = sign_test(taus) if taus is not None else SignTest(math.nan, 0, 0, 0)
    return SweepStatistics(
        means=means,
        tau=kendall_tau(parameter_values, means, tie_tol=NOISE_TIE),
        tau_ci=percentile_interval(kendall_tau(parameter_values, boot, tie_tol=NOISE_TIE), level),
        effect=effect_ratio(parameter_values, means),
        effect_ci=percentile_interval(effect_ratio(parameter_values, boot), level),
        sign=sign,
        replicates=min(a.shape[0] for a in arrays),
    )


# --------------------------------------------------------------------------------------------
# One-sample and two-sample statistics


def binomial_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a rate of ``k`` events in ``n`` trials.

    Example:
      >>> lo, hi = binomial_interval(0, 24)
      >>> lo, round(hi, 3)
      (0.0, 0.142)
    """
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}.")
    from scipy.stats import beta  # scipy.stats only loads when a rate is asked for

    alpha = 1.0 - level
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def bootstrap_mean_ci(
    values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean over the last axis (samples resampled).

    Example:
      >>> lo, hi = bootstrap_mean_ci(np.arange(10.0))
      >>> bool(lo < 4.5 < hi)
      True
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[-1]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    means = values[..., idx].mean(axis=-1)  # (..., n_boot)
    alpha = (1.0 - level) / 2.0
    return np.quantile(means, alpha, axis=-1), np.quantile(means, 1.0 - alpha, axis=-1)


def sample_std(x, axis: int = -1) -> np.ndarray:
    """The sample standard deviation (ddof 1) over ``axis`` (default: the last).

    Example:
      >>> float(sample_std(np.array([1.0, 3.0])))
      1.4142135623730951
    """
    return np.std(x, axis=axis, ddof=1)


def bootstrap_std_ci(
    values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the standard deviation (ddof 1) of a 1-D sample.

    Example:
      >>> lo, hi = bootstrap_std_ci(np.arange(20.0))
      >>> bool(lo < np.std(np.arange(20.0), ddof=1) < hi)
      True
    """
    values = np.asarray(values, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, values.shape[-1], size=(n_boot, values.shape[-1]))
    return percentile_interval(sample_std(values[idx]), level)


def bootstrap_ratio(
    stat: Callable[[np.ndarray], np.ndarray],
    a,
    b,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    paired: bool = False,
    batch_size: int | None = None,
) -> tuple[float, tuple[float, float]]:
    """``stat(a) / stat(b)`` and its percentile-bootstrap interval.

    The leading axis of ``a`` and ``b`` (seeds) is resampled, independently for the two or
    with the same indices when ``paired``. ``stat`` maps an array ``(..., seeds, ...)`` with
    extra leading batch axes to one value per batch (it is called on ``a[None]`` for the
    point estimate and on ``a[idx]``, ``idx`` of shape ``(n_boot, seeds)``, for the
    replicates, ``batch_size`` resamples at a time when given, to bound memory). A ratio
    with ``stat(b) <= 0`` is NaN.

    Example:
      >>> r, (lo, hi) = bootstrap_ratio(lambda x: x.mean(-1), np.full(8, 3.0), np.ones(8))
      >>> r, lo, hi
      (3.0, 3.0, 3.0)
    """
    a, b = np.asarray(a), np.asarray(b)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.shape[0], size=(n_boot, a.shape[0]))
    ib = ia if paired else rng.integers(0, b.shape[0], size=(n_boot, b.shape[0]))

    def ratio(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y > 0, x / np.where(y > 0, y, 1.0), np.nan)

    step = n_boot if batch_size is None else max(1, batch_size)

    def replicates(x, idx):
        return np.concatenate([stat(x[idx[k : k + step]]) for k in range(0, n_boot, step)])

    point = float(ratio(stat(a[None]), stat(b[None]))[0])
    return point, percentile_interval(ratio(replicates(a, ia), replicates(b, ib)), level)


def _mean(x: np.ndarray) -> np.ndarray:
    return np.mean(x, axis=-1)


def std_ratio(
    a, b, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """``std(a) / std(b)`` (ddof 1) and its percentile-bootstrap interval (independent samples).

    Example:
      >>> r, (lo, hi) = std_ratio(np.arange(10.0) * 2, np.arange(10.0))
      >>> r, lo <= 2.0 <= hi
      (2.0, True)
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bootstrap_ratio(sample_std, a, b, n_boot=n_boot, level=level, seed=seed)


def mean_ratio(
    a, b, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """``mean(a) / mean(b)`` and its percentile-bootstrap interval (independent samples)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bootstrap_ratio(_mean, a, b, n_boot=n_boot, level=level, seed=seed)


def mean_difference(
    a, b, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """``mean(a) - mean(b)`` and its percentile-bootstrap interval (independent samples)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(n_boot, a.size))
    ib = rng.integers(0, b.size, size=(n_boot, b.size))
    boots = a[ia].mean(1) - b[ib].mean(1)
    return float(a.mean() - b.mean()), percentile_interval(boots, level)


def brown_forsythe(a, b) -> float:
    """Brown-Forsythe p-value of equal variances (Levene's test about the medians).

    NaN when neither sample varies.
    """
    import scipy.stats  # a second of import time: only the stabilizer study needs it

    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return math.nan
    return float(scipy.stats.levene(a, b, center="median").pvalue)


def disagreement(logits: np.ndarray) -> float:
    r"""Mean pairwise disagreement of the predicted test labels between seeds ("churn").

    .. math::
        D = \frac{1}{S(S-1)} \sum_{s \ne s'} \frac1m \sum_j
            \mathbb{1}[\operatorname{sign} f_s(x_j) \ne \operatorname{sign} f_{s'}(x_j)]
          = \frac1m \sum_j \frac{2\, S\, p_j (1 - p_j)}{S - 1},

    with ``p_j`` the fraction of the ``S`` seeds that predict +1 on test point ``j``. Scale
    free (only the signs of the logits enter), so methods whose logits grow at different
    rates compare fairly.

    Example:
      >>> disagreement(np.array([[1.0, 1.0], [1.0, -1.0]]))  # the seeds differ on one of two
      0.5
    """
    pos = (np.asarray(logits) > 0).astype(np.float64)
    S = pos.shape[0]
    p = pos.mean(axis=0)
    return float(np.mean(2.0 * S * p * (1.0 - p) / (S - 1)))
