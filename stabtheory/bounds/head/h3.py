r"""Theorem H-3, ``head.H3`` and ``head.H3m``: the a-priori rate of normalized GD.

``head.H3m`` checks the margin gap of every run (S, then every S\i),
``delta(t) <= b(t) = (log n + eta R^2 / 2) / (eta gamma t)``, against ``margin.gap``;
``head.H3`` composes it per sample, ``e(gamma, b_S(t)) + D_i + e(gamma_i, b_i(t))``, against
``loo.direction`` (docs/theory.md section 3).
"""

from __future__ import annotations

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
from stabtheory.bounds.head.lemmas import D_i, R, R_i, direction_gap, eta, gamma, gamma_i, n, t
from stabtheory.bounds.theorem import Assumption, BoundCheck, Theorem

__all__ = ["H3", "H3M", "check_h3", "check_h3_margin", "h3_margin_rate"]


def h3_margin_rate(t_, n_, g, r, e) -> sp.Expr:
    r"""Theorem H-3 for one data set: the margin gap of normalized GD after ``t`` steps.

    .. math:: \delta(t) \le \frac{\log n + \eta R^2 / 2}{\eta\, \gamma\, t}
              \qquad (\eta R^2 \le 1,\ t \ge 1,\ w(0) = 0).
    """
    return (sp.log(n_) + e * r**2 / 2) / (e * g * t_)


_b3_S = h3_margin_rate(t, n, gamma, R, eta)
_b3_i = h3_margin_rate(t, n - 1, gamma_i, R_i, eta)


def _h3_setting(ev: HeadEvidence):
    """Assumptions of Theorem H-3, the checkpoints where it applies (t >= 1), and the
    certified lower max margins of S (scalar) and every S\\i (n,)."""
    cfg = ev.config
    lr = cfg["lr"]
    steps = ev.steps
    setting = exponential_from_zero(ev, "ngd")
    assumptions = [
        Assumption.measure(
            "exponential loss, NGD, 1 head, w(0)=0",
            "the setting of Theorem H-3: normalized GD (optimizer='ngd') on the exponential "
            f"loss from zero, one head (1 if it is met; here loss={cfg['loss']!r}, "
            f"optimizer={cfg['optimizer']!r}, heads={cfg['heads']}, init={cfg['init']!r})",
            float(setting),
            "==",
            1.0,
        ),
        step_size(ev, lr, "eta R^2"),
        separable(ev),
        finite(ev),
        Assumption.measure(
            "t >= 1",
            "at least one normalized GD step (min over the checkpoints; the theorem applies "
            "at the checkpoints where it holds)",
            float(steps.min()) if steps.size else float("nan"),
            ">=",
            1.0,
            pointwise=True,
        ),
    ]
    # certified lower max margins: the achieved margin of the solver's direction, less the
    # rounding allowance of a computed margin (the bounds decrease in gamma)
    g_S = ev.loo.full.margin - ev.allowance
    g_i = ev.loo.margins - ev.allowance
    return assumptions, steps >= 1, g_S, g_i


def check_h3(ev: HeadEvidence, notion: str = "loo.direction") -> BoundCheck:
    """Theorem H-3 (normalized GD) composed with Lemma H-2, per sample and checkpoint.

    ``e(gamma, b_S(t)) + D_i + e(gamma_i, b_i(t))`` with ``b(t) = (log n + eta R^2 / 2) /
    (eta gamma t)`` (``n - 1``, ``gamma(S\\i)``, ``R(S\\i)`` for S\\i) and Lemma H-1's
    ``e``, which is 2 (the trivial bound) when ``b > 2 gamma``. Unlike H-2 it is below 2 at
    practical t (``t > (log n + 1/2) / (2 eta gamma^2)`` for each term to leave 2)."""
    assumptions, ok, g_S, g_i = _h3_setting(ev)
    return direction_rate_check(H3, notion, ev, g_S, g_i, assumptions, ok)


def check_h3_margin(ev: HeadEvidence, notion: str = "margin.gap") -> BoundCheck:
    """Theorem H-3's margin form, ``delta(t) <= (log n + eta R^2 / 2) / (eta gamma t)``, per run.

    Column 0 is the run on S, column ``i + 1`` the run on S\\i (with ``n - 1``,
    ``gamma(S\\i)``, ``R(S\\i)``); the empirical delta is the conservative one of
    :class:`HeadEvidence`, the bound uses the certified lower max margins."""
    assumptions, ok, g_S, g_i = _h3_setting(ev)
    return margin_rate_check(H3M, notion, ev, g_S, g_i, assumptions, ok)


H3 = Theorem(
    id="head.H3",
    title="Theorem H-3: a-priori direction rate of normalized GD on the exponential loss",
    expression=direction_gap(gamma, _b3_S) + D_i + direction_gap(gamma_i, _b3_i),
    symbols=(t, eta, n, gamma, R, D_i, gamma_i, R_i),
    notions=("loo.direction",),
    assumptions=(
        "exponential loss, normalized GD (w <- w - eta grad L / L), one head, start w(0) = 0",
        "eta R^2 <= 1 (R = max_i ||x_i|| of each set)",
        "S is linearly separable through the origin",
        "t >= 1",
        "gamma and gamma_i are certified lower max margins (the bound decreases in them)",
    ),
    reference="docs/theory.md section 3, Theorem H-3 (after Ji & Telgarsky 2021, ALT, "
    "'Characterizing the implicit bias via a primal-dual analysis'; the constant is derived "
    "in docs/theory.md section 3), composed with Lemma H-2 as in Theorem H-1",
    evidence=HeadEvidence,
    needs_separable=True,
    checker=check_h3,
    optimizers=("ngd",),
)

H3M = Theorem(
    id="head.H3m",
    title="Theorem H-3, margin form: normalised-margin gap of normalized GD (exponential loss)",
    expression=_b3_S,
    symbols=(t, eta, n, gamma, R),
    notions=("margin.gap",),
    assumptions=H3.assumptions,
    reference="docs/theory.md section 3, Theorem H-3 (delta(t) <= (log n + eta R^2 / 2) / "
    "(eta gamma t); after Ji & Telgarsky 2021, ALT), for S and every S\\i run",
    evidence=HeadEvidence,
    needs_separable=True,
    checker=check_h3_margin,
    optimizers=("ngd",),
)
