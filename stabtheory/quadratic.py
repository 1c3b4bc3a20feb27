"""Temporary shim (issue 15, phase 1): the old ``stabtheory.quadratic`` names, from full_finetuning.

To be removed in phase 2.
"""

from stabtheory.full_finetuning import (
    FTDesign,
    TaylorModel,
    apply_design,
    cg_solve,
    dense_curvatures,
    dense_operator,
    extreme_eigenvalues,
    gd_path,
    lanczos_extremes,
    minimizers,
    operator,
    per_sample_norms,
    per_sample_power_iteration,
    power_iteration,
    quadratic_grads,
    quadratic_losses,
    sample_hvp,
    taylor_expand,
    true_losses,
)

__all__ = [
    "FTDesign",
    "TaylorModel",
    "apply_design",
    "cg_solve",
    "dense_curvatures",
    "dense_operator",
    "extreme_eigenvalues",
    "gd_path",
    "lanczos_extremes",
    "minimizers",
    "operator",
    "per_sample_norms",
    "per_sample_power_iteration",
    "power_iteration",
    "quadratic_grads",
    "quadratic_losses",
    "sample_hvp",
    "taylor_expand",
    "true_losses",
]
