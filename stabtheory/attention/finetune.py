r"""Fine-tuning the attention testbed over many seeds as one vmapped, jitted program.

The recipe is BERT's (Devlin et al. 2019) as the Hugging Face trainer runs it: minibatch
AdamW (decoupled weight decay), gradient-norm clipping at 1, a linear warmup over a fraction
of the steps then a linear decay to 0 (the learning rate at step ``t`` is
``lr * t / warm`` for ``t < warm``, ``lr * (T - t) / (T - warm)`` after), a fresh permutation
of the training set every epoch. Adam runs with or without bias correction
(:func:`scale_by_adam`): without it (the original ``BERTAdam``), the first updates are
``(1 - b1) g / sqrt((1 - b2) g^2) ~ 3.2 sign(g)`` times the learning rate, which Mosbach et
al. (2021) identify as a cause of failed runs.

A seed fixes the head initialisation (:class:`~stabtheory.attention.encoder.Classifier`) and
the data order, as in Dodge et al. (2020); every seed starts from the same pre-trained
encoder. The learning rate, steps, warmup fraction, bias-correction switch, weight decay and
clip are traced (changing them never recompiles); the data shapes, the batch size and the
number of seeds are static.

Float32 (a testbed, not a theory check).

References:
  J. Dodge et al. (2020), "Fine-tuning pretrained language models: weight initializations,
  data orders, and early stopping". M. Mosbach, M. Andriushchenko, D. Klakow (2021), "On the
  stability of fine-tuning BERT: misconceptions, explanations, and strong baselines".
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

from stabtheory.attention.encoder import Classifier, as_function

__all__ = [
    "AdamState",
    "FinetuneResult",
    "Recipe",
    "finetune_seeds",
    "head_mask",
    "lr_at",
    "scale_by_adam",
]

F32 = jnp.float32


class AdamState(NamedTuple):
    """The state of :func:`scale_by_adam`: step count and the two moment estimates."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6, bias_correction=True
) -> optax.GradientTransformation:
    r"""Adam's scaling, with a switch for the bias correction.

    .. math::
        m_t = b_1 m_{t-1} + (1 - b_1) g_t, \quad v_t = b_2 v_{t-1} + (1 - b_2) g_t^2, \quad
        u_t = \frac{m_t / c_1}{\sqrt{v_t / c_2} + \epsilon},

    with ``c_i = 1 - b_i^t`` when ``bias_correction`` and ``c_i = 1`` otherwise (``BERTAdam``).
    ``bias_correction`` may be a traced boolean or 0/1 array (one program for both).
    ``optax.scale_by_adam`` is the ``bias_correction=True`` case (it has no switch).

    Example:
      >>> tx = scale_by_adam(bias_correction=False)
      >>> u, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
      >>> round(float(u[0]), 3)  # 0.1 * 2 / (sqrt(0.001 * 4) + 1e-6)
      3.162
    """

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdamState(jnp.zeros((), jnp.int32), zeros, zeros)

    def update(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        count = state.count + 1
        t = count.astype(F32)
        c1 = jnp.where(bias_correction, 1 - jnp.asarray(b1, F32) ** t, 1.0)
        c2 = jnp.where(bias_correction, 1 - jnp.asarray(b2, F32) ** t, 1.0)
        out = jax.tree.map(
            lambda m, v: ((m / c1) / (jnp.sqrt(v / c2) + eps)).astype(m.dtype), mu, nu
        )
        return out, AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Recipe:
    """A fine-tuning recipe; every field traced (see the module docstring).

    Attributes:
      lr: peak learning rate.
      steps: optimizer steps ``T``.
      warmup: warmup fraction of ``T`` (``warm = round(warmup * T)``).
      bias_correction: 1 for Adam, 0 for Adam without bias correction.
      weight_decay: decoupled weight decay (AdamW).
      clip: global gradient-norm clip.
    """

    lr: jax.Array
    steps: jax.Array
    warmup: jax.Array
    bias_correction: jax.Array
    weight_decay: jax.Array = dataclasses.field(default_factory=lambda: jnp.asarray(0.01, F32))
    clip: jax.Array = dataclasses.field(default_factory=lambda: jnp.asarray(1.0, F32))

    @classmethod
    def make(cls, lr, steps, warmup=0.1, bias_correction=True, weight_decay=0.01, clip=1.0):
        """A recipe from Python numbers."""
        return cls(
            jnp.asarray(lr, F32),
            jnp.asarray(steps, jnp.int32),
            jnp.asarray(warmup, F32),
            jnp.asarray(bool(bias_correction)),
            jnp.asarray(weight_decay, F32),
            jnp.asarray(clip, F32),
        )


class FinetuneResult(NamedTuple):
    """Per seed: ``train_loss`` (mean cross-entropy on the whole training set at the end),
    ``train_accuracy``, ``test_accuracy``; each (seeds,) numpy."""

    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray


def head_mask(clf: Classifier) -> np.ndarray:
    """A (p,) boolean mask of the head kernel's entries in the flat weights of ``clf``."""
    params = nnx.state(clf, nnx.Param)
    marked = jax.tree.map(lambda a: jnp.zeros(a.shape, F32), params)
    marked["head"]["kernel"] = nnx.Param(jnp.ones(clf.head.kernel.shape, F32))
    return np.asarray(ravel_pytree(marked)[0]) > 0


def lr_at(recipe: Recipe, t: jax.Array) -> jax.Array:
    """The learning rate of step ``t`` (linear warmup, then linear decay to 0 at ``steps``)."""
    steps = recipe.steps.astype(F32)
    warm = jnp.round(recipe.warmup * steps)
    t = t.astype(F32)
    up = t / jnp.maximum(warm, 1.0)
    down = (steps - t) / jnp.maximum(steps - warm, 1.0)
    return recipe.lr * jnp.clip(jnp.where(t < warm, up, down), 0.0, 1.0)


def _ce(apply, w, X, y):
    logits = apply(w, X)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


def _one_seed(apply, w0, hmask, X, y, X_test, y_test, recipe, key, batch_size):
    n = X.shape[0]
    per_epoch = n // batch_size
    k_head, k_order = jax.random.split(key)
    head = 0.02 * jax.random.normal(k_head, w0.shape, F32)
    w = jnp.where(hmask, head, w0)
    tx = scale_by_adam(bias_correction=recipe.bias_correction)

    def body(t, carry):
        w, state = carry
        perm = jax.random.permutation(jax.random.fold_in(k_order, t // per_epoch), n)
        idx = jax.lax.dynamic_slice(perm, ((t % per_epoch) * batch_size,), (batch_size,))
        g = jax.grad(lambda v: _ce(apply, v, X[idx], y[idx])[0])(w)
        g = g * jnp.minimum(1.0, recipe.clip / (jnp.linalg.norm(g) + 1e-12))
        u, state = tx.update(g, state)
        lr = lr_at(recipe, t)
        return w - lr * (u + recipe.weight_decay * w), state

    w, _ = jax.lax.fori_loop(0, recipe.steps, body, (w, tx.init(w)))
    loss, logits = _ce(apply, w, X, y)
    test_logits = apply(w, X_test)
    return (
        loss,
        (logits.argmax(-1) == y).mean(),
        (test_logits.argmax(-1) == y_test).mean(),
    )


def _program(apply, w0, hmask, X, y, X_test, y_test, recipe, keys, batch_size):
    return jax.vmap(
        lambda k: _one_seed(apply, w0, hmask, X, y, X_test, y_test, recipe, k, batch_size)
    )(keys)


_jitted = jax.jit(_program, static_argnames=("apply", "batch_size"))


def finetune_seeds(
    clf: Classifier,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    recipe: Recipe,
    seeds: int,
    *,
    batch_size: int = 16,
    seed: int = 0,
    apply=None,
) -> FinetuneResult:
    """Fine-tune ``clf`` from its weights with ``seeds`` seeds as one jitted, vmapped program.

    Args:
      clf: the :class:`~stabtheory.attention.encoder.Classifier` at the pre-trained weights
        (its head is re-drawn per seed).
      X, y, X_test, y_test: the task (token ids (n, L), labels (n,) in {0, 1}).
      recipe: the :class:`Recipe`.
      seeds: number of seeds (head initialisations and data orders).
      batch_size: minibatch size (static; ``n // batch_size`` steps an epoch).
      seed: the base seed (seed ``s`` uses ``fold_in(key(seed), s)``).
      apply: the flat-weight function of ``clf``'s shape (default: built from ``clf``; pass
        :func:`~stabtheory.attention.encoder.classifier_functions`'s to share compilations).

    Returns:
      A :class:`FinetuneResult`.
    """
    fn, w0, _ = as_function(clf)
    apply = apply or fn
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(seed), s))(jnp.arange(seeds))
    out = _jitted(
        apply,
        jnp.asarray(w0, F32),
        jnp.asarray(head_mask(clf)),
        jnp.asarray(X),
        jnp.asarray(y),
        jnp.asarray(X_test),
        jnp.asarray(y_test),
        recipe,
        keys,
        batch_size=batch_size,
    )
    return FinetuneResult(*(np.asarray(a, float) for a in out))
