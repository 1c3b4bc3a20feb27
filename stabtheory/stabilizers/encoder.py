r"""A testbed's encoder and pre-trained decoder as pure functions of their flat weights.

``testbed.w0 = concat(w_enc, [c, v])``: :func:`split_weights` splits it,
:func:`encoder_function` gives ``phi(w_enc, X)``, and :func:`pretrained_autoencoder` /
:func:`decoder_functions` the denoising autoencoder that SURT continues to train. The function
objects are cached per architecture, so jitted programs keyed on them compile once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.flatten_util import ravel_pytree

from stabtheory import full_finetuning as ff

__all__ = [
    "AutoencoderFunctions",
    "EncoderFunctions",
    "decoder_functions",
    "encoder_function",
    "pretrained_autoencoder",
    "split_weights",
]


class EncoderFunctions(NamedTuple):
    """Pure functions of a testbed architecture (shared by testbeds of that architecture).

    Attributes:
      phi: ``phi(w_enc, X) -> features``, X of shape (..., d_in), features (..., k).
      p_encoder: number of encoder weights.
      features: feature dimension ``k``.
    """

    phi: Callable[[jax.Array, jax.Array], jax.Array]
    p_encoder: int
    features: int


class AutoencoderFunctions(NamedTuple):
    """The pre-trained decoder as a pure function, and its weights.

    Attributes:
      decode: ``decode(w_dec, features) -> reconstruction`` (batched).
      w_dec: the pre-trained decoder weights (flat).
    """

    decode: Callable[[jax.Array, jax.Array], jax.Array]
    w_dec: np.ndarray


_ENCODERS: dict[Any, EncoderFunctions] = {}
_DECODERS: dict[Any, Callable] = {}


def encoder_function(testbed: ff.Testbed) -> EncoderFunctions:
    r"""The testbed's encoder ``phi(w_enc, X)`` as a pure function of the flat encoder weights.

    ``testbed.w0 = concat(w_enc, [c, v])`` with the head (bias ``c``, kernel ``v``) in
    ``info["head_slice"]`` (the last ``k + 1`` entries), so
    ``apply(w0, x) = c + v . phi(w0[:p_enc], x)``. The function object is cached per
    architecture (keyed on ``testbed.apply``, which testbeds of one architecture share), so
    jitted programs keyed on it compile once.

    Example:
      >>> from stabtheory.full_finetuning import TestbedConfig, make_testbed
      >>> tb = make_testbed(TestbedConfig(n=8, n_test=8, pretrain_steps=10, d_in=8,
      ...                                 hidden=(8,), features=4))
      >>> enc = encoder_function(tb)
      >>> a, b = tb.info["head_slice"]
      >>> f = enc.phi(tb.w0[:a], tb.X)
      >>> f.shape, bool(jnp.allclose(tb.w0[a] + f @ tb.w0[a + 1 : b],
      ...                            jax.vmap(tb.apply, (None, 0))(tb.w0, tb.X)))
      ((8, 4), True)
    """
    cached = _ENCODERS.get(testbed.apply)
    if cached is not None:
        return cached
    a, b = (int(i) for i in testbed.info["head_slice"])
    if b != testbed.p:
        raise ValueError(f"expected the head at the end of w0, got head_slice {(a, b)}.")
    graphdef, unravel, k = testbed.graphdef, testbed.unravel, b - a - 1

    def phi(w_enc: jax.Array, X: jax.Array) -> jax.Array:
        w = jnp.concatenate([w_enc, jnp.zeros((b - a,), w_enc.dtype)])
        return nnx.merge(graphdef, unravel(w)).encoder(X)

    enc = EncoderFunctions(phi, a, k)
    _ENCODERS[testbed.apply] = enc
    return enc


def split_weights(testbed: ff.Testbed) -> tuple[np.ndarray, np.ndarray]:
    """``(w_enc, head)``: the testbed's pre-trained encoder block of ``w0`` and its head."""
    a, _ = testbed.info["head_slice"]
    return np.asarray(testbed.w0[:a]), np.asarray(testbed.w0[a:])


def pretrained_autoencoder(testbed: ff.Testbed) -> ff.DenoisingAutoencoder:
    r"""The denoising autoencoder whose encoder is the testbed's pre-trained encoder.

    Taken from the testbed itself (:attr:`stabtheory.full_finetuning.Testbed.pretrained`, a fresh
    copy each call) and checked: its encoder weights must equal ``testbed.w0``'s encoder block
    exactly.

    Raises:
      ValueError: the testbed carries no pre-trained autoencoder (built by hand) or one whose
        encoder is not the testbed's; pass ``autoencoder=`` to
        :func:`stabtheory.stabilizers.surt` instead.
    """
    if testbed.pretrained is None:
        raise ValueError(
            f"testbed {testbed.name!r} carries no pre-trained autoencoder (built by hand?); "
            "pass autoencoder= explicitly."
        )
    ae = testbed.pretrained()
    w_enc = np.asarray(ravel_pytree(nnx.state(ae.encoder, nnx.Param))[0])
    w0_enc = split_weights(testbed)[0]
    if w_enc.shape != w0_enc.shape or not np.array_equal(w_enc, w0_enc):
        raise ValueError(
            f"the pre-trained autoencoder of testbed {testbed.name!r} does not match its "
            "encoder weights; pass autoencoder= explicitly."
        )
    return ae


def decoder_functions(
    testbed: ff.Testbed, autoencoder: ff.DenoisingAutoencoder
) -> AutoencoderFunctions:
    """The autoencoder's decoder as a pure function (one function object per architecture)."""
    apply, w_dec, _ = ff.as_function(autoencoder.decoder)
    decode = _DECODERS.setdefault(testbed.apply, apply)
    return AutoencoderFunctions(decode, w_dec)
