r"""Head-tuning bounds (docs/theory.md section 3): Lemma H-2, Theorems H-1, H-2, H-3 and C-1.

Each theorem is a :class:`~stabtheory.bounds.base.Theorem` whose sympy expression is the
single source of truth, plus a check that measures its assumptions and compares the bound with
the leave-one-out stability of GD runs, per sample ``i`` and checkpoint ``t``:

==================  ===================  ==================================================
id                  empirical            bound for sample i
==================  ===================  ==================================================
``head.svm_loo``    ``||u_S - u_S\i||``  Lemma H-2's ``D_i`` plus the solver's gap terms (0
                                         for a certified inactive ``z_i``)
``head.H1``         ``loo.direction``    ``e(gamma, delta_S(t)) + D_i + e(gamma_i, delta_i(t))``
``head.H2``         ``loo.direction``    ``h(S, t) + D_i + h(S\i, t)`` (a-priori rate)
``head.H2m``        ``margin.gap``       ``R C / Psi(t)`` per run (S, then every S\i)
``head.H3``         ``loo.direction``    ``e(gamma, b_S(t)) + D_i + e(gamma_i, b_i(t))`` (NGD)
``head.H3m``        ``margin.gap``       ``b(t) = (log n + eta R^2 / 2) / (eta gamma t)`` per run
``head.C1``         ``loo.weights``      ``2 eta t L / n`` (and ``L_i`` times it for ``loo.loss``)
==================  ===================  ==================================================

The quantities that the checks share (max margins of S and every S\i, directions and
normalised margins of every run) are computed once in :class:`HeadEvidence`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from stabtheory.bounds.base import Assumption, BoundCheck, Theorem, all_hold, tolerance
from stabtheory.data import validate
from stabtheory.margin import LooMaxMargin, loo_max_margin, max_margin
from stabtheory.stability import Simulation, per_sample_stability, simulate

__all__ = [
    "C1",
    "H1",
    "H2",
    "H2M",
    "H3",
    "H3M",
    "SVM_LOO",
    "HeadEvidence",
    "direction_gap",
    "h2_direction_rate",
    "h3_margin_rate",
    "head_evidence",
]

# ----------------------------------------------------------------------------- symbols
gamma = sp.Symbol("gamma", positive=True)
gamma_i = sp.Symbol("gamma_i", positive=True)
delta = sp.Symbol("delta", real=True)
delta_i = sp.Symbol("delta_i", real=True)
m_i = sp.Symbol("m_i", real=True)
D_i = sp.Symbol("D_i", nonnegative=True)
epsilon = sp.Symbol("epsilon", nonnegative=True)
epsilon_i = sp.Symbol("epsilon_i", nonnegative=True)
t = sp.Symbol("t", positive=True)
eta = sp.Symbol("eta", positive=True)
n = sp.Symbol("n", positive=True)
R = sp.Symbol("R", positive=True)
R_i = sp.Symbol("R_i", positive=True)
L = sp.Symbol("L", positive=True)
Psi = sp.Symbol("Psi", positive=True)
C = sp.Symbol("C", positive=True)


def direction_gap(g, dlt) -> sp.Expr:
    r"""Lemma H-1: ``e(gamma, delta)`` bounds ``||v - u_S||`` for a unit v of margin gamma - delta.

    .. math:: e(\gamma,\delta) = \sqrt{\max(0,\ 4 - (2\gamma - \delta)^2/\gamma^2)}
              = \frac{\sqrt{\max(0,\ \delta (4\gamma - \delta))}}{\gamma}
              \ (\delta \le 2\gamma), \qquad 2\ (\delta > 2\gamma).

    The second form is used: it has no cancellation when ``delta`` is tiny (the first loses
    ``||v - u||^2`` below float64 rounding of 4).
    """
    return sp.Piecewise((2, dlt > 2 * g), (sp.sqrt(sp.Max(0, dlt * (4 * g - dlt))) / g, True))


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


def h3_margin_rate(t_, n_, g, r, e) -> sp.Expr:
    r"""Theorem H-3 for one data set: the margin gap of normalized GD after ``t`` steps.

    .. math:: \delta(t) \le \frac{\log n + \eta R^2 / 2}{\eta\, \gamma\, t}
              \qquad (\eta R^2 \le 1,\ t \ge 1,\ w(0) = 0).
    """
    return (sp.log(n_) + e * r**2 / 2) / (e * g * t_)


# ----------------------------------------------------------------------------- theorems
SVM_LOO = Theorem(
    id="head.svm_loo",
    title="Lemma H-2: leave-one-out change of the max-margin direction",
    expression=direction_gap(gamma_i, delta_i)
    + direction_gap(gamma, epsilon)
    + direction_gap(gamma_i, epsilon_i),
    symbols=(delta_i, gamma_i, gamma, epsilon, epsilon_i),
    notions=("svm_direction",),
    assumptions=(
        "S is linearly separable through the origin (gamma(S) > 0)",
        "the bound is 0 when z_i is a certified inactive constraint (z_i . u_S > gamma(S) for "
        "the exact u_S, so u_S\\i = u_S)",
        "delta_i = gamma(S\\i) - min_{j != i} z_j . u_S for the solver's direction u_S, "
        "evaluated conservatively (certified upper margin gamma_i, rounding allowance d eps R "
        "on every computed margin): e(gamma_i, delta_i) bounds ||u_S - exact u_S\\i||",
        "solver gap terms (Lemma H-1): epsilon = gamma_upper(S) - margin of the solver's u_S, "
        "so e(gamma, epsilon) bounds its distance to the exact u_S; likewise epsilon_i for "
        "S\\i. The sum bounds both the exact and the computed change",
    ),
    reference="docs/theory.md section 3, Lemma H-2 (Lemma H-1 applied on S\\i to v = u_S), "
    "with Lemma H-1's bound on the solver's distance to the exact directions",
)

H1 = Theorem(
    id="head.H1",
    title="Theorem H-1: a-posteriori head direction stability at step t",
    expression=direction_gap(gamma, delta) + D_i + direction_gap(gamma_i, delta_i),
    symbols=(gamma, delta, D_i, gamma_i, delta_i),
    notions=("direction",),
    assumptions=(
        "S is linearly separable through the origin (gamma(S) > 0)",
        "the trained heads are non-zero (their direction is defined)",
    ),
    reference="docs/theory.md section 3, Theorem H-1 (after Soudry et al. 2018, JMLR 19:70)",
)

_h_S, _C_S, _Psi_S = h2_direction_rate(t, n, gamma, R, eta)
_h_i, _C_i, _Psi_i = h2_direction_rate(t, n - 1, gamma_i, R_i, eta)
H2 = Theorem(
    id="head.H2",
    title="Theorem H-2: a-priori margin and direction rate of GD on the exponential loss",
    expression=_h_S + D_i + _h_i,
    symbols=(t, eta, n, gamma, R, D_i, gamma_i, R_i),
    notions=("direction",),
    assumptions=(
        "exponential loss, plain full-batch GD, one head, start w(0) = 0",
        "eta R^2 <= 1 (R = max_i ||x_i|| of each set)",
        "Psi(t) > 0 for S and for S\\i (t large enough)",
        "S is linearly separable through the origin",
    ),
    reference="docs/theory.md section 3, Theorem H-2, composed with Lemma H-2 as in Theorem H-1",
    definitions=((C, _C_S), (Psi, _Psi_S)),
)

H2M = Theorem(
    id="head.H2m",
    title="Theorem H-2, margin form: normalised-margin gap of GD on the exponential loss",
    expression=R * _C_S / _Psi_S,
    symbols=(t, eta, n, gamma, R),
    notions=("margin",),
    assumptions=H2.assumptions,
    reference="docs/theory.md section 3, Theorem H-2 (delta(t) / R <= C / Psi(t)), for S and every "
    "S\\i run",
    definitions=((C, _C_S), (Psi, _Psi_S)),
)

_b3_S = h3_margin_rate(t, n, gamma, R, eta)
_b3_i = h3_margin_rate(t, n - 1, gamma_i, R_i, eta)
H3 = Theorem(
    id="head.H3",
    title="Theorem H-3: a-priori direction rate of normalized GD on the exponential loss",
    expression=direction_gap(gamma, _b3_S) + D_i + direction_gap(gamma_i, _b3_i),
    symbols=(t, eta, n, gamma, R, D_i, gamma_i, R_i),
    notions=("direction",),
    assumptions=(
        "exponential loss, normalized GD (w <- w - eta grad L / L), one head, start w(0) = 0",
        "eta R^2 <= 1 (R = max_i ||x_i|| of each set)",
        "S is linearly separable through the origin",
        "t >= 1",
        "gamma and gamma_i are certified lower max margins (the bound decreases in them)",
    ),
    reference="docs/theory.md section 3, Theorem H-3 (after Ji & Telgarsky 2021, ALT, "
    "'Characterizing the implicit bias via a primal-dual analysis'; the constant is derived in "
    "docs/theory.md section 3), composed with Lemma H-2 as in Theorem H-1",
)

H3M = Theorem(
    id="head.H3m",
    title="Theorem H-3, margin form: normalised-margin gap of normalized GD (exponential loss)",
    expression=_b3_S,
    symbols=(t, eta, n, gamma, R),
    notions=("margin",),
    assumptions=H3.assumptions,
    reference="docs/theory.md section 3, Theorem H-3 (delta(t) <= (log n + eta R^2 / 2) / "
    "(eta gamma t); after Ji & Telgarsky 2021, ALT), for S and every S\\i run",
)

C1 = Theorem(
    id="head.C1",
    title="Theorem C-1: raw head weights under GD on a convex, Lipschitz, smooth loss",
    expression=2 * eta * t * L / n,
    symbols=(eta, t, L, n),
    notions=("weights", "loss"),
    assumptions=(
        "plain full-batch GD, one head, common start for S and S\\i",
        "every loss l(.; z) convex, L-Lipschitz and b-smooth on the region the runs visit",
        "eta <= 2 / b",
        "logistic: L = R, b = R^2/4 (global). exponential: L = R max|l'| and b = R^2 max|l'|, "
        "max over every step before t of both runs (valid on the segments between them, "
        "since exp(-m) is monotone in the margin m, which is linear in w)",
    ),
    reference="docs/theory.md section 3, Theorem C-1 (after Hardt, Recht & Singer 2016, Thm 3.7)",
)


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


# ----------------------------------------------------------------------------- evidence
_per_sample_stability = jax.jit(per_sample_stability, static_argnames=("notion", "loss"))
# Lemma H-1's e(gamma, delta) as a JAX function, generated from the same sympy expression.
_direction_gap = jax.jit(sp.lambdify((gamma, delta), direction_gap(gamma, delta), modules="jax"))


@dataclasses.dataclass(frozen=True)
class HeadEvidence:
    """Everything the head checks share for one configuration.

    Attributes:
      X, y, Z: data of S (float64), ``Z = y x``.
      sim: the leave-one-out :class:`~stabtheory.stability.Simulation`.
      loo: :class:`~stabtheory.margin.LooMaxMargin` (max margins of S and every S\\i).
      radius, radius_loo: R of S and of every S\\i, (n,).
      w: predictor weights, (runs, C, d); ``directions`` their unit vectors.
      delta_S: (C,) gamma(S) - normalised margin of the S run on S.
      delta_loo: (C, n) gamma(S\\i) - normalised margin of the S\\i run on S\\i.
      allowance: rounding allowance ``d eps R`` of one computed margin.
      config: the configuration.

    The deltas are conservative (never smaller than the exact ones): they use the certified
    upper max margins and subtract ``allowance`` from every computed margin, since the
    bounds grow with delta and with gamma at a fixed achieved margin.
    """

    X: np.ndarray
    y: np.ndarray
    Z: np.ndarray
    sim: Simulation
    loo: LooMaxMargin
    radius: float
    radius_loo: np.ndarray
    w: np.ndarray
    directions: np.ndarray
    delta_S: np.ndarray
    delta_loo: np.ndarray
    allowance: float
    config: dict
    _empirical: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def steps(self) -> np.ndarray:
        return self.sim.steps

    @property
    def gamma_upper(self) -> float:
        """Certified upper bound of gamma(S)."""
        return float(self.loo.full.margin_upper)

    @property
    def gamma_loo_upper(self) -> np.ndarray:
        """Certified upper bounds of gamma(S\\i), (n,)."""
        return self.loo.margins + self.loo.duality_gaps

    @property
    def solver_gap(self) -> float:
        """Lemma H-1's bound on ``||u_S - u_hat_S||``: the solver's direction ``u_hat_S`` has
        margin ``>= margin - allowance`` and gamma(S) ``<= gamma_upper``, so
        ``e(gamma_upper, gamma_upper - margin + allowance)`` (about ``sqrt(4 gap / gamma)``;
        ~1e-7 for a converged solve)."""
        eps = self.gamma_upper - (self.loo.full.margin - self.allowance)
        return float(_direction_gap(self.gamma_upper, eps))

    @property
    def solver_gap_loo(self) -> np.ndarray:
        """(n,) Lemma H-1's bound on ``||u_S\\i - u_hat_S\\i||`` (solver's direction of S\\i;
        for an i that was not re-solved it is ``u_hat_S`` and the bound is :attr:`solver_gap`)."""
        eps = self.gamma_loo_upper - (self.loo.margins - self.allowance)
        return np.asarray(_direction_gap(self.gamma_loo_upper, eps))

    @property
    def certified_inactive(self) -> np.ndarray:
        """(n,) the ``z_i`` that are inactive for the exact ``u_S``, so ``u_S\\i = u_S``:
        ``z_i . u_hat_S - ||z_i|| solver_gap - allowance > gamma_upper`` (not re-solved)."""
        v = self.Z @ self.loo.full.direction
        slack = np.linalg.norm(self.Z, axis=1) * self.solver_gap + self.allowance
        return (v - slack > self.gamma_upper) & ~self.loo.resolved

    @property
    def D(self) -> np.ndarray:
        """Lemma H-2's D_i with the solver gap terms, (n,): a bound on ``||u_S - u_S\\i||`` for
        the exact directions and on the computed change ``||u_hat_S - u_hat_S\\i||``; 0 for
        the certified inactive constraints."""
        gamma_i = self.gamma_loo_upper
        delta_i = gamma_i - (self.loo.min_other - self.allowance)
        eps = self.gamma_upper - (self.loo.full.margin - self.allowance)
        eps_i = gamma_i - (self.loo.margins - self.allowance)
        value = np.asarray(SVM_LOO.evaluate(delta_i, gamma_i, self.gamma_upper, eps, eps_i))
        return np.where(self.certified_inactive, 0.0, value)

    def empirical(self, notion: str) -> np.ndarray:
        """(C, n) leave-one-out stability of the runs (computed once per notion)."""
        if notion not in self._empirical:
            w = self.sim.trajectory.w
            self._empirical[notion] = np.asarray(
                _per_sample_stability(w[0], w[1:], self.sim.Z, notion, loss=self.sim.loss)
            ).T
        return self._empirical[notion]


def head_evidence(
    X,
    y,
    *,
    loss: str = "exponential",
    lr: float = 1.0,
    steps=1000,
    init=None,
    optimizer: str = "gd",
    heads_per_run: int = 1,
    dtype=jnp.float64,
    loo: LooMaxMargin | None = None,
    sim: Simulation | None = None,
) -> HeadEvidence:
    """Train S and every S\\i, solve every max margin, and measure the shared quantities.

    ``loo`` (the leave-one-out max margins) and ``sim`` (the leave-one-out runs, e.g. from a
    batched sweep) are used as given when passed; they must belong to ``X, y`` and to the
    other arguments.

    Raises:
      NotSeparableError: S is not separable through the origin.
    """
    X, y = validate(X, y)
    if loo is None:
        loo = loo_max_margin(X, y, result=max_margin(X, y))
    if sim is None:
        sim = simulate(
            X,
            y,
            loss=loss,
            lr=lr,
            steps=steps,
            init=init,
            heads_per_run=heads_per_run,
            optimizer=optimizer,
            dtype=dtype,
        )
    Z = y[:, None] * X
    norms = np.linalg.norm(X, axis=1)
    nn = X.shape[0]
    # R of S\i: the max norm over the other samples.
    order = np.argsort(norms)
    radius_loo = np.full(nn, norms[order[-1]])
    radius_loo[order[-1]] = norms[order[-2]]
    w = np.asarray(sim.trajectory.w, dtype=np.float64).mean(axis=-2)  # (runs, C, d)
    with np.errstate(invalid="ignore", divide="ignore"):
        directions = w / np.linalg.norm(w, axis=-1, keepdims=True)
    margins = directions @ Z.T  # (runs, C, n)
    allowance = X.shape[1] * np.finfo(np.float64).eps * float(norms.max())
    delta_S = loo.full.margin_upper - (margins[0].min(axis=-1) - allowance)
    own = margins[1:].copy()  # (n, C, n): run i's margins on every sample
    idx = np.arange(nn)
    own[idx, :, idx] = np.inf  # S\i excludes z_i
    gamma_loo_upper = loo.margins + loo.duality_gaps
    delta_loo = (gamma_loo_upper[:, None] - (own.min(axis=-1) - allowance)).T  # (C, n)
    config = {
        "loss": loss,
        "lr": float(lr),
        "optimizer": optimizer,
        "heads": heads_per_run,
        "n": nn,
        "d": X.shape[1],
        "R": float(norms.max()),
        "gamma": float(loo.full.margin),
        "init": "zero" if init is None else "given",
        "dtype": np.dtype(dtype).name,
    }
    return HeadEvidence(
        X,
        y,
        Z,
        sim,
        loo,
        float(norms.max()),
        radius_loo,
        w,
        directions,
        delta_S,
        delta_loo,
        allowance,
        config,
    )


# ----------------------------------------------------------------------------- checks
def _separable(ev: HeadEvidence) -> Assumption:
    return Assumption.measure(
        "gamma(S) > 0",
        "S is separable through the origin (certified by the max-margin solver)",
        ev.loo.full.margin,
        ">",
        0.0,
    )


def _finite(ev: HeadEvidence) -> Assumption:
    return Assumption.measure(
        "finite weights",
        "every run stayed finite (1 if so; a diverged run, e.g. the exponential loss from a "
        "start with huge negative margins, is not covered)",
        float(np.all(np.isfinite(ev.w))),
        "==",
        1.0,
    )


def _margin_certificate(ev: HeadEvidence) -> Assumption:
    deltas = np.concatenate([ev.delta_S.ravel(), ev.delta_loo.ravel()])
    finite = deltas[np.isfinite(deltas)]
    worst = float(finite.min()) if finite.size else float("nan")
    return Assumption.measure(
        "delta(t) >= 0",
        "no GD direction has a larger margin than the certified upper max margin (min "
        "conservative delta over runs and checkpoints; negative would mean a wrong solver)",
        worst,
        ">=",
        0.0,
    )


def _step_size(ev: HeadEvidence, lr: float, name: str) -> Assumption:
    """``eta R^2 <= 1`` (Theorems H-2 and H-3), worst over S and every S\\i."""
    worst = lr * max(ev.radius, float(ev.radius_loo.max())) ** 2
    return Assumption.measure(
        "eta R^2 <= 1",
        f"step size condition {name} <= 1 (worst over S and every S\\i)",
        worst,
        "<=",
        1.0,
    )


def _nonzero(ev: HeadEvidence) -> Assumption:
    norms = np.linalg.norm(ev.w, axis=-1)
    return Assumption.measure(
        "||w(t)|| > 0",
        "every trained head is non-zero, so its direction is defined",
        norms.min(),
        ">",
        0.0,
        pointwise=True,
    )


def _trivial(notion: str):
    """The trivial bound of a unit-vector distance (2); ``None`` for the other notions."""
    return 2.0 if "direction" in notion else None


def _result(
    theorem, notion, ev, bound, empirical, assumptions, applicable_at, trivial=None
) -> BoundCheck:
    applicable_at = np.asarray(applicable_at, bool) & all_hold(assumptions)
    bound = np.where(applicable_at[:, None], bound, np.nan)
    return BoundCheck(
        theorem=theorem.id,
        notion=notion,
        steps=ev.steps,
        bound=bound,
        empirical=empirical,
        applicable_at=applicable_at,
        assumptions=tuple(assumptions),
        tol=tolerance(np.dtype(ev.config["dtype"])),
        config=dict(ev.config),
        trivial=_trivial(notion) if trivial is None else trivial,
    )


def check_svm_loo(ev: HeadEvidence) -> BoundCheck:
    """Lemma H-2 against the change of the max-margin direction (one 'checkpoint').

    The empirical value is the solver's change ``||u_hat_S - u_hat_S\\i||``; ``D_i`` (with the
    solver gap terms, :attr:`HeadEvidence.D`) bounds it and the exact change alike."""
    assumptions = [_separable(ev)]
    empirical = ev.loo.change[None, :]
    res = _result(SVM_LOO, "svm.direction", ev, ev.D[None, :], empirical, assumptions, [True])
    return dataclasses.replace(res, steps=np.array([-1]))


def check_h1(ev: HeadEvidence) -> BoundCheck:
    """Theorem H-1 per sample and checkpoint."""
    nonzero = np.linalg.norm(ev.w, axis=-1).min(axis=0) > 0  # (C,)
    assumptions = [_separable(ev), _finite(ev), _margin_certificate(ev), _nonzero(ev)]
    bound = np.asarray(
        H1.evaluate(
            ev.gamma_upper,
            ev.delta_S[:, None],
            ev.D[None, :],
            ev.gamma_loo_upper[None, :],
            ev.delta_loo,
        )
    )
    return _result(H1, "loo.direction", ev, bound, ev.empirical("direction"), assumptions, nonzero)


def _h2_setting(ev: HeadEvidence):
    """Assumptions of Theorem H-2 and Psi(t) for S (C,) and every S\\i (C, n)."""
    cfg = ev.config
    lr = cfg["lr"]
    steps = ev.steps.astype(np.float64)
    setting = (
        cfg["loss"] == "exponential"
        and cfg["optimizer"] == "gd"
        and cfg["heads"] == 1
        and cfg["init"] == "zero"
    )
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
        _step_size(ev, lr, "eta_1 = eta R^2"),
        _separable(ev),
        _finite(ev),
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
    return assumptions, psi_S, psi_i


def check_h2(ev: HeadEvidence) -> BoundCheck:
    """Theorem H-2 (composed with Lemma H-2) per sample and checkpoint.

    The composed bound is at least ``D_i`` plus two rates that rarely fall below 1, so it is
    often vacuous (>= 2, the largest possible direction change). ``head.H2m`` checks the
    theorem's margin statement itself; at the study's t (<= 1e4) it is mostly vacuous too
    (above gamma + R), since GD's margin rate is only logarithmic in t (docs/theory.md
    section 3); ``head.H3`` is the rate that is informative at such t, for normalized GD."""
    assumptions, psi_S, psi_i = _h2_setting(ev)
    psi_ok = (psi_S > 0) & (psi_i > 0).all(axis=1)
    steps = ev.steps.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = np.asarray(
            H2.evaluate(
                steps[:, None],
                ev.config["lr"],
                float(ev.n),
                ev.loo.full.margin,
                ev.radius,
                ev.D[None, :],
                ev.loo.margins[None, :],
                ev.radius_loo[None, :],
            )
        )
    return _result(H2, "loo.direction", ev, bound, ev.empirical("direction"), assumptions, psi_ok)


def check_h2_margin(ev: HeadEvidence) -> BoundCheck:
    """Theorem H-2's margin form, ``delta(t) <= R C / Psi(t)``, for every run.

    Column 0 is the run on S, column ``i + 1`` the run on S\\i (with ``n - 1``,
    ``gamma(S\\i)``, ``R(S\\i)``); the empirical delta is the conservative one of
    :class:`HeadEvidence`."""
    assumptions, psi_S, psi_i = _h2_setting(ev)
    psi_ok = (psi_S > 0) & (psi_i > 0).all(axis=1)
    steps = ev.steps.astype(np.float64)[:, None]
    lr = ev.config["lr"]
    with np.errstate(invalid="ignore", divide="ignore"):
        b_S = np.asarray(H2M.evaluate(steps, lr, float(ev.n), ev.loo.full.margin, ev.radius))
        b_i = np.asarray(
            H2M.evaluate(steps, lr, float(ev.n - 1), ev.loo.margins[None], ev.radius_loo[None])
        )
    bound = np.concatenate([b_S, b_i], axis=1)
    empirical = np.concatenate([ev.delta_S[:, None], ev.delta_loo], axis=1)
    # a margin gap gamma - min_i y_i v.x_i is at most gamma + R whatever v is
    trivial = np.concatenate([[ev.loo.full.margin + ev.radius], ev.loo.margins + ev.radius_loo])
    return _result(H2M, "margin.gap", ev, bound, empirical, assumptions, psi_ok, trivial)


def _h3_setting(ev: HeadEvidence):
    """Assumptions of Theorem H-3, the checkpoints where it applies (t >= 1), and the
    certified lower max margins of S (scalar) and every S\\i (n,)."""
    cfg = ev.config
    lr = cfg["lr"]
    steps = ev.steps
    setting = (
        cfg["loss"] == "exponential"
        and cfg["optimizer"] == "ngd"
        and cfg["heads"] == 1
        and cfg["init"] == "zero"
    )
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
        _step_size(ev, lr, "eta R^2"),
        _separable(ev),
        _finite(ev),
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


def check_h3(ev: HeadEvidence) -> BoundCheck:
    """Theorem H-3 (normalized GD) composed with Lemma H-2, per sample and checkpoint.

    ``e(gamma, b_S(t)) + D_i + e(gamma_i, b_i(t))`` with ``b(t) = (log n + eta R^2 / 2) /
    (eta gamma t)`` (``n - 1``, ``gamma(S\\i)``, ``R(S\\i)`` for S\\i) and Lemma H-1's
    ``e``, which is 2 (the trivial bound) when ``b > 2 gamma``. Unlike H-2 it is below 2 at
    practical t (``t > (log n + 1/2) / (2 eta gamma^2)`` for each term to leave 2)."""
    assumptions, ok, g_S, g_i = _h3_setting(ev)
    steps = ev.steps.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = np.asarray(
            H3.evaluate(
                steps[:, None],
                ev.config["lr"],
                float(ev.n),
                g_S,
                ev.radius,
                ev.D[None, :],
                g_i[None, :],
                ev.radius_loo[None, :],
            )
        )
    return _result(H3, "loo.direction", ev, bound, ev.empirical("direction"), assumptions, ok)


def check_h3_margin(ev: HeadEvidence) -> BoundCheck:
    """Theorem H-3's margin form, ``delta(t) <= (log n + eta R^2 / 2) / (eta gamma t)``, per run.

    Column 0 is the run on S, column ``i + 1`` the run on S\\i (with ``n - 1``,
    ``gamma(S\\i)``, ``R(S\\i)``); the empirical delta is the conservative one of
    :class:`HeadEvidence`, the bound uses the certified lower max margins."""
    assumptions, ok, g_S, g_i = _h3_setting(ev)
    steps = ev.steps.astype(np.float64)[:, None]
    lr = ev.config["lr"]
    with np.errstate(invalid="ignore", divide="ignore"):
        b_S = np.asarray(H3M.evaluate(steps, lr, float(ev.n), g_S, ev.radius))
        b_i = np.asarray(H3M.evaluate(steps, lr, float(ev.n - 1), g_i[None], ev.radius_loo[None]))
    bound = np.concatenate([b_S, b_i], axis=1)
    empirical = np.concatenate([ev.delta_S[:, None], ev.delta_loo], axis=1)
    # a margin gap gamma - min_i y_i v.x_i is at most gamma + R whatever v is
    trivial = np.concatenate([[ev.loo.full.margin + ev.radius], ev.loo.margins + ev.radius_loo])
    return _result(H3M, "margin.gap", ev, bound, empirical, assumptions, ok, trivial)


def check_c1(ev: HeadEvidence, notion: str = "weights") -> BoundCheck:
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
    if notion not in ("weights", "loss"):
        raise ValueError(f"head.C1 bounds the weights and loss notions, not {notion!r}.")
    assumptions = [
        Assumption.measure(
            "GD, 1 head", "plain full-batch GD on one head (1 if met)", float(setting), "==", 1.0
        ),
        _finite(ev),
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
    if notion == "loss":
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
    empirical = ev.empirical(notion)
    return _result(C1, f"loo.{notion}", ev, bound, empirical, assumptions, step_ok)


CHECKS = {
    "head.svm_loo": check_svm_loo,
    "head.H1": check_h1,
    "head.H2": check_h2,
    "head.H2m": check_h2_margin,
    "head.H3": check_h3,
    "head.H3m": check_h3_margin,
    "head.C1": check_c1,
}
