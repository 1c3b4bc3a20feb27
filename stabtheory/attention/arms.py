r"""Paired fine-tuning of the attention testbed under several stabilizer arms as one program.

Every *run* is one (arm, seed, sample-weight vector) of the fine-tuning recipe of
:mod:`stabtheory.attention.finetune` (BERT's AdamW with or without bias correction, clip,
warmup then linear decay, batch 16, a fresh permutation every epoch). An arm is three traced
numbers, so plain fine-tuning, MMR at any ``alpha``, MHLoss and fine-tuning from a SURT
encoder share one compiled program (``jax.vmap`` over the runs):

* ``start``: which encoder the run starts from (row of ``starts``: the pre-trained one, or a
  SURT encoder of :func:`stabtheory.attention.surt.masked_retraining`);
* ``alpha``: the weight of the MMR term ``alpha R(phi)`` on the pooled ``[CLS]`` features
  (:func:`stabtheory.stabilizers.mmr_penalty`, labels ``2y - 1``; 0 for the other arms);
* ``head_weights`` (K,): the weights of ``K`` two-logit heads in the loss
  ``sum_k h_k CE(f_k)`` and in the prediction ``sum_k h_k f_k`` (plain: ``(1, 0, ..., 0)``;
  MHLoss: ``1/K`` each, docs/theory.md section 4).

**Pairing.** Run ``(arm, seed s)`` uses the key of seed ``s`` whatever its arm: head 0 is
drawn exactly as :func:`~stabtheory.attention.finetune_seeds` draws the head of seed ``s``
(so plain here *is* that function's run), the extra heads of MHLoss from one draw of
``fold_in(head key, 1)`` (independent of head 0), and the data order from the same key. The
encoder has no dropout, so nothing else is random. ``sample_weights`` weight each training
example in the loss (and in MMR's centroids): a zero leaves it out without changing the data
order or the shapes (leave-one-out as a mask).

**Two regimes in one scan.** The fixed budget is the weights after ``recipe.steps``. The
loss-target regime freezes a copy of the weights after the first window of ``window`` steps
whose mean minibatch training loss (of the prediction, the loss a practitioner logs) is at
most ``target``; a run that never reaches it keeps its last weights and is reported
(``reached``).

Float32 (a testbed, not a theory check).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

from stabtheory.attention.encoder import Classifier
from stabtheory.attention.finetune import Recipe, head_mask, lr_at, scale_by_adam
from stabtheory.stabilizers.mmr import mmr_penalty

__all__ = [
    "ArmRuns",
    "Network",
    "Runs",
    "body_mask",
    "finetune_arms",
    "network",
]

F32 = jnp.float32


class Network(NamedTuple):
    """The flat-weight functions of a :class:`~stabtheory.attention.Classifier` with ``K`` heads.

    Attributes:
      forward: ``forward(W, tokens) -> (features (B, d), logits (B, K, 2))``; ``W`` is the
        classifier's flat weights (head 0 inside, the layout of
        :func:`~stabtheory.attention.as_function`) followed by the ``K - 1`` extra heads
        (kernels then biases).
      p: the classifier's number of weights; extra: the extra heads' (``(K - 1) (2d + 2)``).
      K: the number of heads; width: ``d``.
    """

    forward: Callable
    p: int
    extra: int
    K: int
    width: int


def network(clf: Classifier, K: int) -> tuple[Network, np.ndarray]:
    """The :class:`Network` of ``clf`` with ``K`` heads, and ``clf``'s flat weights (p,)."""
    if K < 1:
        raise ValueError(f"need at least one head, got K={K}.")
    graphdef, params, rest = nnx.split(clf, nnx.Param, ...)
    w, unravel = ravel_pytree(jax.tree.map(lambda a: jnp.asarray(a, F32), params))
    p, d = int(w.size), int(clf.encoder.cfg.width)
    extra = (K - 1) * (2 * d + 2)

    def forward(W: jax.Array, tokens: jax.Array):
        m = nnx.merge(graphdef, unravel(W[:p]), rest)
        f = m.pooler(m.encoder(tokens))
        kern = W[p : p + (K - 1) * 2 * d].reshape(K - 1, d, 2)
        bias = W[p + (K - 1) * 2 * d :].reshape(K - 1, 2)
        extra_logits = jnp.einsum("bd,kdc->bkc", f, kern) + bias
        return f, jnp.concatenate([m.head(f)[:, None], extra_logits], axis=1)

    return Network(forward, p, extra, K, d), np.asarray(w)


