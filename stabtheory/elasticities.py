"""Elasticities: how a sweep's instability scales with what it moves, and multiplicity
(docs/theory.md sections 5 and 6).

* :func:`per_draw_slope`: per data draw, the least-squares slope of log(mean instability)
  against log(parameter) over a sweep's configurations.
* :func:`elasticity`: its mean over draws with a Student-t interval and t-test
  (:func:`t_interval`), beside the same slope of a bound (the exponent it predicts).
* :func:`holm`: Holm's adjusted p-values of a claim's counted regimes.

>>> e = elasticity([1.0, 2.0, 4.0], [np.full((3, 5), 1.0 / x) * (1 + 0.01 * k)
...                                   for k, x in enumerate((1.0, 2.0, 4.0))])
>>> round(e.estimate, 3), e.draws
(-0.986, 3)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from stabtheory.statistics import as_draws

__all__ = ["Elasticity", "elasticity", "holm", "per_draw_slope", "t_interval"]


def per_draw_slope(parameter_values, per_sample: Sequence[np.ndarray]) -> np.ndarray | None:
    """Least-squares slope of log(mean instability) against log(parameter), one per draw.

    Args:
      parameter_values: ``(configs,)`` values shared by every draw, or ``(configs, draws)``
        values measured on each draw (e.g. rho = max_i rho_i of draw r); must be > 0.
      per_sample: per configuration, ``(draws, n)`` values (the same number of draws).

    Returns:
      ``(draws,)`` slopes; NaN for a draw whose parameter does not vary or whose mean
      instability is not positive and finite everywhere (its logarithm is undefined).
      ``None`` when the configurations do not have the same number of draws (not paired).

    Example:
      >>> per_draw_slope([1.0, 2.0, 4.0], [np.full((2, 3), v) for v in (1.0, 0.5, 0.25)])
      array([-1., -1.])
    """
    arrays = [as_draws(v) for v in per_sample]
    if len({a.shape[0] for a in arrays}) != 1:
        return None
    means = np.stack([a.mean(axis=1) for a in arrays], axis=0)  # (configs, draws)
    x = np.asarray(parameter_values, float)
    x = np.broadcast_to(x[:, None] if x.ndim == 1 else x, means.shape)
    ok = np.all((x > 0) & np.isfinite(x) & (means > 0) & np.isfinite(means), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lx = np.where(ok, np.log(np.where(x > 0, x, 1.0)), np.nan)
        ly = np.where(ok, np.log(np.where(means > 0, means, 1.0)), np.nan)
        dx = lx - lx.mean(axis=0)
        sxx = np.sum(dx**2, axis=0)
        slope = np.sum(dx * (ly - ly.mean(axis=0)), axis=0) / sxx
    return np.where(ok & (sxx > 1e-24), slope, np.nan)


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Student-t interval of the mean of ``values`` and the two-sided t-test p-value against 0.

    NaN values are left out; ``(nan, nan, nan)`` with fewer than 2 values. A sample with zero
    spread has a point interval and p = 0 (nonzero mean) or 1 (zero mean).

    Example:
      >>> lo, hi, p = t_interval([1.0, 2.0, 3.0])
      >>> round(lo, 3), round(hi, 3), round(p, 4)
      (-0.484, 4.484, 0.0742)
    """
    from scipy.stats import t as student  # scipy.stats only loads when an interval is asked

    v = np.asarray(values, float).ravel()
    v = v[~np.isnan(v)]
    if v.size < 2:
        return math.nan, math.nan, math.nan
    m, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))
    if not se > 0:
        return m, m, 1.0 if m == 0 else 0.0
    q = float(student.ppf(0.5 + level / 2, v.size - 1))
    p = float(2 * student.sf(abs(m) / se, v.size - 1))
    return m - q * se, m + q * se, p


@dataclasses.dataclass(frozen=True)
class Elasticity:
    """The elasticity of a sweep (see :func:`elasticity`).

    Attributes:
      estimate: the mean per-draw slope of log instability against log parameter.
      ci: its Student-t interval over draws.
      p: the two-sided t-test p-value against a zero slope.
      draws: the number of draws with a defined slope.
      predicted: the same statistic computed on a bound's values along the same sweep (the
        exponent the bound predicts there), NaN when none is given or it is undefined.
    """

    estimate: float
    ci: tuple[float, float]
    p: float
    draws: int
    predicted: float = math.nan


def elasticity(
    parameter_values,
    per_sample: Sequence[np.ndarray],
    *,
    bounds: Sequence[np.ndarray] | None = None,
    level: float = 0.95,
) -> Elasticity:
    """Per-draw log-log slopes (:func:`per_draw_slope`) summarised over draws.

    ``bounds`` (same layout as ``per_sample``): a bound's per-sample values, whose mean
    per-draw slope is reported as :attr:`Elasticity.predicted`.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> y = [n**-1.0 * (1 + 0.01 * rng.standard_normal((10, 5))) for n in (8, 16, 32)]
      >>> e = elasticity([8, 16, 32], y, bounds=[2.0 / np.full((10, 5), n) for n in (8, 16, 32)])
      >>> round(e.estimate, 2), e.ci[1] < 0, e.draws, round(e.predicted, 12)
      (-1.0, True, 10, -1.0)
    """
    slopes = per_draw_slope(parameter_values, per_sample)
    if slopes is None or np.all(np.isnan(slopes)):
        est, lo, hi, p, k = math.nan, math.nan, math.nan, math.nan, 0
    else:
        est, k = float(np.nanmean(slopes)), int(np.sum(~np.isnan(slopes)))
        lo, hi, p = t_interval(slopes, level)
    predicted = math.nan
    if bounds is not None:
        b = per_draw_slope(parameter_values, bounds)
        if b is not None and not np.all(np.isnan(b)):
            predicted = float(np.nanmean(b))
    return Elasticity(est, (lo, hi), p, k, predicted)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control); NaN counts as 1.

    Example:
      >>> holm([0.01, 0.04, 0.03]).tolist()
      [0.03, 0.06, 0.06]
    """
    p = np.nan_to_num(np.asarray(pvalues, float), nan=1.0)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
