r"""Optimizer steps of ``K`` linear heads: the state, ``init`` and one ``step`` (GD, optax, NGD).

One run is :func:`init` + :func:`step` over an explicit :class:`HeadState`. ``"gd"``,
``"momentum"`` and ``"adam"`` turn the gradient of the weighted mean loss into a direction with
an optax transformation (:func:`optimizer_transform`); ``"ngd"`` is normalized GD,
``w <- w - lr grad F / F`` (:func:`normalized_weights`), computed in the log domain. The learning
rate and sample weights are traced; the loss and optimizer are static.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from stabtheory.linear_heads.losses import dloss_abs, log_dloss, log_loss

__all__ = [
    "NORMALIZED_OPTIMIZERS",
    "OPTIMIZERS",
    "HeadState",
    "init",
    "normalized_weights",
    "optimizer_transform",
    "step",
]

#: Every optimizer of the head trainer.
OPTIMIZERS = ("gd", "momentum", "adam", "ngd")
#: Optimizers whose step is normalized by the loss (computed in the log domain by :func:`step`);
#: the others turn the gradient into a direction with an optax transformation.
NORMALIZED_OPTIMIZERS = ("ngd",)


def optimizer_transform(
    optimizer: str, *, momentum: float = 0.9, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """The optax transformation that turns a gradient into a direction (without the step size).

    The learning rate is applied by :func:`step` as a traced per-run scalar, so a learning-rate
    sweep never recompiles: ``w <- w - lr * direction``. For ``"gd"`` this is plain gradient
    descent, the algorithm of Theorems H-1, H-2 and C-1. ``"ngd"`` (normalized GD, Theorem
    H-3) divides the gradient by the loss, which :func:`step` does in the log domain from the
    margins (:func:`normalized_weights`); its transformation is the identity (no state).
    """
    if optimizer in ("gd", "ngd"):
        return optax.identity()
    if optimizer == "momentum":
        return optax.trace(decay=momentum)
    if optimizer == "adam":
        return optax.scale_by_adam(b1=b1, b2=b2, eps=eps)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")


class HeadState(NamedTuple):
    """State of one run.

    Attributes:
      w: head weights, shape (K, d).
      opt_state: optax state of :func:`optimizer_transform`.
      dloss_max: running max over the steps taken so far of ``max_{i: s_i > 0} |l'(w . z_i)|``
        over all heads; the measured Lipschitz/smoothness scale used by Theorem C-1 for the
        exponential loss (which is not globally Lipschitz). It is the same quantity for every
        optimizer (a property of the visited weights, not of the step): under ``"ngd"`` it
        still records ``|l'|``, which underflows to 0 at large margins while the normalized
        step itself does not.
    """

    w: jax.Array
    opt_state: optax.OptState
    dloss_max: jax.Array


def init(w0: jax.Array, *, optimizer: str = "gd") -> HeadState:
    """Initial state from the starting weights ``w0`` of shape (K, d)."""
    tx = optimizer_transform(optimizer)
    return HeadState(w0, tx.init(w0), jnp.zeros((), w0.dtype))


def normalized_weights(margins: jax.Array, sample_weights: jax.Array, loss: str) -> jax.Array:
    r"""Per-sample weights ``q`` of the normalized GD step, from margins (K, n), in the log domain.

    Normalized GD on the run's objective ``F(W) = (1/K) sum_k F_s(w_k)`` steps
    ``w_k <- w_k - lr * grad_{w_k} F / F = w_k + lr * sum_i q_{ki} z_i`` with

    .. math::
        q_{ki} = \frac{s_i\, |\ell'(w_k\cdot z_i)|}{\sum_{k', j} s_j\, \ell(w_{k'}\cdot z_j)}
        = \exp\Big(\log s_i + \log|\ell'(m_{ki})| - \operatorname{logsumexp}_{k', j}
        \big(\log s_j + \log \ell(m_{k'j})\big)\Big)

    (the factors ``1/K`` and ``1/sum s`` cancel, so the mean and the sum loss give the same
    step). A zero weight is ``log s_i = -inf``: that sample gets ``q = 0`` exactly. For the
    exponential loss ``|l'| = l``, so ``q`` is ``softmax(-m + log s)`` over heads and samples
    (Theorem H-3, one head: ``q(s) = softmax(-Z w(s))``); for the logistic loss ``|l'| < l``
    and ``q`` sums to less than 1 (the same normalized step, ``grad F / F``). No margin is
    exponentiated raw: every ``q`` is at most 1, finite at margins of any size and sign.

    Example:
      >>> normalized_weights(jnp.array([[1e4, 1e4 + 1.0]]), jnp.array([1.0, 1.0]),
      ...                    "exponential").round(6).tolist()
      [[0.731059, 0.268941]]
    """
    log_s = jnp.log(sample_weights)
    log_norm = jax.nn.logsumexp(log_loss(margins, loss) + log_s)
    return jnp.exp(log_dloss(margins, loss) + log_s - log_norm)


def step(
    state: HeadState,
    Z: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array,
    *,
    loss: str,
    optimizer: str = "gd",
) -> HeadState:
    r"""One optimizer step on the weighted mean loss of ``K`` heads.

    .. math::
        \nabla_{w_k} \tfrac1K \sum_k F_s(w_k) = -\frac{1}{K \sum_i s_i}\sum_i s_i
        |\ell'(w_k\cdot z_i)|\, z_i ,

    with ``|l'|`` from :func:`dloss_abs` (one transcendental per sample). ``"ngd"`` steps
    ``w <- w - lr grad F / F`` with ``F`` the objective of all ``K`` heads, from
    :func:`normalized_weights` (log domain).

    Args:
      state: the run's :class:`HeadState`.
      Z: signed points ``y_i x_i``, shape (n, d).
      sample_weights: non-negative weights, shape (n,).
      lr: step size (a traced scalar).
      loss: ``"exponential"`` or ``"logistic"`` (static).
      optimizer: ``"gd"``, ``"momentum"``, ``"adam"`` or ``"ngd"`` (static).

    Returns:
      The next state.
    """
    w = state.w
    K = w.shape[0]
    margins = w @ Z.T  # (K, n)
    # |l'| decreases in the margin for both losses, so its max over the samples in the set is
    # |l'| at the smallest margin: one masked min and one scalar transcendental per step.
    m_min = jnp.min(jnp.where(sample_weights > 0, margins, jnp.inf))
    dloss_max = jnp.maximum(state.dloss_max, dloss_abs(m_min, loss))
    if optimizer in NORMALIZED_OPTIMIZERS:
        q = normalized_weights(margins, sample_weights, loss)  # (K, n)
        return HeadState(w + lr * (q @ Z), state.opt_state, dloss_max)
    g = dloss_abs(margins, loss) * sample_weights  # s_i |l'(m_i)|, (K, n)
    grad = -(g @ Z) / (K * jnp.sum(sample_weights))  # (K, d)
    tx = optimizer_transform(optimizer)
    direction, opt_state = tx.update(grad, state.opt_state, w)
    return HeadState(w - lr * direction, opt_state, dloss_max)
