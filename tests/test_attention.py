"""Tests of the attention testbed (stabtheory.attention) and the phenomenon study."""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from stabtheory import attention as at
from stabtheory.simulations import STUDIES

SMALL = at.HMMConfig(vocab=24, states=4, genres=4, length=8, seed=3)


def test_corpus_is_deterministic_and_latents_label_the_tasks():
    a = at.sample(SMALL, 200, seed=7)
    b = at.sample(SMALL, 200, seed=7)
    c = at.sample(SMALL, 200, seed=8)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.genres, b.genres)
    assert not np.array_equal(a.tokens, c.tokens)
    assert a.tokens.shape == a.states.shape == (200, 8) and a.tokens.dtype == np.int32
    hmm = at.make_hmm(SMALL)
    np.testing.assert_allclose(hmm.transitions.sum(-1), 1.0)
    np.testing.assert_allclose(hmm.shifted_emissions(0.5).sum(-1), 1.0)
    # each state emits mostly from its own block of tokens
    own = (a.tokens // (SMALL.vocab // SMALL.states)) == a.states
    assert own.mean() > 0.8
    # shift 1 moves the tokens, not the latent path
    s = at.sample(SMALL, 200, seed=7, shift=1.0)
    assert np.array_equal(s.genres, a.genres) and not np.array_equal(s.tokens, a.tokens)
    for kind, label in at.TASKS.items():
        d = at.make_task(SMALL, at.TaskConfig(kind, n=20, n_test=30, seed=2))
        assert d.y.sum() == 10 and d.y_test.sum() == 15 and d.majority == 0.5
        assert label(a, SMALL).dtype == bool
    genre = at.make_task(SMALL, at.TaskConfig("genre", n=20, n_test=30, seed=2))
    again = at.make_task(SMALL, at.TaskConfig("genre", n=20, n_test=30, seed=2))
    assert np.array_equal(genre.X, again.X) and np.array_equal(genre.y_test, again.y_test)


def test_encoder_shapes_and_flat_apply_match_the_module():
    cfg = at.EncoderConfig(vocab=24, length=8, width=16, heads=4, layers=2, mlp=32, genres=4)
    pre = at.PretrainModel(cfg, rngs=nnx.Rngs(0))
    tokens = jnp.asarray(at.sample(SMALL, 5, seed=1).tokens)
    tok_logits, genre_logits = pre(tokens)
    assert tok_logits.shape == (5, 8, 24) and genre_logits.shape == (5, 4)
    assert pre.encoder(tokens).shape == (5, 9, 16)
    clf = at.Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(1))
    apply, w, _ = at.as_function(clf)
    assert w.dtype == np.float32
    np.testing.assert_allclose(apply(w, tokens), clf(tokens), rtol=1e-5, atol=1e-6)
    assert apply(w, tokens).dtype == jnp.float32
    mask = at.head_mask(clf)
    assert mask.sum() == clf.head.kernel.size
    np.testing.assert_array_equal(np.sort(w[mask]), np.sort(np.asarray(clf.head.kernel).ravel()))


@pytest.mark.parametrize("bias_correction", [False, True])
def test_adam_matches_a_hand_written_reference(bias_correction):
    b1, b2, eps = 0.9, 0.999, 1e-6
    grads = [np.array([0.5, -2.0, 1e-3]), np.array([0.1, 1.0, -3.0]), np.array([2.0, 0.0, 0.5])]
    tx = at.scale_by_adam(b1, b2, eps, bias_correction=jnp.asarray(bias_correction))
    state = tx.init(jnp.zeros(3, jnp.float32))
    m = v = np.zeros(3)
    for t, g in enumerate(grads, start=1):
        u, state = tx.update(jnp.asarray(g, jnp.float32), state)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        c1, c2 = (1 - b1**t, 1 - b2**t) if bias_correction else (1.0, 1.0)
        # float32: 1 - b2**t loses about 5 digits to cancellation
        np.testing.assert_allclose(u, (m / c1) / (np.sqrt(v / c2) + eps), rtol=1e-4)
    if bias_correction:  # optax's Adam is the corrected case
        ref = optax.scale_by_adam(b1, b2, eps)
        rs = ref.init(jnp.zeros(3, jnp.float32))
        for g in grads:
            r, rs = ref.update(jnp.asarray(g, jnp.float32), rs)
        np.testing.assert_allclose(u, r, rtol=1e-4)


