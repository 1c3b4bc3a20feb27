r"""The second-order Taylor model of full fine-tuning (docs/theory.md section 2), matrix-free.

Around the pre-trained weight ``w0`` (a flat vector in R^p), for a network with one logit
``f(w, x)`` and the logistic loss ``l(w; z) = softplus(-y f(w, x))``:

.. math::
    \hat l_i(w) = l(w_0; z_i) + g_i \cdot (w - w_0) + \tfrac12 (w - w_0)^\top H_i (w - w_0),
    \qquad F_s(w) = \frac{\sum_i s_i \hat l_i(w)}{\sum_i s_i} + \frac{\lambda}{2}\|w - w_0\|^2 .

``H_i`` is the Gauss-Newton matrix ``c_i J_i J_i^T`` (``J_i = grad_w f(w0, x_i)``,
``c_i = sigma(m_i) sigma(-m_i)``, PSD and rank one; the default) or the true Hessian of
``l_i`` at ``w0`` (``curvature="hessian"``, products by ``jvp`` of ``grad``). With sample
weights ``s`` (masks: S, every S\i), ``A_s = sum_i s_i H_i / sum_i s_i + lambda I`` and the
minimiser is ``w_s = w0 - A_s^{-1} gbar_s``.

Nothing here forms a p x p matrix: per-sample gradients and Jacobians are (n, p); products
``A_s v`` cost two (n, p) contractions; minimisers of every mask come from conjugate
gradients vmapped over masks; extreme eigenvalues come from Lanczos (any curvature) or, for
the Gauss-Newton matrix, *exactly* from the n x n kernel ``diag(sqrt(s c)) J J^T
diag(sqrt(s c)) / sum s`` whose non-zero spectrum equals that of ``sum_i s_i H_i / sum s``.
Dense references (``dense_*``) exist for small p and are what the tests compare with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory.heads import run_checkpoints

__all__ = [
    "FTDesign",
    "TaylorModel",
    "apply_design",
    "cg_solve",
    "dense_curvatures",
    "dense_operator",
    "extreme_eigenvalues",
    "gd_path",
    "lanczos_extremes",
    "minimizers",
    "operator",
    "per_sample_norms",
    "per_sample_power_iteration",
    "power_iteration",
    "quadratic_grads",
    "quadratic_losses",
    "sample_hvp",
    "taylor_expand",
    "true_losses",
]

Apply = Callable[[jax.Array, jax.Array], jax.Array]


class TaylorModel(NamedTuple):
    """The Taylor model at ``w0``: per-sample losses, gradients and curvature factors.

    Attributes:
      w0: (p,) expansion point (pre-trained weights).
      loss0: (n,) ``l(w0; z_i)``.
      grads: (n, p) ``g_i``.
      jac: (n, p) ``J_i = grad_w f(w0, x_i)``.
      curv: (n,) ``c_i = sigma(m_i) sigma(-m_i)``, ``m_i = y_i f(w0, x_i)``.
      X, y: the data (for Hessian-vector products with ``curvature="hessian"``).
    """

    w0: jax.Array
    loss0: jax.Array
    grads: jax.Array
    jac: jax.Array
    curv: jax.Array
    X: jax.Array
    y: jax.Array


def _loss(apply: Apply, w, x, y):
    return jax.nn.softplus(-y * apply(w, x))


def taylor_expand(apply: Apply, w0, X, y) -> TaylorModel:
    """Per-sample quantities of the Taylor model of the logistic loss at ``w0``.

    Args:
      apply: ``apply(w, x) -> logit`` for one input, ``w`` flat (p,).
      w0: (p,) pre-trained weights.
      X: (n, d_in) inputs; y: (n,) labels in {-1, +1}.

    Example:
      >>> apply = lambda w, x: w @ x
      >>> tm = taylor_expand(apply, jnp.zeros(2), jnp.eye(2), jnp.array([1.0, -1.0]))
      >>> tm.curv.tolist(), (tm.grads + 0.0).tolist()  # + 0.0 turns -0.0 into 0.0
      ([0.25, 0.25], [[-0.5, 0.0], [0.0, 0.5]])
    """
    w0 = jnp.asarray(w0)
    X, y = jnp.asarray(X, w0.dtype), jnp.asarray(y, w0.dtype)

    def one(x, yy):
        logit, jac = jax.value_and_grad(apply)(w0, x)
        m = yy * logit
        # d l / d w = -y sigma(-m) J ; l'' in the logit: sigma(m) sigma(-m) (log domain)
        grad = -yy * jnp.exp(-jax.nn.softplus(m)) * jac
        curv = jnp.exp(-jax.nn.softplus(m) - jax.nn.softplus(-m))
        return jax.nn.softplus(-m), grad, jac, curv

    loss0, grads, jac, curv = jax.vmap(one)(X, y)
    return TaylorModel(w0, loss0, grads, jac, curv, X, y)


def sample_hvp(
    tm: TaylorModel, V: jax.Array, *, curvature: str = "ggn", apply: Apply | None = None
) -> jax.Array:
    """``H_i v_i`` for every sample i, from ``V`` of shape (n, p); returns (n, p).

    ``curvature="ggn"``: ``c_i J_i (J_i . v_i)``. ``"hessian"``: the exact Hessian of
    ``l_i`` at ``w0`` times ``v_i`` (``jvp`` of ``grad``; needs ``apply``).
    """
    if curvature == "ggn":
        return tm.curv[:, None] * tm.jac * jnp.sum(tm.jac * V, axis=1, keepdims=True)
    if curvature == "hessian":
        if apply is None:
            raise ValueError("curvature='hessian' needs apply=.")

        def hvp(x, yy, v):
            g = jax.grad(lambda w: _loss(apply, w, x, yy))
            return jax.jvp(g, (tm.w0,), (v,))[1]

        return jax.vmap(hvp)(tm.X, tm.y, V)
    raise ValueError(f"curvature must be 'ggn' or 'hessian', got {curvature!r}.")


def operator(
    tm: TaylorModel, s: jax.Array, lam, *, curvature: str = "ggn", apply: Apply | None = None
) -> Callable[[jax.Array], jax.Array]:
    """The matrix-free ``v -> A_s v = sum_i s_i H_i v / sum s + lam v``."""
    total = jnp.sum(s)

    def matvec(v):
        if curvature == "ggn":
            hv = tm.jac.T @ (s * tm.curv * (tm.jac @ v))
        else:
            hv = jnp.sum(
                s[:, None]
                * sample_hvp(
                    tm, jnp.broadcast_to(v, tm.grads.shape), curvature=curvature, apply=apply
                ),
                axis=0,
            )
        return hv / total + lam * v

    return matvec


def cg_solve(matvec, b, *, tol: float = 1e-12, maxiter: int | None = None) -> jax.Array:
    """Conjugate gradients for ``A x = b`` with A symmetric positive definite (vmappable).

    Stops when ``||A x - b|| <= tol ||b||``.
    """
    x, _ = jax.scipy.sparse.linalg.cg(matvec, b, tol=tol, atol=0.0, maxiter=maxiter)
    return x


def minimizers(
    tm: TaylorModel,
    weights: jax.Array,
    lam,
    *,
    curvature: str = "ggn",
    apply: Apply | None = None,
    tol: float = 1e-12,
    maxiter: int | None = None,
) -> jax.Array:
    """``w_s = w0 - A_s^{-1} gbar_s`` for every mask ``s`` (rows of ``weights``), by CG, vmapped.

    Returns (masks, p).
    """

    def one(s):
        gbar = s @ tm.grads / jnp.sum(s)
        step = cg_solve(
            operator(tm, s, lam, curvature=curvature, apply=apply), gbar, tol=tol, maxiter=maxiter
        )
        return tm.w0 - step

    return jax.vmap(one)(weights)


def gd_path(
    tm: TaylorModel,
    weights: jax.Array,
    lam,
    lr,
    checkpoints: jax.Array,
    *,
    curvature: str = "ggn",
    apply: Apply | None = None,
) -> jax.Array:
    """GD on the quadratic ``F_s`` from ``w0`` for every mask; snapshots (masks, C, p).

    ``w_{t+1} = w_t - lr (gbar_s + (A_s - lam I)(w_t - w0) + lam (w_t - w0))``; checkpoint values
    given as an array are traced (a while loop between consecutive ones), a tuple of ints is
    static (fixed-length loops; :func:`stabtheory.heads.run_checkpoints`).
    """

    def one(s):
        A = operator(tm, s, lam, curvature=curvature, apply=apply)
        gbar = s @ tm.grads / jnp.sum(s)

        def body(_, w):
            return w - lr * (gbar + A(w - tm.w0))

        return run_checkpoints(body, tm.w0, checkpoints, lambda w: w)[1]

    return jax.vmap(one)(weights)


def quadratic_losses(tm: TaylorModel, W: jax.Array, *, curvature="ggn", apply=None) -> jax.Array:
    """``lhat_i(w)`` for every sample i and every row w of ``W`` (..., p) -> (..., n)."""
    D = W - tm.w0

    def per_w(d):
        Hd = sample_hvp(tm, jnp.broadcast_to(d, tm.grads.shape), curvature=curvature, apply=apply)
        return tm.loss0 + tm.grads @ d + 0.5 * jnp.sum(Hd * d, axis=1)

    flat = D.reshape(-1, D.shape[-1])
    return jax.vmap(per_w)(flat).reshape((*D.shape[:-1], tm.loss0.shape[0]))


def quadratic_grads(tm: TaylorModel, W: jax.Array, *, curvature="ggn", apply=None) -> jax.Array:
    """``grad lhat_i(w) = g_i + H_i (w - w0)`` for every row w of ``W`` (m, p) -> (m, n, p)."""

    def per_w(w):
        d = jnp.broadcast_to(w - tm.w0, tm.grads.shape)
        return tm.grads + sample_hvp(tm, d, curvature=curvature, apply=apply)

    return jax.vmap(per_w)(W)


def true_losses(apply: Apply, W: jax.Array, X, y) -> jax.Array:
    """The network's per-sample logistic losses for every row of ``W`` (..., p) -> (..., n)."""
    X, y = jnp.asarray(X, W.dtype), jnp.asarray(y, W.dtype)
    flat = W.reshape(-1, W.shape[-1])
    out = jax.vmap(lambda w: jax.vmap(lambda x, yy: _loss(apply, w, x, yy))(X, y))(flat)
    return out.reshape((*W.shape[:-1], X.shape[0]))


