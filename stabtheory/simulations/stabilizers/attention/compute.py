"""Running the attention part of the stabilizer study: one chunk per draw, every arm's seeds (and
the leave-one-out runs) as one vmapped program (:func:`stabtheory.attention.finetune_arms`),
SURT's masked-token re-training once per draw, and the per-seed measures of every arm."""

from __future__ import annotations

import functools

import jax
import numpy as np

from stabtheory.simulations import engine
from stabtheory.simulations.stabilizers.attention.spec import AttentionSpec
from stabtheory.stabilizers.mechanisms import features_margin, weight_distance

__all__ = ["assemble", "chunks", "compute_draw", "loo_points", "pretrained_model"]

#: The tag folded into a draw's key for its SURT run.
SURT_TAG = 0x5E7


def chunks(spec: AttentionSpec, spec_key) -> list[engine.Chunk]:
    """One chunk per draw (every draw has the same shapes: one compilation)."""
    return [
        engine.Chunk("stabilizers", ("attention", d), ((("attention", d), 0),), spec_key)
        for d in range(spec.draws)
    ]


@functools.lru_cache(maxsize=4)
def _network(K: int):
    from flax import nnx

    from stabtheory.attention import Classifier, PretrainModel, encoder_config
    from stabtheory.attention.arms import network
    from stabtheory.attention.checkpoint import DEFAULT

    pre = PretrainModel(encoder_config(DEFAULT), rngs=nnx.Rngs(0))
    return network(Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(1)), K)[0]


def pretrained_model(spec: AttentionSpec, draw: int):
    """Draw ``draw``'s pre-trained model: the shipped checkpoint, or its own pre-training."""
    from stabtheory.attention import load_pretrained, pretrain
    from stabtheory.attention.checkpoint import DEFAULT

    if draw == 0 or not spec.pretrain_draws:
        return load_pretrained()
    import dataclasses

    cfg = dataclasses.replace(DEFAULT, seed=draw, steps=spec.pretrain_steps)
    return pretrain(cfg)[0]


def loo_points(spec: AttentionSpec, draw: int) -> np.ndarray:
    """The training examples left out in draw ``draw``'s leave-one-out runs (seeded)."""
    rng = np.random.default_rng([spec.seed, draw, 0x100])
    return np.sort(rng.choice(spec.n, spec.loo_points, replace=False))


def _runs(spec: AttentionSpec, draw: int):
    """The :class:`~stabtheory.attention.arms.Runs`: seed-major main runs (run ``s A + a``),
    then per arm its leave-one-out runs (seed-major, point-minor)."""
    import jax.numpy as jnp

    from stabtheory.attention.arms import Runs

    arms = spec.arms()
    K = spec.mhloss_heads
    rows = [(s, a, -1) for s in range(spec.seeds) for a in range(len(arms))]
    pts = loo_points(spec, draw)
    rows += [(s, a, i) for a in range(len(arms)) for s in range(spec.loo_seeds) for i in pts]
    start = [arms[a].start for _, a, _ in rows]
    alpha = [arms[a].alpha for _, a, _ in rows]
    hw = np.zeros((len(rows), K), np.float32)
    for r, (_, a, _) in enumerate(rows):
        hw[r, : arms[a].heads] = 1.0 / arms[a].heads
    weights = np.ones((len(rows), spec.n), np.float32)
    for r, (_, _, i) in enumerate(rows):
        if i >= 0:
            weights[r, i] = 0.0
    runs = Runs(
        jnp.asarray(start, jnp.int32),
        jnp.asarray(alpha, jnp.float32),
        jnp.asarray(hw),
        jnp.asarray([s for s, _, _ in rows], jnp.int32),
        jnp.asarray(weights),
    )
    return runs, rows


