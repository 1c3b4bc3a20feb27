"""The bounds registry: every theorem as a sympy expression with its evidence and its check.

================  ====================================================================
id                theorem (docs/theory.md)
================  ====================================================================
``head.H1``       Theorem H-1, a-posteriori direction stability at step t
``head.H2``       Theorem H-2, a-priori direction rate (exponential loss), composed per sample
``head.H2m``      Theorem H-2, its margin statement delta(t) <= R C / Psi(t), per run
``head.H3``       Theorem H-3, a-priori direction rate of normalized GD, composed per sample
``head.H3m``      Theorem H-3, its margin statement delta(t) <= (log n + eta R^2/2)/(eta gamma t)
``head.C1``       Theorem C-1, raw head weights under GD (Hardt, Recht & Singer 2016)
``head.svm_loo``  Lemma H-2, leave-one-out change of the max-margin direction
``ft.FT1``        Theorem FT-1, converged full fine-tuning (Taylor model)
``ft.FT1c``       Theorem FT-1c, FT-1 with the exact leave-one-out numerator (Taylor model)
``ft.FT1L``       Corollary FT-1L, pointwise hypothesis stability (with FT-1)
``ft.FT2``        Theorem FT-2, full fine-tuning after t GD steps (Taylor model)
================  ====================================================================

A study asks :func:`theorems_for` / :func:`check_all` what applies to its evidence; a new
theorem is a :class:`Theorem` and one :func:`register` call.

Example:
  >>> from stabtheory.bounds import get
  >>> get("head.C1").latex()
  '\\\\frac{2 L \\\\eta t}{n}'
"""

from stabtheory.bounds import finetune, head
from stabtheory.bounds.check import check_bound
from stabtheory.bounds.finetune import FTEvidence
from stabtheory.bounds.head import HeadEvidence
from stabtheory.bounds.registry import (
    REGISTRY,
    check_all,
    get,
    register,
    theorems_for,
    unregister,
)
from stabtheory.bounds.theorem import (
    Assumption,
    BoundCheck,
    Theorem,
    merge_assumptions,
    merge_draws,
    tolerance,
)

__all__ = [
    "REGISTRY",
    "Assumption",
    "BoundCheck",
    "FTEvidence",
    "HeadEvidence",
    "Theorem",
    "check_all",
    "check_bound",
    "finetune",
    "get",
    "head",
    "merge_assumptions",
    "merge_draws",
    "register",
    "theorems_for",
    "tolerance",
    "unregister",
]

for _theorem in (*head.THEOREMS, *finetune.THEOREMS):
    register(_theorem)
del _theorem
