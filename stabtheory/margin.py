"""Exact hard-margin SVM without bias (max margin), its leave-one-out solutions, and margins.

Head tuning (docs/theory.md section 3) works on the signed points ``z_i = y_i x_i``. The data are
separable through the origin when the max margin

    gamma = max_{||u|| = 1} min_i u . z_i

is positive. By convex duality (a minimax theorem on the unit ball and the simplex),

    gamma = min_{p in conv{z_i}} ||p||    when the origin is not in conv{z_i},

and the max-margin direction is ``u_S = p* / ||p*||`` for the min-norm point ``p*`` of the
hull. This module finds ``p*`` exactly (up to float64 rounding) with Wolfe's min-norm-point
algorithm, an active-set method that keeps a "corral" of affinely independent points whose
affine hull's closest point to the origin lies in their convex hull. It terminates finitely
(in exact arithmetic), so the result is exact rather than the limit of a descent method.

Every solution comes with a certificate: ``p`` lies in the hull, so ``gamma <= ||p||``
(``margin_upper``), and the unit direction ``u = p / ||p||`` achieves ``min_i u . z_i``
(``margin``), so ``gamma >= margin``; ``duality_gap = margin_upper - margin`` bounds the error
of the reported margin. By Lemma H-1 the direction error is at most
``sqrt(4 * duality_gap / margin)``.

References:
  P. Wolfe (1976), "Finding the nearest point in a polytope", Mathematical Programming 11,
  128-149.
  D. Soudry, E. Hoffer, M. S. Nacson, S. Gunasekar, N. Srebro (2018), "The implicit bias of
  gradient descent on separable data", JMLR 19(70).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.linalg import solve_triangular

from stabtheory.data import validate
from stabtheory.errors import InvalidDataError, MaxMarginConvergenceError, NotSeparableError

__all__ = [
    "LooMaxMargin",
    "MaxMarginConvergenceError",
    "MaxMarginResult",
    "loo_max_margin",
    "max_margin",
    "normalized_margin",
]

#: A min-norm point shorter than ``ZERO_NORM * R`` means the origin is in the hull.
ZERO_NORM = 1e-12
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
      duality_gap: ``margin_upper - margin`` (>= 0 up to rounding).
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


# --------------------------------------------------------------------------------------------
# Wolfe's min-norm-point algorithm on the rows of Z.
#
# The corral S = [s_0, ..., s_m] is kept with a thin QR factorization D = Q R of the anchored
# differences D = [z_{s_1} - z_{s_0}, ..., z_{s_m} - z_{s_0}] (d x m). The affine minimizer of
# aff(S) is z_{s_0} + D t with R t = -Q^T z_{s_0}: a least-squares solve conditioned like D
# (the bordered normal equations [[Z_S Z_S^T, 1], [1^T, 0]] are conditioned like D^2). Adding
# a point appends a column (reorthogonalised Gram-Schmidt, O(d m)); dropping one deletes a
# column and restores the triangle (Givens rotations, O((d + m) m), or a small QR of the
# trailing block). Each solve takes one corrected-seminormal-equations refinement step. Before
# stopping, the final corral is refactorised from scratch, anchored at its shortest point, and
# re-solved, so the reported point does not carry the rounding of the updates; anchoring at a
# short point keeps the accuracy ~eps * R even when the row norms span orders of magnitude.


def _affine_weights(Y: np.ndarray) -> np.ndarray:
    """Weights ``mu`` (sum 1) of the point of aff{rows of Y} closest to the origin (lstsq).

    The rank-revealing fallback of :class:`_Corral` (``lstsq`` copes with an affinely
    dependent ``Y``: it returns one valid representation).
    """
    k = Y.shape[0]
    if k == 1:
        return np.ones(1)
    a = int(np.argmin(np.einsum("ij,ij->i", Y, Y)))  # anchor at the shortest point
    others = np.arange(k) != a
    t = np.linalg.lstsq((Y[others] - Y[a]).T, -Y[a], rcond=None)[0]
    mu = np.empty(k)
    mu[a] = 1.0 - t.sum()
    mu[others] = t
    return mu


class _Corral:
    """An ordered point set S with the thin QR factorization of its anchored differences.

    ``D = Qt.T @ R`` with ``Qt`` (m, d) having orthonormal rows and ``R`` (m, m) upper
    triangular, ``D[:, k] = z_{S[k+1]} - z_{S[0]}``.
    """

    _REFRESH = 256  # refactorise from scratch after this many updates
    _GIVENS = 48  # re-triangularise blocks larger than this with Givens rotations

    def __init__(self, Z: np.ndarray, S: list[int]):
        self.Z = Z
        self.reset(S)

    def reset(self, S: list[int], lam: np.ndarray | None = None) -> np.ndarray | None:
        """Refactorise from scratch. With ``lam`` (weights in the order of ``S``), first move
        the shortest point to the front as the anchor and return ``lam`` reordered to match.

        The anchor matters when norms differ by orders of magnitude: every difference
        ``z_s - z_anchor`` carries rounding of order ``eps * ||z_anchor||``, so anchoring at
        a long point loses the short ones (and the min-norm point is short).
        """
        if lam is not None:
            norms = np.einsum("ij,ij->i", self.Z[S], self.Z[S])
            k = int(np.argmin(norms))
            order = [k, *(i for i in range(len(S)) if i != k)]
            S = [S[i] for i in order]
            lam = np.asarray(lam)[order]
        self.S = list(S)
        self.updates = 0
        D = (self.Z[self.S[1:]] - self.Z[self.S[0]]).T
        if D.shape[1]:
            Q, self.R = np.linalg.qr(D)
            self.Qt = np.ascontiguousarray(Q.T)
        else:
            self.Qt, self.R = np.zeros((0, self.Z.shape[1])), np.zeros((0, 0))
        return lam

    def copy(self) -> _Corral:
        new = object.__new__(_Corral)
        new.Z, new.S, new.updates = self.Z, list(self.S), self.updates
        new.Qt, new.R = self.Qt.copy(), self.R.copy()
        return new

    def append(self, j: int) -> bool:
        """Add point ``j``; False (and no change) if it is numerically in aff(S)."""
        if self.updates >= self._REFRESH:
            self.reset(self.S)
        c = self.Z[j] - self.Z[self.S[0]]
        Qt = self.Qt
        r = Qt @ c
        w = c - r @ Qt
        r2 = Qt @ w  # second Gram-Schmidt pass ("twice is enough")
        w -= r2 @ Qt
        r += r2
        rho = float(np.linalg.norm(w))
        if not rho > 1e-13 * float(np.linalg.norm(c)):
            return False
        m = self.R.shape[0]
        R = np.zeros((m + 1, m + 1))
        R[:m, :m] = self.R
        R[:m, m] = r
        R[m, m] = rho
        self.R = R
        self.Qt = np.vstack([Qt, w / rho])
        self.S.append(j)
        self.updates += 1
        return True

    def delete(self, pos: int) -> None:
        """Remove ``S[pos]`` (``pos == 0`` re-anchors at ``S[1]``)."""
        m = self.R.shape[0]
        if m == 0:
            raise IndexError("cannot delete the last point of a corral")
        if pos == 0:
            # New differences z_{s_i} - z_{s_1} = D[:, i-1] - D[:, 0]: H = R M is Hessenberg.
            H = self.R[:, 1:].copy()
            H[0, :] -= self.R[0, 0]
            start = 0
        else:
            H = np.delete(self.R, pos - 1, axis=1)  # Hessenberg from column pos - 1
            start = pos - 1
        # Re-triangularise the trailing Hessenberg block H[start:, start:] and rotate the
        # matching rows of Qt: a small dense QR, or Givens rotations for a large block.
        Qt = self.Qt.copy()
        if m - 1 - start > self._GIVENS:
            for k in range(start, m - 1):
                a, b = H[k, k], H[k + 1, k]
                h = float(np.hypot(a, b))
                if h == 0.0:
                    continue
                c, s = a / h, b / h
                h0, h1 = H[k, k:].copy(), H[k + 1, k:].copy()
                H[k, k:] = c * h0 + s * h1
                H[k + 1, k:] = c * h1 - s * h0
                H[k + 1, k] = 0.0
                q0, q1 = Qt[k].copy(), Qt[k + 1].copy()
                Qt[k] = c * q0 + s * q1
                Qt[k + 1] = c * q1 - s * q0
            self.R = H[: m - 1].copy()
            self.Qt = Qt[: m - 1]
        else:
            R = H[: m - 1].copy()
            if start < m - 1:
                Qb, R[start:, start:] = np.linalg.qr(H[start:, start:])
                Qt[start : m - 1] = Qb.T @ self.Qt[start:]
            self.R, self.Qt = R, Qt[: m - 1]
        del self.S[pos]
        self.updates += 1

    def weights(self) -> np.ndarray:
        """Affine-minimizer weights ``mu`` (sum 1) of the current S."""
        m = self.R.shape[0]
        if m == 0:
            return np.ones(1)
        diag = np.abs(np.diag(self.R))
        if not diag.min() > 1e-12 * diag.max():  # near affine dependence: rank-revealing solve
            return _affine_weights(self.Z[self.S])
        Y = self.Z[self.S]
        t = solve_triangular(self.R, -(self.Qt @ Y[0]), check_finite=False)
        # One step of refinement with the corrected seminormal equations: the residual
        # D^T x = (z_s - z_anchor) . x is formed from the data, accurately relative to ||x||.
        x = Y[0] + t @ (Y[1:] - Y[0])
        r = Y[1:] @ x - Y[0] @ x
        t -= solve_triangular(
            self.R, solve_triangular(self.R, r, trans="T", check_finite=False), check_finite=False
        )
        return np.concatenate(([1.0 - t.sum()], t))


def _minor_cycles(corral: _Corral, lam: np.ndarray, budget: list[int]) -> np.ndarray:
    """Wolfe's minor cycles: move ``x = lam @ Z[S]`` to the affine minimizer of a corral.

    While the affine minimizer ``mu`` of ``S`` has a non-positive weight, step from ``lam``
    towards ``mu`` until the first weight hits zero and drop the points at zero. Returns the
    new weights (positive, sum 1) of ``corral.S``.
    """
    while True:
        budget[0] += 1
        mu = corral.weights()
        if np.all(mu > 0.0):
            return mu
        neg = mu <= 0.0
        ratios = np.full(mu.shape, np.inf)
        ratios[neg] = lam[neg] / (lam[neg] - mu[neg])  # in [0, 1): lam >= 0 >= mu
        k = int(np.argmin(ratios))
        lam = lam + ratios[k] * (mu - lam)
        lam[k] = 0.0
        for pos in np.flatnonzero(lam <= 0.0)[::-1]:
            corral.delete(int(pos))
        lam = lam[lam > 0.0]
        lam = lam / lam.sum()
        if len(corral.S) == 1:
            return np.ones(1)


def _wolfe(
    Z: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    exclude: int | None = None,
    start: tuple[_Corral, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, int, _Corral]:
    """Min-norm point of conv{rows of Z} (without row ``exclude``).

    Major cycle: with ``x`` the affine minimizer of the corral, pick ``j = argmin_j z_j . x``;
    stop when ``||x||^2 - z_j . x <= tol * R * ||x||`` with ``R = max_j ||z_j||`` (Wolfe's
    ``tol * R^2`` scaled by ``||x|| / R``: the duality gap ``||x|| - z_j . x / ||x||`` is then
    at most ``tol * R`` even when the margin is tiny compared with ``R``) and the margin is
    positive, or when ``x`` is numerically zero; else add ``j`` and run minor cycles. Also
    stops when a major cycle no longer decreases ``||x||`` or ``j`` cannot be added (float64
    stagnation; the certificate then reports the attained accuracy). Before stopping, the
    corral is refactorised from scratch (anchored at its shortest point) and re-solved.

    Returns ``(p, lambda (n,), iterations, final corral)``.
    """
    n = Z.shape[0]
    sq = np.einsum("ij,ij->i", Z, Z)
    if exclude is not None:
        sq[exclude] = np.inf
    R2 = float(sq[np.isfinite(sq)].max())
    zero2 = (ZERO_NORM**2) * R2
    budget = [0]
    if start is None:
        corral = _Corral(Z, [int(np.argmin(sq))])
        lam = np.ones(1)
    else:
        corral, lam = start
        lam = _minor_cycles(corral, np.asarray(lam, dtype=np.float64).copy(), budget)
    prev = np.inf
    polished = False
    while True:
        x = lam @ Z[corral.S]
        xx = float(x @ x)
        v = Z @ x
        if exclude is not None:
            v[exclude] = np.inf
        j = int(np.argmin(v))
        done = (
            (xx - v[j] <= tol * np.sqrt(R2 * xx) and v[j] > 0.0)
            or xx <= zero2
            or xx >= prev
            or j in corral.S
        )
        if done and polished:
            break
        if done:  # re-solve the final corral from a fresh factorization, then re-check
            polished = True
            lam = corral.reset(corral.S, lam)
            lam = _minor_cycles(corral, lam, budget)
            continue
        budget[0] += 1
        if budget[0] > max_iter:
            raise MaxMarginConvergenceError(
                f"Wolfe's min-norm-point algorithm did not converge in max_iter={max_iter} "
                f"iterations (n={n}, d={Z.shape[1]}, current ||p||^2 - min_j z_j.p = "
                f"{xx - v[j]:.3e}). Pass a larger max_iter or a larger tol; rescale features "
                "with wildly different magnitudes."
            )
        if not corral.append(j):  # z_j numerically in aff(S): cannot make progress
            polished = False
            prev = -np.inf  # forces the polish-and-stop branch
            continue
        polished = False
        prev = xx
        lam = _minor_cycles(corral, np.append(lam, 0.0), budget)
    weights = np.zeros(n)
    weights[corral.S] = lam
    return weights @ Z, weights, budget[0], corral


def _default_max_iter(n: int, d: int) -> int:
    return 50 * (n + d) + 1000


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
      InvalidDataError: bad shapes, NaN/inf, labels (from :func:`stabtheory.data.validate`).
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
    n, d = X.shape
    Z = y[:, None] * X
    R = float(np.sqrt(np.einsum("ij,ij->i", Z, Z).max()))
    if max_iter is None:
        max_iter = _default_max_iter(n, d)
    p, lam, iters, _ = _wolfe(Z, tol=tol, max_iter=max_iter)
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
    full = max_margin(X, y, tol=tol) if result is None else result
    if full.direction.shape != (d,) or full.hull_weights.shape != (n,):
        raise ValueError(
            f"result is for data of shape ({full.hull_weights.shape[0]}, "
            f"{full.direction.shape[0]}), not {X.shape}; pass max_margin(X, y) of these data."
        )
    Z = y[:, None] * X
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
    base = _Corral(Z, corral.tolist())
    base_lam = base.reset(base.S, lam[base.S])  # anchor at the shortest corral point
    corral = np.asarray(base.S)
    max_iter = _default_max_iter(n - 1, d)
    for pos, i in enumerate(corral):
        start = None
        if corral.size > 1:  # warm start: the corral of S minus i, weights renormalised
            c = base.copy()
            c.delete(pos)
            w = np.delete(base_lam, pos)
            start = (c, w / w.sum())
        p, _, _, _ = _wolfe(Z, tol=tol, max_iter=max_iter, exclude=int(i), start=start)
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