def per_sample_norms(tm: TaylorModel) -> jax.Array:
    """``||H_i||`` for the Gauss-Newton curvature, exactly: ``c_i ||J_i||^2`` (rank one)."""
    return tm.curv * jnp.sum(tm.jac**2, axis=1)


def extreme_eigenvalues(tm: TaylorModel, weights: jax.Array, lam) -> tuple[jax.Array, jax.Array]:
    """Exact ``(lambda_min, lambda_max)`` of ``A_s`` for every mask (Gauss-Newton curvature).

    The non-zero eigenvalues of ``sum_i s_i c_i J_i J_i^T / sum s`` (p x p) are those of the
    n x n kernel ``K_s = diag(r) J J^T diag(r)``, ``r = sqrt(s c / sum s)``. So
    ``lambda_max = lam + max eig K_s`` and ``lambda_min = lam + (the p-th largest eigenvalue of
    K_s when p <= n, else 0)``. Cost O(n^2 p + n^3) per mask; no p x p matrix.
    """
    n, p = tm.jac.shape
    gram = tm.jac @ tm.jac.T

    def one(s):
        r = jnp.sqrt(s * tm.curv / jnp.sum(s))
        ev = jnp.linalg.eigvalsh(r[:, None] * gram * r[None, :])  # ascending
        ev = jnp.maximum(ev, 0.0)  # PSD up to rounding
        low = ev[n - p] if p <= n else jnp.zeros((), ev.dtype)
        return lam + low, lam + ev[-1]

    return jax.vmap(one)(weights)


