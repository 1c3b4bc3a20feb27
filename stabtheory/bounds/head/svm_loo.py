r"""Lemma H-2, ``head.svm_loo``: the leave-one-out change of the max-margin direction.

The empirical value is the solver's change ``||u_hat_S - u_hat_S\i||``; the bound is
:attr:`HeadEvidence.D` (Lemma H-2's ``D_i`` with the solver gap terms, 0 for a certified
inactive ``z_i``). It depends on the data alone, not on the runs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stabtheory.bounds.head.evidence import HeadEvidence, head_result, separable
from stabtheory.bounds.head.lemmas import LOO_CHANGE, LOO_CHANGE_SYMBOLS
from stabtheory.bounds.theorem import BoundCheck, Theorem

__all__ = ["SVM_LOO", "check_svm_loo"]


def check_svm_loo(ev: HeadEvidence, notion: str = "svm.direction") -> BoundCheck:
    """Lemma H-2 against the change of the max-margin direction (one 'checkpoint').

    The empirical value is the solver's change ``||u_hat_S - u_hat_S\\i||``; ``D_i`` (with the
    solver gap terms, :attr:`HeadEvidence.D`) bounds it and the exact change alike."""
    assumptions = [separable(ev)]
    empirical = ev.loo.change[None, :]
    res = head_result(SVM_LOO, notion, ev, ev.D[None, :], empirical, assumptions, [True])
    return dataclasses.replace(res, steps=np.array([-1]))


SVM_LOO = Theorem(
    id="head.svm_loo",
    title="Lemma H-2: leave-one-out change of the max-margin direction",
    expression=LOO_CHANGE,
    symbols=LOO_CHANGE_SYMBOLS,
    notions=("svm.direction",),
    assumptions=(
        "S is linearly separable through the origin (gamma(S) > 0)",
        "the bound is 0 when z_i is a certified inactive constraint (z_i . u_S > gamma(S) "
        "for the exact u_S, so u_S\\i = u_S)",
        "delta_i = gamma(S\\i) - min_{j != i} z_j . u_S for the solver's direction u_S, "
        "evaluated conservatively (certified upper margin gamma_i, rounding allowance d eps "
        "R on every computed margin): e(gamma_i, delta_i) bounds ||u_S - exact u_S\\i||",
        "solver gap terms (Lemma H-1): epsilon = gamma_upper(S) - margin of the solver's "
        "u_S, so e(gamma, epsilon) bounds its distance to the exact u_S; likewise epsilon_i "
        "for S\\i. The sum bounds both the exact and the computed change",
    ),
    reference="docs/theory.md section 3, Lemma H-2 (Lemma H-1 applied on S\\i to v = u_S), "
    "with Lemma H-1's bound on the solver's distance to the exact directions",
    evidence=HeadEvidence,
    needs_separable=True,
    checker=check_svm_loo,
    # checked on the default (GD) runs of check_bound and the studies, which it does not use
    optimizers=("gd",),
    converged=True,
    depends_on_training=False,
)