def body_mask(clf: Classifier) -> np.ndarray:
    """A (p,) boolean mask of the encoder and pooler weights (all but the head) in the flat
    weights of ``clf``: the weights SURT's distances are measured on."""
    params = nnx.state(clf, nnx.Param)
    marked = jax.tree.map(lambda a: jnp.ones(a.shape, F32), params)
    marked["head"]["kernel"] = nnx.Param(jnp.zeros(clf.head.kernel.shape, F32))
    marked["head"]["bias"] = nnx.Param(jnp.zeros(clf.head.bias.shape, F32))
    return np.asarray(ravel_pytree(marked)[0]) > 0


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Runs:
    """The runs of one program, every field with a leading run axis (traced).

    Attributes:
      start: (R,) int32, the row of ``starts`` each run starts from.
      alpha: (R,) float32, the MMR weight.
      head_weights: (R, K) float32, the heads' weights (sum 1).
      seed: (R,) int32, the seed (key ``fold_in(key(base), seed)``, shared across arms).
      sample_weights: (R, n) float32, each training example's weight (1, or 0 to leave out).
    """

    start: jax.Array
    alpha: jax.Array
    head_weights: jax.Array
    seed: jax.Array
    sample_weights: jax.Array


class ArmRuns(NamedTuple):
    """What :func:`finetune_arms` returns, per run (numpy, leading axis R).

    Attributes:
      test_accuracy, test_accuracy_target: at the fixed budget and at the loss target.
      test_pred, test_pred_target: (R, m) int8 predicted test labels.
      train_loss, train_accuracy: on the whole (weighted) training set at the fixed budget.
      centroid_distance: ``-R(phi)`` of MMR on the whole training set at the fixed budget (the
        quantity MMR maximizes: distance of the class centroids of normalised features).
      reached: (R,) bool, the loss target reached within the budget; reach_step: the step
        count at the freeze (``steps`` when not reached).
      body, body_target: (R, p_body) float32 encoder+pooler weights at the two regimes.
      features: (F, n, d) pooled training features of the first ``F`` runs at the budget.
    """

    test_accuracy: np.ndarray
    test_accuracy_target: np.ndarray
    test_pred: np.ndarray
    test_pred_target: np.ndarray
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    centroid_distance: np.ndarray
    reached: np.ndarray
    reach_step: np.ndarray
    body: np.ndarray
    body_target: np.ndarray
    features: np.ndarray


def _data_loss(net: Network, W, X, y, s, hw):
    """``(sum_k h_k CE_k, CE of the prediction, features)`` weighted by ``s`` on a batch."""
    f, logits = net.forward(W, X)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y[:, None])  # (B, K)
    denom = jnp.maximum(s.sum(), 1.0)
    heads = (s @ ce) @ hw / denom
    pred = jnp.einsum("bkc,k->bc", logits, hw)
    logged = s @ optax.softmax_cross_entropy_with_integer_labels(pred, y) / denom
    return heads, logged, f


