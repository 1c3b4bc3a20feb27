r"""The fine-tuning loop every method shares: its :class:`Settings`, the traced :class:`Hyper`,
the objective, one run (:func:`finetune_one`) and the seed-vmapped driver (:func:`finetune_seeds`).

Every method is the same minibatch Adam (or SGD) fine-tuning of an encoder ``phi_theta`` and
``K`` linear heads ``(c_k, v_k)`` from a pre-trained encoder ``theta_0``, with a per-seed head
initialisation, data order and dropout masks. The objective on a minibatch ``B`` is

.. math::
    F(\theta, V) = \frac1K \sum_{k=1}^K \frac1{|B|}\sum_{i \in B}
        \operatorname{softplus}\big(-y_i\,(c_k + v_k\cdot \tilde\phi_\theta(x_i))\big)
      \;+\; \sum_j T_j\big(\phi_\theta(x_B), y_B\big)
      \;+\; \frac{\lambda}{2}\,\|\theta - \theta_\text{start}\|^2 ,

(``tilde phi`` the features after dropout; the loss terms ``T_j`` are MMR's
``alpha R_MMR`` (:class:`~stabtheory.stabilizers.MMRTerm`, always there, ``alpha = 0`` unless
MMR) and any of :attr:`Settings.terms`), with the SURT encoder as ``theta_start`` when
``surt_steps > 0``. The learning rate, number of steps, the terms' weights, ``lambda``, the
dropout rate and the head-only switch are traced, so every baseline and MMR share one
compilation per testbed architecture; ``K``, the minibatch size, the terms' kinds, where dropout
acts and the optimizer are static (:class:`Hyper`).

References:
  X. Li, Y. Grandvalet, F. Davoine (2018), "Explicit inductive bias for transfer learning with
  convolutional networks" (L2-SP).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stabtheory import full_finetuning as ff
from stabtheory.stabilizers.encoder import encoder_function, split_weights
from stabtheory.stabilizers.method import Method, get_method
from stabtheory.stabilizers.mhloss import init_heads, multihead_loss, multihead_predict
from stabtheory.stabilizers.mmr import MMR_KINDS, MMRTerm
from stabtheory.stabilizers.seeds import KeyUse, seed_keys
from stabtheory.stabilizers.surt import surt_encoders

__all__ = [
    "DROPOUT_ON",
    "OPTIMIZERS",
    "Hyper",
    "SeedRuns",
    "Settings",
    "finetune_one",
    "finetune_seeds",
    "objective",
]

OPTIMIZERS = ("adam", "sgd")
DROPOUT_ON = ("features", "inputs")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Hyper:
    """The settings of :func:`finetune_one`: traced fields (changing them never recompiles)
    and static ones (``static`` metadata: part of the compiled program, as equinox's
    ``field(static=True)``).

    Attributes:
      lr, steps, l2sp, dropout, train_encoder, head_scale: traced scalars (see
        :class:`Settings`; ``train_encoder`` is 0 for head-only tuning, else 1).
      terms: the loss terms (pytrees called as ``term(features, y)``; their arrays traced,
        their static fields part of the program).
      heads, batch_size, dropout_on, optimizer: static.
    """

    lr: jax.Array
    steps: jax.Array
    l2sp: jax.Array
    dropout: jax.Array
    train_encoder: jax.Array
    head_scale: jax.Array
    terms: tuple
    heads: int = dataclasses.field(metadata={"static": True})
    batch_size: int = dataclasses.field(metadata={"static": True})
    dropout_on: str = dataclasses.field(metadata={"static": True})
    optimizer: str = dataclasses.field(metadata={"static": True})


@dataclasses.dataclass(frozen=True)
class Settings:
    r"""The settings of one fine-tuning method in the shared loop (see the module docstring).

    Attributes:
      name: a label.
      heads: ``K``, the number of linear heads (MHLoss when > 1); static.
      mmr_alpha: weight ``alpha`` of :func:`~stabtheory.stabilizers.mmr_penalty` (0: no MMR).
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
      terms: more loss terms, added after MMR's: pytrees (e.g. a
        ``jax.tree_util.register_dataclass``) called as ``term(features, y) -> scalar`` on the
        minibatch's features before dropout; their leaves become float64 and are traced.
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
    terms: tuple = ()

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        if self.heads < 1:
            raise ValueError(f"heads must be >= 1, got {self.heads}.")
        if self.mmr_kind not in MMR_KINDS:
            raise ValueError(f"mmr_kind must be one of {MMR_KINDS}, got {self.mmr_kind!r}.")
        if self.dropout_on not in DROPOUT_ON:
            raise ValueError(f"dropout_on must be one of {DROPOUT_ON}, got {self.dropout_on!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if self.steps < 0 or self.surt_steps < 0 or self.batch_size < 1:
            raise ValueError("steps and surt_steps must be >= 0 and batch_size >= 1.")
        if self.lr <= 0 or self.l2sp < 0 or self.mmr_temperature <= 0:
            raise ValueError("need lr > 0, l2sp >= 0 and mmr_temperature > 0.")
        if not all(callable(t) for t in self.terms):
            raise ValueError("every loss term must be callable as term(features, y).")

    def hyper(self) -> Hyper:
        """The settings as a :class:`Hyper` (traced float64/int32 scalars, static settings)."""
        f64 = jnp.float64
        mmr = MMRTerm(
            jnp.asarray(self.mmr_alpha, f64), jnp.asarray(self.mmr_temperature, f64), self.mmr_kind
        )
        extra = jax.tree.map(lambda x: jnp.asarray(x, f64), self.terms)
        return Hyper(
            lr=jnp.asarray(self.lr, f64),
            steps=jnp.asarray(self.steps, jnp.int32),
            l2sp=jnp.asarray(self.l2sp, f64),
            dropout=jnp.asarray(self.dropout, f64),
            train_encoder=jnp.asarray(0.0 if self.head_only else 1.0, f64),
            head_scale=jnp.asarray(self.head_scale, f64),
            terms=(mmr, *extra),
            heads=int(self.heads),
            batch_size=int(self.batch_size),
            dropout_on=self.dropout_on,
            optimizer=self.optimizer,
        )

    def to_dict(self) -> dict:
        """The settings as a dict of plain values; ``terms`` (their reprs) only when there are
        any."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "terms"}
        if self.terms:
            out["terms"] = [repr(t) for t in self.terms]
        return out


def _dropout_mask(key: jax.Array, shape: tuple[int, ...], rate: jax.Array) -> jax.Array:
    keep = 1.0 - rate
    return jax.random.bernoulli(key, keep, shape).astype(jnp.float64) / keep


def objective(
    phi: Callable,
    params: tuple[jax.Array, jax.Array],
    anchor: jax.Array,
    xb: jax.Array,
    yb: jax.Array,
    drop: jax.Array,
    hyper: Hyper,
) -> jax.Array:
    r"""The minibatch objective ``F`` of the module docstring (MHLoss + loss terms + L2-SP).

    Args:
      phi: the encoder function (:func:`~stabtheory.stabilizers.encoder_function`).
      params: ``(w_enc, heads)``.
      anchor: ``theta_start`` of the L2-SP pull (p_encoder,).
      xb, yb: the minibatch.
      drop: the dropout multipliers, shaped like the features or the inputs.
      hyper: :class:`Hyper`.
    """
    w_enc, H = params
    if hyper.dropout_on == "inputs":
        xb = xb * drop
    F = phi(w_enc, xb)
    Fd = F * drop if hyper.dropout_on == "features" else F
    total = multihead_loss(H, Fd, yb)
    for term in hyper.terms:
        total = total + term(F, yb)
    pull = 0.5 * hyper.l2sp * jnp.sum((w_enc - anchor) ** 2)
    return total + pull


def finetune_one(
    phi: Callable,
    w_enc: jax.Array,
    anchor: jax.Array,
    X: jax.Array,
    y: jax.Array,
    key: jax.Array,
    hyper: Hyper,
) -> tuple[jax.Array, jax.Array]:
    r"""One fine-tuning run (one seed): minibatch Adam on :func:`objective`. Pure.

    The seed's key is split by use (:class:`~stabtheory.stabilizers.KeyUse`):
    ``fold_in(key, 0)`` draws the heads (:func:`~stabtheory.stabilizers.init_heads`),
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
      hyper: :class:`Hyper`.

    Returns:
      ``(w_enc, heads)``: the final encoder (p_encoder,) and heads (K, k + 1).
    """
    X, y = jnp.asarray(X, jnp.float64), jnp.asarray(y, jnp.float64)
    n, batch_size = X.shape[0], hyper.batch_size
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the training set size {n}.")
    nb = n // batch_size
    k = jax.eval_shape(phi, w_enc, X[:1]).shape[-1]
    H0 = init_heads(jax.random.fold_in(key, KeyUse.HEAD), hyper.heads, k, hyper.head_scale)
    k_data = jax.random.fold_in(key, KeyUse.DATA)
    k_drop = jax.random.fold_in(key, KeyUse.DROPOUT)
    drop_shape = (batch_size, k) if hyper.dropout_on == "features" else (batch_size, X.shape[1])
    tx = optax.scale_by_adam() if hyper.optimizer == "adam" else optax.identity()
    params = (jnp.asarray(w_enc, jnp.float64), H0)
    anchor = jnp.asarray(anchor, jnp.float64)

    def body(t, carry):
        params, opt = carry
        perm = jax.random.permutation(jax.random.fold_in(k_data, t // nb), n)
        idx = jax.lax.dynamic_slice(perm, ((t % nb) * batch_size,), (batch_size,))
        drop = _dropout_mask(jax.random.fold_in(k_drop, t), drop_shape, hyper.dropout)
        g_enc, g_head = jax.grad(lambda p: objective(phi, p, anchor, X[idx], y[idx], drop, hyper))(
            params
        )
        grads = (hyper.train_encoder * g_enc, g_head)
        (u_enc, u_head), opt = tx.update(grads, opt, params)
        w, H = params
        return (w - hyper.lr * hyper.train_encoder * u_enc, H - hyper.lr * u_head), opt

    params, _ = jax.lax.fori_loop(0, hyper.steps, body, (params, tx.init(params)))
    return params


class SeedRuns(NamedTuple):
    """The result of :func:`finetune_seeds` (leading axis: the seeds).

    Attributes:
      settings: the :class:`Settings`.
      seeds: the seed ids (S,).
      encoder_start: encoder weights where supervised fine-tuning started (S, p_encoder):
        the pre-trained encoder, or the SURT encoder of each seed.
      encoder: final encoder weights (S, p_encoder).
      heads: final heads (S, K, k + 1), column 0 the biases.
      test_logits: the prediction (mean of the heads' logits) on ``X_test``, (S, m).
      test_accuracy: (S,).
      train_features: final encoder features of ``X``, (S, n, k).
      train_accuracy: (S,).
      train_loss: final full-batch data loss (MHLoss, no dropout), (S,).
    """

    settings: Settings
    seeds: np.ndarray
    encoder_start: np.ndarray
    encoder: np.ndarray
    heads: np.ndarray
    test_logits: np.ndarray
    test_accuracy: np.ndarray
    train_features: np.ndarray
    train_accuracy: np.ndarray
    train_loss: np.ndarray


def _seed_program(phi, w_start, anchor, X, y, X_test, y_test, keys, hyper):
    def one(w, a, key):
        w_enc, H = finetune_one(phi, w, a, X, y, key, hyper)
        F = phi(w_enc, X)
        logits_train = multihead_predict(H, F)
        logits = multihead_predict(H, phi(w_enc, X_test))
        return (
            w_enc,
            H,
            logits,
            jnp.mean((y_test * logits > 0).astype(jnp.float64)),
            F,
            jnp.mean((y * logits_train > 0).astype(jnp.float64)),
            multihead_loss(H, F, y),
        )

    return jax.vmap(one)(w_start, anchor, keys)


_seed_jit = jax.jit(_seed_program, static_argnames=("phi",))


def _as_settings(method: Settings | Method | str) -> Settings:
    if isinstance(method, Settings):
        return method
    if isinstance(method, str):
        method = get_method(method)
    return method.settings(Settings())


def finetune_seeds(
    testbed: ff.Testbed,
    method: Settings | Method | str = "plain",
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
      testbed: a :class:`stabtheory.full_finetuning.Testbed`.
      method: the :class:`Settings`, or a :class:`~stabtheory.stabilizers.Method` or the name
        of a registered one (its settings from the default :class:`Settings`).
      seeds: number of seeds ``S``.
      seed: the first seed.
      X_unlabeled: SURT's unlabeled inputs (default ``testbed.X``).

    Returns:
      :class:`SeedRuns`.
    """
    settings = _as_settings(method)
    enc = encoder_function(testbed)
    w_enc0, _ = split_weights(testbed)
    keys = seed_keys(seeds, seed)
    X, y = jnp.asarray(testbed.X, jnp.float64), jnp.asarray(testbed.y, jnp.float64)
    if settings.surt_steps > 0:
        w_start = surt_encoders(testbed, keys, settings.surt_steps, X_unlabeled)
    else:
        w_start = jnp.broadcast_to(jnp.asarray(w_enc0), (int(seeds), w_enc0.size))
    out = _seed_jit(
        enc.phi,
        w_start,
        w_start,
        X,
        y,
        jnp.asarray(testbed.X_test, jnp.float64),
        jnp.asarray(testbed.y_test, jnp.float64),
        keys,
        settings.hyper(),
    )
    w_enc, H, logits, acc, F, acc_train, loss = (np.asarray(a) for a in out)
    return SeedRuns(
        settings,
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
