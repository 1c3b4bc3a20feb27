"""stabtheory: the theory of fine-tuning stability (Fu, So & Collier 2023) on a test bench.

The package follows the flow of the science (README "What is where"): ``data`` and ``svm``
(datasets, validation, exact max margins) -> ``linear_heads`` and ``full_finetuning`` (trainers,
testbeds, the Taylor model) and ``stabilizers`` (MMR, MHLoss, SURT) -> ``bounds`` (theorems,
each with its check) -> ``statistics``, ``elasticities`` and ``claims`` (and ``generalization``:
the gap from stability) -> ``simulations`` (studies) -> ``report``.

Importing stabtheory enables float64 in JAX (``jax_enable_x64``): theory checks run in
float64. Arrays created as float32 stay float32.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from stabtheory import (  # noqa: E402
    bounds,
    claims,
    data,
    elasticities,
    generalization,
    linear_heads,
    statistics,
    svm,
)
from stabtheory.bounds import REGISTRY, check_bound  # noqa: E402
from stabtheory.data import (  # noqa: E402
    Dataset,
    add_bias,
    planted_margin,
    soudry_fig1,
    validate,
)
from stabtheory.errors import (  # noqa: E402
    InvalidDataError,
    MaxMarginConvergenceError,
    NotSeparableError,
    StabtheoryError,
    UnknownTheoremError,
)
from stabtheory.generalization import be_moment_bound, replace_one_identity  # noqa: E402
from stabtheory.linear_heads import (  # noqa: E402
    StabilityEstimate,
    loo_stability,
    replace_one_stability,
    seed_stability,
)
from stabtheory.svm import (  # noqa: E402
    LooMaxMargin,
    MaxMarginResult,
    loo_max_margin,
    max_margin,
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
    "add_bias",
    "be_moment_bound",
    "bounds",
    "check_bound",
    "claims",
    "data",
    "elasticities",
    "generalization",
    "linear_heads",
    "loo_max_margin",
    "loo_stability",
    "max_margin",
    "planted_margin",
    "replace_one_identity",
    "replace_one_stability",
    "seed_stability",
    "soudry_fig1",
    "statistics",
    "svm",
    "validate",
]
