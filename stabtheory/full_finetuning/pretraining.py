"""Self-supervised denoising pre-training of a backbone with optax Adam, with snapshots.

:func:`pretrain` runs it on a given autoencoder and source pool; :func:`pretrained_autoencoders`
is the cached run a testbed starts from (once per source pool, architecture, steps, config
and seed).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

from stabtheory.full_finetuning.networks import Architecture, DenoisingAutoencoder
from stabtheory.full_finetuning.tasks import TASKS

__all__ = [
    "PretrainConfig",
    "PretrainResult",
    "pretrain",
    "pretrained_autoencoders",
    "validate_steps",
]

# Tags folded into the PRNG key of the seed (the network initialisation uses 0, 1 and 2).
_TAG_BATCHES, _TAG_EVAL_NOISE = 3, 4


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Hyperparameters of the denoising pre-training (hashable: it keys the caches).

    Attributes:
      lr: Adam learning rate.
      batch_size: minibatch size (sampled with replacement from the source pool).
      noise: standard deviation of the Gaussian corruption of the inputs.
    """

    lr: float = 2e-3
    batch_size: int = 128
    noise: float = 0.3


@dataclasses.dataclass(frozen=True, eq=False)
class PretrainResult:
    """Snapshots of a pre-training run.

    Attributes:
      steps: the checkpoint steps, (C,) int.
      states: the autoencoder's ``nnx.Param`` state after ``steps[c]`` steps, one per c.
      recon_loss: denoising reconstruction loss at each checkpoint on the whole source pool
        with one fixed noise draw (the same for every checkpoint), (C,) float64.
      graphdef: the autoencoder's graph definition (``nnx.merge(graphdef, states[c])``).
    """

    steps: np.ndarray
    states: tuple
    recon_loss: np.ndarray
    graphdef: Any

    def autoencoder(self, c: int) -> DenoisingAutoencoder:
        """The autoencoder at checkpoint ``c`` (a fresh module)."""
        return nnx.merge(self.graphdef, self.states[c])


def validate_steps(steps: Sequence[int]) -> np.ndarray:
    """Checkpoint steps as an int64 array; ``ValueError`` unless non-negative and
    non-decreasing (and not empty)."""
    steps = np.asarray(steps, dtype=np.int64).reshape(-1)
    if steps.size == 0 or steps[0] < 0 or np.any(np.diff(steps) < 0):
        raise ValueError(f"checkpoint steps must be non-negative and non-decreasing, got {steps}.")
    return steps


def _recon(graphdef, unravel, rest, w, x_in, x_target):
    """Denoising reconstruction error of the autoencoder with flat weights ``w``."""
    out = nnx.merge(graphdef, unravel(w), rest)(x_in)
    return jnp.mean((out - x_target) ** 2)


@functools.lru_cache(maxsize=32)
def _pretrain_program(graphdef, config: PretrainConfig):
    """The jitted pre-training loop of one architecture and config. The parameters, data,
    noise and key are arguments, so every seed and source pool of the same shapes reuses one
    compilation (a closure over them would compile again for every call)."""
    tx = optax.adam(config.lr)

    @jax.jit
    def run(params, rest, X, eval_noise, key, starts, stops):
        w_init, unravel = ravel_pytree(params)

        def recon(w, x_in, x_target):
            return _recon(graphdef, unravel, rest, w, x_in, x_target)

        def body(t, carry):
            w, opt_state = carry
            k_idx, k_noise = jax.random.split(jax.random.fold_in(key, t))
            idx = jax.random.randint(k_idx, (config.batch_size,), 0, X.shape[0])
            xb = X[idx]
            xn = xb + config.noise * jax.random.normal(k_noise, xb.shape, jnp.float64)
            updates, opt_state = tx.update(jax.grad(recon)(w, xn, xb), opt_state, w)
            return optax.apply_updates(w, updates), opt_state

        def segment(carry, bounds):
            carry = jax.lax.fori_loop(bounds[0], bounds[1], body, carry)
            return carry, carry[0]

        _, ws = jax.lax.scan(segment, (w_init, tx.init(w_init)), (starts, stops))
        losses = jax.lax.map(lambda w: recon(w, X + eval_noise, X), ws)
        return ws, losses

    return run


