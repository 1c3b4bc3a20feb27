r"""Head-tuning evidence: the runs on S and every S\\i, their max margins and shared checks.

:func:`head_evidence` trains S and every S\\i (one vmapped batch), solves every max margin
and measures what the head theorems share (:class:`HeadEvidence`); the assumption checks that
several theorems make are here too.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from stabtheory.bounds.head.lemmas import (
    LOO_CHANGE,
    LOO_CHANGE_SYMBOLS,
    delta,
    direction_gap,
    gamma,
)
from stabtheory.bounds.theorem import Assumption, BoundCheck, all_hold, tolerance
from stabtheory.data import validate
from stabtheory.errors import DivergenceWarning, NotSeparableError
from stabtheory.linear_heads import (
    HeadRuns,
    per_sample_stability,
    train_head_runs,
    trivial_stability,
)
from stabtheory.svm import LooMaxMargin, loo_max_margin, max_margin

__all__ = [
    "HeadEvidence",
    "direction_rate_check",
    "exponential_from_zero",
    "finite",
    "head_evidence",
    "head_result",
    "margin_certificate",
    "margin_rate_check",
    "nonzero",
    "separable",
    "step_size",
    "trivial_bound",
]

_per_sample_stability = jax.jit(per_sample_stability, static_argnames=("notion", "loss"))
_trivial_stability = jax.jit(trivial_stability, static_argnames=("notion", "loss"))
# Lemma H-1's e(gamma, delta) and Lemma H-2's D_i as JAX functions, generated from the sympy
# expressions (the D_i one is the function head.svm_loo's Theorem.evaluate compiles)
_direction_gap = jax.jit(sp.lambdify((gamma, delta), direction_gap(gamma, delta), modules="jax"))
_loo_change = jax.jit(sp.lambdify(LOO_CHANGE_SYMBOLS, LOO_CHANGE, modules="jax"))


@dataclasses.dataclass(frozen=True)
class HeadEvidence:
    """Everything the head checks share for one configuration.

    Attributes:
      X, y, Z: data of S (float64), ``Z = y x``.
      sim: the leave-one-out :class:`~stabtheory.linear_heads.HeadRuns`.
      loo: :class:`~stabtheory.svm.LooMaxMargin` (max margins of S and every S\\i), or
        ``None`` for non-separable data (``require_separable=False``).
      radius, radius_loo: R of S and of every S\\i, (n,).
      w: predictor weights, (runs, C, d); ``directions`` their unit vectors.
      delta_S: (C,) gamma(S) - normalised margin of the S run on S.
      delta_loo: (C, n) gamma(S\\i) - normalised margin of the S\\i run on S\\i.
      allowance: rounding allowance ``d eps R`` of one computed margin.
      config: the configuration.
      w_start: (K, d) the common start of every run (zero unless ``init`` was given).

    The deltas are conservative (never smaller than the exact ones): they use the certified
    upper max margins and subtract ``allowance`` from every computed margin, since the
    bounds grow with delta and with gamma at a fixed achieved margin.
    """

    X: np.ndarray
    y: np.ndarray
    Z: np.ndarray
    sim: HeadRuns
    loo: LooMaxMargin | None
    radius: float
    radius_loo: np.ndarray
    w: np.ndarray
    directions: np.ndarray
    delta_S: np.ndarray
    delta_loo: np.ndarray
    allowance: float
    config: dict
    w_start: np.ndarray
    _empirical: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
    _trivial: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def separable(self) -> bool:
        """Whether S is certified separable through the origin (its max margins solved)."""
        return self.loo is not None

    @property
    def steps(self) -> np.ndarray:
        return self.sim.steps

    @property
    def optimizer(self) -> str:
        """The training algorithm of the runs (``"gd"`` or ``"ngd"``)."""
        return self.config["optimizer"]

    def measures(self, notion: str) -> bool:
        """Whether it holds the empirical values of ``notion`` (every head notion: yes)."""
        del notion
        return True

    @classmethod
    def for_check(
        cls,
        X,
        y,
        *,
        optimizer: str | None,
        loss: str,
        lr: float | None,
        steps,
        init,
        heads_per_run: int,
        dtype,
        require_separable: bool = True,
        **_,
    ) -> HeadEvidence:
        """:func:`head_evidence` with :func:`~stabtheory.bounds.check_bound`'s arguments (a
        step ``lr`` of 1.0 and plain GD when not given; the fine-tuning ones are ignored)."""
        return head_evidence(
            X,
            y,
            loss=loss,
            lr=1.0 if lr is None else lr,
            steps=steps,
            init=init,
            optimizer="gd" if optimizer is None else optimizer,
            heads_per_run=heads_per_run,
            dtype=dtype,
            require_separable=require_separable,
        )

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
        args = (delta_i, gamma_i, self.gamma_upper, eps, eps_i)
        value = np.asarray(_loo_change(*(jnp.asarray(a, dtype=jnp.float64) for a in args)))
        return np.where(self.certified_inactive, 0.0, value)

    def empirical(self, notion: str) -> np.ndarray:
        """(C, n) leave-one-out stability of the runs (computed once per notion)."""
        if notion not in self._empirical:
            w = self.sim.trajectory.w
            self._empirical[notion] = np.asarray(
                _per_sample_stability(w[0], w[1:], self.sim.Z, notion, loss=self.sim.loss)
            ).T
        return self._empirical[notion]

    def trivial(self, notion: str) -> np.ndarray:
        """(C, n) trivial bound of every value of :meth:`empirical` (``notion`` with or
        without its ``loo.`` prefix; docs/theory.md section 6)."""
        notion = notion.removeprefix("loo.")
        if notion not in self._trivial:
            w = self.sim.trajectory.w
            start = jnp.asarray(self.w_start, w.dtype)
            self._trivial[notion] = np.asarray(
                _trivial_stability(w[0], w[1:], start, self.sim.Z, notion, loss=self.sim.loss)
            ).T
        return self._trivial[notion]


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
    sim: HeadRuns | None = None,
    require_separable: bool = True,
) -> HeadEvidence:
    """Train S and every S\\i, solve every max margin, and measure the shared quantities.

    ``loo`` (the leave-one-out max margins) and ``sim`` (the leave-one-out runs, e.g. from a
    batched sweep) are used as given when passed; they must belong to ``X, y`` and to the
    other arguments. With ``require_separable=False``, data that are not separable through
    the origin give evidence without max margins (``loo`` None, ``separable`` False, the
    margin gaps NaN): the theorems that need separability do not apply to it, the others
    (C-1) do.

    Raises:
      NotSeparableError: S is not separable through the origin (and ``require_separable``).
    """
    X, y = validate(X, y)
    if loo is None:
        try:
            loo = loo_max_margin(X, y, result=max_margin(X, y))
        except NotSeparableError:
            if require_separable:
                raise
    if sim is None:
        sim = train_head_runs(
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
    if not np.all(np.isfinite(w)):
        warnings.warn(
            f"training diverged (non-finite weights) with lr={lr:g}: the theorems do not apply "
            f"to these runs; try lr <= 1/R^2 = {1 / float(norms.max()) ** 2:.4g}.",
            DivergenceWarning,
            stacklevel=2,
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        directions = w / np.linalg.norm(w, axis=-1, keepdims=True)
    margins = directions @ Z.T  # (runs, C, n)
    allowance = X.shape[1] * np.finfo(np.float64).eps * float(norms.max())
    own = margins[1:].copy()  # (n, C, n): run i's margins on every sample
    idx = np.arange(nn)
    own[idx, :, idx] = np.inf  # S\i excludes z_i
    if loo is None:  # not separable: no max margin to measure a gap against
        delta_S = np.full(margins.shape[1], np.nan)
        delta_loo = np.full(margins.shape[1:], np.nan)
    else:
        delta_S = loo.full.margin_upper - (margins[0].min(axis=-1) - allowance)
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
        "gamma": float(loo.full.margin) if loo is not None else float("nan"),
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
        _start(init, X.shape[1], sim),
    )


def _start(init, d: int, sim: HeadRuns) -> np.ndarray:
    """The runs' common start (K, d): zero, or ``init`` broadcast to the heads."""
    K = sim.trajectory.w.shape[-2]
    if init is None:
        return np.zeros((K, d))
    return np.broadcast_to(np.asarray(init, np.float64).reshape(-1, d), (K, d)).copy()