def power_iteration(matvec, v0: jax.Array, iters: int = 100) -> jax.Array:
    """Largest eigenvalue of a PSD operator by power iteration from ``v0`` (vmappable)."""

    def body(_, v):
        w = matvec(v)
        return w / jnp.linalg.norm(w)

    v = jax.lax.fori_loop(0, iters, body, v0 / jnp.linalg.norm(v0))
    return v @ matvec(v)


def per_sample_power_iteration(
    tm: TaylorModel,
    *,
    curvature: str = "ggn",
    apply: Apply | None = None,
    iters: int = 100,
    key: jax.Array | None = None,
) -> jax.Array:
    """``||H_i||`` for every sample by power iteration, all samples at once (vmapped).

    For the Gauss-Newton curvature :func:`per_sample_norms` is exact (rank one); this is the
    matrix-free route for the Hessian, where it estimates the largest-magnitude eigenvalue
    (from below, as any power iteration does).
    """
    key = jax.random.key(0) if key is None else key
    V = jax.random.normal(key, tm.grads.shape, tm.grads.dtype)

    def body(_, V):
        W = sample_hvp(tm, V, curvature=curvature, apply=apply)
        return W / jnp.linalg.norm(W, axis=1, keepdims=True)

    V = jax.lax.fori_loop(0, iters, body, V / jnp.linalg.norm(V, axis=1, keepdims=True))
    return jnp.linalg.norm(sample_hvp(tm, V, curvature=curvature, apply=apply), axis=1)


