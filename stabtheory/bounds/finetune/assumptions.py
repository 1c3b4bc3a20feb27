"""The assumption checks that the fine-tuning theorems share, and their result builder."""

from __future__ import annotations

import numpy as np

from stabtheory.bounds.finetune.evidence import FTEvidence
from stabtheory.bounds.theorem import Assumption, BoundCheck, all_hold, tolerance

__all__ = ["common_assumptions", "ft_result"]


def common_assumptions(ev: FTEvidence) -> list[Assumption]:
    """``H_i`` PSD, ``Lam > 0`` and the certified conjugate-gradient minimisers (FT-1, FT-2)."""
    return [
        Assumption.measure(
            "H_i PSD",
            "per-sample curvature is the Gauss-Newton matrix c_i J_i J_i^T, c_i >= 0 "
            "(min c_i shown)",
            float(np.min(np.asarray(ev.tm.curv))),
            ">=",
            0.0,
        ),
        Assumption.measure(
            "Lam > 0",
            "min over i of min(lambda_min(A_S), lambda_min(A_S\\i)) (exact), above the rounding "
            "level 10 n eps lambda_max of the eigenvalue computation (an exactly singular A_S "
            "must not pass)",
            float(ev.Lam.min()),
            ">",
            10 * ev.n * np.finfo(np.float64).eps * float(ev.lam_max.max()),
        ),
        Assumption.measure(
            "CG residual",
            "max relative residual of the conjugate-gradient minimisers",
            float(ev.cg_residual.max()),
            "<=",
            1e-8,
        ),
    ]


def ft_result(th, notion, ev, bound, kind, assumptions, steps, applicable_at=None) -> BoundCheck:
    """The :class:`BoundCheck` of ``th`` against ``ev.empirical(kind)``, with the trivial bound
    ``ev.trivial(kind)``: NaN bounds where it does not apply."""
    ok = np.ones(len(steps), bool) if applicable_at is None else np.asarray(applicable_at)
    ok = ok & all_hold(assumptions)
    return BoundCheck(
        th.id,
        notion,
        np.asarray(steps),
        np.where(ok[:, None], bound, np.nan),
        ev.empirical(kind),
        ok,
        tuple(assumptions),
        tolerance(np.float64),
        dict(ev.config),
        trivial=ev.trivial(kind),
    )
