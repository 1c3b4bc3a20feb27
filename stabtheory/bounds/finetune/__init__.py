r"""Full fine-tuning theorems (docs/theory.md sections 2 and 6), their checks and evidence.

The bounds are checked on the Taylor model (:mod:`stabtheory.full_finetuning.taylor`) of a network
``f(w, x)`` with the logistic loss, around the pre-trained ``w0``, with the Gauss-Newton
curvature (PSD by construction):

============  ======================  =====================================================
id            notion                  bound for sample i
============  ======================  =====================================================
``ft.FT1``    ``loo.weights``         ``(rho_i + lam ||w_S - w0||) / ((n - 1) Lam_i)``
``ft.FT1c``   ``loo.weights``         ``||r_i - mean_j r_j|| / ((n - 1) lambda_min(A_S\i))``
``ft.FT1L``   ``loo.loss``            ``max(rho_i, rho'_i) FT1_i``
``ft.FT2``    ``loo.weights (gd)``    ``FT1_i + eta t beta (1 - eta Lam_i)^(t-1) d_i / n``
============  ======================  =====================================================

The real network (GD on the true loss) is not covered by the theorems; its leave-one-out
stability is set beside FT-2 (``loo.weights (real)``) and the Taylor model's faithfulness
(assumption (d)), the true Hessian's curvature and the real run's stationarity are reported as
measured numbers (:mod:`.faithfulness`).
:data:`THEOREMS` lists the theorems in check order; :mod:`stabtheory.bounds` registers them.
"""

from stabtheory.bounds.finetune.evidence import (
    FTEvidence,
    FTProblem,
    ft_evidence,
    ft_evidence_batch,
)
from stabtheory.bounds.finetune.faithfulness import (
    DEPARTURE_THRESHOLD,
    curvature_ratio,
    faithfulness,
    hessian_min_eig,
    loss_gap,
    real_departure,
    stationarity,
    true_hessian_psd,
)
from stabtheory.bounds.finetune.ft1 import (
    FT1,
    FT1L,
    FT1c,
    check_ft1,
    check_ft1c,
    check_ft1l,
    ft1_signs,
)
from stabtheory.bounds.finetune.ft2 import FT2, check_ft2
from stabtheory.bounds.finetune.reference import FTReference, ft_reference
from stabtheory.bounds.finetune.step import MAX_STEPS, PILOT_PASSES, STATIONARY_TOL, path_lr

__all__ = [
    "DEPARTURE_THRESHOLD",
    "FT1",
    "FT1L",
    "FT2",
    "MAX_STEPS",
    "PILOT_PASSES",
    "STATIONARY_TOL",
    "THEOREMS",
    "FT1c",
    "FTEvidence",
    "FTProblem",
    "FTReference",
    "check_ft1",
    "check_ft1c",
    "check_ft1l",
    "check_ft2",
    "curvature_ratio",
    "faithfulness",
    "ft1_signs",
    "ft_evidence",
    "ft_evidence_batch",
    "ft_reference",
    "hessian_min_eig",
    "loss_gap",
    "path_lr",
    "real_departure",
    "stationarity",
    "true_hessian_psd",
]

#: The fine-tuning theorems in check order.
THEOREMS = (FT1, FT1c, FT1L, FT2)