def compute_draw(spec: AttentionSpec, draw: int) -> dict:
    """Fine-tune every arm's seeds on draw ``draw`` and measure them.

    Returns:
      ``{"draw", "majority", "surt_loss" (SURT's masked-token loss per step), "surt_distance"
      (per SURT dose, ||theta_SURT - theta_pre|| of the encoder and pooler), "arms": {name:
      per-seed arrays}}``; per arm: ``test_accuracy``, ``test_accuracy_target``,
      ``test_pred``, ``test_pred_target`` ((S, m) int8), ``train_loss``, ``train_accuracy``,
      ``centroid_distance``, ``reached``, ``reach_step``, ``distance_start`` and
      ``distance_start_target`` (||theta_start - theta*|| of the encoder and pooler at the two
      regimes), ``separable`` and ``margin_subset`` (the first ``margin_seeds`` seeds: are the
      pooled training features linearly separable, and ``gamma / R`` of the first
      ``margin_subset`` examples, 0 when not separable), and the leave-one-out measures
      ``loo_flip`` (share of test predictions that change), ``loo_distance``
      (||theta_S - theta_S\\i||) and ``loo_accuracy`` (absolute test-accuracy change).
    """
    from flax import nnx

    from stabtheory import attention as A
    from stabtheory.attention.arms import body_mask, finetune_arms
    from stabtheory.attention.surt import masked_retraining

    data = A.make_task(
        A.DEFAULT_CORPUS,
        A.TaskConfig(spec.task, spec.n, spec.n_test, spec.shift, spec.task_seed + draw),
    )
    pre = pretrained_model(spec, draw)
    clf = A.Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(0))
    _, w_pre, _ = A.as_function(clf)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(spec.seed), draw), SURT_TAG)
    surt_clfs, surt_loss = masked_retraining(
        pre, data.X, spec.surt_doses, key=key, lr=spec.surt_lr, batch_size=spec.surt_batch
    )
    bmask = body_mask(clf)
    surt_w = [np.where(bmask, A.as_function(c)[1], w_pre) for c in surt_clfs]
    starts = np.stack([w_pre, *surt_w])
    runs, rows = _runs(spec, draw)
    arms = spec.arms()
    A_ = len(arms)
    recipe = A.Recipe.make(spec.lr, spec.steps, spec.warmup, spec.bias_correction)
    out = finetune_arms(
        clf,
        starts,
        data.X,
        data.y,
        data.X_test,
        data.y_test,
        recipe,
        runs,
        K=spec.mhloss_heads,
        target=spec.target,
        window=spec.window,
        batch_size=spec.batch_size,
        seed=spec.seed,
        feature_runs=spec.margin_seeds * A_,
        net=_network(spec.mhloss_heads),
    )
    body_starts = starts[:, bmask]
    y_pm = 2 * data.y - 1
    main = spec.seeds * A_
    result = {}
    for a, arm in enumerate(arms):
        idx = np.arange(a, main, A_)  # seed-major: run s * A + a
        w_start = body_starts[arm.start]
        per = {
            "test_accuracy": out.test_accuracy[idx],
            "test_accuracy_target": out.test_accuracy_target[idx],
            "test_pred": out.test_pred[idx],
            "test_pred_target": out.test_pred_target[idx],
            "train_loss": out.train_loss[idx],
            "train_accuracy": out.train_accuracy[idx],
            "centroid_distance": out.centroid_distance[idx],
            "reached": out.reached[idx],
            "reach_step": out.reach_step[idx].astype(float),
            "distance_start": weight_distance(out.body[idx], w_start),
            "distance_start_target": weight_distance(out.body_target[idx], w_start),
        }
        margins = [out.features[s * A_ + a] for s in range(spec.margin_seeds)]
        per["separable"] = np.array([features_margin(F, y_pm).separable for F in margins])
        sub = slice(0, spec.margin_subset)
        fm = [features_margin(F[sub], y_pm[sub]) for F in margins]
        per["margin_subset"] = np.array([f.margin if f.separable else 0.0 for f in fm])
        loo = [r for r, (_, aa, i) in enumerate(rows) if aa == a and i >= 0]
        full = [rows[r][0] * A_ + a for r in loo]  # the same seed's run on all of S
        per["loo_flip"] = np.mean(out.test_pred[loo] != out.test_pred[full], axis=1)
        per["loo_distance"] = weight_distance(out.body[loo], out.body[full])
        per["loo_accuracy"] = np.abs(out.test_accuracy[loo] - out.test_accuracy[full])
        result[arm.name] = per
    return {
        "draw": draw,
        "majority": data.majority,
        "surt_loss": surt_loss,
        "surt_distance": [float(weight_distance(w[bmask], w_pre[bmask])) for w in surt_w],
        "arms": result,
    }


def assemble(spec: AttentionSpec, results: list[dict]) -> dict:
    """The draws' results stacked: ``{"arms": {name: {"method", "dose", "primary", measure:
    (draws, ...) arrays}}, "majority" (draws,), "surt_doses", "surt_distance" (draws, doses),
    "surt_loss" (draws, steps), "loo_points" (draws, points)}``."""
    results = sorted(results, key=lambda r: r["draw"])
    arms = {}
    for arm in spec.arms():
        parts = [r["arms"][arm.name] for r in results]
        stacked = {k: np.stack([p[k] for p in parts]) for k in parts[0]}
        arms[arm.name] = {
            "method": arm.method,
            "dose": arm.dose,
            "primary": arm.primary,
            **stacked,
        }
    return {
        "arms": arms,
        "majority": np.array([r["majority"] for r in results]),
        "surt_doses": list(spec.surt_doses),
        "surt_distance": [r["surt_distance"] for r in results],
        "surt_loss": np.stack([r["surt_loss"] for r in results]),
        "loo_points": np.stack([loo_points(spec, r["draw"]) for r in results]),
        "margin_subset": spec.margin_subset,
    }
