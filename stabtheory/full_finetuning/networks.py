"""Smooth flax nnx backbones (MLP encoder, decoder, autoencoder, classifier), flat-weight functions.

Every network is float64 and, through :func:`as_function`, a pure function of one flat
parameter vector; :class:`Architecture` names a backbone and builds it from a seed.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.flatten_util import ravel_pytree

__all__ = [
    "ACTIVATIONS",
    "Architecture",
    "Classifier",
    "DenoisingAutoencoder",
    "MLPDecoder",
    "MLPEncoder",
    "as_function",
    "check_activation",
    "check_model",
    "classifier_functions",
]

#: Smooth activations (a second-order Taylor model needs a twice-differentiable network).
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
}

# Tags folded into the PRNG key of ``init_seed``, one per use (pre-training uses 3 and 4).
_TAG_ENCODER, _TAG_DECODER, _TAG_HEAD = range(3)


def check_model(apply: Callable, w, X) -> None:
    """Check up front that ``apply(w, x)`` takes one row of ``X`` and returns one logit (a
    scalar), or raise :class:`~stabtheory.errors.InvalidArgumentError` naming ``model`` and
    what is wrong (a wrong input width, an output of shape (1,) or (2,)). Shapes only: nothing
    is computed (``jax.eval_shape``).

    Example:
      >>> check_model(lambda w, x: w @ x, jnp.zeros(3), np.zeros((5, 3)))
      >>> try:
      ...     check_model(lambda w, x: (w @ x)[None], jnp.zeros(3), np.zeros((5, 3)))
      ... except ValueError as err:
      ...     print(str(err)[:45])
      model must return one logit per input (a scal
    """
    from stabtheory.errors import InvalidArgumentError

    X = np.asarray(X)
    if X.ndim != 2:
        raise InvalidArgumentError(f"X must be a 2-D array (n, d), got shape {X.shape}.")
    try:
        out = jax.eval_shape(apply, w, jax.ShapeDtypeStruct(X.shape[1:], jnp.float64))
    except Exception as err:  # the model cannot take an input of this width
        raise InvalidArgumentError(
            f"model cannot be applied to one input of X (width {X.shape[1]}): "
            f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        ) from err
    if getattr(out, "shape", None) != ():
        raise InvalidArgumentError(
            f"model must return one logit per input (a scalar), got shape "
            f"{getattr(out, 'shape', type(out).__name__)}; squeeze its output."
        )


def check_activation(activation: str) -> None:
    """Raise ``ValueError`` unless ``activation`` is a key of :data:`ACTIVATIONS`."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {tuple(ACTIVATIONS)} (smooth, as the Taylor model "
            f"needs), got {activation!r}."
        )


def _linear(a: int, b: int, rngs: nnx.Rngs, **kwargs) -> nnx.Linear:
    return nnx.Linear(a, b, param_dtype=jnp.float64, dtype=jnp.float64, rngs=rngs, **kwargs)


class MLPEncoder(nnx.Module):
    r"""MLP feature extractor ``phi(x) = act(W_L ... act(W_1 x + b_1) ... + b_L)``.

    Every layer, the last one included, is followed by the activation, so tanh features lie
    in ``[-1, 1]^features``. Weights are float64, LeCun-normal initialised (flax default),
    biases zero.

    Args:
      d_in: input dimension.
      hidden: widths of the hidden layers.
      features: feature dimension ``k``.
      activation: ``"tanh"`` or ``"gelu"`` (exact, erf-based); both smooth.
      rngs: the nnx PRNG streams used for the initialisation.

    Example:
      >>> enc = MLPEncoder(4, (8,), 3, rngs=nnx.Rngs(0))
      >>> enc(jnp.ones(4)).shape
      (3,)
    """

    def __init__(
        self,
        d_in: int,
        hidden: Sequence[int] = (32, 32),
        features: int = 8,
        *,
        activation: str = "tanh",
        rngs: nnx.Rngs,
    ):
        check_activation(activation)
        dims = (int(d_in), *(int(h) for h in hidden), int(features))
        self.d_in, self.features, self.activation = dims[0], dims[-1], activation
        self.layers = nnx.List([_linear(a, b, rngs) for a, b in itertools.pairwise(dims)])

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for layer in self.layers:
            x = act(layer(x))
        return x


