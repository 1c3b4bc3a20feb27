r"""The second-order Taylor model of full fine-tuning around ``w0``, matrix-free (theory.md sec. 2).

.. math::
    \hat l_i(w) = l(w_0; z_i) + g_i \cdot (w - w_0) + \tfrac12 (w - w_0)^\top H_i (w - w_0),
    \qquad F_s(w) = \frac{\sum_i s_i \hat l_i(w)}{\sum_i s_i} + \frac{\lambda}{2}\|w - w_0\|^2 ,

``H_i`` the Gauss-Newton matrix ``c_i J_i J_i^T`` (the default) or the true Hessian
(``curvature="hessian"``); ``A_s = sum_i s_i H_i / sum_i s_i + lambda I`` and the minimiser
is ``w_s = w0 - A_s^{-1} gbar_s``. Nothing forms a p x p matrix except the dense references
(``dense_*``, for small p and tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory.full_finetuning.linalg import cg_solve
from stabtheory.full_finetuning.losses import logistic_loss
from stabtheory.linear_heads import run_checkpoints

__all__ = [
    "TaylorModel",
    "dense_curvatures",
    "dense_operator",
    "extreme_eigenvalues",
    "gd_path",
    "minimizers",
    "operator",
    "per_sample_norms",
    "per_sample_power_iteration",
    "quadratic_grads",
    "quadratic_losses",
    "sample_hvp",
    "taylor_expand",
    "true_losses",
]

Apply = Callable[[jax.Array, jax.Array], jax.Array]


class TaylorModel(NamedTuple):
    """The Taylor model at ``w0``: per-sample losses, gradients and curvature factors.

    A pytree of arrays (jit, vmap and ``_replace`` work on it).

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
        loss = logistic_loss(apply)

        def hvp(x, yy, v):
            g = jax.grad(lambda w: loss(w, x, yy))
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
    static (fixed-length loops; :func:`stabtheory.linear_heads.run_checkpoints`).
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
    loss = logistic_loss(apply)
    flat = W.reshape(-1, W.shape[-1])
    out = jax.vmap(lambda w: jax.vmap(lambda x, yy: loss(w, x, yy))(X, y))(flat)
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


def dense_curvatures(tm: TaylorModel, *, curvature="ggn", apply=None) -> np.ndarray:
    """Dense per-sample curvature matrices (n, p, p): for small p and tests only."""
    if curvature == "ggn":
        return np.asarray(tm.curv[:, None, None] * tm.jac[:, :, None] * tm.jac[:, None, :])
    loss = logistic_loss(apply)
    hess = jax.vmap(lambda x, yy: jax.hessian(lambda w: loss(w, x, yy))(tm.w0))
    return np.asarray(hess(tm.X, tm.y))


def dense_operator(tm: TaylorModel, s, lam, *, curvature="ggn", apply=None) -> np.ndarray:
    """Dense ``A_s`` (p, p): for small p and tests only."""
    H = dense_curvatures(tm, curvature=curvature, apply=apply)
    s = np.asarray(s)
    return np.tensordot(s, H, axes=1) / s.sum() + lam * np.eye(H.shape[1])
