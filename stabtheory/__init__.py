"""stabtheory: the theory of fine-tuning stability (Fu, So & Collier 2023) on a test bench.

Bounds are sympy expressions evaluated in JAX; trainings of S, every leave-one-out set and
many seeds or hyperparameters run as one vmapped computation; empirical stability is checked
against the bounds, assumption by assumption, and the paper's claims get verdicts.

Importing stabtheory enables float64 in JAX (``jax_enable_x64``): theory checks run in
float64. Arrays created as float32 stay float32.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from stabtheory import bounds, claims, data, heads, margin, stability  # noqa: E402
from stabtheory.bounds import REGISTRY, check_bound  # noqa: E402
from stabtheory.data import Dataset, planted_margin, soudry_fig1, validate  # noqa: E402
from stabtheory.errors import (  # noqa: E402
    InvalidDataError,
    MaxMarginConvergenceError,
    NotSeparableError,
    StabtheoryError,
    UnknownTheoremError,
)
from stabtheory.margin import (  # noqa: E402
    LooMaxMargin,
    MaxMarginResult,
    loo_max_margin,
    max_margin,
)
from stabtheory.stability import (  # noqa: E402
    StabilityEstimate,
    loo_stability,
    replace_one_stability,
    seed_stability,
)

__version__ = "0.1.0"

__all__ = [
    "REGISTRY",
    "Dataset",
    "InvalidDataError",
    "LooMaxMargin",
    "MaxMarginConvergenceError",
    "MaxMarginResult",
    "NotSeparableError",
    "StabilityEstimate",
    "StabtheoryError",
    "UnknownTheoremError",
    "bounds",
    "check_bound",
    "claims",
    "data",
    "heads",
    "loo_max_margin",
    "loo_stability",
    "margin",
    "max_margin",
    "planted_margin",
    "replace_one_stability",
    "seed_stability",
    "soudry_fig1",
    "stability",
    "validate",
]