class MLPDecoder(nnx.Module):
    """MLP from features back to inputs: activation after every layer but the last (linear).

    Args:
      features: feature dimension ``k`` (input of the decoder).
      hidden: widths of the hidden layers.
      d_out: output dimension (the encoder's ``d_in``).
      activation: ``"tanh"`` or ``"gelu"``.
      rngs: nnx PRNG streams.
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int],
        d_out: int,
        *,
        activation: str = "tanh",
        rngs: nnx.Rngs,
    ):
        check_activation(activation)
        dims = (int(features), *(int(h) for h in hidden), int(d_out))
        self.activation = activation
        self.layers = nnx.List([_linear(a, b, rngs) for a, b in itertools.pairwise(dims)])

    def __call__(self, z: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            z = act(layer(z))
        return self.layers[-1](z)


class DenoisingAutoencoder(nnx.Module):
    """``decoder(encoder(x))``: the pre-training network (its encoder is the backbone)."""

    def __init__(self, encoder: MLPEncoder, decoder: MLPDecoder):
        self.encoder, self.decoder = encoder, decoder

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decoder(self.encoder(x))


class Classifier(nnx.Module):
    r"""Encoder + linear head: the logit ``f(x) = v . phi(x) + c`` (one logit, with bias).

    The head is initialised deterministically from ``rngs``: kernel entries
    ``N(0, head_scale^2 / features)``, bias 0. A random (not zero) head keeps the encoder
    block of the per-sample gradients and Gauss-Newton matrices nonzero at ``w0``.

    Args:
      encoder: the (pre-trained) backbone; shared by reference, not copied.
      rngs: nnx PRNG streams for the head.
      head_scale: standard deviation of the head kernel times ``sqrt(features)``.

    Example:
      >>> clf = Classifier(MLPEncoder(4, (8,), 3, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
      >>> clf(jnp.ones(4)).shape, clf(jnp.ones((5, 4))).shape
      ((), (5,))
    """

    def __init__(self, encoder: MLPEncoder, *, rngs: nnx.Rngs, head_scale: float = 1.0):
        k = encoder.features
        self.encoder = encoder
        self.head = _linear(
            k, 1, rngs, kernel_init=nnx.initializers.normal(stddev=head_scale / math.sqrt(k))
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.encoder(x))[..., 0]


def as_function(
    model: nnx.Module,
) -> tuple[Callable[[jax.Array, jax.Array], jax.Array], np.ndarray, Callable[[jax.Array], Any]]:
    """A module as a pure function of one flat float64 parameter vector.

    The ``nnx.Param`` state is cast to float64 and flattened with ``ravel_pytree`` (keys in
    sorted order: a classifier's encoder layers first, then its head's ``bias`` and
    ``kernel``); any other state (none for the modules here) is kept fixed.

    Args:
      model: an nnx module (it is not modified).

    Returns:
      ``(apply, w, unravel)``: ``apply(w, x) = model(x)`` with the parameters ``w`` (pure; jit,
      vmap and grad work in ``w`` and ``x``), the flat float64 parameters ``w`` (numpy, (p,))
      and ``unravel`` (flat vector -> ``nnx.State`` of the parameters).

    Example:
      >>> clf = Classifier(MLPEncoder(4, (8,), 3, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
      >>> apply, w, unravel = as_function(clf)
      >>> w.shape, bool(jnp.allclose(apply(w, jnp.ones(4)), clf(jnp.ones(4))))
      ((71,), True)
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    w, unravel = ravel_pytree(params)

    def apply(w: jax.Array, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, unravel(w), rest)(x)

    return apply, np.asarray(w), unravel


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A backbone ``d_in -> hidden -> features`` with a smooth activation (hashable).

    Attributes:
      d_in: input dimension.
      hidden: widths of the hidden layers (the decoder mirrors them).
      features: feature dimension ``k``.
      activation: a key of :data:`ACTIVATIONS`.

    Example:
      >>> arch = Architecture(4, (8,), 3)
      >>> as_function(arch.classifier(0))[1].shape
      (71,)
    """

    d_in: int
    hidden: tuple[int, ...]
    features: int
    activation: str = "tanh"

    def __post_init__(self):
        check_activation(self.activation)
        object.__setattr__(self, "d_in", int(self.d_in))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "features", int(self.features))

    def autoencoder(self, init_seed: int) -> DenoisingAutoencoder:
        """The denoising autoencoder initialised from ``init_seed`` (encoder and mirrored
        decoder from their own fold-ins of ``jax.random.key(init_seed)``)."""
        key = jax.random.key(init_seed)
        enc = MLPEncoder(
            self.d_in,
            self.hidden,
            self.features,
            activation=self.activation,
            rngs=nnx.Rngs(jax.random.fold_in(key, _TAG_ENCODER)),
        )
        dec = MLPDecoder(
            self.features,
            self.hidden[::-1],
            self.d_in,
            activation=self.activation,
            rngs=nnx.Rngs(jax.random.fold_in(key, _TAG_DECODER)),
        )
        return DenoisingAutoencoder(enc, dec)

    def classifier(
        self, init_seed: int, encoder: MLPEncoder | None = None, *, head_scale: float = 1.0
    ) -> Classifier:
        """``encoder`` (default: the one of :meth:`autoencoder`) topped with a head
        initialised from ``init_seed``."""
        if encoder is None:
            encoder = self.autoencoder(init_seed).encoder
        rngs = nnx.Rngs(jax.random.fold_in(jax.random.key(init_seed), _TAG_HEAD))
        return Classifier(encoder, rngs=rngs, head_scale=head_scale)


@functools.lru_cache(maxsize=32)
def classifier_functions(arch: Architecture) -> tuple[Callable, Callable, Any]:
    """``(apply, unravel, graphdef)`` of an architecture's classifier, cached: testbeds of one
    architecture share these function objects, so jitted code keyed on them compiles once.

    Example:
      >>> apply, unravel, graphdef = classifier_functions(Architecture(32, (32, 32), 8))
      >>> sum(a.size for a in jax.tree.leaves(unravel(jnp.zeros(2385))))
      2385
    """
    clf = arch.classifier(0)
    apply, _, unravel = as_function(clf)
    return apply, unravel, nnx.graphdef(clf)