# ----------------------------------------------------------------------------- shared checks
def separable(ev: HeadEvidence) -> Assumption:
    """``gamma(S) > 0``, certified by the max-margin solver (0 when the solver found the
    origin in the convex hull of the ``y_i x_i``: no positive margin exists)."""
    return Assumption.measure(
        "gamma(S) > 0",
        "S is separable through the origin (certified by the max-margin solver)",
        ev.loo.full.margin if ev.loo is not None else 0.0,
        ">",
        0.0,
    )


def finite(ev: HeadEvidence) -> Assumption:
    """Every run stayed finite."""
    return Assumption.measure(
        "finite weights",
        "every run stayed finite (1 if so; a diverged run, e.g. the exponential loss from a "
        "start with huge negative margins, is not covered)",
        float(np.all(np.isfinite(ev.w))),
        "==",
        1.0,
    )


def margin_certificate(ev: HeadEvidence) -> Assumption:
    """No run's margin exceeds the certified upper max margin (``delta(t) >= 0``)."""
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


def step_size(ev: HeadEvidence, lr: float, name: str) -> Assumption:
    """``eta R^2 <= 1`` (Theorems H-2 and H-3), worst over S and every S\\i."""
    worst = lr * max(ev.radius, float(ev.radius_loo.max())) ** 2
    return Assumption.measure(
        "eta R^2 <= 1",
        f"step size condition {name} <= 1 (worst over S and every S\\i)",
        worst,
        "<=",
        1.0,
    )


