r"""Theorem H-2, ``head.H2`` and ``head.H2m``: the a-priori rate of GD on the exponential loss.

``head.H2`` composes the direction rate per sample, ``h(S, t) + D_i + h(S\i, t)``, against
``loo.direction``; ``head.H2m`` checks the margin statement ``delta(t) <= R C / Psi(t)`` of
every run (S, then every S\i) against ``margin.gap`` (docs/theory.md section 3).
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from stabtheory.bounds.head.evidence import (
    HeadEvidence,
    direction_rate_check,
    exponential_from_zero,
    finite,
    margin_rate_check,
    separable,
    step_size,
)
from stabtheory.bounds.head.lemmas import D_i, R, R_i, eta, gamma, gamma_i, n, t
from stabtheory.bounds.theorem import Assumption, BoundCheck, Theorem

__all__ = [
    "H2",
    "H2M",
    "check_h2",
    "check_h2_margin",
    "h2_direction_rate",
    "h2_time_monotonicity",
]

Psi = sp.Symbol("Psi", positive=True)
C = sp.Symbol("C", positive=True)


def h2_direction_rate(t_, n_, g, r, e) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    r"""Theorem H-2 for one data set: ``(bound, C, Psi)`` in sympy.

    With ``gamma_1 = gamma / R`` and ``eta_1 = eta R^2``:
    ``C = log n + gamma_1 eta_1^2 / 2 + eta_1 / gamma_1``,
    ``Psi(t) = log(1 + eta_1 gamma_1^2 t / 2) - log n`` and, for ``Psi(t) > 0``,
    ``||v(t) - u_S|| <= 2 sqrt(C / (gamma_1 Psi(t)))``.
    """
    g1, e1 = g / r, e * r**2
    c = sp.log(n_) + g1 * e1**2 / 2 + e1 / g1
    psi = sp.log(1 + e1 * g1**2 * t_ / 2) - sp.log(n_)
    return 2 * sp.sqrt(c / (g1 * psi)), c, psi


_h_S, _C_S, _Psi_S = h2_direction_rate(t, n, gamma, R, eta)
_h_i, _C_i, _Psi_i = h2_direction_rate(t, n - 1, gamma_i, R_i, eta)


@functools.cache
def h2_time_monotonicity() -> dict:
    """Sign of dH2/dt derived by sympy: d h / d Psi < 0 (C, gamma_1, Psi > 0) and
    d Psi / d t > 0 (eta, gamma, R, t > 0), so the bound decreases in t (chain rule).

    Example:
      >>> h2_time_monotonicity()["sign"]
      -1
    """
    h_of_psi = 2 * sp.sqrt(C / ((gamma / R) * Psi))
    dh_dpsi = sp.simplify(sp.diff(h_of_psi, Psi))
    dpsi_dt = sp.simplify(sp.diff(_Psi_S, t))
    s1 = -1 if dh_dpsi.is_negative else (1 if dh_dpsi.is_positive else None)
    s2 = -1 if dpsi_dt.is_negative else (1 if dpsi_dt.is_positive else None)
    return {
        "dh_dPsi": sp.latex(dh_dpsi),
        "dPsi_dt": sp.latex(dpsi_dt),
        "sign": None if s1 is None or s2 is None else s1 * s2,
    }


def _h2_facts() -> dict:
    return {"d bound / d t": h2_time_monotonicity()}


def _h2_setting(ev: HeadEvidence):
    """Assumptions of Theorem H-2 and the checkpoints where Psi(t) > 0 for S and every S\\i."""
    lr = ev.config["lr"]
    steps = ev.steps.astype(np.float64)
    setting = exponential_from_zero(ev, "gd")
    g1 = ev.loo.full.margin / ev.radius
    g1_i = ev.loo.margins / ev.radius_loo
    e1 = lr * ev.radius**2
    e1_i = lr * ev.radius_loo**2
    psi_S = np.log1p(e1 * g1**2 * steps / 2) - np.log(ev.n)
    psi_i = np.log1p(e1_i[None, :] * g1_i[None, :] ** 2 * steps[:, None] / 2) - np.log(ev.n - 1)
    assumptions = [
        Assumption.measure(
            "exponential loss, GD, 1 head, w(0)=0",
            "the setting of Theorem H-2 (1 if it is met)",
            float(setting),
            "==",
            1.0,
        ),
        step_size(ev, lr, "eta_1 = eta R^2"),
        separable(ev),
        finite(ev),
        Assumption.measure(
            "Psi(t) > 0",
            "t large enough that Psi(t) = log(1 + eta_1 gamma_1^2 t / 2) - log n > 0 for S and "
            "every S\\i (min over the checkpoints; the theorem applies where it holds)",
            float(np.minimum(psi_S, psi_i.min(axis=1)).min()),
            ">",
            0.0,
            pointwise=True,
        ),
    ]
    return assumptions, (psi_S > 0) & (psi_i > 0).all(axis=1)


def check_h2(ev: HeadEvidence, notion: str = "loo.direction") -> BoundCheck:
    """Theorem H-2 (composed with Lemma H-2) per sample and checkpoint.

    The composed bound is at least ``D_i`` plus two rates that rarely fall below 1, so it is
    often vacuous (>= 2, the largest possible direction change). ``head.H2m`` checks the
    theorem's margin statement itself; at the study's t (<= 1e4) it is mostly vacuous too
    (above gamma + R), since GD's margin rate is only logarithmic in t (docs/theory.md
    section 3); ``head.H3`` is the rate that is informative at such t, for normalized GD."""
    assumptions, psi_ok = _h2_setting(ev)
    return direction_rate_check(
        H2, notion, ev, ev.loo.full.margin, ev.loo.margins, assumptions, psi_ok
    )


def check_h2_margin(ev: HeadEvidence, notion: str = "margin.gap") -> BoundCheck:
    """Theorem H-2's margin form, ``delta(t) <= R C / Psi(t)``, for every run.

    Column 0 is the run on S, column ``i + 1`` the run on S\\i (with ``n - 1``,
    ``gamma(S\\i)``, ``R(S\\i)``); the empirical delta is the conservative one of
    :class:`HeadEvidence`."""
    assumptions, psi_ok = _h2_setting(ev)
    return margin_rate_check(
        H2M, notion, ev, ev.loo.full.margin, ev.loo.margins, assumptions, psi_ok
    )


H2 = Theorem(
    id="head.H2",
    title="Theorem H-2: a-priori margin and direction rate of GD on the exponential loss",
    expression=_h_S + D_i + _h_i,
    symbols=(t, eta, n, gamma, R, D_i, gamma_i, R_i),
    notions=("loo.direction",),
    assumptions=(
        "exponential loss, plain full-batch GD, one head, start w(0) = 0",
        "eta R^2 <= 1 (R = max_i ||x_i|| of each set)",
        "Psi(t) > 0 for S and for S\\i (t large enough)",
        "S is linearly separable through the origin",
    ),
    reference="docs/theory.md section 3, Theorem H-2, composed with Lemma H-2 as in Theorem H-1",
    evidence=HeadEvidence,
    needs_separable=True,
    checker=check_h2,
    optimizers=("gd",),
    facts=_h2_facts,
    definitions=((C, _C_S), (Psi, _Psi_S)),
)

H2M = Theorem(
    id="head.H2m",
    title="Theorem H-2, margin form: normalised-margin gap of GD on the exponential loss",
    expression=R * _C_S / _Psi_S,
    symbols=(t, eta, n, gamma, R),
    notions=("margin.gap",),
    assumptions=H2.assumptions,
    reference="docs/theory.md section 3, Theorem H-2 (delta(t) / R <= C / Psi(t)), for S "
    "and every S\\i run",
    evidence=HeadEvidence,
    needs_separable=True,
    checker=check_h2_margin,
    optimizers=("gd",),
    definitions=((C, _C_S), (Psi, _Psi_S)),
)
