r"""Theorem C-1, ``head.C1``: raw head weights under GD (Hardt, Recht & Singer 2016).

``||w_S(t) - w_S\i(t)|| <= 2 eta t L / n`` against ``loo.weights``, and ``L_i`` times it
against ``loo.loss`` (docs/theory.md section 3).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from stabtheory.bounds.head.evidence import HeadEvidence, finite, head_result
from stabtheory.bounds.head.lemmas import eta, n, t
from stabtheory.bounds.theorem import Assumption, BoundCheck, Theorem

__all__ = ["C1", "check_c1"]

L = sp.Symbol("L", positive=True)


def check_c1(ev: HeadEvidence, notion: str = "loo.weights") -> BoundCheck:
    """Theorem C-1 for ``loo.weights`` (or ``loo.loss``, times the loss's Lipschitz constant)."""
    cfg = ev.config
    lr, R_ = cfg["lr"], ev.radius
    steps = ev.steps.astype(np.float64)
    setting = cfg["optimizer"] == "gd" and cfg["heads"] == 1
    dmax = np.asarray(ev.sim.trajectory.dloss_max)  # (runs, C)
    if cfg["loss"] == "logistic":
        lip = np.full((len(steps), ev.n), R_)
        smooth = np.full((len(steps), ev.n), R_**2 / 4)
        smooth_text = "b = R^2/4 (logistic, global)"
    else:
        scale = np.maximum(dmax[0][:, None], dmax[1:].T)  # (C, n): both runs, every step < t
        lip, smooth = R_ * scale, R_**2 * scale
        smooth_text = "b = R^2 max|l'| measured along both runs (exponential)"
    step_ok = lr * smooth.max(axis=1) <= 2.0  # (C,)
    kind = C1.notion(notion).removeprefix("loo.")  # "weights" or "loss"
    assumptions = [
        Assumption.measure(
            "GD, 1 head", "plain full-batch GD on one head (1 if met)", float(setting), "==", 1.0
        ),
        finite(ev),
        Assumption.measure(
            "eta <= 2/b",
            f"non-expansive GD steps; {smooth_text}; worst over samples and checkpoints",
            lr * float(smooth.max()),
            "<=",
            2.0,
            pointwise=True,
        ),
    ]
    bound = np.asarray(C1.evaluate(lr, steps[:, None], lip, float(ev.n)))
    if kind == "loss":
        # |l(w;z_i) - l(w';z_i)| <= max over the segment of |l'| ||z_i|| times ||w - w'||; the
        # margin is linear on the segment, so |l'| there is at most its value at an endpoint.
        norms = np.linalg.norm(ev.Z, axis=1)
        if cfg["loss"] == "logistic":
            lip_i = np.broadcast_to(norms, bound.shape)
        else:
            m_full = ev.w[0] @ ev.Z.T  # (C, n)
            m_loo = np.einsum("icd,id->ci", ev.w[1:], ev.Z)  # (C, n): run i on z_i
            # rounding allowance of a computed margin w.z: d eps ||w|| R
            slack = ev.allowance * np.maximum(
                np.linalg.norm(ev.w[0], axis=-1)[:, None], np.linalg.norm(ev.w[1:], axis=-1).T
            )
            lip_i = np.exp(-(np.minimum(m_full, m_loo) - slack)) * norms
        bound = bound * lip_i
    empirical = ev.empirical(kind)
    return head_result(C1, notion, ev, bound, empirical, assumptions, step_ok)


C1 = Theorem(
    id="head.C1",
    title="Theorem C-1: raw head weights under GD on a convex, Lipschitz, smooth loss",
    expression=2 * eta * t * L / n,
    symbols=(eta, t, L, n),
    notions=("loo.weights", "loo.loss"),
    assumptions=(
        "plain full-batch GD, one head, common start for S and S\\i",
        "every loss l(.; z) convex, L-Lipschitz and b-smooth on the region the runs visit",
        "eta <= 2 / b",
        "logistic: L = R, b = R^2/4 (global). exponential: L = R max|l'| and b = R^2 "
        "max|l'|, max over every step before t of both runs (valid on the segments between "
        "them, since exp(-m) is monotone in the margin m, which is linear in w)",
    ),
    reference="docs/theory.md section 3, Theorem C-1 (after Hardt, Recht & Singer 2016, Thm 3.7)",
    evidence=HeadEvidence,
    checker=check_c1,
    optimizers=("gd",),
)
