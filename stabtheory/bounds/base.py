"""Temporary phase-1 shim: :mod:`stabtheory.bounds.theorem` under its old name."""

from stabtheory.bounds.theorem import (
    Assumption,
    BoundCheck,
    Theorem,
    all_hold,
    merge_assumptions,
    merge_draws,
    tolerance,
)

__all__ = [
    "Assumption",
    "BoundCheck",
    "Theorem",
    "all_hold",
    "merge_assumptions",
    "merge_draws",
    "tolerance",
]
