"""The hard-margin SVM without bias (max margin), its leave-one-out solutions, and margins.

With the signed points ``z_i = y_i x_i`` the data are separable through the origin when the max
margin ``gamma = max_{||u||=1} min_i u . z_i = min_{p in conv{z_i}} ||p||`` is positive, and
``u_S = p* / ||p*||`` for the min-norm point ``p*`` of the hull (docs/theory.md, "Max margin").
:func:`max_margin` solves it exactly with :func:`~stabtheory.svm.wolfe.min_norm_point`
and certifies ``margin <= gamma <= margin_upper``; :func:`loo_max_margin` re-solves every
``S \\ i`` that changes; :func:`normalized_margin` is the margin of any ``w``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stabtheory.errors import InvalidArgumentError, InvalidDataError, NotSeparableError
from stabtheory.svm.wolfe import ZERO_NORM, Corral, min_norm_point
from stabtheory.validation import check_integer, check_real, validate

__all__ = [
    "ACTIVE_TOL",
    "LooMaxMargin",
    "MaxMarginResult",
    "loo_max_margin",
    "max_margin",
    "normalized_margin",
]

#: Default tolerance of the support mask, relative to ``R = max_i ||x_i||``.
ACTIVE_TOL = 1e-9


@dataclasses.dataclass(frozen=True)
class MaxMarginResult:
    """The hard-margin SVM without bias, with its optimality certificate.

    Attributes:
      direction: unit max-margin direction ``u_S``, shape (d,).
      margin: ``min_i y_i u_S . x_i``, the margin that ``direction`` achieves (a certified
        lower bound of the max margin ``gamma``).
      support: boolean mask (n,) of the active constraints (support vectors):
        ``y_i u_S . x_i <= margin + active_tol`` with ``active_tol = 1e-9 * R`` by default.
      dual: the SVM dual variables ``alpha`` (n,) of ``min 1/2 ||w||^2 s.t. y_i w . x_i >= 1``:
        ``alpha = hull_weights / margin_upper**2``, so ``sum_i alpha_i y_i x_i =
        u_S / margin_upper``; nonzero only on the final corral (a subset of ``support``).
      hull_weights: ``lambda`` (n,), convex weights (sum 1) of the min-norm point
        ``p = sum_i lambda_i y_i x_i``.
      margin_upper: ``||p||``, a certified upper bound of ``gamma``.
      duality_gap: ``margin_upper - margin`` (>= 0 up to rounding); by Lemma H-1 the
        direction error is at most ``sqrt(4 * duality_gap / margin)``.
      iterations: Wolfe major plus minor iterations used.
    """

    direction: np.ndarray
    margin: float
    support: np.ndarray
    dual: np.ndarray
    hull_weights: np.ndarray
    margin_upper: float
    duality_gap: float
    iterations: int

    @property
    def weight(self) -> np.ndarray:
        """The SVM solution ``w = u_S / gamma`` (the min-norm ``w`` with ``y_i w . x_i >= 1``)."""
        return self.direction / self.margin

    @property
    def n_support(self) -> int:
        """Number of active constraints |SV(S)|."""
        return int(np.count_nonzero(self.support))

    def __repr__(self) -> str:
        """The margin with its certificate, in one line.

        Example:
          >>> from stabtheory.data import soudry_fig1
          >>> ds = soudry_fig1()
          >>> max_margin(ds.X, ds.y)  # doctest: +ELLIPSIS
          MaxMarginResult(margin 1.41421356..., certified <= ..., 4 of 4 samples active, ...)
        """
        return (
            f"MaxMarginResult(margin {self.margin:.10g}, certified <= {self.margin_upper:.10g} "
            f"(gap {self.duality_gap:.2g}), {self.n_support} of {len(self.support)} samples "
            f"active, {self.iterations} iterations)"
        )


@dataclasses.dataclass(frozen=True)
class LooMaxMargin:
    """Max-margin solutions of every leave-one-out set ``S \\ i``.

    Attributes:
      margins: ``gamma(S \\ i)`` (n,) (the margin achieved by ``directions[i]`` on ``S \\ i``).
      directions: unit max-margin directions ``u_{S \\ i}``, shape (n, d).
      change: ``||u_S - u_{S \\ i}||`` (n,); exactly 0 where ``i`` was not re-solved.
      resolved: boolean mask (n,) of the ``i`` that were re-solved (``hull_weights[i] > 0``);
        a subset of ``full.support``. For the others ``u_{S \\ i} = u_S`` exactly.
      min_other: ``m_i = min_{j != i} y_j u_S . x_j`` (n,), used by Lemma H-2.
      duality_gaps: certified duality gaps (n,) of the leave-one-out solutions.
      full: the :class:`MaxMarginResult` of ``S``.
    """

    margins: np.ndarray
    directions: np.ndarray
    change: np.ndarray
    resolved: np.ndarray
    min_other: np.ndarray
    duality_gaps: np.ndarray
    full: MaxMarginResult


def _certify(Z: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(u = p / ||p||, margin_lower = min_i z_i . u, margin_upper = ||p||)``, ``p != 0``."""
    upper = float(np.linalg.norm(p))
    u = p / upper
    return u, float((Z @ u).min()), upper


