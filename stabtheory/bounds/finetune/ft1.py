r"""Theorem FT-1, ``ft.FT1``, its exact-numerator form ``ft.FT1c`` and Corollary ``ft.FT1L``.

On the Taylor model, per sample i (docs/theory.md sections 2 and 6):

* ``ft.FT1``: ``||w_S - w_S\i|| <= (rho_i + lam ||w_S - w0||) / ((n - 1) Lam_i)``;
* ``ft.FT1c``: ``||w_S - w_S\i|| <= ||r_i - mean_j r_j|| / ((n - 1) lambda_min(A_S\i))``
  (the exact identity's numerator, ``r_j = grad lhat_j(w_S)``; never above FT-1);
* ``ft.FT1L``: ``|lhat_i(w_S) - lhat_i(w_S\i)| <= max(rho_i, rho'_i) FT1_i``.

``rho_i = ||grad lhat_i(w_S)||``, ``rho'_i = ||grad lhat_i(w_S\i)||``,
``Lam_i = min(lambda_min(A_S), lambda_min(A_S\i))`` (exact, from the n x n kernel).
FT-1L composes the Corollary with FT-1: ``lhat_i`` has an affine gradient, so on the segment
between ``w_S`` and ``w_S\i`` its norm is at most the larger endpoint value.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from stabtheory.bounds.finetune.assumptions import common_assumptions, ft_result
from stabtheory.bounds.finetune.evidence import FTEvidence
from stabtheory.bounds.theorem import Assumption, BoundCheck, Theorem

__all__ = ["FT1", "FT1L", "FT1c", "check_ft1", "check_ft1c", "check_ft1l", "ft1_signs"]

rho = sp.Symbol("rho_i", nonnegative=True)
rho2 = sp.Symbol("rho'_i", nonnegative=True)
lam = sp.Symbol("lambda", nonnegative=True)
dist = sp.Symbol("d_S", nonnegative=True)  # ||w_S - w0||
n = sp.Symbol("n", positive=True)
n1 = sp.Symbol("n_1", positive=True)  # n - 1, for derivative signs
Lam = sp.Symbol("Lambda_i", positive=True)
dev = sp.Symbol("delta_i", nonnegative=True)  # ||r_i - mean_j r_j||, r_j = grad lhat_j(w_S)
Lam_loo = sp.Symbol("Lambda_S\\i", positive=True)  # lambda_min(A_S\i)

_ft1 = (rho + lam * dist) / ((n - 1) * Lam)


def ft1_signs() -> dict:
    """Signs of dFT1 / d(.) that follow from positivity (sympy), with ``n = 1 + n_1``,
    ``n_1 > 0`` and ``rho_i, lambda, d_S, Lambda_i > 0``.

    Example:
      >>> ft1_signs()
      {'n': -1, 'rho_i': 1, 'd_S': 1, 'Lambda_i': -1}
    """
    pos = {x: sp.Symbol(x.name, positive=True) for x in (rho, lam, dist)}
    expr = _ft1.subs(pos).subs(n, n1 + 1)
    out = {}
    for name, s in (("n", n1), ("rho_i", pos[rho]), ("d_S", pos[dist]), ("Lambda_i", Lam)):
        dv = sp.simplify(sp.diff(expr, s))
        out[name] = 1 if dv.is_positive else (-1 if dv.is_negative else None)
    return out


def _ft1_facts() -> dict:
    return {"signs": ft1_signs()}


def _ft1_bound(ev: FTEvidence) -> np.ndarray:
    return np.asarray(FT1.evaluate(ev.rho, ev.config["lam"], ev.distance, float(ev.n), ev.Lam))


def check_ft1(ev: FTEvidence, notion: str = "loo.weights") -> BoundCheck:
    """FT-1 against the exact leave-one-out change of the Taylor-model minimiser."""
    bound = _ft1_bound(ev)[None]
    return ft_result(FT1, notion, ev, bound, "min.weights", common_assumptions(ev), [-1])


def check_ft1c(ev: FTEvidence, notion: str = "loo.weights") -> BoundCheck:
    """FT-1c, ``||r_i - mean r|| / ((n - 1) lambda_min(A_S\\i))``, against the exact
    leave-one-out change of the Taylor-model minimiser."""
    assumptions = [
        Assumption.measure(
            "Lam_S\\i > 0",
            "min over i of lambda_min(A_S\\i) (exact), above the rounding level "
            "10 n eps lambda_max of the eigenvalue computation",
            float(ev.Lam_loo.min()),
            ">",
            10 * ev.n * np.finfo(np.float64).eps * float(ev.lam_max.max()),
        ),
        common_assumptions(ev)[2],
    ]
    bound = np.asarray(FT1c.evaluate(ev.deviation, float(ev.n), ev.Lam_loo))
    return ft_result(FT1c, notion, ev, bound[None], "min.weights", assumptions, [-1])


def check_ft1l(ev: FTEvidence, notion: str = "loo.loss") -> BoundCheck:
    """FT-1L (with FT-1) against the leave-one-out change of the quadratic loss at z_i."""
    bound = np.maximum(ev.rho, ev.rho_loo) * _ft1_bound(ev)
    return ft_result(FT1L, notion, ev, bound[None], "min.loss", common_assumptions(ev), [-1])


FT1 = Theorem(
    id="ft.FT1",
    title="Theorem FT-1: leave-one-out stability of the converged Taylor-model fine-tuning",
    expression=_ft1,
    symbols=(rho, lam, dist, n, Lam),
    notions=("loo.weights",),
    assumptions=(
        "every H_i PSD with ||H_i|| <= beta (Gauss-Newton curvature: PSD by construction)",
        "Lam = min(lambda_min(A_S), lambda_min(A_S\\i)) > 0",
        "w_S, w_S\\i are the minimisers (conjugate-gradient residual certified)",
    ),
    reference="docs/theory.md section 2, Theorem FT-1 (Fu, So & Collier 2023, full fine-tuning)",
    evidence=FTEvidence,
    checker=check_ft1,
    converged=True,
    facts=_ft1_facts,
)

FT1c = Theorem(
    id="ft.FT1c",
    title="Theorem FT-1c: FT-1 with the exact leave-one-out numerator (Taylor model)",
    expression=dev / ((n - 1) * Lam_loo),
    symbols=(dev, n, Lam_loo),
    notions=("loo.weights",),
    assumptions=(
        "A_S\\i = mean_{j != i} H_j + lam I symmetric with lambda_min(A_S\\i) > 0",
        "w_S, w_S\\i are the minimisers (conjugate-gradient residual certified)",
    ),
    reference=(
        "docs/theory.md section 6 (exact identity w_S - w_S\\i = -A_S\\i^{-1} (r_i - mean r)"
        " / (n - 1)); at most FT-1 since r_i - mean r = r_i + lam (w_S - w0) and "
        "lambda_min(A_S\\i) >= Lam"
    ),
    evidence=FTEvidence,
    checker=check_ft1c,
    converged=True,
)

FT1L = Theorem(
    id="ft.FT1L",
    title="Corollary FT-1L: pointwise hypothesis stability of the Taylor model (with FT-1)",
    expression=sp.Max(rho, rho2) * _ft1,
    symbols=(rho, rho2, lam, dist, n, Lam),
    notions=("loo.loss",),
    assumptions=FT1.assumptions,
    reference="docs/theory.md section 2, Corollary FT-1L composed with Theorem FT-1",
    evidence=FTEvidence,
    checker=check_ft1l,
    converged=True,
)
