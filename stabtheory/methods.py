r"""Stabilizers (docs/theory.md section 4) and their baselines as pieces of ONE fine-tuning loop.

Every method here is the same minibatch Adam (or SGD) fine-tuning of an encoder
``phi_theta`` and ``K`` linear heads ``(c_k, v_k)`` from a pre-trained encoder ``theta_0``,
with a per-seed head initialisation, data order and dropout masks. The objective on a
minibatch ``B`` is

.. math::
    F(\theta, V) = \frac1K \sum_{k=1}^K \frac1{|B|}\sum_{i \in B}
        \operatorname{softplus}\big(-y_i\,(c_k + v_k\cdot \tilde\phi_\theta(x_i))\big)
      \;+\; \alpha\, R_\text{MMR}\big(\phi_\theta(x_B), y_B\big)
      \;+\; \frac{\lambda}{2}\,\|\theta - \theta_\text{start}\|^2 ,

(``tilde phi`` the features after dropout) and the methods differ only in their settings:

=================  ===========================================================================
method             what it changes
=================  ===========================================================================
``plain``          full fine-tuning: ``K = 1``, ``alpha = 0``, ``lambda = 0``
``small_lr``       a smaller Adam step size (the head-tuning theory: ``head.lr``)
``long``           more steps (``head.iterations``)
``l2sp``           the pull toward the pre-trained encoder, ``lambda > 0`` (``ft.distance``)
``head_only``      the encoder's updates are masked to zero: linear-head tuning
``mmr``            Maximal Margin Regularizer, ``alpha > 0`` (:func:`mmr_penalty`)
``mhloss``         Multi-Head Loss, ``K > 1`` heads (:func:`multihead_loss`)
``surt``           Self Unsupervised Re-Training (:func:`surt`) of the encoder on the task's
                   unlabeled inputs before the supervised loop
=================  ===========================================================================

The pieces are pure functions of arrays (:func:`mmr_penalty`, :func:`multihead_logits`,
:func:`multihead_loss`, :func:`finetune_one`, :func:`surt_run`), so they jit, vmap and grad;
:func:`finetune_seeds` is the driver that vmaps :func:`finetune_one` over seeds as one
compiled program. The learning rate, number of steps, ``alpha``, ``lambda``, the dropout
rate and the head-only switch are traced, so every baseline and MMR share one compilation
per testbed architecture; only ``K``, the minibatch size, the MMR kind, where dropout acts
and the optimizer are static.

The L2-SP pull acts on the encoder only (the heads are drawn afresh per seed and have no
pre-trained value); its anchor ``theta_start`` is where supervised fine-tuning starts (the
pre-trained encoder, or the SURT encoder).

The mechanism each stabilizer is meant to act through is measured by
:func:`feature_margin` (MMR: the exact max margin of the final features),
:func:`head_convergence` (MHLoss: how fast the mean head's direction approaches the
max-margin direction ``u_S``) and :func:`weight_distance` (SURT: ``||theta_start - theta*||``).

References:
  H. Fu, A. M.-C. So, N. Collier (2023), "A Stability Analysis of Fine-Tuning a Pre-Trained
  Model", arXiv 2301.09820 (MMR, MHLoss and SURT). X. Li, Y. Grandvalet, F. Davoine (2018),
  "Explicit inductive bias for transfer learning with convolutional networks" (L2-SP).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

from stabtheory import finetune as _ft
from stabtheory import heads as _heads
from stabtheory.errors import NotSeparableError
from stabtheory.margin import max_margin

__all__ = [
    "METHODS",
    "MMR_KINDS",
    "OPTIMIZERS",
    "AutoencoderFunctions",
    "EncoderFunctions",
    "FeatureMargin",
    "HeadConvergence",
    "Hyper",
    "Method",
    "SeedRuns",
    "encoder_function",
    "feature_margin",
    "features_margin",
    "finetune_one",
    "finetune_seeds",
    "head_convergence",
    "init_heads",
    "make_methods",
    "mmr_penalty",
    "multihead_logits",
    "multihead_loss",
    "multihead_predict",
    "objective",
    "pretrained_autoencoder",
    "seed_keys",
    "surt",
    "surt_run",
    "weight_distance",
]

F64 = jnp.float64
MMR_KINDS = ("centroid", "smoothmin")
OPTIMIZERS = ("adam", "sgd")
_DROPOUT_ON = ("features", "inputs")

# Tags folded into a seed's key, one per use, so the uses never share bits.
_TAG_HEAD, _TAG_DATA, _TAG_DROPOUT, _TAG_SURT = range(4)


# --------------------------------------------------------------------------------------------
# The encoder as a pure function of its flat weights


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


_ENCODERS: dict[Any, EncoderFunctions] = {}


def encoder_function(testbed: _ft.Testbed) -> EncoderFunctions:
    r"""The testbed's encoder ``phi(w_enc, X)`` as a pure function of the flat encoder weights.

    ``testbed.w0 = concat(w_enc, [c, v])`` with the head (bias ``c``, kernel ``v``) in
    ``info["head_slice"]`` (the last ``k + 1`` entries), so
    ``apply(w0, x) = c + v . phi(w0[:p_enc], x)``. The function object is cached per
    architecture (keyed on ``testbed.apply``, which testbeds of one architecture share), so
    jitted programs keyed on it compile once.

    Example:
      >>> tb = _ft.make_testbed(n=8, n_test=8, pretrain_steps=10, d_in=8, hidden=(8,),
      ...                       features=4)
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


