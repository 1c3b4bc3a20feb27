r"""The fine-tuning losses: per-sample logistic loss, weighted data term and the L2-SP objective.

.. math::
    F_s(w) = c\,\frac{\sum_i s_i \big(\ell(w; z_i) + a_i \cdot (w - w_0)\big)}{\sum_i s_i}
             + \frac{\lambda}{2}\|w - w_0\|^2,
    \qquad \ell(w; (x, y)) = \operatorname{softplus}(-y f(w, x)),

with sample weights ``s`` (masks), and the per-sample linear terms ``a_i`` and scale ``c`` of
a controlled design (none and 1 by default).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from stabtheory.full_finetuning.testbed import Testbed

__all__ = ["data_term", "l2sp_grad", "l2sp_objective", "logistic_loss", "weighted_loss"]


def logistic_loss(
    model: Testbed | Callable[[jax.Array, jax.Array], jax.Array],
) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    r"""Per-sample logistic loss ``loss_fn(w, x, y) = softplus(-y f(w, x))``.

    Computed in the log domain by ``jax.nn.softplus`` (never clamped): exact for margins of
    either sign and any size, with gradient ``-y sigmoid(-y f) grad f``.

    Args:
      model: a :class:`~stabtheory.full_finetuning.Testbed` or an ``apply(w, x)`` function.

    Returns:
      ``loss_fn(w, x, y) -> scalar``, pure.

    Example:
      >>> loss_fn = logistic_loss(lambda w, x: w @ x)
      >>> float(loss_fn(jnp.array([1.0]), jnp.array([1000.0]), -1.0))
      1000.0
    """
    apply = model.apply if isinstance(model, Testbed) else model

    def loss_fn(w: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
        return jax.nn.softplus(-y * apply(w, x))

    return loss_fn


def weighted_loss(
    apply: Callable, w: jax.Array, X: jax.Array, y: jax.Array, sample_weights: jax.Array
) -> jax.Array:
    r"""Weighted mean logistic loss ``sum_i s_i l(w; z_i) / sum_i s_i`` (no penalty)."""
    losses = jax.nn.softplus(-y * jax.vmap(apply, in_axes=(None, 0))(w, X))
    return jnp.sum(sample_weights * losses) / jnp.sum(sample_weights)


def data_term(
    apply: Callable,
    w: jax.Array,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    *,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
) -> jax.Array:
    r"""The data part of :func:`l2sp_objective`:
    ``c sum_i s_i (l(w; z_i) + a_i . (w - w0)) / sum_i s_i``."""
    out = weighted_loss(apply, w, X, y, sample_weights)
    if linear is not None:
        out = out + (sample_weights @ linear) @ (w - w0) / jnp.sum(sample_weights)
    return scale * out


def l2sp_objective(
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
) -> jax.Array:
    r"""The fine-tuning objective with the L2-SP pull toward ``w0``.

    .. math::
        F_s(w) = c\,\frac{\sum_i s_i \big(\mathrm{softplus}(-y_i f(w, x_i))
                 + a_i \cdot (w - w_0)\big)}{\sum_i s_i} + \frac{\lambda}{2}\|w - w_0\|^2 .

    ``linear`` (the per-sample terms ``a_i``, (n, p); none by default) and ``scale`` (``c``,
    1 by default) are the controlled designs of
    :class:`~stabtheory.full_finetuning.FTDesign` (zero-sum tilt, curvature-matched shift,
    loss scaling); ``lam`` is taken as given (the loss-scaling control passes ``c lam``).

    Example:
      >>> apply = lambda w, x: w @ x
      >>> X, y, s = jnp.eye(2), jnp.array([1.0, -1.0]), jnp.ones(2)
      >>> w0 = jnp.zeros(2)
      >>> F = l2sp_objective(apply, w0 + 1.0, w0, X, y, s, 2.0)
      >>> bool(jnp.isclose(F, (jax.nn.softplus(-1.0) + jax.nn.softplus(1.0)) / 2 + 2.0))
      True
    """
    return data_term(
        apply, w, w0, X, y, sample_weights, linear=linear, scale=scale
    ) + 0.5 * lam * jnp.sum((w - w0) ** 2)


def l2sp_grad(
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
) -> jax.Array:
    r"""``grad F_s(w)``: the gradient of :func:`l2sp_objective` in ``w`` (the one gradient of
    every GD step, stopping rule and Hessian-vector product of the real fine-tuning).

    Example:
      >>> apply = lambda w, x: w @ x
      >>> X, y, w0 = jnp.eye(2), jnp.array([1.0, -1.0]), jnp.zeros(2)
      >>> l2sp_grad(apply, w0, w0, X, y, jnp.ones(2), 0.5).tolist()  # -y_i sigma(0) / 2
      [-0.25, 0.25]
    """
    return jax.grad(
        lambda v: l2sp_objective(
            apply, v, w0, X, y, sample_weights, lam, linear=linear, scale=scale
        )
    )(w)
