"""Tests of stabtheory.stabilizers: MMR, MHLoss, SURT, the seed-vmapped loop and the measures.

The pieces are checked against independent numpy formulas; each stabilizer's mechanism is
checked on a small case where it has to show; the loop is checked for determinism, for
vmapped seeds equal to per-seed runs and for one compilation across the traced settings
(counted from the outside, by JAX's monitoring events). Every registered method runs on a
tiny testbed and passes its hooks (the methods' conformance test).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import jax_compilations, tol

from stabtheory import full_finetuning as ff
from stabtheory import stabilizers as M
from stabtheory.svm import max_margin

# The architecture of StabilizerStudySpec.quick(): pre-training and compilations are shared.
SMALL = {"n": 32, "n_test": 128, "hidden": (16,), "features": 4, "pretrain_steps": 300}
SEEDS = 8
# A short fine-tuning, before the features collapse onto two points.
SHORT = M.Settings(lr=1e-3, steps=100, dropout=0.0)


@pytest.fixture(scope="module")
def tb():
    return ff.make_testbed(ff.TestbedConfig(task="synthetic", **SMALL))


def np_unit_rows(F):
    return F / np.linalg.norm(F, axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# The encoder function


def test_encoder_function_reproduces_the_classifier(tb):
    enc = M.encoder_function(tb)
    a, b = tb.info["head_slice"]
    F = np.asarray(enc.phi(jnp.asarray(tb.w0[:a]), jnp.asarray(tb.X)))
    logits = np.asarray(jax.vmap(tb.apply, (None, 0))(jnp.asarray(tb.w0), jnp.asarray(tb.X)))
    np.testing.assert_allclose(tb.w0[a] + F @ tb.w0[a + 1 : b], logits, rtol=0, atol=1e-12)
    assert enc.p_encoder == a and enc.features == SMALL["features"]
    assert M.encoder_function(tb).phi is enc.phi  # cached per architecture


# --------------------------------------------------------------------------------------------
# MMR


def test_mmr_centroid_matches_numpy():
    rng = np.random.default_rng(0)
    F = rng.standard_normal((12, 5))
    y = np.where(rng.random(12) < 0.5, 1.0, -1.0)
    U = np_unit_rows(F)
    expected = -np.linalg.norm(U[y > 0].mean(0) - U[y < 0].mean(0))
    np.testing.assert_allclose(float(M.mmr_penalty(F, y)), expected, rtol=tol(np.float64))
    # L2 normalisation: rescaling each sample by its own positive factor changes nothing.
    scaled = F * rng.uniform(0.1, 1e3, (12, 1))
    np.testing.assert_allclose(float(M.mmr_penalty(scaled, y)), expected, rtol=1e-12)


def test_mmr_smoothmin_matches_numpy_and_bounds_the_min_margin():
    rng = np.random.default_rng(1)
    F = rng.standard_normal((10, 4))
    y = np.array([1.0, -1.0] * 5)
    U = np_unit_rows(F)
    mp, mn = U[y > 0].mean(0), U[y < 0].mean(0)
    e = (mp - mn) / np.linalg.norm(mp - mn)
    m = y * ((U - (mp + mn) / 2) @ e)
    for T in (1.0, 0.1, 1e-3):
        expected = T * np.log(np.sum(np.exp(-(m - m.min()) / T))) - m.min()
        got = float(M.mmr_penalty(F, y, "smoothmin", T))
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        # -softmin_T >= -min_i m_i, and exceeds it by at most T log n.
        assert -m.min() - 1e-12 <= got <= -m.min() + T * np.log(len(m)) + 1e-12


def test_mmr_mask_equals_slicing_and_gradients_are_finite():
    rng = np.random.default_rng(2)
    F = rng.standard_normal((9, 3))
    y = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    keep = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1.0])
    for kind in M.MMR_KINDS:
        masked = float(M.mmr_penalty(F, y, kind, weights=keep))
        sliced = float(M.mmr_penalty(F[keep > 0], y[keep > 0], kind))
        np.testing.assert_allclose(masked, sliced, rtol=1e-12)
    # Coincident centroids (a symmetric layout): the safe norm keeps the gradient finite.
    G = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    g = jax.grad(lambda f: M.mmr_penalty(f, jnp.array([1.0, 1.0, -1.0, -1.0])))(jnp.asarray(G))
    assert np.all(np.isfinite(np.asarray(g)))


def test_mmr_raises_the_centroid_distance_and_the_feature_margin(tb):
    """MMR's mechanism on a short fine-tuning, seed by seed (same seeds: same heads and data).

    The centroid penalty raises what it penalises, the distance between the class centroids
    of the normalised features, in every seed; the smooth-min variant raises the exact max
    margin gamma / R of the final features: separable in every seed, with a larger margin
    than plain fine-tuning (whose features are mostly not yet separable).
    """
    plain = M.finetune_seeds(tb, SHORT, seeds=SEEDS)
    cen = M.finetune_seeds(tb, dataclasses.replace(SHORT, mmr_alpha=1.0), seeds=SEEDS)
    smooth = M.finetune_seeds(
        tb, dataclasses.replace(SHORT, mmr_alpha=1.0, mmr_kind="smoothmin"), seeds=SEEDS
    )

    def centroid(r):
        return np.array([-float(M.mmr_penalty(F, tb.y)) for F in r.train_features])

    def margin(r):
        return np.array([m.margin if m.separable else 0.0 for m in map(_fm(tb), r.train_features)])

    assert np.all(centroid(cen) > centroid(plain))
    assert np.all(margin(smooth) > margin(plain))
    assert all(_fm(tb)(F).separable for F in smooth.train_features)


def _fm(tb):
    return lambda F: M.features_margin(F, tb.y)


# --------------------------------------------------------------------------------------------
# MHLoss


def test_multihead_prediction_and_loss_are_exact_means_over_heads():
    rng = np.random.default_rng(3)
    K, k, B = 4, 3, 7
    H = rng.standard_normal((K, k + 1))
    F = rng.standard_normal((B, k))
    y = np.where(rng.random(B) < 0.5, 1.0, -1.0)
    logits = np.stack([H[j, 0] + F @ H[j, 1:] for j in range(K)], axis=1)  # (B, K)
    np.testing.assert_allclose(np.asarray(M.multihead_logits(H, F)), logits, rtol=1e-13)
    np.testing.assert_allclose(
        np.asarray(M.multihead_predict(H, F)), logits.mean(1), rtol=1e-13, atol=1e-15
    )
    # The mean of the logits is the logit of the mean head.
    mean_head = H.mean(0)
    np.testing.assert_allclose(
        np.asarray(M.multihead_predict(H, F)), mean_head[0] + F @ mean_head[1:], atol=1e-14
    )
    per_head = [np.mean(np.logaddexp(0.0, -y * logits[:, j])) for j in range(K)]
    np.testing.assert_allclose(float(M.multihead_loss(H, F, y)), np.mean(per_head), rtol=1e-13)
    w = rng.uniform(0.5, 2.0, B)
    per_head_w = [np.sum(w * np.logaddexp(0.0, -y * logits[:, j])) / w.sum() for j in range(K)]
    np.testing.assert_allclose(float(M.multihead_loss(H, F, y, w)), np.mean(per_head_w), rtol=1e-13)


def test_mhloss_with_one_head_is_the_plain_logistic_loss_and_exact_at_large_margins():
    rng = np.random.default_rng(4)
    H = rng.standard_normal((1, 4)) * 300.0  # logits of order 1e3
    F = rng.standard_normal((6, 3))
    y = np.array([1.0, -1.0] * 3)
    f = H[0, 0] + F @ H[0, 1:]
    np.testing.assert_allclose(
        float(M.multihead_loss(H, F, y)), np.mean(np.logaddexp(0.0, -y * f)), rtol=1e-13
    )
    # K copies of one head: the same loss, and each copy gets 1/K of the one-head gradient.
    K = 3
    g1 = np.asarray(jax.grad(M.multihead_loss)(jnp.asarray(H), F, y))
    gK = np.asarray(jax.grad(M.multihead_loss)(jnp.asarray(np.repeat(H, K, 0)), F, y))
    np.testing.assert_allclose(
        float(M.multihead_loss(np.repeat(H, K, 0), F, y)),
        float(M.multihead_loss(H, F, y)),
        rtol=1e-13,
    )
    np.testing.assert_allclose(gK, np.repeat(g1, K, 0) / K, rtol=1e-12, atol=1e-300)


def test_head_convergence_mean_of_heads_approaches_u_S_faster():
    """Averaging K independent inits shrinks the init's memory in the head direction."""
    from stabtheory.data import planted_margin

    ds = planted_margin(40, 5, 0.3, seed=0)
    hc = M.head_convergence(ds.X, ds.y, K=8, steps=300, seeds=20)
    assert hc.error_single.shape == hc.error_multi.shape == (20, len(hc.steps))
    early = slice(0, 4)
    assert hc.error_multi[:, early].mean() < hc.error_single[:, early].mean()
    # Both approach u_S: the mean error falls from the first to the last checkpoint.
    assert hc.error_single[:, -1].mean() < hc.error_single[:, 0].mean()
    assert hc.error_multi[:, -1].mean() < hc.error_multi[:, 0].mean()
    # With K = 1, the "multi" run is the single-head run (same init, same step).
    one = M.head_convergence(ds.X, ds.y, K=1, steps=[1, 10], seeds=3)
    np.testing.assert_array_equal(one.error_multi, one.error_single)