def max_margin(
    X, y, *, tol: float = 1e-12, max_iter: int | None = None, active_tol: float | None = None
) -> MaxMarginResult:
    """Exact max-margin direction (hard-margin SVM without bias) by Wolfe's algorithm.

    Math: with ``z_i = y_i x_i``,
    ``gamma = max_{||u||=1} min_i u . z_i = min_{p in conv{z_i}} ||p||`` (origin not in the
    hull), ``u_S = p* / ||p*||``, and the SVM ``min 1/2 ||w||^2 s.t. y_i w . x_i >= 1`` has
    solution ``w = u_S / gamma``. Wolfe's algorithm is run in float64 until
    ``||p||^2 - min_j z_j . p <= tol * R * ||p||`` (``R = max_i ||x_i||``), i.e. until the
    duality gap ``||p|| - min_j z_j . p / ||p||`` is at most ``tol * R`` (Wolfe's criterion
    ``tol * R^2``, made relative to the margin scale so that tiny margins are solved as
    accurately as large ones). The result carries the certified bounds
    ``margin <= gamma <= margin_upper``.

    Args:
      X: features, shape (n, d).
      y: labels in {-1, +1} or {0, 1}, shape (n,).
      tol: stopping tolerance: the target duality gap relative to ``R``.
      max_iter: cap on Wolfe major plus minor iterations (default ``50 (n + d) + 1000``).
      active_tol: a constraint is active (in ``support``) when
        ``y_i u . x_i <= margin + active_tol``; default ``1e-9 * R``.

    Returns:
      A :class:`MaxMarginResult`.

    Raises:
      InvalidDataError: bad shapes, NaN/inf, labels (from :func:`stabtheory.validation.validate`).
      NotSeparableError: the origin is in conv{y_i x_i} (min-norm point shorter than
        ``1e-12 * R``), i.e. no ``u`` has a positive margin.
      MaxMarginConvergenceError: the iteration cap was hit.

    Example (Soudry et al. 2018, Fig. 1):
      >>> X = [[0.5, 1.5], [1.5, 0.5], [-0.5, -1.5], [-1.5, -0.5]]
      >>> res = max_margin(X, [1, 1, -1, -1])
      >>> np.round(res.direction * np.sqrt(2), 12).tolist(), round(res.margin ** 2, 12)
      ([1.0, 1.0], 2.0)
      >>> res.support.tolist(), res.duality_gap < 1e-12
      ([True, True, True, True], True)

    References:
      P. Wolfe (1976), "Finding the nearest point in a polytope", Math. Programming 11.
    """
    X, y = validate(X, y)
    check_real("tol", tol, low=0.0, low_open=False)
    check_integer("max_iter", max_iter, low=1, allow_none=True)
    check_real("active_tol", active_tol, low=0.0, low_open=False, allow_none=True)
    Z = y[:, None] * X
    R = float(np.sqrt(np.einsum("ij,ij->i", Z, Z).max()))
    p, lam, iters, _ = min_norm_point(Z, tol=tol, max_iter=max_iter)
    upper = float(np.linalg.norm(p))
    lower = float((Z @ p).min() / upper) if upper > 0.0 else 0.0
    if upper <= ZERO_NORM * R or lower <= 0.0:
        if upper <= ZERO_NORM * R:
            why = (
                "the convex hull of the signed points y_i x_i contains the origin up to float64 "
                f"tolerance (distance {upper:.3e} <= {ZERO_NORM:g} * R, R = {R:.3e}), so every "
                "direction has margin <= 0"
            )
        else:
            why = (
                f"the best direction found has margin {lower:.3e} <= 0 and no direction has a "
                f"margin above {upper:.3e} (numerically zero relative to R = {R:.3e})"
            )
        zero_rows = int(np.count_nonzero(~Z.any(axis=1)))
        if zero_rows:
            why += f"; {zero_rows} rows of X are all zero (their z_i = 0 is in the hull)"
        raise NotSeparableError(
            f"the data are not linearly separable through the origin: {why}. A hard-margin "
            "max-margin solution does not exist. If the classes are separable with an "
            "intercept, append a constant feature (stabtheory.data.add_bias); add_bias does not "
            "make non-separable data separable (conflicting duplicates, XOR-like layouts): use "
            "different or more features, or remove or relabel the conflicting points."
        )
    u, lower, upper = _certify(Z, p)
    v = Z @ u
    atol = ACTIVE_TOL * R if active_tol is None else float(active_tol)
    return MaxMarginResult(
        direction=u,
        margin=lower,
        support=v <= lower + atol,
        dual=lam / upper**2,
        hull_weights=lam,
        margin_upper=upper,
        duality_gap=upper - lower,
        iterations=iters,
    )


