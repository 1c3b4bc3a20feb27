r"""Margin losses of a linear head in the log domain: ``log l``, ``log |l'|``, ``|l'|``, ``log F``.

``l(m) = exp(-m)`` (exponential) or ``log(1 + e^{-m})`` (logistic) of the margin
``m = w . z_i``. Every function is exact for margins of any size and sign: no margin is
clamped, ``|l'|`` underflows to exactly 0 at large margins (never NaN), and the weighted mean
loss ``F_s(w) = sum_i s_i l(w . z_i) / sum_i s_i`` is returned as its log via log-sum-exp.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["LOSSES", "check_loss", "dloss_abs", "log_dloss", "log_loss", "log_mean_loss"]

#: The margin losses of the head trainer.
LOSSES = ("exponential", "logistic")


def check_loss(loss: str) -> None:
    """Raise ``ValueError`` unless ``loss`` is one of :data:`LOSSES`."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")


def log_loss(margins: jax.Array, loss: str) -> jax.Array:
    r"""``log l(m)`` per margin, exact for large margins of either sign.

    Exponential: ``l(m) = exp(-m)``, so ``log l = -m``. Logistic: ``l(m) = log(1 + e^{-m})``;
    for ``m > 20``, ``log l = -m + log1p(-e^{-m}/2)`` to float64 precision (the next term is
    below 1e-18 relative), else ``log(softplus(-m))``.

    Example:
      >>> float(log_loss(jnp.array(1000.0), "logistic"))
      -1000.0
    """
    check_loss(loss)
    if loss == "exponential":
        return -margins
    big = margins > 20.0
    safe_small = jnp.where(big, 0.0, margins)
    safe_big = jnp.where(big, margins, 30.0)
    return jnp.where(
        big,
        -safe_big + jnp.log1p(-0.5 * jnp.exp(-safe_big)),
        jnp.log(jax.nn.softplus(-safe_small)),
    )


def log_dloss(margins: jax.Array, loss: str) -> jax.Array:
    """``log |l'(m)|``: ``-m`` (exponential) or ``-softplus(m)`` (logistic, log sigmoid(-m))."""
    check_loss(loss)
    if loss == "exponential":
        return -margins
    return -jax.nn.softplus(margins)


def dloss_abs(margins: jax.Array, loss: str) -> jax.Array:
    r"""``|l'(m)|`` per margin with one transcendental: ``exp(-m)`` or ``sigmoid(-m)``.

    Exponential: ``|l'(m)| = e^{-m}``. Logistic: ``|l'(m)| = 1 / (1 + e^{m})``, computed as
    ``jax.nn.sigmoid(-m)`` (a single ``logistic`` op, one exponential). Both equal
    ``exp(log_dloss(m))`` to a few ulps where the result is a normal float, and decrease in
    ``m``. For large positive margins they underflow to exactly ``0`` (never NaN, no
    clamping); for ``m -> -inf`` the logistic one tends to exactly ``1`` and the exponential
    one overflows to ``inf`` like ``e^{-m}`` itself.

    Example:
      >>> dloss_abs(jnp.array([0.0, 1e3, -1e3]), "logistic").tolist()
      [0.5, 0.0, 1.0]
      >>> dloss_abs(jnp.array([0.0, 1e3]), "exponential").tolist()
      [1.0, 0.0]
    """
    check_loss(loss)
    if loss == "exponential":
        return jnp.exp(-margins)
    return jax.nn.sigmoid(-margins)


def log_mean_loss(margins: jax.Array, sample_weights: jax.Array, loss: str) -> jax.Array:
    """``log F_s(w)`` from margins ``(..., n)`` by log-sum-exp; weights need not sum to one."""
    log_s = jnp.log(sample_weights)
    return jax.nn.logsumexp(log_loss(margins, loss) + log_s, axis=-1) - jnp.log(
        jnp.sum(sample_weights, axis=-1)
    )
