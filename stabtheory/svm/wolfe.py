"""Wolfe's min-norm-point algorithm: the exact nearest point of a polytope to the origin.

:func:`min_norm_point` finds the point ``p*`` of conv{rows of Z} closest to the origin with an
active-set method that keeps a :class:`Corral` of affinely independent points whose affine
hull's closest point to the origin lies in their convex hull. It terminates finitely (in exact
arithmetic). :mod:`stabtheory.svm.svm` builds the max-margin SVM on it.

References:
  P. Wolfe (1976), "Finding the nearest point in a polytope", Mathematical Programming 11,
  128-149.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from stabtheory.errors import MaxMarginConvergenceError

__all__ = ["ZERO_NORM", "Corral", "min_norm_point"]

#: A min-norm point shorter than ``ZERO_NORM * R`` means the origin is in the hull.
ZERO_NORM = 1e-12


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

    The rank-revealing fallback of :class:`Corral` (``lstsq`` copes with an affinely
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


class Corral:
    """An ordered point set S (a corral) with the thin QR factorization of its anchored differences.

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

    def copy(self) -> Corral:
        new = object.__new__(Corral)
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


def _minor_cycles(corral: Corral, lam: np.ndarray, budget: list[int]) -> np.ndarray:
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


def _default_max_iter(n: int, d: int) -> int:
    return 50 * (n + d) + 1000


def min_norm_point(
    Z: np.ndarray,
    *,
    tol: float,
    max_iter: int | None = None,
    exclude: int | None = None,
    start: tuple[Corral, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, int, Corral]:
    """Min-norm point of conv{rows of Z} (without row ``exclude``), by Wolfe's algorithm.

    Major cycle: with ``x`` the affine minimizer of the corral, pick ``j = argmin_j z_j . x``;
    stop when ``||x||^2 - z_j . x <= tol * R * ||x||`` with ``R = max_j ||z_j||`` (Wolfe's
    ``tol * R^2`` scaled by ``||x|| / R``: the duality gap ``||x|| - z_j . x / ||x||`` is then
    at most ``tol * R`` even when the margin is tiny compared with ``R``) and the margin is
    positive, or when ``x`` is numerically zero; else add ``j`` and run minor cycles. Also
    stops when a major cycle no longer decreases ``||x||`` or ``j`` cannot be added (float64
    stagnation; the certificate then reports the attained accuracy). Before stopping, the
    corral is refactorised from scratch (anchored at its shortest point) and re-solved.

    Args:
      Z: the points, shape (n, d).
      tol: stopping tolerance, the target duality gap relative to ``R``.
      max_iter: cap on major plus minor iterations; default ``50 (m + d) + 1000`` with ``m``
        the number of points used (``n - 1`` with ``exclude``).
      exclude: a row left out of the hull.
      start: a warm start ``(corral, weights)``, weights positive in the order of
        ``corral.S``.

    Returns:
      ``(p, lambda (n,), iterations, final corral)``.

    Raises:
      MaxMarginConvergenceError: the iteration cap was hit.
    """
    n = Z.shape[0]
    if max_iter is None:
        max_iter = _default_max_iter(n if exclude is None else n - 1, Z.shape[1])
    sq = np.einsum("ij,ij->i", Z, Z)
    if exclude is not None:
        sq[exclude] = np.inf
    R2 = float(sq[np.isfinite(sq)].max())
    zero2 = (ZERO_NORM**2) * R2
    budget = [0]
    if start is None:
        corral = Corral(Z, [int(np.argmin(sq))])
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