def lanczos_extremes(matvec, v0: jax.Array, k: int = 50) -> tuple[jax.Array, jax.Array]:
    """Smallest and largest Ritz values after ``k`` Lanczos steps (full reorthogonalisation).

    Ritz values lie inside the spectrum, so the smallest over-estimates ``lambda_min`` and the
    largest under-estimates ``lambda_max``; both converge fast at the extremes. ``k`` is capped
    at p; with ``k = p`` the result is exact up to rounding. When the Krylov space is invariant
    (breakdown), the iteration restarts from a fresh orthogonal direction.
    """
    p = v0.shape[0]
    k = min(k, p)
    key = jax.random.key(0)
    Q = jnp.zeros((k + 1, p), v0.dtype).at[0].set(v0 / jnp.linalg.norm(v0))
    alpha = jnp.zeros(k, v0.dtype)
    beta = jnp.zeros(k, v0.dtype)

    def orthogonalise(Q, w):
        w = w - Q.T @ (Q @ w)  # full reorthogonalisation (rows beyond j are zero), twice
        return w - Q.T @ (Q @ w)

    def body(j, carry):
        Q, alpha, beta = carry
        Aq = matvec(Q[j])
        a = Aq @ Q[j]
        w = orthogonalise(Q, Aq)
        b = jnp.linalg.norm(w)
        # An invariant Krylov subspace (e.g. a rank-n operator with p > n): restart from a
        # fresh direction orthogonal to the basis, decoupled from it (beta = 0).
        broke = b <= 1e-10 * (jnp.linalg.norm(Aq) + jnp.abs(a) + 1e-300)
        fresh = orthogonalise(Q, jax.random.normal(jax.random.fold_in(key, j), w.shape, w.dtype))
        w = jnp.where(broke, fresh, w)
        Q = Q.at[j + 1].set(w / jnp.linalg.norm(w))
        return Q, alpha.at[j].set(a), beta.at[j].set(jnp.where(broke, 0.0, b))

    Q, alpha, beta = jax.lax.fori_loop(0, k, body, (Q, alpha, beta))
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    ev = jnp.linalg.eigvalsh(T)
    return ev[0], ev[-1]


# ----------------------------------------------------------------------------- controlled designs
_TAG_TILT, _TAG_SHIFT = 0x711, 0x5F1