def _one_run(net, starts, hmask, key0, X, y, recipe, run, target, *, window, batch_size):
    n = X.shape[0]
    per_epoch = n // batch_size
    key = jax.random.fold_in(key0, run.seed)
    k_head, k_order = jax.random.split(key)
    w0 = starts[run.start]
    head = 0.02 * jax.random.normal(k_head, w0.shape, F32)  # finetune_seeds' head draw
    w = jnp.where(hmask, head, w0)
    kern = 0.02 * jax.random.normal(jax.random.fold_in(k_head, 1), (net.extra,), F32)
    bias_part = (net.K - 1) * 2
    extra = jnp.where(jnp.arange(net.extra) < net.extra - bias_part, kern, 0.0)
    W = jnp.concatenate([w, extra])
    tx = scale_by_adam(bias_correction=recipe.bias_correction)
    ypm = 2.0 * y.astype(F32) - 1.0

    def body(t, carry):
        W, state, frozen, reached, at, acc = carry
        perm = jax.random.permutation(jax.random.fold_in(k_order, t // per_epoch), n)
        idx = jax.lax.dynamic_slice(perm, ((t % per_epoch) * batch_size,), (batch_size,))
        s = run.sample_weights[idx]

        def objective(V):
            heads, logged, f = _data_loss(net, V, X[idx], y[idx], s, run.head_weights)
            return heads + run.alpha * mmr_penalty(f, ypm[idx], weights=s), logged

        g, logged = jax.grad(objective, has_aux=True)(W)
        g = g * jnp.minimum(1.0, recipe.clip / (jnp.linalg.norm(g) + 1e-12))
        u, state = tx.update(g, state)
        W = W - lr_at(recipe, t) * (u + recipe.weight_decay * W)
        acc = acc + logged
        check = (t + 1) % window == 0
        newly = check & ~reached & (acc / window <= target)
        frozen = jnp.where(newly, W, frozen)
        at = jnp.where(newly, t + 1, at)
        reached = reached | newly
        return W, state, frozen, reached, at, jnp.where(check, 0.0, acc)

    init = (W, tx.init(W), W, jnp.asarray(False), recipe.steps, jnp.asarray(0.0, F32))
    W, _, frozen, reached, at, _ = jax.lax.fori_loop(0, recipe.steps, body, init)
    return W, jnp.where(reached, frozen, W), reached, at


def _evaluate(net, W, Xe, ye, se, hw, *, train: bool):
    """Accuracy, predictions (int8), loss and centroid distance on one set, for one run."""
    f, logits = net.forward(W, Xe)
    pred = jnp.einsum("bkc,k->bc", logits, hw)
    label = pred.argmax(-1)
    acc = (se * (label == ye)).sum() / jnp.maximum(se.sum(), 1.0)
    if not train:
        return acc, label.astype(jnp.int8)
    loss = (
        se @ optax.softmax_cross_entropy_with_integer_labels(pred, ye) / jnp.maximum(se.sum(), 1.0)
    )
    cd = -mmr_penalty(f, 2.0 * ye.astype(F32) - 1.0, weights=se)
    return acc, loss, cd, f


def _program(net, starts, hmask, key0, X, y, X_test, y_test, recipe, runs, target, **static):
    window, bs, fs = static["window"], static["bs"], static["fs"]
    trained = jax.vmap(
        lambda r: _one_run(
            net, starts, hmask, key0, X, y, recipe, r, target, window=window, batch_size=bs
        )
    )(runs)
    W, Wt, reached, at = trained
    ones = jnp.ones(y_test.shape, F32)

    def evaluate(args):
        Wf, Wtf, hw, s = args
        acc, lab = _evaluate(net, Wf, X_test, y_test, ones, hw, train=False)
        acc_t, lab_t = _evaluate(net, Wtf, X_test, y_test, ones, hw, train=False)
        tr_acc, tr_loss, cd, f = _evaluate(net, Wf, X, y, s, hw, train=True)
        return acc, acc_t, lab, lab_t, tr_loss, tr_acc, cd, f

    out = jax.lax.map(evaluate, (W, Wt, runs.head_weights, runs.sample_weights), batch_size=8)
    acc, acc_t, lab, lab_t, tr_loss, tr_acc, cd, f = out
    return acc, acc_t, lab, lab_t, tr_loss, tr_acc, cd, reached, at, W, Wt, f[:fs]


_jitted = jax.jit(_program, static_argnames=("net", "window", "bs", "fs"))


def finetune_arms(
    clf: Classifier,
    starts: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    recipe: Recipe,
    runs: Runs,
    *,
    K: int,
    target: float,
    window: int = 10,
    batch_size: int = 16,
    seed: int = 0,
    feature_runs: int = 0,
    net: Network | None = None,
) -> ArmRuns:
    """Fine-tune every run of ``runs`` as one jitted, vmapped program (see the module docstring).

    Args:
      clf: the classifier at the pre-trained weights (its shape; its head is re-drawn).
      starts: (A, p) flat classifier weights the runs may start from (row 0 conventionally the
        pre-trained ones; SURT encoders in the others). The head kernel is re-drawn per seed;
        the head bias is the row's (0 for a fresh classifier).
      X, y, X_test, y_test: the task (token ids and labels in {0, 1}).
      recipe: the :class:`~stabtheory.attention.Recipe` (traced).
      runs: the :class:`Runs` (traced; R runs).
      K: the number of heads (static).
      target: the training-loss target (traced).
      window: steps per loss window (static).
      batch_size: minibatch size (static).
      seed: the base seed (seed ``s`` uses ``fold_in(key(seed), s)``).
      feature_runs: return the pooled training features of the first this many runs.
      net: the :class:`Network` of ``clf`` with ``K`` heads (pass the same object to share the
        compilation between calls).

    Returns:
      :class:`ArmRuns`.
    """
    if net is None:
        net, _ = network(clf, K)
    if net.K != K:
        raise ValueError(f"net has {net.K} heads, K={K} asked.")
    out = _jitted(
        net,
        jnp.asarray(starts, F32),
        jnp.asarray(head_mask(clf)),
        jax.random.key(seed),
        jnp.asarray(X),
        jnp.asarray(y),
        jnp.asarray(X_test),
        jnp.asarray(y_test),
        recipe,
        runs,
        jnp.asarray(target, F32),
        window=window,
        bs=batch_size,
        fs=feature_runs,
    )
    acc, acc_t, lab, lab_t, tr_loss, tr_acc, cd, reached, at, W, Wt, f = out
    keep, p = body_mask(clf), net.p
    return ArmRuns(
        np.asarray(acc, float),
        np.asarray(acc_t, float),
        np.asarray(lab),
        np.asarray(lab_t),
        np.asarray(tr_loss, float),
        np.asarray(tr_acc, float),
        np.asarray(cd, float),
        np.asarray(reached),
        np.asarray(at),
        np.asarray(W)[:, :p][:, keep],
        np.asarray(Wt)[:, :p][:, keep],
        np.asarray(f),
    )
