r"""Full fine-tuning testbeds: flax nnx backbones, self-supervised pre-training, tasks, GD.

docs/theory.md section 2 studies full fine-tuning of every weight of a pre-trained network from the
pre-trained weight ``w0``. This module builds the networks and the data that the Taylor model
(:mod:`stabtheory.quadratic`) and the real leave-one-out fine-tuning are run on, and exposes
each network as a **pure function of one flat float64 parameter vector**:

.. math::
    f(w, x) = \text{head}\big(\phi_\text{enc}(x)\big) \in \mathbb{R}, \qquad
    \ell(w; (x, y)) = \operatorname{softplus}\big(-y\, f(w, x)\big), \quad y \in \{-1, +1\},

so that per-sample gradients, Hessian- or Gauss-Newton-vector products and ``vmap`` over
leave-one-out masks are plain JAX transformations of ``apply(w, x)``.

The pipeline, one way:

* **backbones** -- :class:`MLPEncoder` (``d_in -> hidden... -> features``, smooth
  activations only, since a second-order Taylor expansion needs them), :class:`MLPDecoder`
  and :class:`DenoisingAutoencoder` for pre-training, :class:`Classifier` = encoder + linear
  head (``features -> 1`` logit, with bias);
* **pre-training** -- :func:`pretrain`: denoising reconstruction of inputs from a *source*
  distribution with optax Adam, snapshots of the network at several pre-training lengths
  (deterministic given the seed);
* **tasks** -- :func:`synthetic_task` (source inputs moved by a controllable mean shift,
  labels from a rule on the latent variables) and :func:`digits_task` (scikit-learn's bundled
  8x8 digits, offline); each carries its own unlabeled source pool for pre-training;
* **testbeds** -- :func:`make_testbed` and :func:`pretrained_family` return a
  :class:`Testbed`: ``apply(w, x)``, ``w0``, the data and ``unravel``;
* **fine-tuning** -- :func:`finetune` (one run) and :func:`finetune_runs` (``jax.vmap`` of
  it over sample-weight masks and learning rates): full-batch GD on

  .. math::
      F_s(w) = \frac{\sum_i s_i\, \ell(w; z_i)}{\sum_i s_i} + \frac{\lambda}{2}\|w - w_0\|^2

  from ``w0`` (the L2-SP pull toward the pre-trained weight), with snapshots at checkpoints.

Parameters are flattened by :func:`jax.flatten_util.ravel_pytree` of the nnx ``Param`` state
(keys in sorted order: the encoder's layers first, then the head's ``bias`` and ``kernel``;
``Testbed.info["head_slice"]`` says where the head lies). Everything is float64 (importing
stabtheory enables ``jax_enable_x64``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

from stabtheory.heads import run_checkpoints

__all__ = [
    "ACTIVATIONS",
    "Classifier",
    "DenoisingAutoencoder",
    "MLPDecoder",
    "MLPEncoder",
    "PretrainConfig",
    "PretrainResult",
    "Task",
    "Testbed",
    "as_function",
    "data_term",
    "digits_task",
    "finetune",
    "finetune_runs",
    "finetune_runs_jit",
    "gd_step",
    "logistic_loss",
    "make_testbed",
    "objective",
    "pretrain",
    "pretrained_family",
    "synthetic_source",
    "synthetic_task",
    "weighted_loss",
]

F64 = jnp.float64

#: Smooth activations (a second-order Taylor model needs a twice-differentiable network).
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
}

# Tags folded into the PRNG key of ``init_seed``, one per use, so the uses never share bits.
_TAG_ENCODER, _TAG_DECODER, _TAG_HEAD, _TAG_BATCHES, _TAG_EVAL_NOISE = range(5)


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {tuple(ACTIVATIONS)} (smooth, as the Taylor model "
            f"needs), got {activation!r}."
        )


# --------------------------------------------------------------------------------------------
# Backbones


def _linear(a: int, b: int, rngs: nnx.Rngs, **kwargs) -> nnx.Linear:
    return nnx.Linear(a, b, param_dtype=F64, dtype=F64, rngs=rngs, **kwargs)


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
        _check_activation(activation)
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
        _check_activation(activation)
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

    The ``nnx.Param`` state is cast to float64 and flattened with ``ravel_pytree``; any other
    state (none for the modules here) is kept fixed.

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
    params = jax.tree.map(lambda a: jnp.asarray(a, F64), params)
    w, unravel = ravel_pytree(params)

    def apply(w: jax.Array, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, unravel(w), rest)(x)

    return apply, np.asarray(w), unravel


# --------------------------------------------------------------------------------------------
# Data: the synthetic source and task, digits


class Task(NamedTuple):
    """A downstream binary task with its unlabeled pre-training source pool.

    Attributes:
      X, y: training inputs (n, d_in) and labels (n,) in {-1, +1}, numpy float64.
      X_test, y_test: held-out inputs and labels, drawn like the training set.
      X_source: unlabeled source inputs for self-supervised pre-training (n_source, d_in);
        independent of the task's ``n`` and ``seed``.
      name: a short description.
      info: what generated it (seeds, shift, classes, positive fraction, ...).
    """

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_source: np.ndarray
    name: str
    info: dict


_WORLD_NOISE = 0.1  # isotropic observation noise of the synthetic source


@functools.lru_cache(maxsize=16)
def _synthetic_world(d_in: int, latent_dim: int, source_seed: int) -> dict:
    """The fixed generative model of the synthetic source (depends on ``source_seed`` only)."""
    rng = np.random.default_rng([source_seed, d_in, latent_dim, 0x5EED])
    r = latent_dim
    A = rng.standard_normal((d_in, r)) / math.sqrt(r)
    B = 2.0 * rng.standard_normal((d_in, r)) / math.sqrt(r)
    c = 0.5 * rng.standard_normal(d_in)
    Q, _ = np.linalg.qr(rng.standard_normal((r, min(r, 2))))
    u, v = Q[:, 0], Q[:, -1]
    delta = rng.standard_normal(d_in)
    delta *= math.sqrt(d_in) / np.linalg.norm(delta)  # RMS coordinate 1
    z = rng.standard_normal((20000, r))
    raw = z @ A.T + np.tanh(z @ B.T + c)
    world = {"A": A, "B": B, "c": c, "u": u, "v": v, "delta": delta}
    world["mean"], world["std"] = raw.mean(0), raw.std(0)
    world["median"] = float(np.median(_rule(world, z, "nonlinear")))
    return world


def _rule(world: dict, z: np.ndarray, rule: str) -> np.ndarray:
    if rule == "linear":
        return z @ world["u"]
    if rule == "nonlinear":
        return z @ world["u"] + (z @ world["v"]) ** 2 - 1.0
    raise ValueError(f"rule must be 'linear' or 'nonlinear', got {rule!r}.")


def _synthetic_draw(world: dict, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    raw = z @ world["A"].T + np.tanh(z @ world["B"].T + world["c"])
    x = (raw - world["mean"]) / world["std"]
    return x + _WORLD_NOISE * rng.standard_normal(x.shape)


def synthetic_source(
    m: int, d_in: int = 32, *, latent_dim: int = 4, source_seed: int = 0
) -> np.ndarray:
    r"""``m`` unlabeled draws from the synthetic source distribution.

    .. math::
        z \sim N(0, I_r), \qquad x = \frac{A z + \tanh(B z + c) - \mu}{\sigma} + 0.1\,\epsilon,

    a curved ``r``-dimensional manifold in ``R^{d_in}`` with coordinates of about unit
    variance (``mu``, ``sigma`` standardise the noiseless part) plus isotropic noise. ``A``,
    ``B``, ``c`` are fixed by ``source_seed``; the draws use their own stream of it.

    Example:
      >>> synthetic_source(5, 8).shape
      (5, 8)
    """
    world = _synthetic_world(int(d_in), int(latent_dim), int(source_seed))
    rng = np.random.default_rng([source_seed, 0x50C])
    z = rng.standard_normal((int(m), latent_dim))
    return _synthetic_draw(world, z, rng)


def synthetic_task(
    n: int = 64,
    d_in: int = 32,
    shift: float = 0.5,
    seed: int = 0,
    *,
    n_test: int = 512,
    rule: str = "nonlinear",
    latent_dim: int = 4,
    label_noise: float = 0.0,
    n_source: int = 4096,
    source_seed: int = 0,
) -> Task:
    r"""Binary task on source inputs moved by a mean shift; labels from a latent rule.

    Inputs are source draws (:func:`synthetic_source`) plus ``shift * delta``, with
    ``delta`` a fixed random direction of norm ``sqrt(d_in)``: ``shift`` is the RMS move of a
    coordinate in source standard deviations (0 is no shift). Labels come from the latent
    ``z`` of each input:

    .. math::
        y = \operatorname{sign}(g(z) - \text{median}(g)), \qquad
        g(z) = u\cdot z \ \text{(linear)} \ \text{or}\ u\cdot z + (v\cdot z)^2 - 1
        \ \text{(nonlinear)},

    ``u``, ``v`` orthonormal, so ``P(y = 1) = 1/2`` (iid labels: balanced on average, not
    exactly). With ``label_noise`` each label is flipped with that probability.

    Args:
      n: training set size.
      d_in: input dimension.
      shift: mean shift from the source (in RMS source standard deviations per coordinate).
      seed: draws of the training and test sets (the source itself depends on
        ``source_seed`` only, so sweeping ``n`` or ``seed`` keeps the pre-training fixed).
      n_test: test set size.
      rule: ``"nonlinear"`` or ``"linear"``.
      latent_dim: dimension ``r`` of the source manifold.
      label_noise: flip probability in [0, 1/2).
      n_source: size of the unlabeled source pool ``X_source``.
      source_seed: the generative model and the source pool.

    Returns:
      A :class:`Task`.

    Example:
      >>> t = synthetic_task(10, 8, shift=0.0, n_test=4)
      >>> t.X.shape, t.X_test.shape, t.X_source.shape, sorted(set(t.y.tolist())) == [-1, 1]
      ((10, 8), (4, 8), (4096, 8), True)
    """
    if not 0.0 <= label_noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise}.")
    n, n_test, d_in, latent_dim = int(n), int(n_test), int(d_in), int(latent_dim)
    if n < 2 or n_test < 1:
        raise ValueError(f"need n >= 2 and n_test >= 1, got n={n}, n_test={n_test}.")
    world = _synthetic_world(d_in, latent_dim, int(source_seed))
    threshold = world["median"] if rule == "nonlinear" else 0.0
    rng = np.random.default_rng([source_seed, seed, 0x7A5C])
    z = rng.standard_normal((n + n_test, latent_dim))
    X = _synthetic_draw(world, z, rng) + float(shift) * world["delta"]
    y = np.where(_rule(world, z, rule) > threshold, 1.0, -1.0)
    y = np.where(rng.random(y.shape) < label_noise, -y, y)
    info = {
        "task": "synthetic",
        "n": n,
        "n_test": n_test,
        "d_in": d_in,
        "shift": float(shift),
        "rule": rule,
        "latent_dim": latent_dim,
        "label_noise": float(label_noise),
        "seed": int(seed),
        "source_seed": int(source_seed),
        "positive_fraction": float(np.mean(y[:n] > 0)),
    }
    X_source = synthetic_source(n_source, d_in, latent_dim=latent_dim, source_seed=source_seed)
    return Task(
        X[:n], y[:n], X[n:], y[n:], X_source, f"synthetic-{rule}-shift{float(shift):g}", info
    )


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a test dependency
        raise ImportError(
            "digits_task needs scikit-learn (its bundled digits data, no download): "
            "pip install scikit-learn."
        ) from e
    digits = load_digits()
    return digits.data.astype(np.float64) / 16.0, digits.target.astype(np.int64)


def _digit_labels(target: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray, str]:
    """(in-task mask, labels in {-1, +1}, name) for a class specification."""
    if isinstance(classes, str):
        if classes != "even_odd":
            raise ValueError(f"classes must be a pair, a digit or 'even_odd', got {classes!r}.")
        return np.ones(target.shape, bool), np.where(target % 2 == 0, 1.0, -1.0), "even-odd"
    if isinstance(classes, int | np.integer):
        if not 0 <= classes <= 9:
            raise ValueError(f"one-vs-rest digit must be in 0..9, got {classes}.")
        return (
            np.ones(target.shape, bool),
            np.where(target == classes, 1.0, -1.0),
            f"{classes}-vs-rest",
        )
    a, b = (int(c) for c in classes)
    if a == b or not (0 <= a <= 9 and 0 <= b <= 9):
        raise ValueError(f"classes must be two different digits in 0..9, got {classes!r}.")
    return np.isin(target, (a, b)), np.where(target == a, 1.0, -1.0), f"{a}v{b}"


def digits_task(
    n: int = 64,
    classes: tuple[int, int] | int | str = (3, 8),
    seed: int = 0,
    *,
    n_test: int | None = None,
    standardize: bool = False,
    source_fraction: float = 1 / 3,
    source_seed: int = 0,
) -> Task:
    """Binary task from scikit-learn's bundled 8x8 digits (offline, ``d_in = 64``).

    The 1797 images are split once, by ``source_seed``, into an unlabeled *source* pool
    (``source_fraction`` of them, every class, for pre-training) and a *task* pool. The task
    keeps the images of ``classes`` from the task pool (for one-vs-rest, the "rest" images
    are subsampled to as many as the positives, so the pool is balanced); the training set is
    a uniform random subset of ``n`` of them and the test set the rest (or ``n_test`` of it).

    Args:
      n: training set size.
      classes: a pair ``(a, b)`` (``a`` is +1, ``b`` is -1), a digit ``c`` (``c`` against the
        rest) or ``"even_odd"`` (even digits are +1).
      seed: which images form the training and test sets.
      n_test: test set size (default: all remaining images of the task pool).
      standardize: features are pixel values / 16 in [0, 1]; with ``True`` they are then
        standardised with the source pool's mean and standard deviation (constant pixels
        are only centred).
      source_fraction: share of the images in the source pool.
      source_seed: the source/task split.

    Returns:
      A :class:`Task`.

    Example:
      >>> t = digits_task(20, (3, 8), n_test=10)
      >>> t.X.shape, t.X_test.shape, float(t.X.min()) >= 0.0, float(t.X.max()) <= 1.0
      ((20, 64), (10, 64), True, True)
    """
    X_all, target = _load_digits()
    rng = np.random.default_rng([source_seed, 0xD161])
    perm = rng.permutation(len(target))
    n_src = round(source_fraction * len(target))
    src, pool = perm[:n_src], perm[n_src:]
    in_task, labels, name = _digit_labels(target, classes)
    pool = pool[in_task[pool]]
    rng_task = np.random.default_rng([source_seed, seed, 0xD162])
    if isinstance(classes, int | np.integer):
        pos, neg = pool[labels[pool] > 0], pool[labels[pool] < 0]
        neg = rng_task.choice(neg, size=min(len(pos), len(neg)), replace=False)
        pool = np.sort(np.concatenate([pos, neg]))
    n = int(n)
    available = len(pool) - n
    if n < 2 or available < 1:
        raise ValueError(
            f"digits {name}: the task pool has {len(pool)} images; need 2 <= n < {len(pool)}, "
            f"got n={n}. Lower n or source_fraction."
        )
    n_test = available if n_test is None else int(n_test)
    if not 1 <= n_test <= available:
        raise ValueError(f"digits {name}: n_test must be in 1..{available}, got {n_test}.")
    order = rng_task.permutation(pool)
    train, test = order[:n], order[n : n + n_test]
    X_source = X_all[src]
    if standardize:
        mu, sd = X_source.mean(0), X_source.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        X_all, X_source = (X_all - mu) / sd, (X_source - mu) / sd
    info = {
        "task": "digits",
        "classes": classes,
        "n": n,
        "n_test": n_test,
        "d_in": 64,
        "standardize": bool(standardize),
        "seed": int(seed),
        "source_seed": int(source_seed),
        "positive_fraction": float(np.mean(labels[train] > 0)),
    }
    return Task(
        X_all[train],
        labels[train],
        X_all[test],
        labels[test],
        X_source,
        f"digits-{name}",
        info,
    )


# --------------------------------------------------------------------------------------------
# Self-supervised pre-training


class PretrainConfig(NamedTuple):
    """Hyperparameters of the denoising pre-training (hashable: it keys the cache).

    Attributes:
      lr: Adam learning rate.
      batch_size: minibatch size (sampled with replacement from the source pool).
      noise: standard deviation of the Gaussian corruption of the inputs.
    """

    lr: float = 2e-3
    batch_size: int = 128
    noise: float = 0.3


class PretrainResult(NamedTuple):
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


def _check_steps(steps: Sequence[int]) -> np.ndarray:
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
            xn = xb + config.noise * jax.random.normal(k_noise, xb.shape, F64)
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
    config: PretrainConfig = PretrainConfig(),  # noqa: B008 (an immutable NamedTuple)
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
      >>> ae = DenoisingAutoencoder(MLPEncoder(8, (16,), 4, rngs=nnx.Rngs(0)),
      ...                           MLPDecoder(4, (16,), 8, rngs=nnx.Rngs(1)))
      >>> res = pretrain(ae, synthetic_source(256, 8), steps=(0, 200))
      >>> bool(res.recon_loss[1] < res.recon_loss[0])
      True
    """
    steps_np = _check_steps(steps)
    X = jnp.asarray(X_source, F64)
    graphdef, params, rest = nnx.split(autoencoder, nnx.Param, ...)
    params = jax.tree.map(lambda a: jnp.asarray(a, F64), params)
    w_init, unravel = ravel_pytree(params)
    key = jax.random.fold_in(jax.random.key(seed), _TAG_BATCHES)
    eval_key = jax.random.fold_in(jax.random.key(seed), _TAG_EVAL_NOISE)
    eval_noise = config.noise * jax.random.normal(eval_key, X.shape, F64)
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


