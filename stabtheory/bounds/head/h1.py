r"""Theorem H-1, ``head.H1``: a-posteriori direction stability at step t.

Per sample i and checkpoint t: ``||v_S(t) - v_S\i(t)|| <= e(gamma, delta_S(t)) + D_i +
e(gamma_i, delta_i(t))`` (docs/theory.md section 3), against ``loo.direction``.
"""

from __future__ import annotations

import numpy as np

from stabtheory.bounds.head.evidence import (
    HeadEvidence,
    finite,
    head_result,
    margin_certificate,
    nonzero,
    separable,
)
from stabtheory.bounds.head.lemmas import D_i, delta, delta_i, direction_gap, gamma, gamma_i
from stabtheory.bounds.theorem import BoundCheck, Theorem

__all__ = ["H1", "check_h1"]


def check_h1(ev: HeadEvidence, notion: str = "loo.direction") -> BoundCheck:
    """Theorem H-1 per sample and checkpoint."""
    nonzero_at = np.linalg.norm(ev.w, axis=-1).min(axis=0) > 0  # (C,)
    assumptions = [separable(ev), finite(ev), margin_certificate(ev), nonzero(ev)]
    bound = np.asarray(
        H1.evaluate(
            ev.gamma_upper,
            ev.delta_S[:, None],
            ev.D[None, :],
            ev.gamma_loo_upper[None, :],
            ev.delta_loo,
        )
    )
    return head_result(H1, notion, ev, bound, ev.empirical("direction"), assumptions, nonzero_at)


H1 = Theorem(
    id="head.H1",
    title="Theorem H-1: a-posteriori head direction stability at step t",
    expression=direction_gap(gamma, delta) + D_i + direction_gap(gamma_i, delta_i),
    symbols=(gamma, delta, D_i, gamma_i, delta_i),
    notions=("loo.direction",),
    assumptions=(
        "S is linearly separable through the origin (gamma(S) > 0)",
        "the trained heads are non-zero (their direction is defined)",
    ),
    reference="docs/theory.md section 3, Theorem H-1 (after Soudry et al. 2018, JMLR 19:70)",
    evidence=HeadEvidence,
    needs_separable=True,
    checker=check_h1,
)