def loo_max_margin(
    X, y, *, result: MaxMarginResult | None = None, tol: float = 1e-12
) -> LooMaxMargin:
    """Max-margin solutions of every leave-one-out set ``S \\ i``, re-solving only the corral.

    Math: if ``lambda_i = 0`` the min-norm point ``p`` of conv(S) lies in conv(S \\ i), a
    subset, so it is also its min-norm point and ``u_{S \\ i} = u_S`` exactly (Lemma H-2's
    first case). Only the ``i`` with ``lambda_i > 0`` (at most ``d + 1`` of them) are
    re-solved, each warm-started from the corral minus ``i`` with renormalised weights.
    ``S \\ i`` is separable whenever ``S`` is (``gamma(S \\ i) >= gamma(S)``); with n = 2,
    ``S \\ i`` is one point ``z_j`` and ``u = z_j / ||z_j||``, margin ``||z_j||``.

    Args:
      X: features, shape (n, d).
      y: labels in {-1, +1} or {0, 1}, shape (n,).
      result: :func:`max_margin` of ``(X, y)`` if already computed.
      tol: Wolfe tolerance of the re-solves (and of the full solve when ``result`` is None).

    Returns:
      A :class:`LooMaxMargin`.

    Example:
      >>> loo = loo_max_margin([[1.0, 0.0], [0.0, 1.0], [-2.0, -2.0]], [1, 1, -1])
      >>> loo.resolved.tolist(), float(loo.change[2])
      ([True, True, False], 0.0)
      >>> np.round(loo.margins ** 2, 12).tolist()
      [1.0, 1.0, 0.5]

    References:
      P. Wolfe (1976), "Finding the nearest point in a polytope", Math. Programming 11.
    """
    X, y = validate(X, y)
    n, d = X.shape
    check_real("tol", tol, low=0.0, low_open=False)
    if result is not None and not isinstance(result, MaxMarginResult):
        raise InvalidArgumentError(
            f"result must be the MaxMarginResult of max_margin(X, y), got {type(result).__name__}."
        )
    full = max_margin(X, y, tol=tol) if result is None else result
    if full.direction.shape != (d,) or full.hull_weights.shape != (n,):
        raise InvalidArgumentError(
            f"result is for data of shape ({full.hull_weights.shape[0]}, "
            f"{full.direction.shape[0]}), not {X.shape}; pass max_margin(X, y) of these data."
        )
    Z = y[:, None] * X
    if result is not None:  # the certificate must be one of these data
        R = float(np.linalg.norm(X, axis=1).max())
        p_norm = float(np.linalg.norm(full.hull_weights @ Z))
        achieved = float(np.min(Z @ full.direction))
        if abs(p_norm - full.margin_upper) > 1e-9 * R or abs(achieved - full.margin) > 1e-9 * R:
            raise InvalidArgumentError(
                "result does not belong to these X, y: its hull weights give ||p|| = "
                f"{p_norm:.6g} (result: {full.margin_upper:.6g}) and its direction a margin "
                f"{achieved:.6g} (result: {full.margin:.6g}); pass max_margin(X, y)."
            )
    u = full.direction
    v = Z @ u
    order = np.argsort(v, kind="stable")
    min_other = np.full(n, v[order[0]])
    min_other[order[0]] = v[order[1]]

    margins = np.full(n, full.margin)
    gaps = np.full(n, full.duality_gap)
    directions = np.tile(u, (n, 1))
    change = np.zeros(n)
    lam = full.hull_weights
    resolved = lam > 0.0
    corral = np.flatnonzero(resolved)
    base = Corral(Z, corral.tolist())
    base_lam = base.reset(base.S, lam[base.S])  # anchor at the shortest corral point
    corral = np.asarray(base.S)
    for pos, i in enumerate(corral):
        start = None
        if corral.size > 1:  # warm start: the corral of S minus i, weights renormalised
            c = base.copy()
            c.delete(pos)
            w = np.delete(base_lam, pos)
            start = (c, w / w.sum())
        p, _, _, _ = min_norm_point(Z, tol=tol, exclude=int(i), start=start)
        ui, lo, up = _certify(np.delete(Z, i, axis=0), p)
        directions[i] = ui
        margins[i] = lo
        gaps[i] = up - lo
        change[i] = np.linalg.norm(u - ui)
    return LooMaxMargin(
        margins=margins,
        directions=directions,
        change=change,
        resolved=resolved,
        min_other=min_other,
        duality_gaps=gaps,
        full=full,
    )


