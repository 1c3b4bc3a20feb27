"""The attention testbed's encoder as the theorems see it: float64 copies, a one-logit function
of flat weights for the full fine-tuning theorems, frozen pooled ``[CLS]`` features for the
head-tuning theorems, and encoders pre-trained for a given number of steps.

The study :mod:`stabtheory.simulations.attention_theory` checks the theorems with these
(docs/attention.md, "The theorems on the transformer").

Example:
  >>> import numpy as np
  >>> from flax import nnx
  >>> from stabtheory.attention import EncoderConfig, PretrainModel
  >>> cfg = EncoderConfig(vocab=8, length=4, width=8)
  >>> pre = float64_model(PretrainModel(cfg, rngs=nnx.Rngs(0)))
  >>> apply, w0 = logit_function(pre)
  >>> x = np.zeros(4)  # tokens, as float64 (the Taylor model casts its inputs so)
  >>> w0.dtype, apply(w0, x).shape, pooled_features(pre, np.zeros((3, 4), int)).shape
  (dtype('float64'), (), (3, 8))
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from stabtheory import full_finetuning as ff
from stabtheory.attention.checkpoint import DEFAULT, load_pretrained
from stabtheory.attention.encoder import Classifier, PretrainModel, as_function
from stabtheory.attention.pretraining import PretrainConfig, encoder_config, pretrain
from stabtheory.bounds.finetune import loss_gap, real_departure

__all__ = [
    "encoder_at",
    "faithfulness_on_s",
    "float64_model",
    "logit_function",
    "pooled_features",
]


def float64_model(model: PretrainModel) -> PretrainModel:
    """A float64 copy of a (float32) :class:`PretrainModel`: the same parameters, cast, in a
    model whose every computation runs in float64 (``EncoderConfig(dtype="float64")``)."""
    cfg = dataclasses.replace(model.encoder.cfg, dtype="float64")
    out = PretrainModel(cfg, rngs=nnx.Rngs(0))
    values = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    state = nnx.state(out, nnx.Param)
    nnx.replace_by_pure_dict(state, jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), values))
    nnx.update(out, state)
    return out


def encoder_at(steps: int, cfg: PretrainConfig = DEFAULT) -> tuple[PretrainModel, dict | None]:
    """The encoder after ``steps`` pre-training steps of ``cfg`` (float32): ``(model, metrics)``.

    ``0`` is the initialisation :func:`~stabtheory.attention.pretrain` starts from (no
    metrics); ``cfg.steps`` of the shipped :data:`~stabtheory.attention.DEFAULT` is the
    shipped checkpoint (loaded, not re-trained; no metrics); any other length is a complete
    run of ``dataclasses.replace(cfg, steps=steps)`` (its own warmup and decay schedule) with
    :func:`~stabtheory.attention.pretrain`'s metrics.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}.")
    if steps == 0:
        key = jax.random.fold_in(jax.random.key(cfg.seed), 0)  # pretrain's initialisation
        return PretrainModel(encoder_config(cfg), rngs=nnx.Rngs(key)), None
    if cfg == DEFAULT and steps == cfg.steps:
        return load_pretrained(), None
    return pretrain(dataclasses.replace(cfg, steps=steps))


def logit_function(
    model: PretrainModel, *, head_seed: int = 0
) -> tuple[Callable[[jax.Array, jax.Array], jax.Array], np.ndarray]:
    """The fine-tuned network as one logit of flat weights: ``(apply, w0)``.

    ``apply(w, x) = z_1 - z_0``, the difference of the two logits of the
    :class:`~stabtheory.attention.Classifier` (the model's encoder and pooler with a fresh
    head seeded by ``head_seed``), so the logistic loss of ``y apply(w, x)`` (labels -1/+1) is
    the two-class cross-entropy the testbed fine-tunes with. ``x`` is one sequence of token
    ids, given as floats (the Taylor model casts its inputs to the weights' dtype) and cast
    back to integers. ``w0`` holds every weight of the encoder, the pooler and the head (the
    pre-training heads are not part of the fine-tuned network).
    """
    clf = Classifier(model.encoder, model.pooler, rngs=nnx.Rngs(head_seed))
    logits, w0, _ = as_function(clf)

    def apply(w: jax.Array, x: jax.Array) -> jax.Array:
        z = logits(w, jnp.asarray(x).astype(jnp.int32))
        return z[..., 1] - z[..., 0]

    return apply, w0


def pooled_features(model: PretrainModel, tokens, *, batch_size: int = 512) -> np.ndarray:
    """The frozen pooled ``[CLS]`` features ``tanh(W h_[CLS] + b)`` of every sequence: (n, d),
    in the model's dtype, computed in batches of ``batch_size`` sequences."""
    tokens = np.asarray(tokens)
    graphdef, state = nnx.split((model.encoder, model.pooler))

    @jax.jit
    def run(state, x):
        encoder, pooler = nnx.merge(graphdef, state)
        return pooler(encoder(x))

    parts = [
        np.asarray(run(state, jnp.asarray(tokens[k : k + batch_size], jnp.int32)))
        for k in range(0, len(tokens), batch_size)
    ]
    return np.concatenate(parts)


def faithfulness_on_s(apply: Callable, ev) -> dict:
    """The Taylor model's faithfulness (assumption (d)) on S: the real network fine-tuned by GD
    on S from ``w0`` (the evidence's step, pull and checkpoints; taken from ``ev`` when it was
    built with ``real=True``, else run here) against GD on the Taylor model.

    Returns:
      ``{"departure": max_t ||w_real - w_quad|| / ||w_quad - w0||, "loss_gap": max_t
      |F_real - F_quad| / |F_real|}`` (:func:`~stabtheory.bounds.finetune.real_departure` and
      :func:`~stabtheory.bounds.finetune.loss_gap` on the run on S), the real network's mean
      training loss at the last checkpoint (``"real_loss"``) and the Taylor model's there
      (``"quad_loss"``).
    """
    tm = ev.tm
    if ev.w_real is None:
        W = _run_on_s(
            apply,
            tm.w0,
            tm.X,
            tm.y,
            jnp.asarray(ev.config["lr"]),
            jnp.asarray(ev.config["lam"]),
            jnp.asarray(ev.steps),
        )
        real_losses = np.asarray(ff.true_losses(apply, W, tm.X, tm.y))
        quad_losses = np.asarray(ff.quadratic_losses(tm, W))
        W = np.asarray(W)
    else:
        W, real_losses, quad_losses = ev.w_real[:1], ev.real_losses[:1], ev.quad_losses[:1]
    on_s = dataclasses.replace(
        ev, w_real=W, w_gd=ev.w_gd[:1], real_losses=real_losses, quad_losses=quad_losses
    )
    return {
        "departure": real_departure(on_s),
        "loss_gap": loss_gap(on_s),
        "real_loss": float(real_losses[0, -1].mean()),
        "quad_loss": float(quad_losses[0, -1].mean()),
    }


@functools.partial(jax.jit, static_argnames="apply")
def _run_on_s(apply, w0, X, y, lr, lam, checkpoints):
    ones = jnp.ones((1, X.shape[0]), w0.dtype)
    return ff.finetune_runs(apply, w0, X, y, ones, lr[None], lam, checkpoints)
