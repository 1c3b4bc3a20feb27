"""Head-tuning theorems (docs/theory.md section 3), each beside its check, and their evidence.

==================  ===================  ==================================================
id                  notion               bound for sample i
==================  ===================  ==================================================
``head.svm_loo``    ``svm.direction``    Lemma H-2's ``D_i`` plus the solver's gap terms
``head.H1``         ``loo.direction``    ``e(gamma, delta_S(t)) + D_i + e(gamma_i, delta_i(t))``
``head.H2``         ``loo.direction``    ``h(S, t) + D_i + h(S\\i, t)`` (a-priori rate)
``head.H2m``        ``margin.gap``       ``R C / Psi(t)`` per run (S, then every S\\i)
``head.H3``         ``loo.direction``    ``e(gamma, b_S(t)) + D_i + e(gamma_i, b_i(t))`` (NGD)
``head.H3m``        ``margin.gap``       ``b(t) = (log n + eta R^2 / 2) / (eta gamma t)`` per run
``head.C1``         ``loo.weights``      ``2 eta t L / n`` (and ``L_i`` times it for ``loo.loss``)
==================  ===================  ==================================================

:data:`THEOREMS` lists them in check order; :mod:`stabtheory.bounds` registers them.
"""

from stabtheory.bounds.head.c1 import C1, check_c1
from stabtheory.bounds.head.evidence import HeadEvidence, head_evidence
from stabtheory.bounds.head.h1 import H1, check_h1
from stabtheory.bounds.head.h2 import (
    H2,
    H2M,
    check_h2,
    check_h2_margin,
    h2_direction_rate,
    h2_time_monotonicity,
)
from stabtheory.bounds.head.h3 import H3, H3M, check_h3, check_h3_margin, h3_margin_rate
from stabtheory.bounds.head.lemmas import direction_gap
from stabtheory.bounds.head.svm_loo import SVM_LOO, check_svm_loo

__all__ = [
    "C1",
    "H1",
    "H2",
    "H2M",
    "H3",
    "H3M",
    "SVM_LOO",
    "THEOREMS",
    "HeadEvidence",
    "check_c1",
    "check_h1",
    "check_h2",
    "check_h2_margin",
    "check_h3",
    "check_h3_margin",
    "check_svm_loo",
    "direction_gap",
    "h2_direction_rate",
    "h2_time_monotonicity",
    "h3_margin_rate",
    "head_evidence",
]

#: The head theorems in check order (a study's GD runs: H1, H2, H2m, C1, svm_loo; NGD: H1, H3,
#: H3m).
THEOREMS = (SVM_LOO, H1, H2, H2M, H3, H3M, C1)
