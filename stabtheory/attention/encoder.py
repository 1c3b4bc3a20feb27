"""The attention testbed's network: a post-LayerNorm transformer encoder with a ``[CLS]`` position
(flax nnx), its pre-training heads, its fine-tuning classifier, and flat-weight functions.

The encoder follows BERT (Devlin et al. 2019): token + learned position embeddings, a
LayerNorm, then ``layers`` blocks ``x = LN(x + MHA(x)); x = LN(x + MLP(x))`` (post-LN, GELU
MLP), on ``[CLS] t_1 ... t_L``. The pooler is ``tanh(W h_[CLS] + b)``; pre-training reads
masked tokens from every position (:class:`PretrainModel`) and the sequence's genre from the
pooler; fine-tuning puts a fresh linear head on the pooler (:class:`Classifier`, two logits,
kernel ``N(0, 0.02^2)`` as BERT's).

The testbed trains in float32 (every parameter is created float32 and stays float32 although
stabtheory enables x64): it is a testbed for the phenomenon of failed fine-tuning runs, and
float32 keeps it fast. ``EncoderConfig(dtype="float64")`` builds the same network in float64
for the theory checks (:mod:`stabtheory.attention.theory`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.flatten_util import ravel_pytree

__all__ = [
    "Classifier",
    "Encoder",
    "EncoderConfig",
    "PretrainModel",
    "as_function",
    "classifier_functions",
]

F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """The encoder's shape (hashable).

    Attributes:
      vocab: ordinary tokens ``V``; ``[CLS]`` is id ``V`` and ``[MASK]`` id ``V + 1``.
      length: tokens per sequence ``L`` (positions: ``L + 1`` with ``[CLS]``).
      width: model width ``d``.
      heads: attention heads.
      layers: transformer blocks.
      mlp: hidden width of each block's MLP.
      genres: outputs of the pre-training sequence head.
      dtype: parameter and computation dtype, ``"float32"`` (the testbed) or ``"float64"``
        (the theory checks).
    """

    vocab: int = 192
    length: int = 16
    width: int = 32
    heads: int = 4
    layers: int = 2
    mlp: int = 64
    genres: int = 4
    dtype: str = "float32"

    def __post_init__(self):
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}.")

    @property
    def jnp_dtype(self):
        """The dtype as a numpy dtype."""
        return np.dtype(self.dtype)

    @property
    def cls_id(self) -> int:
        """The ``[CLS]`` token id."""
        return self.vocab

    @property
    def mask_id(self) -> int:
        """The ``[MASK]`` token id."""
        return self.vocab + 1


def _linear(a: int, b: int, rngs: nnx.Rngs, dtype=F32, **kwargs) -> nnx.Linear:
    return nnx.Linear(a, b, param_dtype=dtype, dtype=dtype, rngs=rngs, **kwargs)


class Block(nnx.Module):
    """One post-LN block: ``x = LN(x + MHA(x)); x = LN(x + W2 gelu(W1 x))``."""

    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        d, dt = cfg.width, cfg.jnp_dtype
        self.attn = nnx.MultiHeadAttention(
            cfg.heads,
            d,
            dtype=dt,
            param_dtype=dt,
            decode=False,
            deterministic=True,
            keep_rngs=False,
            rngs=rngs,
        )
        self.ln1 = nnx.LayerNorm(d, epsilon=1e-6, dtype=dt, param_dtype=dt, rngs=rngs)
        self.fc1 = _linear(d, cfg.mlp, rngs, dt)
        self.fc2 = _linear(cfg.mlp, d, rngs, dt)
        self.ln2 = nnx.LayerNorm(d, epsilon=1e-6, dtype=dt, param_dtype=dt, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.fc2(jax.nn.gelu(self.fc1(x))))


class Encoder(nnx.Module):
    """Embeddings, LayerNorm and the blocks; ``encoder(tokens)`` maps (..., L) ordinary or
    ``[MASK]`` ids to hidden states (..., L + 1, d), position 0 the prepended ``[CLS]``.

    Example:
      >>> enc = Encoder(EncoderConfig(), rngs=nnx.Rngs(0))
      >>> enc(jnp.zeros((3, 16), jnp.int32)).shape
      (3, 17, 32)
    """

    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        dt = cfg.jnp_dtype
        self.tokens = nnx.Embed(cfg.vocab + 2, cfg.width, param_dtype=dt, dtype=dt, rngs=rngs)
        init = nnx.initializers.normal(0.02)
        self.positions = nnx.Param(init(rngs.params(), (cfg.length + 1, cfg.width), dt))
        self.ln = nnx.LayerNorm(cfg.width, epsilon=1e-6, dtype=dt, param_dtype=dt, rngs=rngs)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.layers)])

    def __call__(self, tokens: jax.Array) -> jax.Array:
        cls = jnp.full((*tokens.shape[:-1], 1), self.cfg.cls_id, tokens.dtype)
        x = self.tokens(jnp.concatenate([cls, tokens], axis=-1)) + self.positions[...]
        x = self.ln(x)
        for block in self.blocks:
            x = block(x)
        return x


class Pooler(nnx.Module):
    """``tanh(W h_[CLS] + b)``, BERT's pooler."""

    def __init__(self, width: int, *, rngs: nnx.Rngs, dtype=F32):
        self.dense = _linear(width, width, rngs, dtype)

    def __call__(self, hidden: jax.Array) -> jax.Array:
        return jnp.tanh(self.dense(hidden[..., 0, :]))