def _split(testbed: _ft.Testbed) -> tuple[np.ndarray, np.ndarray]:
    a, _ = testbed.info["head_slice"]
    return np.asarray(testbed.w0[:a]), np.asarray(testbed.w0[a:])


# --------------------------------------------------------------------------------------------
# MMR


def _safe_norm(v: jax.Array, axis: int = -1) -> jax.Array:
    """Euclidean norm whose gradient at 0 is 0 (not NaN)."""
    sq = jnp.sum(v * v, axis=axis)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def _centroids(u: jax.Array, y: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    pos = weights * (y > 0)
    neg = weights * (y < 0)
    mu_pos = pos @ u / jnp.maximum(jnp.sum(pos), 1e-300)
    mu_neg = neg @ u / jnp.maximum(jnp.sum(neg), 1e-300)
    return mu_pos, mu_neg


def mmr_penalty(
    features: jax.Array,
    y: jax.Array,
    kind: str = "centroid",
    temperature: jax.Array | float = 0.1,
    weights: jax.Array | None = None,
) -> jax.Array:
    r"""The Maximal Margin Regularizer ``R(phi)`` (to be *added*, times ``alpha``, to the loss).

    With L2-normalised features ``u_i = phi_i / ||phi_i||`` and the class centroids
    ``mu_± = mean_{i: y_i = ±1} u_i`` of the batch:

    * ``"centroid"`` (default): ``R = -||mu_+ - mu_-||``, minus the distance between the class
      centroids (for two classes, the mean pairwise centroid distance);
    * ``"smoothmin"``: with the unit direction ``e = (mu_+ - mu_-)/||mu_+ - mu_-||`` and the
      midpoint ``c = (mu_+ + mu_-)/2``, the signed normalised margins are
      ``m_i = y_i e . (u_i - c)`` and

      .. math::
          R = -\operatorname{softmin}_T(m) = T \log \sum_i w_i e^{-m_i/T}
              \ \ge\ -\min_i m_i ,

      a log-sum-exp (log domain, never clamped) that tends to ``-min_i m_i`` as ``T -> 0``.

    Minimising ``R`` pushes the classes apart on the unit sphere, which raises the margin of the
    features (docs/theory.md section 4).

    Args:
      features: (B, k) encoder features of a batch.
      y: (B,) labels in {-1, +1}.
      kind: ``"centroid"`` or ``"smoothmin"`` (static).
      temperature: ``T > 0`` of the smooth min (traced).
      weights: optional (B,) sample weights (a mask); default all ones. A batch with no sample
        of a class has that centroid at 0.

    Returns:
      The scalar penalty.

    Example:
      >>> f = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
      >>> float(mmr_penalty(f, jnp.array([1.0, 1.0, -1.0])))  # -||(1,0) - (0,1)||
      -1.4142135623730951
    """
    if kind not in MMR_KINDS:
        raise ValueError(f"kind must be one of {MMR_KINDS}, got {kind!r}.")
    features = jnp.asarray(features)
    y = jnp.asarray(y, features.dtype)
    w = jnp.ones_like(y) if weights is None else jnp.asarray(weights, features.dtype)
    u = features / jnp.maximum(_safe_norm(features)[:, None], 1e-300)
    mu_pos, mu_neg = _centroids(u, y, w)
    diff = mu_pos - mu_neg
    dist = _safe_norm(diff)
    if kind == "centroid":
        return -dist
    e = diff / jnp.maximum(dist, 1e-300)
    m = y * ((u - 0.5 * (mu_pos + mu_neg)) @ e)
    return temperature * jax.nn.logsumexp(-m / temperature, b=w)


# --------------------------------------------------------------------------------------------
# MHLoss


def init_heads(key: jax.Array, K: int, k: int, scale: jax.Array | float = 1.0) -> jax.Array:
    r"""``K`` independent heads ``[c_k, v_k]``, shape (K, k + 1), column 0 the biases.

    ``v_k ~ N(0, scale^2 / k)`` entrywise and ``c_k = 0``: the law of
    :class:`stabtheory.finetune.Classifier`'s head.

    Example:
      >>> init_heads(jax.random.key(0), 3, 4).shape
      (3, 5)
    """
    v = jax.random.normal(key, (K, k), F64) * (scale / math.sqrt(k))
    return jnp.concatenate([jnp.zeros((K, 1), F64), v], axis=1)


def multihead_logits(heads: jax.Array, features: jax.Array) -> jax.Array:
    r"""Logits of every head: ``f_k(x_i) = c_k + v_k . phi_i``, shape (B, K).

    Args:
      heads: (K, k + 1), column 0 the biases.
      features: (B, k).
    """
    return heads[:, 0] + features @ heads[:, 1:].T


def multihead_predict(heads: jax.Array, features: jax.Array) -> jax.Array:
    r"""The MHLoss prediction: the mean of the heads' logits ``(1/K) sum_k f_k(x)``, (B,).

    It equals the logit of the mean head ``mean_k [c_k, v_k]`` (the logits are linear in the
    head).

    Example:
      >>> H = jnp.array([[0.0, 1.0], [2.0, -3.0]])
      >>> multihead_predict(H, jnp.array([[1.0], [0.0]])).tolist()
      [0.0, 1.0]
    """
    return jnp.mean(multihead_logits(heads, features), axis=1)


def multihead_loss(
    heads: jax.Array, features: jax.Array, y: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    r"""The Multi-Head Loss: the mean over heads of each head's mean logistic loss.

    .. math::
        L(V) = \frac1K \sum_{k=1}^K \frac{\sum_i w_i\,\operatorname{softplus}(-y_i f_k(x_i))}
                                          {\sum_i w_i},

    in the log domain (``jax.nn.softplus``, exact for margins of either sign and any size).
    With ``K = 1`` it is the plain logistic loss. The heads do not interact: the gradient for
    head ``k`` is ``1/K`` times its single-head gradient (a factor that Adam removes).

    Args:
      heads: (K, k + 1).
      features: (B, k).
      y: (B,) labels in {-1, +1}.
      weights: optional (B,) sample weights.

    Example:
      >>> H, f, y = jnp.array([[0.0, 1000.0], [0.0, -1000.0]]), jnp.ones((1, 1)), jnp.ones(1)
      >>> float(multihead_loss(H, f, y))  # (softplus(-1000) + softplus(1000)) / 2
      500.0
    """
    z = jnp.asarray(y)[:, None] * multihead_logits(heads, features)  # (B, K)
    losses = jax.nn.softplus(-z)
    w = jnp.ones(z.shape[0], z.dtype) if weights is None else jnp.asarray(weights, z.dtype)
    return jnp.mean(w @ losses) / jnp.sum(w)


# --------------------------------------------------------------------------------------------
# SURT


class AutoencoderFunctions(NamedTuple):
    """The pre-trained decoder as a pure function, and its weights.

    Attributes:
      decode: ``decode(w_dec, features) -> reconstruction`` (batched).
      w_dec: the pre-trained decoder weights (flat).
    """

    decode: Callable[[jax.Array, jax.Array], jax.Array]
    w_dec: np.ndarray


_DECODERS: dict[Any, Callable] = {}


def pretrained_autoencoder(testbed: _ft.Testbed) -> _ft.DenoisingAutoencoder:
    r"""The denoising autoencoder whose encoder is the testbed's pre-trained encoder.

    Taken from the testbed itself (:attr:`stabtheory.finetune.Testbed.pretrained`, a fresh
    copy each call) and checked: its encoder weights must equal ``testbed.w0``'s encoder block
    exactly.

    Raises:
      ValueError: the testbed carries no pre-trained autoencoder (built by hand) or one whose
        encoder is not the testbed's; pass ``autoencoder=`` to :func:`surt` instead.
    """
    if testbed.pretrained is None:
        raise ValueError(
            f"testbed {testbed.name!r} carries no pre-trained autoencoder (built by hand?); "
            "pass autoencoder= explicitly."
        )
    ae = testbed.pretrained()
    w_enc = np.asarray(ravel_pytree(nnx.state(ae.encoder, nnx.Param))[0])
    if w_enc.shape != _split(testbed)[0].shape or not np.array_equal(w_enc, _split(testbed)[0]):
        raise ValueError(
            f"the pre-trained autoencoder of testbed {testbed.name!r} does not match its "
            "encoder weights; pass autoencoder= explicitly."
        )
    return ae


def _decoder_functions(testbed: _ft.Testbed, ae: _ft.DenoisingAutoencoder) -> AutoencoderFunctions:
    apply, w_dec, _ = _ft.as_function(ae.decoder)
    decode = _DECODERS.setdefault(testbed.apply, apply)  # one function object per architecture
    return AutoencoderFunctions(decode, w_dec)


def surt_run(
    phi: Callable,
    decode: Callable,
    w_enc: jax.Array,
    w_dec: jax.Array,
    X: jax.Array,
    key: jax.Array,
    steps: jax.Array | int,
    *,
    lr: jax.Array | float = 2e-3,
    noise: jax.Array | float = 0.3,
    batch_size: int = 128,
) -> tuple[jax.Array, jax.Array]:
    r"""SURT as a pure function: ``steps`` Adam steps of the denoising objective on ``X``.

    .. math::
        \min_{\theta, \psi}\ \tfrac1d\,\mathbb{E}\,
        \|\text{dec}_\psi(\phi_\theta(x + \sigma\epsilon)) - x\|^2 ,
        \qquad x \sim \text{Unif}(X),\ \epsilon \sim N(0, I),

    the pre-training objective of :func:`stabtheory.finetune.pretrain`, continued from the
    pre-trained ``(theta_0, psi_0)`` on the task's own unlabeled inputs. Step ``t`` draws its
    minibatch (with replacement) and noise from ``fold_in(key, t)``. ``steps`` is traced.

    Returns:
      ``(w_enc, w_dec)`` after the steps.
    """
    X = jnp.asarray(X, F64)
    tx = optax.adam(lr)

    def recon(params, xn, xb):
        we, wd = params
        return jnp.mean((decode(wd, phi(we, xn)) - xb) ** 2)

    def body(t, carry):
        params, opt = carry
        k_idx, k_noise = jax.random.split(jax.random.fold_in(key, t))
        xb = X[jax.random.randint(k_idx, (batch_size,), 0, X.shape[0])]
        xn = xb + noise * jax.random.normal(k_noise, xb.shape, F64)
        updates, opt = tx.update(jax.grad(recon)(params, xn, xb), opt, params)
        return optax.apply_updates(params, updates), opt

    params = (jnp.asarray(w_enc, F64), jnp.asarray(w_dec, F64))
    params, _ = jax.lax.fori_loop(0, steps, body, (params, tx.init(params)))
    return params


def surt(
    testbed: _ft.Testbed,
    X_unlabeled: np.ndarray | None = None,
    steps: int = 200,
    seed: int = 0,
    *,
    autoencoder: _ft.DenoisingAutoencoder | None = None,
) -> np.ndarray:
    r"""Self Unsupervised Re-Training: the pre-trained encoder after ``steps`` SURT steps.

    Runs :func:`surt_run` from the testbed's pre-trained autoencoder
    (:func:`pretrained_autoencoder`) with the pre-training's Adam step size, noise level and
    minibatch size (``info["pretrain_config"]``); the supervised fine-tuning then starts from
    the returned encoder. Run ``seed`` uses the key :func:`finetune_seeds` gives seed ``seed``.

    Args:
      testbed: the fine-tuning problem.
      X_unlabeled: the task's unlabeled inputs (default: the training inputs ``testbed.X``).
      steps: number of SURT steps (``K`` in docs/theory.md section 4).
      seed: minibatches and corruption noise.
      autoencoder: the pre-trained autoencoder, if it cannot be re-derived from the testbed.

    Returns:
      The encoder weights (p_encoder,), numpy float64.
    """
    ae = pretrained_autoencoder(testbed) if autoencoder is None else autoencoder
    dec = _decoder_functions(testbed, ae)
    enc = encoder_function(testbed)
    w_enc0, _ = _split(testbed)
    cfg = _ft.PretrainConfig(**testbed.info["pretrain_config"])
    X = testbed.X if X_unlabeled is None else X_unlabeled
    key = jax.random.fold_in(jax.random.key(int(seed)), _TAG_SURT)
    w_enc, _ = _surt_jit(
        enc.phi,
        dec.decode,
        jnp.asarray(w_enc0),
        jnp.asarray(dec.w_dec),
        jnp.asarray(X, F64),
        key,
        int(steps),
        cfg.lr,
        cfg.noise,
        batch_size=cfg.batch_size,
    )
    return np.asarray(w_enc)


def _surt_program(phi, decode, w_enc, w_dec, X, key, steps, lr, noise, *, batch_size):
    return surt_run(
        phi, decode, w_enc, w_dec, X, key, steps, lr=lr, noise=noise, batch_size=batch_size
    )


_surt_jit = jax.jit(_surt_program, static_argnames=("phi", "decode", "batch_size"))


# --------------------------------------------------------------------------------------------
# The method configurations and the fine-tuning loop


@dataclasses.dataclass(frozen=True)
class Method:
    r"""One fine-tuning method: the settings of the shared loop (see the module docstring).

    Attributes:
      name: a label.
      heads: ``K``, the number of linear heads (MHLoss when > 1); static.
      mmr_alpha: weight ``alpha`` of :func:`mmr_penalty` (0: no MMR).
      mmr_kind: ``"centroid"`` or ``"smoothmin"``; static.
      mmr_temperature: ``T`` of the smooth-min variant.
      surt_steps: SURT steps before fine-tuning (0: none).
      lr: Adam step size.
      steps: number of minibatch steps.
      l2sp: ``lambda`` of the L2-SP pull ``lambda/2 ||theta - theta_start||^2`` on the encoder.
      head_only: train the heads only (the encoder's updates are masked to zero).
      batch_size: minibatch size (``n // batch_size`` minibatches per epoch, a fresh
        permutation every epoch, the remainder dropped); static.
      dropout: dropout rate in [0, 1) (inverted dropout, a fresh mask every step).
      dropout_on: ``"features"`` (before the heads) or ``"inputs"``; static.
      head_scale: standard deviation of the head init times ``sqrt(k)``.
      optimizer: ``"adam"`` (default; ``optax.scale_by_adam``) or ``"sgd"`` (plain minibatch
        gradient steps, the algorithm of the theorems); static.
    """

    name: str = "plain"
    heads: int = 1
    mmr_alpha: float = 0.0
    mmr_kind: str = "centroid"
    mmr_temperature: float = 0.1
    surt_steps: int = 0
    lr: float = 1e-3
    steps: int = 150
    l2sp: float = 0.0
    head_only: bool = False
    batch_size: int = 16
    dropout: float = 0.1
    dropout_on: str = "features"
    head_scale: float = 1.0
    optimizer: str = "adam"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        if self.heads < 1:
            raise ValueError(f"heads must be >= 1, got {self.heads}.")
        if self.mmr_kind not in MMR_KINDS:
            raise ValueError(f"mmr_kind must be one of {MMR_KINDS}, got {self.mmr_kind!r}.")
        if self.dropout_on not in _DROPOUT_ON:
            raise ValueError(f"dropout_on must be one of {_DROPOUT_ON}, got {self.dropout_on!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if self.steps < 0 or self.surt_steps < 0 or self.batch_size < 1:
            raise ValueError("steps and surt_steps must be >= 0 and batch_size >= 1.")
        if self.lr <= 0 or self.l2sp < 0 or self.mmr_temperature <= 0:
            raise ValueError("need lr > 0, l2sp >= 0 and mmr_temperature > 0.")

    def hyper(self) -> Hyper:
        """The traced settings as a :class:`Hyper` of float64/int scalars."""
        return Hyper(
            lr=jnp.asarray(self.lr, F64),
            steps=jnp.asarray(self.steps, jnp.int32),
            l2sp=jnp.asarray(self.l2sp, F64),
            mmr_alpha=jnp.asarray(self.mmr_alpha, F64),
            mmr_temperature=jnp.asarray(self.mmr_temperature, F64),
            dropout=jnp.asarray(self.dropout, F64),
            train_encoder=jnp.asarray(0.0 if self.head_only else 1.0, F64),
            head_scale=jnp.asarray(self.head_scale, F64),
        )


class Hyper(NamedTuple):
    """The traced settings of :func:`finetune_one` (changing them never recompiles)."""

    lr: jax.Array
    steps: jax.Array
    l2sp: jax.Array
    mmr_alpha: jax.Array
    mmr_temperature: jax.Array
    dropout: jax.Array
    train_encoder: jax.Array
    head_scale: jax.Array


def make_methods(
    *,
    lr: float = 1e-3,
    steps: int = 150,
    batch_size: int = 16,
    dropout: float = 0.1,
    small_lr_factor: float = 0.25,
    long_factor: int = 4,
    l2sp: float = 1.0,
    head_only_lr_factor: float = 10.0,
    mmr_alpha: float = 0.3,
    mmr_kind: str = "centroid",
    mhloss_heads: int = 5,
    surt_steps: int = 300,
) -> dict[str, Method]:
    r"""The eight methods of the stabilizer study around one plain fine-tuning configuration.

    ``plain`` (Adam, ``lr``, ``steps``), ``small_lr`` (``lr * small_lr_factor``), ``long``
    (``steps * long_factor``), ``l2sp`` (pull ``l2sp``), ``head_only`` (heads only, step
    ``lr * head_only_lr_factor``, as a linear probe usually gets), ``mmr`` (``mmr_alpha``,
    ``mmr_kind``), ``mhloss`` (``mhloss_heads`` heads), ``surt`` (``surt_steps`` SURT steps);
    everything else as ``plain``.

    Example:
      >>> ms = make_methods(lr=0.01)
      >>> list(ms), ms["small_lr"].lr, ms["long"].steps
      (['plain', 'small_lr', 'long', 'l2sp', 'head_only', 'mmr', 'mhloss', 'surt'], 0.0025, 600)
    """
    base = Method(lr=lr, steps=steps, batch_size=batch_size, dropout=dropout)
    rep = dataclasses.replace
    return {
        m.name: m
        for m in (
            base,
            rep(base, name="small_lr", lr=lr * small_lr_factor),
            rep(base, name="long", steps=int(steps * long_factor)),
            rep(base, name="l2sp", l2sp=l2sp),
            rep(base, name="head_only", head_only=True, lr=lr * head_only_lr_factor),
            rep(base, name="mmr", mmr_alpha=mmr_alpha, mmr_kind=mmr_kind),
            rep(base, name="mhloss", heads=mhloss_heads),
            rep(base, name="surt", surt_steps=surt_steps),
        )
    }


#: The methods and baselines of the stabilizer study (:func:`make_methods` defaults: small
#: sizes that run fast on CPU).
METHODS: dict[str, Method] = make_methods()


def _dropout_mask(key: jax.Array, shape: tuple[int, ...], rate: jax.Array) -> jax.Array:
    keep = 1.0 - rate
    return jax.random.bernoulli(key, keep, shape).astype(F64) / keep


def objective(
    phi: Callable,
    params: tuple[jax.Array, jax.Array],
    anchor: jax.Array,
    xb: jax.Array,
    yb: jax.Array,
    drop: jax.Array,
    hyper: Hyper,
    *,
    mmr_kind: str = "centroid",
    dropout_on: str = "features",
) -> jax.Array:
    r"""The minibatch objective ``F`` of the module docstring (MHLoss + alpha MMR + L2-SP).

    Args:
      phi: the encoder function (:func:`encoder_function`).
      params: ``(w_enc, heads)``.
      anchor: ``theta_start`` of the L2-SP pull (p_encoder,).
      xb, yb: the minibatch.
      drop: the dropout multipliers, shaped like the features or the inputs.
      hyper: :class:`Hyper`.
    """
    w_enc, H = params
    if dropout_on == "inputs":
        xb = xb * drop
    F = phi(w_enc, xb)
    Fd = F * drop if dropout_on == "features" else F
    data = multihead_loss(H, Fd, yb)
    reg = mmr_penalty(F, yb, mmr_kind, hyper.mmr_temperature)
    pull = 0.5 * hyper.l2sp * jnp.sum((w_enc - anchor) ** 2)
    return data + hyper.mmr_alpha * reg + pull


def finetune_one(
    phi: Callable,
    w_enc: jax.Array,
    anchor: jax.Array,
    X: jax.Array,
    y: jax.Array,
    key: jax.Array,
    hyper: Hyper,
    *,
    heads: int = 1,
    batch_size: int = 16,
    mmr_kind: str = "centroid",
    dropout_on: str = "features",
    optimizer: str = "adam",
) -> tuple[jax.Array, jax.Array]:
    r"""One fine-tuning run (one seed): minibatch Adam on :func:`objective`. Pure.

    The seed's key is split by use: ``fold_in(key, 0)`` draws the heads (:func:`init_heads`),
    ``fold_in(fold_in(key, 1), epoch)`` the permutation of the training set in each epoch
    (minibatch ``j`` of an epoch is its slice ``[j B, (j + 1) B)``), ``fold_in(fold_in(key, 2),
    t)`` the dropout mask of step ``t``. The update is
    ``theta <- theta - lr * m * adam(m * grad)`` (or ``m * grad`` with ``optimizer="sgd"``)
    with ``m = hyper.train_encoder`` on the encoder
    (0 for head-only tuning, where the encoder stays exactly at its start) and 1 on the heads.

    Args:
      phi: encoder function (static under jit).
      w_enc: the encoder start (p_encoder,).
      anchor: the L2-SP anchor (p_encoder,).
      X, y: training inputs (n, d_in) and labels (n,) in {-1, +1}.
      key: the seed's PRNG key.
      hyper: :class:`Hyper` (traced).
      heads: ``K`` (static).
      batch_size, mmr_kind, dropout_on, optimizer: static.

    Returns:
      ``(w_enc, heads)``: the final encoder (p_encoder,) and heads (K, k + 1).
    """
    X, y = jnp.asarray(X, F64), jnp.asarray(y, F64)
    n = X.shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the training set size {n}.")
    nb = n // batch_size
    k = jax.eval_shape(phi, w_enc, X[:1]).shape[-1]
    H0 = init_heads(jax.random.fold_in(key, _TAG_HEAD), heads, k, hyper.head_scale)
    k_data, k_drop = jax.random.fold_in(key, _TAG_DATA), jax.random.fold_in(key, _TAG_DROPOUT)
    drop_shape = (batch_size, k) if dropout_on == "features" else (batch_size, X.shape[1])
    tx = optax.scale_by_adam() if optimizer == "adam" else optax.identity()
    params = (jnp.asarray(w_enc, F64), H0)
    anchor = jnp.asarray(anchor, F64)

    def body(t, carry):
        params, opt = carry
        perm = jax.random.permutation(jax.random.fold_in(k_data, t // nb), n)
        idx = jax.lax.dynamic_slice(perm, ((t % nb) * batch_size,), (batch_size,))
        drop = _dropout_mask(jax.random.fold_in(k_drop, t), drop_shape, hyper.dropout)
        g_enc, g_head = jax.grad(
            lambda p: objective(
                phi,
                p,
                anchor,
                X[idx],
                y[idx],
                drop,
                hyper,
                mmr_kind=mmr_kind,
                dropout_on=dropout_on,
            )
        )(params)
        grads = (hyper.train_encoder * g_enc, g_head)
        (u_enc, u_head), opt = tx.update(grads, opt, params)
        w, H = params
        return (w - hyper.lr * hyper.train_encoder * u_enc, H - hyper.lr * u_head), opt

    params, _ = jax.lax.fori_loop(0, hyper.steps, body, (params, tx.init(params)))
    return params


class SeedRuns(NamedTuple):
    """The result of :func:`finetune_seeds` (leading axis: the seeds).

    Attributes:
      method: the :class:`Method`.
      seeds: the seed ids (S,).
      encoder_start: encoder weights where supervised fine-tuning started (S, p_encoder):
        the pre-trained encoder, or the SURT encoder of each seed.
      encoder: final encoder weights (S, p_encoder).
      heads: final heads (S, K, k + 1), column 0 the biases.
      test_logits: the prediction (mean of the heads' logits) on ``X_test``, (S, m).
      test_accuracy: (S,).
      train_features: final encoder features of ``X``, (S, n, k).
      train_accuracy: (S,).
      train_loss: final full-batch data loss (:func:`multihead_loss`, no dropout), (S,).
    """

    method: Method
    seeds: np.ndarray
    encoder_start: np.ndarray
    encoder: np.ndarray
    heads: np.ndarray
    test_logits: np.ndarray
    test_accuracy: np.ndarray
    train_features: np.ndarray
    train_accuracy: np.ndarray
    train_loss: np.ndarray


def _seed_program(phi, w_start, anchor, X, y, X_test, y_test, keys, hyper, **static):
    def one(w, a, key):
        w_enc, H = finetune_one(phi, w, a, X, y, key, hyper, **static)
        F = phi(w_enc, X)
        logits_train = multihead_predict(H, F)
        logits = multihead_predict(H, phi(w_enc, X_test))
        return (
            w_enc,
            H,
            logits,
            jnp.mean((y_test * logits > 0).astype(F64)),
            F,
            jnp.mean((y * logits_train > 0).astype(F64)),
            multihead_loss(H, F, y),
        )

    return jax.vmap(one)(w_start, anchor, keys)


_seed_jit = jax.jit(
    _seed_program,
    static_argnames=("phi", "heads", "batch_size", "mmr_kind", "dropout_on", "optimizer"),
)


def _surt_seeds(phi, decode, w_enc, w_dec, X, keys, steps, lr, noise, *, batch_size):
    return jax.vmap(
        lambda key: surt_run(
            phi, decode, w_enc, w_dec, X, key, steps, lr=lr, noise=noise, batch_size=batch_size
        )[0]
    )(keys)


_surt_seeds_jit = jax.jit(_surt_seeds, static_argnames=("phi", "decode", "batch_size"))


def seed_keys(seeds: int, seed: int = 0) -> jax.Array:
    """The keys of seeds ``seed, seed + 1, ..., seed + seeds - 1`` (``jax.random.key(s)``)."""
    return jax.vmap(jax.random.key)(jnp.arange(int(seed), int(seed) + int(seeds)))


def finetune_seeds(
    testbed: _ft.Testbed,
    method: Method | str = "plain",
    *,
    seeds: int = 20,
    seed: int = 0,
    X_unlabeled: np.ndarray | None = None,
) -> SeedRuns:
    r"""Fine-tune the testbed with ``method`` for seeds ``seed .. seed + seeds - 1``.

    One compiled program vmaps :func:`finetune_one` over the seeds (per-seed head init, data
    order and dropout masks; with SURT, per-seed SURT minibatches and noise as well, from
    ``fold_in(key, 3)``). Seed ``s`` gets the key ``jax.random.key(s)`` whatever ``seeds`` and
    ``seed`` are, so ``finetune_seeds(tb, m, seeds=1, seed=s)`` reproduces row ``s - seed``
    of a larger call. The pre-trained head of ``testbed.w0`` is not used: heads are drawn
    per seed. This is a driver (it jits its program, cached per architecture and static
    settings); use :func:`finetune_one` to compose your own.

    Args:
      testbed: a :class:`stabtheory.finetune.Testbed`.
      method: a :class:`Method` or a key of :data:`METHODS`.
      seeds: number of seeds ``S``.
      seed: the first seed.
      X_unlabeled: SURT's unlabeled inputs (default ``testbed.X``).

    Returns:
      :class:`SeedRuns`.
    """
    if isinstance(method, str):
        method = METHODS[method]
    enc = encoder_function(testbed)
    w_enc0, _ = _split(testbed)
    keys = seed_keys(seeds, seed)
    X, y = jnp.asarray(testbed.X, F64), jnp.asarray(testbed.y, F64)
    if method.surt_steps > 0:
        ae = pretrained_autoencoder(testbed)
        dec = _decoder_functions(testbed, ae)
        cfg = _ft.PretrainConfig(**testbed.info["pretrain_config"])
        Xu = X if X_unlabeled is None else jnp.asarray(X_unlabeled, F64)
        surt_keys = jax.vmap(lambda k: jax.random.fold_in(k, _TAG_SURT))(keys)
        w_start = _surt_seeds_jit(
            enc.phi,
            dec.decode,
            jnp.asarray(w_enc0),
            jnp.asarray(dec.w_dec),
            Xu,
            surt_keys,
            int(method.surt_steps),
            cfg.lr,
            cfg.noise,
            batch_size=cfg.batch_size,
        )
    else:
        w_start = jnp.broadcast_to(jnp.asarray(w_enc0), (int(seeds), w_enc0.size))
    out = _seed_jit(
        enc.phi,
        w_start,
        w_start,
        X,
        y,
        jnp.asarray(testbed.X_test, F64),
        jnp.asarray(testbed.y_test, F64),
        keys,
        method.hyper(),
        heads=int(method.heads),
        batch_size=int(method.batch_size),
        mmr_kind=method.mmr_kind,
        dropout_on=method.dropout_on,
        optimizer=method.optimizer,
    )
    w_enc, H, logits, acc, F, acc_train, loss = (np.asarray(a) for a in out)
    return SeedRuns(
        method,
        np.arange(int(seed), int(seed) + int(seeds)),
        np.asarray(w_start),
        w_enc,
        H,
        logits,
        acc,
        F,
        acc_train,
        loss,
    )


# --------------------------------------------------------------------------------------------
# Mechanism measures


def weight_distance(w_enc: np.ndarray | jax.Array, w0_enc: np.ndarray | jax.Array) -> np.ndarray:
    r"""``||w_enc - w0_enc||`` over the last axis (batched over leading axes).

    Example:
      >>> weight_distance(np.array([[3.0, 4.0], [0.0, 0.0]]), np.zeros(2)).tolist()
      [5.0, 0.0]
    """
    d = np.asarray(w_enc, np.float64) - np.asarray(w0_enc, np.float64)
    return np.sqrt(np.sum(d * d, axis=-1))


def _with_bias(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float64)
    return np.concatenate([features, np.ones((*features.shape[:-1], 1))], axis=-1)


class FeatureMargin(NamedTuple):
    """The exact max margin of features with a bias coordinate.

    Attributes:
      margin: ``gamma / R`` (scale free), NaN when not separable.
      separable: whether ``[phi(x_i), 1]`` are linearly separable through the origin.
      gamma: the max margin (certified lower bound; NaN when not separable).
      R: ``max_i ||[phi(x_i), 1]||``.
      direction: the max-margin direction ``u_S`` (k + 1,), NaN when not separable.
    """

    margin: float
    separable: bool
    gamma: float
    R: float
    direction: np.ndarray


def features_margin(features: np.ndarray, y: np.ndarray) -> FeatureMargin:
    r""":class:`FeatureMargin` of given features (n, k) and labels (see :func:`feature_margin`)."""
    Xb = _with_bias(features)
    R = float(np.sqrt(np.max(np.sum(Xb * Xb, axis=1))))
    try:
        res = max_margin(Xb, y)
    except NotSeparableError:
        return FeatureMargin(math.nan, False, math.nan, R, np.full(Xb.shape[1], np.nan))
    return FeatureMargin(res.margin / R, True, res.margin, R, res.direction)


def feature_margin(
    encoder_w: np.ndarray, testbed: _ft.Testbed, *, X: np.ndarray | None = None
) -> FeatureMargin:
    r"""The true max margin of the encoder's features of the training set, scale free.

    .. math::
        \gamma = \max_{\|u\| = 1} \min_i y_i\, u \cdot [\phi(x_i), 1], \qquad
        \text{margin} = \gamma / R, \quad R = \max_i \|[\phi(x_i), 1]\| ,

    by the exact solver :func:`stabtheory.max_margin` (a bias coordinate appended, so the
    separating hyperplane may have an intercept). ``gamma / R`` in (0, 1] does not change when
    the features are rescaled together with the bias coordinate. Not separable: NaN and
    ``separable=False`` (never an exception).

    Args:
      encoder_w: flat encoder weights (p_encoder,).
      testbed: the testbed (its encoder architecture and ``X``, ``y``).
      X: inputs (default ``testbed.X``; labels are ``testbed.y``).

    Returns:
      :class:`FeatureMargin`.
    """
    enc = encoder_function(testbed)
    F = np.asarray(enc.phi(jnp.asarray(encoder_w, F64), jnp.asarray(testbed.X if X is None else X)))
    return features_margin(F, testbed.y)


class HeadConvergence(NamedTuple):
    """Direction error of the mean head against the max-margin direction.

    Attributes:
      steps: the GD steps ``t`` (T,).
      error_single: ``||v(t)/||v(t)|| - u_S||`` with one head, per seed (seeds, T).
      error_multi: the same for the mean of ``K`` heads, per seed (seeds, T).
      K: number of heads of ``error_multi``.
      margin: ``gamma / R`` of the features (with bias coordinate).
      lr: the GD step size used (per head, see :func:`head_convergence`).
    """

    steps: np.ndarray
    error_single: np.ndarray
    error_multi: np.ndarray
    K: int
    margin: float
    lr: float


def head_convergence(
    features: np.ndarray,
    y: np.ndarray,
    K: int = 5,
    steps: int | Sequence[int] = 10_000,
    seeds: int = 20,
    *,
    seed: int = 0,
    lr: float | None = None,
    head_scale: float = 1.0,
) -> HeadConvergence:
    r"""How fast the mean-head direction approaches ``u_S`` on frozen features, K = 1 vs K.

    On the signed points ``z_i = y_i [phi(x_i), 1]`` (separable), ``K`` linear heads with
    independent inits ``N(0, head_scale^2/k)`` are trained by full-batch GD on the MHLoss
    (:func:`stabtheory.heads.train_runs`, logistic loss), and the mean head
    ``v(t) = mean_k w_k(t)`` (whose logit is the MHLoss prediction) is compared with the
    max-margin direction:

    .. math::
        e(t) = \big\| v(t)/\|v(t)\| - u_S \big\| .

    Each head converges in direction to ``u_S`` (Soudry et al. 2018) but keeps a memory of its
    init that fades like ``1/||w(t)||``; averaging ``K`` independent inits shrinks that memory
    by about ``sqrt(K)``, which is the speed-up MHLoss is meant to give. The MHLoss gradient of
    each head is ``1/K`` of its single-head gradient; since the fine-tuning loop uses Adam,
    which removes that factor, the step here is ``lr * K`` for the ``K``-head runs so that every
    head takes the same step as a single head. Seed ``s`` of the single-head run starts from
    head 0 of seed ``s``'s ``K`` heads.

    Args:
      features: frozen features (n, k) (a bias coordinate is appended).
      y: labels (n,) in {-1, +1}.
      K: number of heads to compare with one head.
      steps: the largest ``t`` (12 log-spaced checkpoints from 1) or the checkpoints.
      seeds: number of random inits per setting.
      seed: first seed.
      lr: GD step (default ``1 / b`` with ``b = R^2 / 4`` the smoothness of the logistic loss).
      head_scale: init scale of the heads.

    Returns:
      :class:`HeadConvergence`.

    Raises:
      NotSeparableError: the features (with bias) are not separable.
    """
    Xb = _with_bias(features)
    y = np.asarray(y, np.float64)
    res = max_margin(Xb, y)
    R = float(np.sqrt(np.max(np.sum(Xb * Xb, axis=1))))
    lr = 4.0 / R**2 if lr is None else float(lr)
    if np.ndim(steps) == 0:
        ts = np.unique(np.round(np.logspace(0, math.log10(int(steps)), 12)).astype(np.int64))
    else:
        ts = np.asarray(steps, np.int64)
    Z = jnp.asarray(y[:, None] * Xb)
    k = features.shape[1]
    keys = seed_keys(seeds, seed)
    W0 = jax.vmap(lambda key: jax.random.normal(key, (K, k + 1), F64))(keys)
    W0 = W0.at[..., -1].set(0.0) * (head_scale / math.sqrt(k))
    u = res.direction
    out = {}
    for name, w0, step in (("single", W0[:, :1], lr), ("multi", W0, lr * K)):
        traj = _train_runs_jit(
            Z, jnp.ones((seeds, Z.shape[0])), jnp.full(seeds, step), w0, jnp.asarray(ts)
        )
        v = np.asarray(traj.w).mean(axis=2)  # (seeds, T, d): the mean head
        v = v / np.linalg.norm(v, axis=-1, keepdims=True)
        out[name] = np.linalg.norm(v - u, axis=-1)
    return HeadConvergence(ts, out["single"], out["multi"], int(K), res.margin / R, lr)


_train_runs_jit = jax.jit(
    functools.partial(_heads.train_runs, loss="logistic", optimizer="gd"),
)