def nonzero(ev: HeadEvidence) -> Assumption:
    """Every trained head is non-zero (pointwise in t)."""
    norms = np.linalg.norm(ev.w, axis=-1)
    return Assumption.measure(
        "||w(t)|| > 0",
        "every trained head is non-zero, so its direction is defined",
        norms.min(),
        ">",
        0.0,
        pointwise=True,
    )


def trivial_bound(notion: str, ev: HeadEvidence | None = None):
    """The trivial bound of ``notion``: 2 for a unit-vector distance; for ``loo.weights`` and
    ``loo.loss`` the per-sample :meth:`HeadEvidence.trivial` of ``ev``; ``None`` otherwise."""
    if "direction" in notion:
        return 2.0
    if ev is not None and notion in ("loo.weights", "loo.loss"):
        return ev.trivial(notion)
    return None


def head_result(
    theorem, notion, ev, bound, empirical, assumptions, applicable_at, trivial=None
) -> BoundCheck:
    """The :class:`BoundCheck` of ``theorem``: NaN bounds where it does not apply (a
    checkpoint outside ``applicable_at`` or a failing assumption that is not pointwise)."""
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
        trivial=trivial_bound(notion, ev) if trivial is None else trivial,
    )


def exponential_from_zero(ev: HeadEvidence, optimizer: str) -> bool:
    """Whether the runs are the a-priori rates' setting: exponential loss, ``optimizer``, one
    head, start ``w(0) = 0`` (Theorems H-2 and H-3)."""
    cfg = ev.config
    return (
        cfg["loss"] == "exponential"
        and cfg["optimizer"] == optimizer
        and cfg["heads"] == 1
        and cfg["init"] == "zero"
    )


def direction_rate_check(
    theorem, notion, ev: HeadEvidence, gamma_S, gamma_loo, assumptions, applicable_at
) -> BoundCheck:
    """The check of an a-priori direction rate (``head.H2``, ``head.H3``) per sample and
    checkpoint: ``theorem`` at ``(t, eta, n, gamma, R, D_i, gamma_i, R_i)`` with the max
    margins ``gamma_S`` of S and ``gamma_loo`` (n,) of every S\\i, against
    ``loo.direction``."""
    steps = ev.steps.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = np.asarray(
            theorem.evaluate(
                steps[:, None],
                ev.config["lr"],
                float(ev.n),
                gamma_S,
                ev.radius,
                ev.D[None, :],
                gamma_loo[None, :],
                ev.radius_loo[None, :],
            )
        )
    empirical = ev.empirical("direction")
    return head_result(theorem, notion, ev, bound, empirical, assumptions, applicable_at)


def margin_rate_check(
    theorem, notion, ev: HeadEvidence, gamma_S, gamma_loo, assumptions, applicable_at
) -> BoundCheck:
    """The check of an a-priori margin rate (``head.H2m``, ``head.H3m``) for every run:
    ``theorem`` at ``(t, eta, n, gamma, R)``; column 0 is the run on S, column ``i + 1`` the
    run on S\\i (with ``n - 1``, ``gamma_loo[i]``, ``R(S\\i)``), against the conservative
    deltas of :class:`HeadEvidence`."""
    steps = ev.steps.astype(np.float64)[:, None]
    lr = ev.config["lr"]
    with np.errstate(invalid="ignore", divide="ignore"):
        b_S = np.asarray(theorem.evaluate(steps, lr, float(ev.n), gamma_S, ev.radius))
        b_i = np.asarray(
            theorem.evaluate(steps, lr, float(ev.n - 1), gamma_loo[None], ev.radius_loo[None])
        )
    bound = np.concatenate([b_S, b_i], axis=1)
    empirical = np.concatenate([ev.delta_S[:, None], ev.delta_loo], axis=1)
    # a margin gap gamma - min_i y_i v.x_i is at most gamma + R whatever v is
    trivial = np.concatenate([[ev.loo.full.margin + ev.radius], ev.loo.margins + ev.radius_loo])
    return head_result(theorem, notion, ev, bound, empirical, assumptions, applicable_at, trivial)