@dataclasses.dataclass(frozen=True, eq=False)
class FTDesign:
    r"""A controlled change of the fine-tuning objective (docs/theory.md section 6).

    Sample i's loss becomes ``c (l_i(w) + a_i . (w - w0))`` and the pull ``lam -> c lam``
    (the step ``eta -> eta / c``), with the per-sample linear term

    .. math::
        a_i = \kappa\, \xi_i - s\, (H_i + \lambda I)\, v .

    * **zero-sum tilt** (``tilt = kappa``): ``xi_i = u_i - mean_j u_j``, ``u_i`` independent
      uniform unit vectors in R^p drawn from ``jax.random.key(seed)`` (so ``sum_i xi_i = 0``
      over S exactly and ``||xi_i||`` is about ``sqrt(1 - 1/n)``); S\i keeps the same
      ``xi_j``, so ``F_S`` is unchanged while every ``F_S\i`` moves by
      ``-kappa xi_i . (w - w0) / (n - 1)``.
    * **curvature-matched shift** (``shift = s``): ``H_i`` is the Gauss-Newton matrix at
      ``w0`` and ``lam`` the *unscaled* pull; on the Taylor model ``w_S - w0`` and every
      ``w_S\i - w0`` move by exactly ``s v`` while ``r_i - mean r`` and ``A`` do not change.
      ``v`` is the given unit vector, or a uniform unit vector from ``seed``.
    * **negative control** (``scale = c``): every trajectory is unchanged; ``rho``, ``Lam``,
      ``beta`` and the losses scale by ``c``.

    Attributes:
      tilt, shift, scale: ``kappa``, ``s``, ``c`` (the default is the plain problem).
      v: (p,) unit direction of the shift, or ``None`` (seeded random).
      seed: the tilt directions (and ``v`` when not given).

    Example:
      >>> FTDesign().plain, FTDesign(tilt=1.0).plain
      (True, False)
    """

    tilt: float = 0.0
    shift: float = 0.0
    scale: float = 1.0
    v: np.ndarray | None = None
    seed: int = 0

    @property
    def plain(self) -> bool:
        return self.tilt == 0 and self.shift == 0 and self.scale == 1

    def directions(self, n: int, p: int) -> tuple[np.ndarray, np.ndarray]:
        """``(xi, v)``: the tilt directions (n, p), zero-sum, and the unit shift direction.

        Drawn with numpy from ``default_rng([seed, tag])`` (no compilation); zeros for a
        design that does not use them (``tilt = 0``; ``shift = 0`` with no ``v``)."""
        xi = np.zeros((n, p))
        if self.tilt != 0:
            u = np.random.default_rng([self.seed, _TAG_TILT]).standard_normal((n, p))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            xi = u - u.mean(axis=0)
        if self.v is not None:
            v = np.asarray(self.v, np.float64)
        elif self.shift != 0:
            v = np.random.default_rng([self.seed, _TAG_SHIFT]).standard_normal(p)
        else:
            return xi, np.zeros(p)
        return xi, v / np.linalg.norm(v)


def apply_design(
    tm: TaylorModel, lam, tilt, shift, scale, xi: jax.Array, v: jax.Array
) -> tuple[TaylorModel, jax.Array, jax.Array]:
    """The Taylor model of the designed objective (see :class:`FTDesign`); all traced.

    Returns ``(tm_c, lam_c, a)``: the model with ``loss0``, ``grads + a`` and ``curv``
    multiplied by ``scale`` (Gauss-Newton curvature), the pull ``scale * lam`` and the
    per-sample linear terms ``a = tilt xi - shift (H_i v + lam v)`` (n, p), unscaled.
    """
    hv = sample_hvp(tm, jnp.broadcast_to(v, tm.grads.shape))
    a = tilt * xi - shift * (hv + lam * v)
    tm_c = tm._replace(loss0=scale * tm.loss0, grads=scale * (tm.grads + a), curv=scale * tm.curv)
    return tm_c, scale * lam, a


# ----------------------------------------------------------------------------- dense references
def dense_curvatures(tm: TaylorModel, *, curvature="ggn", apply=None) -> np.ndarray:
    """Dense per-sample curvature matrices (n, p, p): for small p and tests only."""
    if curvature == "ggn":
        return np.asarray(tm.curv[:, None, None] * tm.jac[:, :, None] * tm.jac[:, None, :])
    hess = jax.vmap(lambda x, yy: jax.hessian(lambda w: _loss(apply, w, x, yy))(tm.w0))
    return np.asarray(hess(tm.X, tm.y))


def dense_operator(tm: TaylorModel, s, lam, *, curvature="ggn", apply=None) -> np.ndarray:
    """Dense ``A_s`` (p, p): for small p and tests only."""
    H = dense_curvatures(tm, curvature=curvature, apply=apply)
    s = np.asarray(s)
    return np.tensordot(s, H, axes=1) / s.sum() + lam * np.eye(H.shape[1])
