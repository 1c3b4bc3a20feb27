"""Per-seed PRNG keys of the fine-tuning loop, and the tags that split a seed's key by use.

Seed ``s`` gets ``jax.random.key(s)``; each use folds its own tag into it
(``jax.random.fold_in(key, KeyUse.HEAD)`` draws the heads, and so on), so the uses never share
bits and a seed's results do not depend on which other seeds run beside it.
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp

__all__ = ["KeyUse", "seed_keys"]


class KeyUse(enum.IntEnum):
    """The tag folded into a seed's key for each use."""

    HEAD = 0  #: the heads' initialisation
    DATA = 1  #: the permutation of the training set in each epoch
    DROPOUT = 2  #: the dropout mask of each step
    SURT = 3  #: SURT's minibatches and corruption noise


def seed_keys(seeds: int, seed: int = 0) -> jax.Array:
    """The keys of seeds ``seed, seed + 1, ..., seed + seeds - 1`` (``jax.random.key(s)``).

    Example:
      >>> seed_keys(3, seed=5).shape
      (3,)
    """
    return jax.vmap(jax.random.key)(jnp.arange(int(seed), int(seed) + int(seeds)))