# --------------------------------------------------------------------------------------------
# Testbeds


@dataclasses.dataclass(frozen=True, eq=False)
class Testbed:
    r"""A fine-tuning problem: a network as a pure function of flat weights, ``w0`` and data.

    Attributes:
      name: e.g. ``"synthetic-nonlinear-shift0.5/pre1000"``.
      apply: ``apply(w, x) -> scalar logit`` for ONE input ``x`` of shape (d_in,), pure (jit,
        vmap and grad work in ``w`` and ``x``). Testbeds with the same architecture share the
        same function object, so jitted code keyed on it compiles once.
      w0: pre-trained weight (p,) float64: the pre-trained encoder and a head initialised
        from ``init_seed`` (see :class:`Classifier`), read-only numpy.
      X, y: training inputs (n, d_in) (times ``input_scale``) and labels in {-1, +1}.
      X_test, y_test: test inputs and labels, scaled alike.
      unravel: flat (p,) vector -> ``nnx.State`` of the classifier's parameters.
      info: task, pretrain_steps, p, p_encoder, head_slice (start, stop) of the head in ``w``,
        d_in, n, hidden, features, activation, input_scale, recon_loss (pre-training loss at
        this checkpoint), seeds, ... .
      graphdef: the classifier's graph definition (for :meth:`model`).
      pretrained: ``pretrained() -> DenoisingAutoencoder``, a fresh copy of the pre-trained
        autoencoder (encoder and decoder) the encoder of ``w0`` comes from; what SURT needs
        to continue the pre-training objective. ``None`` for testbeds built by hand.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    apply: Callable[[jax.Array, jax.Array], jax.Array]
    w0: np.ndarray
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    unravel: Callable[[jax.Array], Any]
    info: dict
    graphdef: Any = dataclasses.field(repr=False, default=None)
    pretrained: Callable[[], Any] | None = dataclasses.field(repr=False, default=None)

    @property
    def p(self) -> int:
        """Number of parameters."""
        return int(self.w0.size)

    @property
    def n(self) -> int:
        """Training set size."""
        return int(self.X.shape[0])

    def model(self, w: jax.Array | None = None) -> Classifier:
        """The nnx :class:`Classifier` with weights ``w`` (default ``w0``), a fresh module."""
        return nnx.merge(self.graphdef, self.unravel(jnp.asarray(self.w0 if w is None else w)))


class _Arch(NamedTuple):
    d_in: int
    hidden: tuple[int, ...]
    features: int
    activation: str


def _build(arch: _Arch, init_seed: int) -> DenoisingAutoencoder:
    key = jax.random.key(init_seed)
    enc = MLPEncoder(
        arch.d_in,
        arch.hidden,
        arch.features,
        activation=arch.activation,
        rngs=nnx.Rngs(jax.random.fold_in(key, _TAG_ENCODER)),
    )
    dec = MLPDecoder(
        arch.features,
        arch.hidden[::-1],
        arch.d_in,
        activation=arch.activation,
        rngs=nnx.Rngs(jax.random.fold_in(key, _TAG_DECODER)),
    )
    return DenoisingAutoencoder(enc, dec)


def _head_rngs(init_seed: int) -> nnx.Rngs:
    return nnx.Rngs(jax.random.fold_in(jax.random.key(init_seed), _TAG_HEAD))


@functools.lru_cache(maxsize=32)
def _classifier_functions(arch: _Arch) -> tuple:
    """(apply, unravel, graphdef) of a classifier architecture, shared by its testbeds."""
    clf = Classifier(_build(arch, 0).encoder, rngs=_head_rngs(0))
    apply, _, unravel = as_function(clf)
    return apply, unravel, nnx.graphdef(clf)


#: The task keyword arguments that determine the unlabeled source pool (and so pre-training).
_SOURCE_KWARGS = {
    "synthetic": ("d_in", "latent_dim", "n_source", "source_seed"),
    "digits": ("source_fraction", "source_seed", "standardize"),
}


@functools.lru_cache(maxsize=32)
def _pretrained(
    source_key: tuple,
    arch: _Arch,
    steps: tuple[int, ...],
    config: PretrainConfig,
    init_seed: int,
) -> PretrainResult:
    """Cached pre-training: runs once per (source, architecture, steps, config, seed)."""
    X_source = _task(*source_key, n=2, seed=0).X_source  # the pool ignores n and seed
    ae = _build(arch, init_seed)
    return pretrain(ae, X_source, steps, config=config, seed=init_seed)


def _task(kind: str, task_kwargs: tuple, *, n: int, seed: int) -> Task:
    kwargs = dict(task_kwargs)
    if kind == "synthetic":
        return synthetic_task(n, seed=seed, **kwargs)
    return digits_task(n, seed=seed, **kwargs)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def pretrained_family(
    task: str = "synthetic",
    pretrain_steps: Sequence[int] = (0, 100, 1000, 5000),
    *,
    n: int = 64,
    n_test: int | None = None,
    input_scale: float = 1.0,
    shift: float | None = None,
    classes: tuple[int, int] | int | str | None = None,
    d_in: int | None = None,
    hidden: Sequence[int] = (32, 32),
    features: int = 8,
    activation: str = "tanh",
    head_scale: float = 1.0,
    seed: int = 0,
    init_seed: int = 0,
    source_seed: int = 0,
    pretrain_config: PretrainConfig = PretrainConfig(),  # noqa: B008 (immutable)
    task_kwargs: dict | None = None,
) -> list[Testbed]:
    """Testbeds that share the task data and head init but differ in pre-training length.

    One pre-training run (cached per source pool, architecture, steps, config and
    ``init_seed``; the task's ``n``, ``seed``, ``shift``, classes, ... do not enter it)
    gives the encoder at every length in ``pretrain_steps``; longer pre-training moves the
    encoder further from its random initialisation, which varies the distance between
    ``w0`` and the fine-tuned optimum (docs/theory.md section 5, claim ``ft.distance``). All
    members share
    ``X, y, X_test, y_test`` and the ``apply``/``unravel`` functions; ``w0`` differs in its
    encoder block only.

    Args: as :func:`make_testbed`, with ``pretrain_steps`` a sequence.

    Returns:
      One :class:`Testbed` per entry of ``pretrain_steps``, in order.

    Example:
      >>> fam = pretrained_family("synthetic", (0, 20), n=8, n_test=8, d_in=8, hidden=(8,),
      ...                         features=4)
      >>> [tb.info["pretrain_steps"] for tb in fam], fam[0].apply is fam[1].apply
      ([0, 20], True)
    """
    if task not in ("synthetic", "digits"):
        raise ValueError(f"task must be 'synthetic' or 'digits', got {task!r}.")
    tkw = dict(task_kwargs or {})
    tkw["source_seed"] = int(source_seed)
    if task == "synthetic":
        if classes is not None:
            raise ValueError("classes applies to task='digits' only.")
        d_in = 32 if d_in is None else int(d_in)
        tkw.update(d_in=d_in, shift=0.5 if shift is None else float(shift))
        if n_test is not None:
            tkw["n_test"] = int(n_test)
    else:
        if shift is not None:
            raise ValueError("shift applies to task='synthetic' only (digits has its own data).")
        if d_in not in (None, 64):
            raise ValueError(f"digits images have d_in = 64, got d_in={d_in}.")
        d_in = 64
        tkw["classes"] = (3, 8) if classes is None else classes
        if isinstance(tkw["classes"], list):
            tkw["classes"] = tuple(tkw["classes"])
        tkw["n_test"] = None if n_test is None else int(n_test)
    steps = tuple(int(s) for s in _check_steps(pretrain_steps))
    arch = _Arch(int(d_in), tuple(int(h) for h in hidden), int(features), activation)
    _check_activation(activation)
    task_key = (task, tuple(sorted(tkw.items())))
    source_key = (task, tuple(kv for kv in task_key[1] if kv[0] in _SOURCE_KWARGS[task]))
    # Step 0 is always pre-trained "to", so that every member can report the initial loss.
    pre = _pretrained(source_key, arch, (0, *steps), pretrain_config, int(init_seed))
    data = _task(*task_key, n=int(n), seed=int(seed))
    apply, unravel, graphdef = _classifier_functions(arch)
    X, X_test = (_readonly(float(input_scale) * a) for a in (data.X, data.X_test))
    y, y_test = _readonly(data.y), _readonly(data.y_test)
    testbeds = []
    for c, s in enumerate(steps):
        enc = pre.autoencoder(c + 1).encoder
        clf = Classifier(enc, rngs=_head_rngs(int(init_seed)), head_scale=head_scale)
        _, w0, _ = as_function(clf)
        p_enc = ravel_pytree(nnx.state(enc, nnx.Param))[0].size
        info = {
            **data.info,
            "task": task,
            "task_name": data.name,
            "pretrain_steps": s,
            "recon_loss": float(pre.recon_loss[c + 1]),
            "recon_loss_init": float(pre.recon_loss[0]),
            "p": int(w0.size),
            "p_encoder": int(p_enc),
            "head_slice": (int(p_enc), int(w0.size)),
            "d_in": arch.d_in,
            "hidden": arch.hidden,
            "features": arch.features,
            "activation": activation,
            "head_scale": float(head_scale),
            "input_scale": float(input_scale),
            "init_seed": int(init_seed),
            "pretrain_config": pretrain_config._asdict(),
        }
        testbeds.append(
            Testbed(
                f"{data.name}/pre{s}",
                apply,
                _readonly(w0),
                X,
                y,
                X_test,
                y_test,
                unravel,
                info,
                graphdef,
                functools.partial(pre.autoencoder, c + 1),
            )
        )
    return testbeds


def make_testbed(
    task: str = "synthetic",
    *,
    n: int = 64,
    pretrain_steps: int = 1000,
    input_scale: float = 1.0,
    shift: float | None = None,
    classes: tuple[int, int] | int | str | None = None,
    hidden: Sequence[int] = (32, 32),
    features: int = 8,
    d_in: int | None = None,
    n_test: int | None = None,
    activation: str = "tanh",
    head_scale: float = 1.0,
    seed: int = 0,
    init_seed: int = 0,
    source_seed: int = 0,
    pretrain_config: PretrainConfig = PretrainConfig(),  # noqa: B008 (immutable)
    task_kwargs: dict | None = None,
) -> Testbed:
    r"""A full fine-tuning testbed: pre-trained MLP classifier, task data, flat weights.

    The encoder ``d_in -> hidden -> features`` is initialised from ``init_seed``, pre-trained
    for ``pretrain_steps`` Adam steps of denoising reconstruction (:func:`pretrain`) on the
    task's unlabeled source pool (cached: the same configuration pre-trains once per
    process), and topped with a linear head initialised from ``init_seed`` (kernel
    ``N(0, head_scale^2 / features)``, bias 0). ``w0`` is the flattened float64 result.
    ``seed`` draws the task's training and test sets only, so a sweep over ``n`` or ``seed``
    keeps ``w0`` fixed; ``input_scale`` multiplies the task inputs (not the pre-training
    data), a knob for the Lipschitz constant of the per-sample losses.

    Default sizes: synthetic ``d_in = 32``, hidden (32, 32), features 8: ``p = 2385``;
    digits ``d_in = 64``: ``p = 3409``. ``hidden=(300, 300), features=32`` gives
    ``p = 109865`` (synthetic).

    Args:
      task: ``"synthetic"`` (:func:`synthetic_task`) or ``"digits"`` (:func:`digits_task`).
      n: training set size.
      pretrain_steps: number of pre-training steps (0: the random initialisation).
      input_scale: factor on the task inputs ``X`` and ``X_test``.
      shift: synthetic only: mean shift from the source (default 0.5).
      classes: digits only: ``(a, b)``, a digit (one-vs-rest) or ``"even_odd"`` (default
        ``(3, 8)``).
      hidden, features, activation: the encoder architecture (:class:`MLPEncoder`).
      d_in: synthetic input dimension (default 32); digits is always 64.
      n_test: test set size (default 512 synthetic, all the rest of the pool for digits).
      head_scale: head initialisation scale.
      seed: task data draws.
      init_seed: network initialisation, pre-training minibatches and head.
      source_seed: the source distribution / source pool.
      pretrain_config: :class:`PretrainConfig`.
      task_kwargs: more keyword arguments for the task function (e.g. ``rule``,
        ``label_noise``, ``standardize``).

    Returns:
      A :class:`Testbed`.

    Example:
      >>> tb = make_testbed(n=16, pretrain_steps=50)
      >>> tb.p, tb.X.shape, float(tb.apply(tb.w0, tb.X[0])) == float(tb.model()(tb.X[0]))
      (2385, (16, 32), True)
    """
    (tb,) = pretrained_family(
        task,
        (int(pretrain_steps),),
        n=n,
        n_test=n_test,
        input_scale=input_scale,
        shift=shift,
        classes=classes,
        d_in=d_in,
        hidden=hidden,
        features=features,
        activation=activation,
        head_scale=head_scale,
        seed=seed,
        init_seed=init_seed,
        source_seed=source_seed,
        pretrain_config=pretrain_config,
        task_kwargs=task_kwargs,
    )
    return tb


# --------------------------------------------------------------------------------------------
# Losses and fine-tuning


def logistic_loss(
    model: Testbed | Callable[[jax.Array, jax.Array], jax.Array],
) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    r"""Per-sample logistic loss ``loss_fn(w, x, y) = softplus(-y f(w, x))``.

    Computed in the log domain by ``jax.nn.softplus`` (never clamped): exact for margins of
    either sign and any size, with gradient ``-y sigmoid(-y f) grad f``.

    Args:
      model: a :class:`Testbed` or an ``apply(w, x)`` function.

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