def test_finetune_seeds_is_one_program_for_both_optimizers():
    cfg = at.PretrainConfig(corpus=SMALL, sequences=64, width=16, mlp=32, steps=2)
    pre = at.PretrainModel(at.encoder_config(cfg), rngs=nnx.Rngs(0))
    clf = at.Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(1))
    d = at.make_task(SMALL, at.TaskConfig("genre", n=16, n_test=20))
    out = [
        at.finetune_seeds(
            clf, d.X, d.y, d.X_test, d.y_test, at.Recipe.make(1e-3, 4, 0.25, bc), 3, batch_size=8
        )
        for bc in (True, False)
    ]
    for r in out:
        assert r.train_loss.shape == r.test_accuracy.shape == (3,)
        assert np.all((r.test_accuracy >= 0) & (r.test_accuracy <= 1))
    assert not np.allclose(out[0].train_loss, out[1].train_loss)


def test_classification_of_synthetic_distributions():
    rng = np.random.default_rng(0)
    good = 0.75 + 0.02 * rng.standard_normal(45)
    bimodal = at.classify(
        np.r_[np.full(5, 0.5), good], np.r_[np.full(5, math.log(2)), 0.1 + 0 * good], 0.5
    )
    assert bimodal.classification == "failures" and bimodal.failure_rate == 0.1
    assert bimodal.failure_ci[0] < 0.1 < bimodal.failure_ci[1] and bimodal.collapsed_loss == 1.0
    chance = at.classify(0.5 + 0.015 * rng.uniform(0.7, 1, 50), np.full(50, 0.69), 0.5)
    assert chance.classification == "all-under-trained" and not chance.counts
    collapsed = at.classify(np.r_[np.full(48, 0.5), 0.8, 0.8], np.full(50, 0.69), 0.5)
    assert collapsed.classification == "all-collapsed"
    stable = at.classify(good, np.full(45, 0.1), 0.5)
    assert stable.classification == "stable" and stable.failure_rate == 0.0
    assert at.accepted([bimodal, stable]) and not at.accepted([bimodal, chance])


def test_shipped_checkpoint_loads_and_is_small():
    data = at.CHECKPOINT.read_bytes()
    assert len(data) < 1_000_000
    pre = at.load_pretrained()
    again = at.to_bytes(pre)
    assert again == data  # load -> save is the identity on the file
    clf = at.load_classifier()
    assert clf(jnp.zeros((2, at.DEFAULT.corpus.length), jnp.int32)).shape == (2, 2)


@pytest.mark.slow
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the shipped bits are CPU float32")
def test_rebuild_reproduces_the_shipped_checkpoint():
    data, _ = at.rebuild_bytes()
    assert at.sha256(data) == at.sha256(at.CHECKPOINT.read_bytes())


def test_phenomenon_quick_spec_end_to_end(tmp_path):
    study = STUDIES["phenomenon"]
    assert not study.default
    result = study.run(study.spec(quick=True))
    section = study.section(result)["extra"]["phenomenon"]
    assert isinstance(section["accepted"], bool) and section["summary"]
    for row in section["settings"]:
        for field in (
            "n",
            "optimizer",
            "seeds",
            "failure_rate",
            "failure_ci",
            "accuracy_std",
            "accuracy_mean",
            "final_train_loss",
            "classification",
            "lr",
            "steps",
            "warmup",
            "epochs",
        ):
            assert field in row
        assert row["seeds"] == 20 and row["classification"] in at.CLASSES
        lo, hi = row["failure_ci"]
        assert lo <= row["failure_rate"] <= hi
    assert any("failure rate" in line for line in study.markdown({"phenomenon": section}))
    assert study.figures(result, tmp_path) == ["phenomenon.png"]
    assert os.path.exists(tmp_path / "phenomenon.png")
