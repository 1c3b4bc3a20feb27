r"""Lemmas H-1 and H-2 as sympy expressions, with the symbols the head theorems share.

Lemma H-1's ``e(gamma, delta)`` bounds the distance of a unit vector of margin
``gamma - delta`` to the max-margin direction; Lemma H-2 composes it into a bound ``D_i`` on
the leave-one-out change of the max-margin direction (docs/theory.md section 3).
"""

from __future__ import annotations

import sympy as sp

__all__ = [
    "LOO_CHANGE",
    "LOO_CHANGE_SYMBOLS",
    "direction_gap",
]

gamma = sp.Symbol("gamma", positive=True)
gamma_i = sp.Symbol("gamma_i", positive=True)
delta = sp.Symbol("delta", real=True)
delta_i = sp.Symbol("delta_i", real=True)
D_i = sp.Symbol("D_i", nonnegative=True)
epsilon = sp.Symbol("epsilon", nonnegative=True)
epsilon_i = sp.Symbol("epsilon_i", nonnegative=True)
t = sp.Symbol("t", positive=True)
eta = sp.Symbol("eta", positive=True)
n = sp.Symbol("n", positive=True)
R = sp.Symbol("R", positive=True)
R_i = sp.Symbol("R_i", positive=True)


def direction_gap(g, dlt) -> sp.Expr:
    r"""Lemma H-1: ``e(gamma, delta)`` bounds ``||v - u_S||`` for a unit v of margin gamma - delta.

    .. math:: e(\gamma,\delta) = \sqrt{\max(0,\ 4 - (2\gamma - \delta)^2/\gamma^2)}
              = \frac{\sqrt{\max(0,\ \delta (4\gamma - \delta))}}{\gamma}
              \ (\delta \le 2\gamma), \qquad 2\ (\delta > 2\gamma).

    The second form is used: it has no cancellation when ``delta`` is tiny (the first loses
    ``||v - u||^2`` below float64 rounding of 4).
    """
    return sp.Piecewise((2, dlt > 2 * g), (sp.sqrt(sp.Max(0, dlt * (4 * g - dlt))) / g, True))


#: Lemma H-2 with Lemma H-1's solver gap terms: ``e(gamma_i, delta_i) + e(gamma, epsilon) +
#: e(gamma_i, epsilon_i)``, a bound on the leave-one-out change of the max-margin direction.
LOO_CHANGE = (
    direction_gap(gamma_i, delta_i)
    + direction_gap(gamma, epsilon)
    + direction_gap(gamma_i, epsilon_i)
)
#: The arguments of :data:`LOO_CHANGE`, in order.
LOO_CHANGE_SYMBOLS = (delta_i, gamma_i, gamma, epsilon, epsilon_i)
