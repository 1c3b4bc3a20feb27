"""Pre-training of the attention testbed: masked-token prediction plus the sequence's genre from
``[CLS]``, with optax AdamW, deterministic from a seed.

The objective on a minibatch is BERT's masked-language-model loss (15% of the positions
chosen; of those 80% replaced by ``[MASK]``, 10% by a random token, 10% kept; cross-entropy on
the chosen positions) plus the cross-entropy of the genre predicted from the pooled ``[CLS]``
state. Masked-token prediction alone gives ``[CLS]`` no training signal (a throwaway
prototype measured every downstream seed at chance from ``[CLS]``); the genre term is the
sequence-level objective that plays the role of BERT's next-sentence prediction.

Float32 throughout (it is a testbed, not a theory check): the run is a pure function of
:class:`PretrainConfig`, so the same jax version on the same platform gives the same bits.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from stabtheory.attention.corpus import HMMConfig, sample
from stabtheory.attention.encoder import EncoderConfig, PretrainModel

__all__ = ["PretrainConfig", "encoder_config", "mask_tokens", "pretrain", "pretrain_loss"]


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """The pre-training run (hashable; it fixes the shipped checkpoint).

    Attributes:
      corpus: the generative model of the corpus.
      sequences: corpus size in sequences (``sequences * corpus.length`` tokens).
      width, heads, layers, mlp: the encoder's shape (:class:`EncoderConfig`).
      steps: optimizer steps; batch_size: sequences per step.
      lr: peak AdamW learning rate (linear warmup over ``warmup`` of the steps, then linear
        decay to 0); weight_decay: decoupled weight decay; clip: global gradient-norm clip.
      mask_rate: fraction of positions predicted.
      genre_weight: weight of the genre cross-entropy.
      seed: seed of the corpus draw, the initialisation, the batches and the masks.
    """

    corpus: HMMConfig = dataclasses.field(default_factory=HMMConfig)
    sequences: int = 62_500
    width: int = 32
    heads: int = 4
    layers: int = 2
    mlp: int = 64
    steps: int = 6000
    batch_size: int = 128
    lr: float = 2e-3
    warmup: float = 0.06
    weight_decay: float = 0.01
    clip: float = 1.0
    mask_rate: float = 0.15
    genre_weight: float = 1.0
    seed: int = 0


def encoder_config(cfg: PretrainConfig) -> EncoderConfig:
    """The :class:`EncoderConfig` of a pre-training run."""
    c = cfg.corpus
    return EncoderConfig(c.vocab, c.length, cfg.width, cfg.heads, cfg.layers, cfg.mlp, c.genres)


def mask_tokens(key: jax.Array, tokens: jax.Array, rate: float, vocab: int):
    """BERT's masking: ``(inputs, chosen)`` with ``chosen`` the (..., L) positions to predict."""
    k1, k2, k3 = jax.random.split(key, 3)
    chosen = jax.random.uniform(k1, tokens.shape) < rate
    u = jax.random.uniform(k2, tokens.shape)
    random_tok = jax.random.randint(k3, tokens.shape, 0, vocab, tokens.dtype)
    inputs = jnp.where(chosen & (u < 0.8), vocab + 1, tokens)
    inputs = jnp.where(chosen & (u >= 0.8) & (u < 0.9), random_tok, inputs)
    return inputs, chosen


def pretrain_loss(model: PretrainModel, inputs, targets, chosen, genres, genre_weight: float):
    """``(loss, (masked-token accuracy, genre accuracy))`` of one minibatch."""
    token_logits, genre_logits = model(inputs)
    ce = optax.softmax_cross_entropy_with_integer_labels(token_logits, targets)
    weight = chosen.astype(jnp.float32)
    mlm = (ce * weight).sum() / jnp.maximum(weight.sum(), 1.0)
    genre = optax.softmax_cross_entropy_with_integer_labels(genre_logits, genres).mean()
    mlm_acc = ((token_logits.argmax(-1) == targets) * weight).sum() / jnp.maximum(weight.sum(), 1)
    genre_acc = (genre_logits.argmax(-1) == genres).mean()
    return mlm + genre_weight * genre, (mlm_acc, genre_acc)


def _optimizer(cfg: PretrainConfig) -> optax.GradientTransformation:
    warm = max(1, int(cfg.warmup * cfg.steps))
    schedule = optax.join_schedules(
        [
            optax.linear_schedule(0.0, cfg.lr, warm),
            optax.linear_schedule(cfg.lr, 0.0, cfg.steps - warm),
        ],
        [warm],
    )
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip),
        optax.adamw(schedule, weight_decay=cfg.weight_decay),
    )


def pretrain(cfg: PretrainConfig = PretrainConfig()) -> tuple[PretrainModel, dict]:
    """Pre-train the encoder; return the model and its final metrics.

    Returns:
      ``(model, metrics)``: the trained :class:`PretrainModel` and ``{"loss", "mlm_accuracy",
      "genre_accuracy"}`` averaged over the last 100 steps, plus the unigram baseline
      ``"unigram_accuracy"`` (the most frequent token's share of the corpus).
    """
    corpus = sample(cfg.corpus, cfg.sequences, seed=cfg.seed)
    tokens = jnp.asarray(corpus.tokens)
    genres = jnp.asarray(corpus.genres)
    key = jax.random.key(cfg.seed)
    model = PretrainModel(encoder_config(cfg), rngs=nnx.Rngs(jax.random.fold_in(key, 0)))
    graphdef, params = nnx.split(model, nnx.Param)
    opt = _optimizer(cfg)
    data_key = jax.random.fold_in(key, 1)

    def step(carry, t):
        params, opt_state = carry
        k = jax.random.fold_in(data_key, t)
        idx = jax.random.randint(jax.random.fold_in(k, 0), (cfg.batch_size,), 0, cfg.sequences)
        batch = tokens[idx]
        inputs, chosen = mask_tokens(
            jax.random.fold_in(k, 1), batch, cfg.mask_rate, cfg.corpus.vocab
        )

        def loss_fn(p):
            return pretrain_loss(
                nnx.merge(graphdef, p), inputs, batch, chosen, genres[idx], cfg.genre_weight
            )

        (loss, accs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), (loss, *accs)

    @jax.jit
    def run(params):
        carry, trace = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(cfg.steps))
        return carry[0], trace

    params, (loss, mlm_acc, genre_acc) = run(params)
    nnx.update(model, params)
    counts = np.bincount(corpus.tokens.reshape(-1), minlength=cfg.corpus.vocab)
    tail = slice(-min(100, cfg.steps), None)
    metrics = {
        "loss": float(np.mean(loss[tail])),
        "mlm_accuracy": float(np.mean(mlm_acc[tail])),
        "genre_accuracy": float(np.mean(genre_acc[tail])),
        "unigram_accuracy": float(counts.max() / counts.sum()),
    }
    return model, metrics
