"""Temporary phase-1 shim: the max-margin solver moved to :mod:`stabtheory.max_margin`."""

from stabtheory.max_margin import (
    ACTIVE_TOL,
    ZERO_NORM,
    LooMaxMargin,
    MaxMarginConvergenceError,
    MaxMarginResult,
    loo_max_margin,
    max_margin,
    normalized_margin,
)

__all__ = [
    "ACTIVE_TOL",
    "ZERO_NORM",
    "LooMaxMargin",
    "MaxMarginConvergenceError",
    "MaxMarginResult",
    "loo_max_margin",
    "max_margin",
    "normalized_margin",
]
