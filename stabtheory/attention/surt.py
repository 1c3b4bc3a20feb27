r"""SURT on the attention testbed: masked-token re-training of the pre-trained encoder on a task's
own (unlabeled) training inputs, snapshotted at several re-training lengths in one scan.

SURT (docs/theory.md section 4; Fu, So & Collier 2023) continues the self-supervised
pre-training objective on the task's inputs before supervised fine-tuning. Here that objective
is BERT's masked-token loss of :func:`stabtheory.attention.pretraining.pretrain_loss` (15% of
the positions, 80/10/10 mask/random/keep), without the genre term (the task's sequences carry
no genre label: SURT is unsupervised). AdamW at a constant learning rate (weight decay 0.01,
clip 1, minibatches of ``batch_size`` sequences drawn with replacement), from the pre-trained
weights (the masked-token head included). One run per task draw, shared by every seed of the
fine-tuning arms that start from it; ``doses`` are the step counts at which the encoder is
snapshotted (a dose sweep from one run).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from stabtheory.attention.encoder import Classifier, PretrainModel
from stabtheory.attention.pretraining import mask_tokens, pretrain_loss

__all__ = ["masked_retraining"]


def _scan(graphdef, params, tokens, key, *, doses, vocab, lr, batch_size, mask_rate, **opt):
    n = tokens.shape[0]
    tx = optax.chain(
        optax.clip_by_global_norm(opt["clip"]),
        optax.adamw(lr, weight_decay=opt["weight_decay"]),
    )
    marks = jnp.asarray(doses)

    def step(carry, t):
        params, opt_state, snaps = carry
        k = jax.random.fold_in(key, t)
        idx = jax.random.randint(jax.random.fold_in(k, 0), (batch_size,), 0, n)
        batch = tokens[idx]
        inputs, chosen = mask_tokens(jax.random.fold_in(k, 1), batch, mask_rate, vocab)
        genres = jnp.zeros(batch_size, jnp.int32)

        def loss_fn(p):
            return pretrain_loss(nnx.merge(graphdef, p), inputs, batch, chosen, genres, 0.0)

        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        hit = marks == t + 1
        snaps = jax.tree.map(
            lambda s, p: jnp.where(hit.reshape((-1,) + (1,) * p.ndim), p[None], s), snaps, params
        )
        return (params, opt_state, snaps), loss

    snaps = jax.tree.map(lambda p: jnp.zeros((len(doses), *p.shape), p.dtype), params)
    init = (params, tx.init(params), snaps)
    (_, _, snaps), losses = jax.lax.scan(step, init, jnp.arange(doses[-1]))
    return snaps, losses


_run = jax.jit(
    _scan,
    static_argnames=(
        "graphdef",
        "doses",
        "vocab",
        "lr",
        "batch_size",
        "mask_rate",
        "weight_decay",
        "clip",
    ),
)


def masked_retraining(
    model: PretrainModel,
    X: np.ndarray,
    doses: tuple[int, ...],
    *,
    key: jax.Array,
    lr: float = 1e-3,
    batch_size: int = 128,
    mask_rate: float = 0.15,
    weight_decay: float = 0.01,
    clip: float = 1.0,
) -> tuple[list[Classifier], np.ndarray]:
    """Re-train ``model`` by masked-token prediction on ``X`` and snapshot it at ``doses`` steps.

    Args:
      model: the pre-trained :class:`~stabtheory.attention.PretrainModel` (not modified).
      X: (n, L) the task's training inputs.
      doses: increasing positive step counts to snapshot at (one scan of ``max(doses)`` steps).
      key: the run's key (step ``t`` draws its minibatch and mask from ``fold_in(key, t)``).
      lr, batch_size, mask_rate, weight_decay, clip: the optimizer and the objective.

    Returns:
      ``(classifiers, mlm_loss)``: a :class:`~stabtheory.attention.Classifier` on each
      snapshot's encoder and pooler (fresh zero-bias head; the fine-tuning arms re-draw the
      head), and the masked-token loss of every step (``max(doses)``,).

    Example:
      >>> from stabtheory.attention import EncoderConfig
      >>> pre = PretrainModel(EncoderConfig(length=4, vocab=12, width=8, mlp=8), rngs=nnx.Rngs(0))
      >>> X = np.random.default_rng(0).integers(0, 12, (16, 4))
      >>> clfs, loss = masked_retraining(pre, X, (2, 3), key=jax.random.key(0), batch_size=4)
      >>> len(clfs), loss.shape
      (2, (3,))
    """
    doses = tuple(int(d) for d in doses)
    if not doses or min(doses) < 1 or list(doses) != sorted(set(doses)):
        raise ValueError(f"doses must be increasing positive step counts, got {doses}.")
    graphdef, params = nnx.split(model, nnx.Param)
    snaps, losses = _run(
        graphdef,
        params,
        jnp.asarray(X),
        key,
        doses=doses,
        vocab=model.encoder.cfg.vocab,
        lr=float(lr),
        batch_size=int(batch_size),
        mask_rate=float(mask_rate),
        weight_decay=float(weight_decay),
        clip=float(clip),
    )
    out = []
    for j in range(len(doses)):
        m = nnx.merge(graphdef, jax.tree.map(lambda s, j=j: s[j], snaps))
        out.append(Classifier(m.encoder, m.pooler, rngs=nnx.Rngs(0)))
    return out, np.asarray(losses, float)
