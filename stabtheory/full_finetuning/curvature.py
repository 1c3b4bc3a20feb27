r"""The true Hessian of the real fine-tuning objective, matrix-free, at a point or along a path.

For the objective that :func:`~stabtheory.full_finetuning.gd_finetune` minimises,

.. math::
    F_s(w) = c\,\frac{\sum_i s_i \big(\ell(w; z_i) + a_i \cdot (w - w_0)\big)}{\sum_i s_i}
             + \frac{\lambda}{2}\|w - w_0\|^2 ,

:func:`path_curvature` gives, at every row ``w`` of a path, the extreme eigenvalues of the
true Hessian :math:`\nabla^2 F_s(w)` (Lanczos on Hessian-vector products, ``jax.linearize``
of ``jax.grad``: no p x p matrix) and the gradient norm :math:`\|\nabla F_s(w)\|`. The
linear design terms ``a_i`` do not enter the Hessian. Pure and traceable (no jit inside).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from stabtheory.full_finetuning.linalg import lanczos_extremes
from stabtheory.full_finetuning.losses import l2sp_grad

__all__ = ["LANCZOS_STEPS", "Curvature", "objective_hvp", "path_curvature", "start_vector"]

#: Lanczos steps of :func:`path_curvature`. Measured against ``eigvalsh`` of the dense
#: Hessian on the default testbeds (synthetic p = 2385, digits p = 3409; ten configurations:
#: both tasks, pre-training 0 / 300 / 3000 steps, input scale 0.5 / 2, n = 32 / 48, task
#: shift 2; at w0 and after 10 and 300 GD steps at the default step): with 40 steps both
#: extreme Ritz values are within 3e-8 lambda_max of the eigenvalues (the largest within
#: 5e-11, relative); 30 steps: 3e-5; 60 steps: 3e-15, at 2.4 times the cost (the full
#: reorthogonalisation grows with the square of the steps).
LANCZOS_STEPS = 40

_TAG_START = 0x1A2C


class Curvature(NamedTuple):
    """The true Hessian's extreme Ritz values and the gradient norm at each point of a path.

    Attributes:
      lam_min, lam_max: (m,) smallest and largest Lanczos Ritz values of ``hess F_s(w)``
        (inside the spectrum: ``lam_min`` is an upper estimate of the smallest eigenvalue,
        ``lam_max`` a lower estimate of the largest).
      grad_norm: (m,) ``||grad F_s(w)||``.
    """

    lam_min: jax.Array
    lam_max: jax.Array
    grad_norm: jax.Array


def start_vector(p: int, dtype=jnp.float64) -> jax.Array:
    """The fixed Lanczos start of :func:`path_curvature`: a standard normal draw in R^p from a
    fixed key (the same for every problem, point and batch)."""
    return jax.random.normal(jax.random.key(_TAG_START), (p,), dtype)


def objective_hvp(
    apply: Callable,
    w: jax.Array,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    lam: jax.Array | float,
    *,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    """``(grad F_s(w), v -> hess F_s(w) v)``: the gradient and the Hessian-vector product of
    :func:`~stabtheory.full_finetuning.l2sp_objective` at ``w`` (``jax.linearize`` of
    ``jax.grad``: the forward pass is shared by every product).

    Example:
      >>> apply = lambda w, x: w @ x
      >>> X, y, w0 = jnp.eye(2), jnp.array([1.0, -1.0]), jnp.zeros(2)
      >>> g, hvp = objective_hvp(apply, w0, w0, X, y, jnp.ones(2), 0.5)
      >>> hvp(jnp.array([1.0, 0.0])).tolist()  # sigma(0) sigma(0) / 2 + lam
      [0.625, 0.0]
    """

    def grad(v):
        return l2sp_grad(apply, v, w0, X, y, sample_weights, lam, linear=linear, scale=scale)

    return jax.linearize(grad, w)


def path_curvature(
    apply: Callable,
    W: jax.Array,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    lam: jax.Array | float,
    *,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
    k: int = LANCZOS_STEPS,
) -> Curvature:
    r"""The true Hessian's extreme eigenvalues and the gradient norm of ``F_s`` at every row of
    ``W`` (m, p), one point after another (``jax.lax.map``).

    ``k`` Lanczos steps (full reorthogonalisation,
    :func:`~stabtheory.full_finetuning.lanczos_extremes`) from :func:`start_vector`, so the
    result is a deterministic function of the problem. Ritz values lie inside the spectrum:
    ``lam_max`` does not over-estimate the top eigenvalue (it converges fastest, from below)
    and ``lam_min`` does not under-estimate the bottom one. With ``k >= p`` both are exact up
    to rounding. Cost: ``k`` Hessian-vector products per point.

    Args:
      apply, w0, X, y, sample_weights, lam, linear, scale: the objective, as in
        :func:`~stabtheory.full_finetuning.gd_finetune`.
      W: (m, p) the points.
      k: Lanczos steps (capped at p).

    Returns:
      :class:`Curvature` of (m,) arrays.

    Example:
      >>> apply = lambda w, x: w @ x
      >>> X, y, w0 = jnp.eye(2), jnp.array([1.0, -1.0]), jnp.zeros(2)
      >>> c = path_curvature(apply, w0[None], w0, X, y, jnp.ones(2), 0.5)
      >>> round(float(c.lam_min[0]), 12), round(float(c.lam_max[0]), 12)
      (0.625, 0.625)
    """
    v0 = start_vector(W.shape[-1], W.dtype)

    def one(w):
        g, hvp = objective_hvp(apply, w, w0, X, y, sample_weights, lam, linear=linear, scale=scale)
        lo, hi = lanczos_extremes(hvp, v0, k)
        return lo, hi, jnp.linalg.norm(g)

    return Curvature(*jax.lax.map(one, W))