# --------------------------------------------------------------------------------------------
# SURT


def test_surt_zero_steps_is_the_pretrained_encoder_and_is_deterministic(tb):
    a, _ = tb.info["head_slice"]
    np.testing.assert_array_equal(M.surt(tb, steps=0), tb.w0[:a])
    w1, w2 = M.surt(tb, steps=20, seed=3), M.surt(tb, steps=20, seed=3)
    np.testing.assert_array_equal(w1, w2)
    assert not np.array_equal(w1, tb.w0[:a])
    # finetune_seeds runs the same SURT for seed s (vmapped over seeds).
    runs = M.finetune_seeds(tb, M.Settings(surt_steps=20, steps=0), seeds=2, seed=2)
    np.testing.assert_allclose(runs.encoder_start[1], w1, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(runs.encoder, runs.encoder_start)  # zero supervised steps
    # The testbed carries its pre-trained autoencoder (a fresh copy each call).
    ae = M.pretrained_autoencoder(tb)
    assert ae.encoder.features == SMALL["features"]
    assert tb.pretrained() is not tb.pretrained()
    bare = dataclasses.replace(tb, pretrained=None)
    with pytest.raises(ValueError, match="autoencoder="):
        M.pretrained_autoencoder(bare)


def test_surt_lowers_the_weight_distance_where_it_must():
    r"""SURT on a task whose label lives in a direction the pre-training learned to ignore.

    Construction: the source inputs have (almost) no variance along their least-variance
    principal direction ``e`` (noise 0.1 in standard units), so denoising pre-training learns
    to discard ``e``; the task adds ``3 y_i e`` to source inputs (labels alternate). Then

    1. the pre-trained features are **not** linearly separable (checked): the encoder ignores
       the only direction that carries the label;
    2. ``3 e`` is the largest variation of the task's own inputs, so the denoising objective
       on them cannot be reduced without encoding the ``e`` coordinate: after SURT the
       features **are** separable (checked, every seed);
    3. the supervised fine-tuning has the L2-SP pull ``lambda/2 ||theta - theta_start||^2``.
       Its infimum over (theta, heads) is 0 when the start's features are separable (keep
       ``theta = theta_start`` and let the head grow along the max-margin direction), and
       any sequence with objective ``G -> 0`` has ``||theta - theta_start||^2 <= 2 G /
       lambda -> 0``. From a non-separable start the loss is bounded away from 0 unless
       theta leaves the start for the (open) set of separable encoders, at a positive
       distance. So the distance fine-tuning moves must be smaller after SURT; the test
       checks it seed by seed: the largest SURT distance is below the smallest plain one.
    """
    tb = ff.make_testbed(
        ff.TestbedConfig(task="synthetic", shift=0.0, **SMALL)
    )  # same pre-training as the fixture
    a, _ = tb.info["head_slice"]
    w0_enc = tb.w0[:a]
    X_source = ff.synthetic_source(4096, tb.X.shape[1])
    _, V = np.linalg.eigh(np.cov(X_source.T))
    e = V[:, 0]
    y = np.where(np.arange(tb.n) % 2 == 0, 1.0, -1.0)
    y_test = np.where(np.arange(len(tb.y_test)) % 2 == 0, 1.0, -1.0)
    task = dataclasses.replace(
        tb,
        X=tb.X + 3.0 * y[:, None] * e,
        y=y,
        X_test=tb.X_test + 3.0 * y_test[:, None] * e,
        y_test=y_test,
    )
    assert not M.feature_margin(w0_enc, task).separable
    base = M.Settings(lr=1e-2, steps=500, l2sp=1.0, dropout=0.0)
    plain = M.finetune_seeds(task, base, seeds=SEEDS)
    surt = M.finetune_seeds(task, dataclasses.replace(base, surt_steps=300), seeds=SEEDS)
    assert all(M.feature_margin(w, task).separable for w in surt.encoder_start)
    np.testing.assert_array_equal(plain.encoder_start, np.broadcast_to(w0_enc, (SEEDS, a)))
    d_plain = M.weight_distance(plain.encoder, plain.encoder_start)
    d_surt = M.weight_distance(surt.encoder, surt.encoder_start)
    assert d_surt.max() < d_plain.min(), (d_surt, d_plain)
    assert plain.train_accuracy.min() == surt.train_accuracy.min() == 1.0


# --------------------------------------------------------------------------------------------
# The loop


def test_finetune_seeds_is_deterministic_and_vmapped_seeds_equal_single_runs(tb):
    m = M.METHODS["plain"].settings(M.Settings(steps=30))
    r1 = M.finetune_seeds(tb, m, seeds=SEEDS, seed=10)
    r2 = M.finetune_seeds(tb, m, seeds=SEEDS, seed=10)
    for f in ("encoder", "heads", "test_logits", "test_accuracy", "train_features"):
        np.testing.assert_array_equal(getattr(r1, f), getattr(r2, f))
    one = M.finetune_seeds(tb, m, seeds=1, seed=13)  # row 3 of the vmapped call
    np.testing.assert_allclose(one.encoder[0], r1.encoder[3], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(one.heads[0], r1.heads[3], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(one.test_logits[0], r1.test_logits[3], rtol=1e-9, atol=1e-12)
    # Different seeds: different heads, data orders, dropout masks, so different results.
    assert len({row.tobytes() for row in r1.test_logits}) == SEEDS
    assert not np.allclose(r1.encoder[0], r1.encoder[1])


def test_head_only_keeps_the_encoder_fixed_and_moves_the_heads(tb):
    r = M.finetune_seeds(tb, M.METHODS["head_only"].settings(M.Settings(steps=30)), seeds=SEEDS)
    a, _ = tb.info["head_slice"]
    np.testing.assert_array_equal(r.encoder, np.broadcast_to(tb.w0[:a], r.encoder.shape))
    np.testing.assert_array_equal(M.weight_distance(r.encoder, r.encoder_start), 0.0)
    start = jax.vmap(lambda k: M.init_heads(jax.random.fold_in(k, 0), 1, 4))(M.seed_keys(SEEDS))
    assert np.all(np.abs(r.heads - np.asarray(start)).max(axis=(1, 2)) > 1e-3)


def test_traced_settings_share_one_compilation(tb):
    base = M.METHODS["plain"].settings(M.Settings(steps=20))
    with jax_compilations() as first:
        M.finetune_seeds(tb, dataclasses.replace(base, heads=7), seeds=SEEDS)
    assert first  # the counter sees a new static setting compile
    M.finetune_seeds(tb, base, seeds=SEEDS)
    with jax_compilations() as events:
        for change in (
            {"lr": 1e-4},
            {"steps": 25},
            {"l2sp": 0.5},
            {"head_only": True},
            {"mmr_alpha": 0.7},
            {"dropout": 0.3},
            {"mmr_temperature": 0.5},
        ):
            M.finetune_seeds(tb, dataclasses.replace(base, **change), seeds=SEEDS)
    assert events == []


def test_methods_table_and_validation():
    assert list(M.METHODS) == [
        "plain",
        "small_lr",
        "long",
        "l2sp",
        "head_only",
        "mmr",
        "mhloss",
        "surt",
    ]
    s = {name: m.settings(M.Settings()) for name, m in M.METHODS.items()}
    assert all(s[name].name == name for name in s)
    plain = s["plain"]
    assert s["mhloss"].heads > 1 and s["mmr"].mmr_alpha > 0
    assert s["surt"].surt_steps > 0 and s["head_only"].head_only
    assert s["small_lr"].lr < plain.lr and s["long"].steps > plain.steps
    for bad in ({"mmr_kind": "max"}, {"heads": 0}, {"dropout": 1.0}, {"dropout_on": "x"}):
        with pytest.raises(ValueError):
            M.Settings(**bad)
    with pytest.raises(ValueError, match="registered already"):
        M.register_method(M.Method("plain"))
    with pytest.raises(ValueError, match="unknown method"):
        M.finetune_seeds(None, "no_such_method")


# --------------------------------------------------------------------------------------------
# Measures


def test_feature_margin_matches_max_margin_and_flags_non_separable(tb):
    rng = np.random.default_rng(5)
    F = rng.standard_normal((20, 3))
    y = np.where(F[:, 0] > 0.1, 1.0, -1.0)
    res = M.features_margin(F, y)
    Xb = np.concatenate([F, np.ones((20, 1))], axis=1)
    ref = max_margin(Xb, y)
    R = np.linalg.norm(Xb, axis=1).max()
    assert res.separable
    np.testing.assert_allclose(res.margin, ref.margin / R, rtol=1e-12)
    np.testing.assert_allclose(res.direction, ref.direction, rtol=1e-12, atol=1e-15)
    # XOR-like features cannot be separated: NaN and a flag, never an exception.
    X = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    bad = M.features_margin(X, np.array([1.0, 1.0, -1.0, -1.0]))
    assert not bad.separable and np.isnan(bad.margin) and np.isnan(bad.gamma)
    # On a testbed: the pre-trained encoder block of w0.
    a, _ = tb.info["head_slice"]
    fm = M.feature_margin(tb.w0[:a], tb)
    assert fm.separable == np.isfinite(fm.margin)


# --------------------------------------------------------------------------------------------
# Conformance: every registered method runs on a tiny testbed and answers its hooks

TINY = {"n": 16, "n_test": 16, "d_in": 8, "hidden": (8,), "features": 3, "pretrain_steps": 20}
TINY_BASE = M.Settings(steps=5, batch_size=8)


@pytest.fixture(scope="module")
def tiny():
    return ff.make_testbed(ff.TestbedConfig(task="synthetic", **TINY))


@pytest.mark.parametrize("name", list(M.METHODS))
def test_every_registered_method_runs_on_a_tiny_testbed(tiny, name):
    from stabtheory.simulations.stabilizers import seed_measures

    method = M.METHODS[name].quick()
    assert method.name == name and isinstance(method, M.Method)
    settings = method.settings(TINY_BASE)
    assert isinstance(settings, M.Settings) and settings.name == name
    runs = M.finetune_seeds(tiny, settings, seeds=2)
    again = M.finetune_seeds(tiny, settings, seeds=2)
    a, _ = tiny.info["head_slice"]
    k = TINY["features"]
    assert runs.encoder.shape == runs.encoder_start.shape == (2, a)
    assert runs.heads.shape == (2, settings.heads, k + 1)
    assert runs.train_features.shape == (2, TINY["n"], k)
    for field in ("encoder", "heads", "test_logits", "train_features", "train_loss"):
        assert np.all(np.isfinite(getattr(runs, field))), field
        np.testing.assert_array_equal(getattr(runs, field), getattr(again, field))
    assert np.all((0.0 <= runs.test_accuracy) & (runs.test_accuracy <= 1.0))
    if not method.claim:
        return
    # A stabilizer's hooks, against plain fine-tuning on the same tiny testbed.
    plain = M.finetune_seeds(tiny, M.METHODS["plain"].settings(TINY_BASE), seeds=2, seed=2)
    methods = list(M.METHODS.values())
    per_seed = {m: seed_measures(r, tiny, methods) for m, r in (("plain", plain), (name, runs))}
    measured = method.measure(tiny, plain, seed=0, n_boot=50, level=0.95)
    assert isinstance(measured, dict)
    c = M.Comparison(per_seed, measured, "plain", ("plain", name), "tiny", n_boot=50, level=0.95)
    mech = method.mechanism(c)
    assert isinstance(mech, M.Mechanism) and mech.text and len(mech.values) == 2
    assert mech.verdict in {"as predicted", "opposite", "no detectable change"}
    assert mech.predicted in (-1, 1)
    fig, ax = plt.subplots()
    method.draw(ax, c, np.random.default_rng(0))
    assert ax.get_title()
    plt.close(fig)