def normalized_margin(w, X, y) -> np.ndarray | float:
    """Normalized margin ``min_i y_i w . x_i / ||w||`` of one weight vector or a batch.

    Math: for a nonzero ``w`` this is the margin of the unit direction ``w / ||w||``; it is at
    most the max margin ``gamma``, with equality iff ``w / ||w|| = u_S`` (the quantity
    ``gamma - normalized_margin`` is the ``delta`` of Lemma H-1 and Theorem H-1).

    Args:
      w: weights of shape (d,) or a batch of shape (..., d); every ``w`` must be nonzero.
      X: features, shape (n, d).
      y: labels in {-1, +1} or {0, 1}, shape (n,).

    Returns:
      A float for ``w`` of shape (d,), else an array of shape ``w.shape[:-1]``.

    Raises:
      InvalidDataError: bad ``X``/``y``, or ``w`` with the wrong last dimension, non-finite
        entries or zero norm.

    Example:
      >>> X = [[0.5, 1.5], [1.5, 0.5], [-0.5, -1.5], [-1.5, -0.5]]
      >>> round(normalized_margin([2.0, 2.0], X, [1, 1, -1, -1]) ** 2, 12)
      2.0
      >>> normalized_margin([[1.0, 0.0], [0.0, -1.0]], X, [1, 1, -1, -1]).tolist()
      [0.5, -1.5]
    """
    X, y = validate(X, y)
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 0 or w.shape[-1] != X.shape[1]:
        raise InvalidDataError(
            f"w must have last dimension d = {X.shape[1]} (the number of features); got shape "
            f"{w.shape}."
        )
    if not np.all(np.isfinite(w)):
        raise InvalidDataError("w has NaN or infinite entries.")
    norms = np.linalg.norm(w, axis=-1)
    if np.any(norms == 0.0):
        raise InvalidDataError(
            "w has zero norm (e.g. GD's start w(0) = 0): the normalized margin is undefined."
        )
    Z = y[:, None] * X
    out = (w @ Z.T).min(axis=-1) / norms
    return float(out) if w.ndim == 1 else out