def pretrain(
    autoencoder: DenoisingAutoencoder,
    X_source: np.ndarray,
    steps: Sequence[int] = (0, 100, 1000, 5000),
    *,
    config: PretrainConfig = PretrainConfig(),  # frozen, immutable
    seed: int = 0,
) -> PretrainResult:
    r"""Denoising pre-training with Adam, snapshots after each of ``steps``.

    .. math::
        \min_\theta\ \mathbb{E}_{x, \epsilon}\,
        \tfrac{1}{d}\,\| \text{dec}_\theta(\text{enc}_\theta(x + \sigma \epsilon)) - x \|^2 ,

    with minibatches of ``config.batch_size`` inputs drawn with replacement from ``X_source``
    and ``epsilon ~ N(0, I)``. Step ``t`` draws its minibatch and noise from
    ``fold_in(fold_in(key(seed), 3), t)``, so the run is deterministic given ``seed`` (same
    bits on the same machine) and a snapshot does not depend on which other checkpoints were
    asked for. The module passed in is not modified. This is a driver: it compiles its loop
    (one ``lax.scan`` over checkpoint increments with a ``fori_loop`` inside) and returns
    the snapshots.

    Args:
      autoencoder: the network; its current parameters are the start (step 0).
      X_source: unlabeled source inputs, (m, d_in).
      steps: non-decreasing checkpoint steps; 0 is the start.
      config: :class:`PretrainConfig`.
      seed: minibatches and corruption noise.

    Returns:
      A :class:`PretrainResult`.

    Example:
      >>> from stabtheory.full_finetuning import MLPDecoder, MLPEncoder, synthetic_source
      >>> ae = DenoisingAutoencoder(MLPEncoder(8, (16,), 4, rngs=nnx.Rngs(0)),
      ...                           MLPDecoder(4, (16,), 8, rngs=nnx.Rngs(1)))
      >>> res = pretrain(ae, synthetic_source(256, 8), steps=(0, 200))
      >>> bool(res.recon_loss[1] < res.recon_loss[0])
      True
    """
    steps_np = validate_steps(steps)
    X = jnp.asarray(X_source, jnp.float64)
    graphdef, params, rest = nnx.split(autoencoder, nnx.Param, ...)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    w_init, unravel = ravel_pytree(params)
    key = jax.random.fold_in(jax.random.key(seed), _TAG_BATCHES)
    eval_key = jax.random.fold_in(jax.random.key(seed), _TAG_EVAL_NOISE)
    eval_noise = config.noise * jax.random.normal(eval_key, X.shape, jnp.float64)
    starts = np.concatenate([[0], steps_np[:-1]])
    if steps_np[-1] == 0:  # nothing to train: skip the loop
        ws = jnp.broadcast_to(w_init, (len(steps_np), w_init.size))
        loss0 = _recon(graphdef, unravel, rest, w_init, X + eval_noise, X)
        losses = jnp.stack([loss0] * len(steps_np))
    else:
        run = _pretrain_program(graphdef, config)
        ws, losses = run(
            params, rest, X, eval_noise, key, jnp.asarray(starts), jnp.asarray(steps_np)
        )
    states = tuple(unravel(w) for w in ws)
    return PretrainResult(steps_np, states, np.asarray(losses, np.float64), graphdef)


@functools.lru_cache(maxsize=32)
def pretrained_autoencoders(
    task: str,
    source_kwargs: tuple[tuple[str, Any], ...],
    arch: Architecture,
    steps: tuple[int, ...],
    config: PretrainConfig,
    init_seed: int,
) -> PretrainResult:
    """:func:`pretrain` of ``arch``'s autoencoder (initialised from ``init_seed``) on a task's
    source pool, cached: it runs once per (source pool, architecture, steps, config, seed).

    Args:
      task: a key of :data:`~stabtheory.full_finetuning.TASKS`.
      source_kwargs: the task's keyword arguments that fix its source pool, as sorted
        ``(name, value)`` pairs (:attr:`~stabtheory.full_finetuning.TaskKind.source_kwargs`).
      arch: the backbone.
      steps: non-decreasing checkpoint steps.
      config: the pre-training hyperparameters.
      init_seed: network initialisation, minibatches and corruption noise.

    Returns:
      A :class:`PretrainResult` (shared by every caller with the same arguments).
    """
    X_source = TASKS[task].source_pool(source_kwargs)
    ae = arch.autoencoder(init_seed)
    return pretrain(ae, X_source, steps, config=config, seed=init_seed)