def objective(
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
    :class:`stabtheory.quadratic.FTDesign` (zero-sum tilt, curvature-matched shift, loss
    scaling); ``lam`` is taken as given (the loss-scaling control passes ``c lam``).
    """
    return data_term(
        apply, w, w0, X, y, sample_weights, linear=linear, scale=scale
    ) + 0.5 * lam * jnp.sum((w - w0) ** 2)


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
    r"""The data part of :func:`objective`:
    ``c sum_i s_i (l(w; z_i) + a_i . (w - w0)) / sum_i s_i``."""
    out = weighted_loss(apply, w, X, y, sample_weights)
    if linear is not None:
        out = out + (sample_weights @ linear) @ (w - w0) / jnp.sum(sample_weights)
    return scale * out


def gd_step(
    apply: Callable,
    w: jax.Array,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array | float,
    lam: jax.Array | float,
    *,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
) -> jax.Array:
    r"""One full-batch GD step ``w - lr * grad F_s(w)`` (see :func:`objective`)."""
    g = jax.grad(
        lambda v: objective(apply, v, w0, X, y, sample_weights, lam, linear=linear, scale=scale)
    )(w)
    return w - lr * g


def finetune(
    apply: Callable,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array | float,
    lam: jax.Array | float,
    checkpoints: jax.Array | Sequence[int],
    *,
    return_loss: bool = False,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""One fine-tuning run: full-batch GD on :func:`objective` from ``w0``, with snapshots.

    .. math::
        w_{t+1} = w_t - \eta\, \nabla F_s(w_t), \qquad w_0 = \text{w0},

    snapshot ``c`` is ``w_{checkpoints[c]}`` (:func:`stabtheory.heads.run_checkpoints`).
    ``lr``, ``lam`` and the mask are traced; so are the checkpoint values when given as an
    array: sweeping them never recompiles. (The traced loop bound makes it a ``while`` loop:
    forward-mode differentiation through ``finetune`` works, reverse mode does not;
    :func:`gd_step` is differentiable either way.) Checkpoints given as a tuple of ints are
    static: fixed-length loops, which XLA optimises better on a GPU. Pure: no jit inside.

    Args:
      apply: ``apply(w, x) -> logit`` for one input (static).
      w0: start and anchor of the pull, (p,).
      X, y: inputs (n, d_in) and labels (n,) in {-1, +1}.
      sample_weights: (n,), non-negative with a positive sum; a leave-one-out set S\i is the
        mask with ``s_i = 0`` (so it averages over ``n - 1``).
      lr: step size.
      lam: pull strength, >= 0.
      checkpoints: non-decreasing step counts (C,), integer; 0 is ``w0``. A ``jax.Array``
        is traced; a tuple (or NumPy array) of ints is static.
      return_loss: also return the data term (:func:`data_term`: the weighted mean
        logistic loss, without the pull) at each snapshot.
      linear, scale: the per-sample linear terms (n, p) and the loss scale of a controlled
        design (:func:`objective`); none and 1 by default.

    Returns:
      Snapshots (C, p), and with ``return_loss`` the losses (C,) too.

    Example:
      >>> apply = lambda w, x: w @ x
      >>> X, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([1.0, -1.0])
      >>> W = finetune(apply, jnp.zeros(2), X, y, jnp.ones(2), 2.0, 0.0, jnp.array([0, 1]))
      >>> W[1].tolist()  # one step: lr * mean(y_i x_i) * sigmoid(0)
      [0.5, -0.5]
    """
    w0 = jnp.asarray(w0, F64)
    X, y = jnp.asarray(X, F64), jnp.asarray(y, F64)
    sample_weights = jnp.asarray(sample_weights, F64)
    lr, lam = jnp.asarray(lr, F64), jnp.asarray(lam, F64)
    kw = {"linear": linear, "scale": scale}

    def body(_, w):
        return gd_step(apply, w, w0, X, y, sample_weights, lr, lam, **kw)

    def snapshot(w):
        return (w, data_term(apply, w, w0, X, y, sample_weights, **kw)) if return_loss else w

    return run_checkpoints(body, w0, checkpoints, snapshot)[1]


def finetune_runs(
    apply: Callable,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array,
    lam: jax.Array | float,
    checkpoints: jax.Array | Sequence[int],
    *,
    batch_size: int | None = None,
    return_loss: bool = False,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r""":func:`finetune` for many runs at once: ``jax.vmap`` over masks, step sizes, ``lam``.

    Run ``r`` minimises
    ``sum_i s_ri l(w; z_i) / sum_i s_ri + lam_r / 2 ||w - w0||^2`` by GD with step
    ``lr[r]`` from ``w0``. Masks make S and every S\i the same shape (rows of
    :func:`stabtheory.heads.loo_weights`). Pure; :data:`finetune_runs_jit` is the jitted
    version (``apply``, ``batch_size``, ``return_loss`` static).

    Args:
      apply: ``apply(w, x) -> logit`` for one input (static).
      w0: shared start and anchor (p,), or one per run (runs, p).
      X, y: shared inputs (n, d_in) and labels (n,).
      sample_weights: one mask per run, (runs, n).
      lr: one step size per run, (runs,).
      lam: pull strength, a scalar or one per run (runs,).
      checkpoints: shared checkpoint steps (C,).
      batch_size: train the runs in chunks of this size (``jax.lax.map`` with
        ``batch_size``) to bound memory; ``None`` vmaps all runs. Results are the same.
      return_loss: also return the data loss at each snapshot, (runs, C).
      linear, scale: a controlled design shared by the runs (:func:`objective`).

    Returns:
      Snapshots (runs, C, p), and with ``return_loss`` the losses (runs, C) too.

    Example:
      >>> from stabtheory.heads import loo_weights
      >>> apply = lambda w, x: w @ x
      >>> X, y = jnp.eye(3), jnp.array([1.0, -1.0, 1.0])
      >>> W = finetune_runs(apply, jnp.zeros(3), X, y, loo_weights(3), jnp.full(4, 0.5), 0.1,
      ...                   jnp.array([0, 5, 10]))
      >>> W.shape, float(W[1, -1, 0])  # run 1 is S\0: w[0] only feels the pull to w0 = 0
      ((4, 3, 3), 0.0)
    """
    sample_weights = jnp.asarray(sample_weights, F64)
    runs = sample_weights.shape[0]
    lr = jnp.broadcast_to(jnp.asarray(lr, F64), (runs,))
    lam = jnp.broadcast_to(jnp.asarray(lam, F64), (runs,))
    w0 = jnp.asarray(w0, F64)
    if w0.ndim == 1:
        w0 = jnp.broadcast_to(w0, (runs, w0.size))

    def one(args):
        s, a, l2, w_start = args
        return finetune(
            apply,
            w_start,
            X,
            y,
            s,
            a,
            l2,
            checkpoints,
            return_loss=return_loss,
            linear=linear,
            scale=scale,
        )

    args = (sample_weights, lr, lam, w0)
    if batch_size is None:
        return jax.vmap(one)(args)
    return jax.lax.map(one, args, batch_size=batch_size)


#: :func:`finetune_runs` under ``jax.jit`` (``apply``, ``batch_size`` and ``return_loss``
#: static). Testbeds of one architecture share ``apply``, so they share the compilation.
finetune_runs_jit = jax.jit(finetune_runs, static_argnames=("apply", "batch_size", "return_loss"))