class PretrainModel(nnx.Module):
    """Encoder + pooler + the pre-training heads: ``model(tokens) -> (token logits (..., L, V),
    genre logits (..., G))`` (the token logits of the positions after ``[CLS]``)."""

    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        self.encoder = Encoder(cfg, rngs=rngs)
        self.pooler = Pooler(cfg.width, rngs=rngs, dtype=cfg.jnp_dtype)
        self.mlm = _linear(cfg.width, cfg.vocab, rngs, cfg.jnp_dtype)
        self.genre = _linear(cfg.width, cfg.genres, rngs, cfg.jnp_dtype)

    def __call__(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        hidden = self.encoder(tokens)
        return self.mlm(hidden[..., 1:, :]), self.genre(self.pooler(hidden))


class Classifier(nnx.Module):
    """Encoder + pooler + a fresh linear head with two logits (kernel ``N(0, 0.02^2)``, bias 0):
    the fine-tuned network. ``encoder`` and ``pooler`` are shared by reference.

    Example:
      >>> pre = PretrainModel(EncoderConfig(), rngs=nnx.Rngs(0))
      >>> clf = Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(1))
      >>> clf(jnp.zeros((5, 16), jnp.int32)).shape
      (5, 2)
    """

    def __init__(self, encoder: Encoder, pooler: Pooler, *, rngs: nnx.Rngs):
        self.encoder, self.pooler = encoder, pooler
        width, dt = encoder.cfg.width, encoder.cfg.jnp_dtype
        self.head = _linear(width, 2, rngs, dt, kernel_init=nnx.initializers.normal(0.02))

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return self.head(self.pooler(self.encoder(tokens)))


def as_function(model: nnx.Module) -> tuple[Callable, np.ndarray, Callable[[jax.Array], Any]]:
    """A module as a pure function of one flat parameter vector (the parameters' dtype:
    float32 for the testbed, float64 for a ``dtype="float64"`` model).

    Returns:
      ``(apply, w, unravel)``: ``apply(w, tokens) = model(tokens)`` (pure: jit, vmap and grad
      work in ``w``), the flat parameters (numpy, (p,)) and ``unravel`` (flat vector
      -> ``nnx.State`` of the parameters).
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    dtype = jnp.result_type(*jax.tree.leaves(params))
    w, unravel = ravel_pytree(jax.tree.map(lambda a: jnp.asarray(a, dtype), params))

    def apply(w: jax.Array, tokens: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, unravel(w), rest)(tokens)

    return apply, np.asarray(w), unravel


@functools.lru_cache(maxsize=8)
def classifier_functions(cfg: EncoderConfig) -> tuple[Callable, Callable]:
    """``(apply, unravel)`` of the :class:`Classifier` of ``cfg``, cached: every fine-tuning of
    one shape shares these function objects, so jitted code keyed on them compiles once."""
    pre = PretrainModel(cfg, rngs=nnx.Rngs(0))
    apply, _, unravel = as_function(Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(1)))
    return apply, unravel
