"""Temporary phase-1 shim: the stability estimators moved to :mod:`stabtheory.linear_heads`.

``Simulation`` is now :class:`stabtheory.linear_heads.HeadRuns` and ``simulate``
:func:`stabtheory.linear_heads.train_head_runs`.
"""

from stabtheory.linear_heads import (
    NOTIONS,
    HeadRuns,
    SeedStability,
    StabilityEstimate,
    loo_stability,
    per_sample_stability,
    replace_one_stability,
    seed_stability,
    train_head_runs,
)
from stabtheory.statistics import bootstrap_mean_ci

Simulation = HeadRuns
simulate = train_head_runs

__all__ = [
    "NOTIONS",
    "HeadRuns",
    "SeedStability",
    "Simulation",
    "StabilityEstimate",
    "bootstrap_mean_ci",
    "loo_stability",
    "per_sample_stability",
    "replace_one_stability",
    "seed_stability",
    "simulate",
    "train_head_runs",
]
