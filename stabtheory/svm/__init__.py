"""The hard-margin SVM without bias: the exact max-margin solver, leave-one-out, normalized margins.

:func:`max_margin` returns a certified :class:`MaxMarginResult`; :func:`loo_max_margin` the
solutions of every leave-one-out set; :func:`normalized_margin` the margin of any weights.
:func:`min_norm_point` is the Wolfe algorithm underneath.
"""

from stabtheory.errors import MaxMarginConvergenceError as MaxMarginConvergenceError
from stabtheory.svm.svm import ACTIVE_TOL as ACTIVE_TOL
from stabtheory.svm.svm import LooMaxMargin as LooMaxMargin
from stabtheory.svm.svm import MaxMarginResult as MaxMarginResult
from stabtheory.svm.svm import loo_max_margin as loo_max_margin
from stabtheory.svm.svm import max_margin as max_margin
from stabtheory.svm.svm import normalized_margin as normalized_margin
from stabtheory.svm.wolfe import ZERO_NORM as ZERO_NORM
from stabtheory.svm.wolfe import Corral as Corral
from stabtheory.svm.wolfe import min_norm_point as min_norm_point

__all__ = [
    "ACTIVE_TOL",
    "ZERO_NORM",
    "Corral",
    "LooMaxMargin",
    "MaxMarginConvergenceError",
    "MaxMarginResult",
    "loo_max_margin",
    "max_margin",
    "min_norm_point",
    "normalized_margin",
]
