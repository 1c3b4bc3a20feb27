"""Tests of stabtheory.linear_heads.stability: leave-one-out, replace-one and seed estimators
against brute force, per-sample values, summaries and input checks."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close_scaled, np_loss, np_stability, np_train_head, random_separable, tol
from hypothesis import given
from hypothesis import strategies as st

from stabtheory import data, linear_heads
from stabtheory.errors import InvalidDataError
from stabtheory.statistics import bootstrap_mean_ci

F64 = np.float64
LOSSES = ("exponential", "logistic")
NOTIONS = linear_heads.NOTIONS

N, D = 7, 3


def brute_force_loo(X, y, loss, lr, steps, init=None):
    """w_S and every w_S\\i by plain numpy GD, deleting the row (no masks)."""
    Z = y[:, None] * X
    w_full = np_train_head(Z, lr, steps, loss, w0=init)
    w_loo = np.stack(
        [np_train_head(np.delete(Z, i, axis=0), lr, steps, loss, w0=init) for i in range(len(y))]
    )
    return Z, w_full, w_loo


def brute_force_replace(X, y, Xr, yr, loss, lr, steps):
    Z, Zr = y[:, None] * X, yr[:, None] * Xr
    w_full = np_train_head(Z, lr, steps, loss)
    w_rep = []
    for i in range(len(y)):
        Zi = Z.copy()
        Zi[i] = Zr[i]
        w_rep.append(np_train_head(Zi, lr, steps, loss))
    return Z, w_full, np.stack(w_rep)


def notion_scale(notion, Z, w_full, w_pert, loss):
    """Size of the rounding error of a per-sample value: the size of what it is computed from.

    weights: the weights themselves; direction: unit vectors; loss: l times the size of the
    margin perturbation a relative weight error causes (1 + |m|).
    """
    if notion == "weights":
        return max(np.linalg.norm(w_full), np.linalg.norm(w_pert, axis=1).max())
    if notion == "direction":
        return 1.0
    la = np_loss(Z @ w_full, loss)
    lb = np_loss(np.sum(Z * w_pert, axis=1), loss)
    m = np.maximum(np.abs(Z @ w_full), np.abs(np.sum(Z * w_pert, axis=1)))
    return np.maximum(la, lb) * (1.0 + m)


def check_estimate(est, notion_id):
    values = est.per_sample
    assert est.notion == notion_id
    np.testing.assert_allclose(est.mean, values.mean(axis=-1), rtol=tol(F64))
    np.testing.assert_array_equal(est.max, values.max(axis=-1))
    lo, hi = (np.asarray(c) for c in est.ci)
    assert np.all(lo <= np.asarray(est.mean) + tol(F64) * np.abs(est.mean))
    assert np.all(np.asarray(est.mean) <= hi + tol(F64) * np.abs(est.mean))
    assert np.all(values >= 0)


# --------------------------------------------------------------------------------------------
# Leave-one-out against brute force


@pytest.mark.parametrize(
    ("loss", "lr", "steps", "seed"),
    [
        ("exponential", 0.5, 60, 0),
        ("exponential", 1.0, 150, 1),
        ("logistic", 0.5, 60, 2),
        ("logistic", 3.0, 150, 3),
    ],
)
@pytest.mark.parametrize("notion", NOTIONS)
def test_loo_stability_matches_brute_force(notion, loss, lr, steps, seed):
    X, y = random_separable(N, D, seed)
    est = linear_heads.loo_stability(X, y, loss=loss, lr=lr, steps=steps, notion=notion)
    Z, w_full, w_loo = brute_force_loo(X, y, loss, lr, steps)
    expected = np_stability(w_full, w_loo, Z, notion, loss)
    assert est.per_sample.shape == (N,)
    assert_close_scaled(
        est.per_sample, expected, scale=notion_scale(notion, Z, w_full, w_loo, loss)
    )
    check_estimate(est, f"loo.{notion}")
    assert isinstance(est.mean, float) and isinstance(est.max, float)


@pytest.mark.parametrize("loss", LOSSES)
def test_loo_stability_with_init_and_01_labels(loss):
    X, y = random_separable(N, D, 5)
    init = np.array([0.3, -0.1, 0.2])
    est = linear_heads.loo_stability(
        X, (y + 1) / 2, loss=loss, lr=0.7, steps=40, notion="weights", init=init
    )
    Z, w_full, w_loo = brute_force_loo(X, y, loss, 0.7, 40, init=init)
    expected = np_stability(w_full, w_loo, Z, "weights", loss)
    assert_close_scaled(est.per_sample, expected, scale=np.linalg.norm(w_full))


@pytest.mark.parametrize("notion", NOTIONS)
def test_loo_checkpoints_give_per_checkpoint_rows(notion):
    X, y = random_separable(N, D, 6)
    steps = [1, 10, 10, 80]
    est = linear_heads.loo_stability(X, y, loss="logistic", lr=1.0, steps=steps, notion=notion)
    assert est.per_sample.shape == (len(steps), N)
    assert np.shape(est.mean) == (len(steps),) and np.shape(est.max) == (len(steps),)
    assert np.shape(est.ci[0]) == (len(steps),) and np.shape(est.ci[1]) == (len(steps),)
    check_estimate(est, f"loo.{notion}")
    for c, t in enumerate(steps):
        Z, w_full, w_loo = brute_force_loo(X, y, "logistic", 1.0, t)
        expected = np_stability(w_full, w_loo, Z, notion, "logistic")
        scale = notion_scale(notion, Z, w_full, w_loo, "logistic")
        assert_close_scaled(est.per_sample[c], expected, scale=scale)
    np.testing.assert_array_equal(est.per_sample[1], est.per_sample[2])


def test_loo_at_step_zero_is_zero_for_weights_and_loss():
    X, y = random_separable(N, D, 6)
    for notion in ("weights", "loss"):
        est = linear_heads.loo_stability(X, y, steps=[0, 5], notion=notion)
        np.testing.assert_array_equal(est.per_sample[0], 0.0)


def test_single_checkpoint_list_keeps_checkpoint_axis():
    X, y = random_separable(N, D, 6)
    est = linear_heads.loo_stability(X, y, steps=[10], notion="weights")
    assert est.per_sample.shape == (1, N)


def test_loo_multi_head_is_mean_head():
    # K identical heads: the predictor (mean head) is single-head GD with step lr / K.
    X, y = random_separable(N, D, 7)
    a = linear_heads.loo_stability(X, y, lr=1.2, steps=50, notion="weights", heads_per_run=3)
    b = linear_heads.loo_stability(X, y, lr=0.4, steps=50, notion="weights")
    Z, w_full, w_loo = brute_force_loo(X, y, "exponential", 0.4, 50)
    assert_close_scaled(a.per_sample, b.per_sample, scale=np.linalg.norm(w_full))
    expected = np_stability(w_full, w_loo, Z, "weights", "exponential")
    assert_close_scaled(a.per_sample, expected, scale=np.linalg.norm(w_full))


def test_loo_batch_size_gives_same_result():
    X, y = random_separable(N, D, 8)
    a = linear_heads.loo_stability(X, y, steps=30, notion="direction")
    b = linear_heads.loo_stability(X, y, steps=30, notion="direction", batch_size=3)
    assert_close_scaled(b.per_sample, a.per_sample, scale=1.0, factor=0.1)


def test_loo_float32():
    X, y = random_separable(N, D, 9)
    est = linear_heads.loo_stability(X, y, steps=30, notion="direction", dtype=jnp.float32)
    X32 = X.astype(np.float32).astype(F64)
    Z, w_full, w_loo = brute_force_loo(X32, y, "exponential", 1.0, 30)
    expected = np_stability(w_full, w_loo, Z, "direction", "exponential")
    assert_close_scaled(est.per_sample, expected, np.float32, scale=1.0)


def test_loo_soudry_symmetric():
    # The four Soudry points are symmetric under z -> swap coordinates and under sign: every
    # leave-one-out run is an isometric image of the others, so all per-sample values agree.
    ds = data.soudry_fig1()
    for notion in NOTIONS:
        est = linear_heads.loo_stability(ds.X, ds.y, lr=0.1, steps=100, notion=notion)
        assert_close_scaled(
            est.per_sample, np.full(4, est.per_sample[0]), scale=max(est.max, 1e-300)
        )


# --------------------------------------------------------------------------------------------
# Replace-one against brute force


@pytest.mark.parametrize(
    ("loss", "lr", "steps"),
    [("exponential", 0.5, 60), ("logistic", 2.0, 100)],
)
@pytest.mark.parametrize("notion", NOTIONS)
def test_replace_one_matches_brute_force(notion, loss, lr, steps):
    ds = data.planted_margin(N, D, 0.3, seed=1)
    rep = data.replacement_draws(ds, seed=2)
    est = linear_heads.replace_one_stability(
        ds.X, ds.y, (rep.X, rep.y), loss=loss, lr=lr, steps=steps, notion=notion
    )
    Z, w_full, w_rep = brute_force_replace(ds.X, ds.y, rep.X, rep.y, loss, lr, steps)
    expected = np_stability(w_full, w_rep, Z, notion, loss)
    assert est.per_sample.shape == (N,)
    assert_close_scaled(
        est.per_sample, expected, scale=notion_scale(notion, Z, w_full, w_rep, loss)
    )
    check_estimate(est, f"replace.{notion}")


def test_replace_one_with_itself_is_zero():
    # z'_i = z_i: S^(i) is S again (the masks only sum the points in another order), so
    # every value is zero up to the rounding of the weights it is computed from.
    X, y = random_separable(N, D, 3)
    Z = y[:, None] * X
    w = np_train_head(Z, 1.0, 20, "exponential")
    for notion in NOTIONS:
        est = linear_heads.replace_one_stability(X, y, (X, y), steps=20, notion=notion)
        scale = notion_scale(notion, Z, w, np.tile(w, (N, 1)), "exponential")
        assert_close_scaled(est.per_sample, np.zeros(N), scale=scale)


# --------------------------------------------------------------------------------------------
# per_sample_stability, StabilityEstimate, bootstrap


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("notion", NOTIONS)
def test_per_sample_stability_batched_and_multi_head(notion, loss, key):
    n, C, K, d = 5, 3, 2, 4
    k1, k2, k3 = jax.random.split(key, 3)
    w_full = jax.random.normal(k1, (C, K, d), F64)
    w_pert = w_full + 0.3 * jax.random.normal(k2, (n, C, K, d), F64)
    Z = jax.random.normal(k3, (n, d), F64)
    got = np.asarray(linear_heads.per_sample_stability(w_full, w_pert, Z, notion, loss=loss))
    assert got.shape == (n, C)
    a = np.asarray(w_full).mean(axis=-2)  # mean head (mean of the heads' logits)
    b = np.asarray(w_pert).mean(axis=-2)
    for c in range(C):
        expected = np_stability(a[c], b[:, c], np.asarray(Z), notion, loss)
        scale = notion_scale(notion, np.asarray(Z), a[c], b[:, c], loss)
        assert_close_scaled(got[:, c], expected, scale=scale)


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_split_by_held_out_misclassification_adds_up(loss, key):
    """The head study's split of the loss notion: the changes on held-out points that
    u_S\\i misclassifies (margin <= 0) and on the others add up to the loss notion; the
    clipped loss's change never exceeds the loss's, nor its trivial bound l(0)."""
    from stabtheory.simulations.head.compute import loss_parts

    X, y = random_separable(12, 3, seed=5, shift=0.2)
    y = y.copy()
    y[:2] = -y[:2]  # two flipped labels: their held-out runs misclassify them
    runs = linear_heads.train_head_runs(X, y, loss=loss, lr=0.5, steps=(1, 5, 50))
    w = runs.trajectory.w
    loss_values = np.asarray(
        linear_heads.per_sample_stability(w[0], w[1:], runs.Z, "loss", loss=loss)
    ).T
    clipped = np.asarray(
        linear_heads.per_sample_stability(w[0], w[1:], runs.Z, "clipped_loss", loss=loss)
    ).T
    parts = loss_parts(loss_values, runs, clipped)
    np.testing.assert_array_equal(parts["loss.misclassified"] + parts["loss.correct"], loss_values)
    margins = np.einsum("icd,id->ci", np.asarray(w[1:]).mean(axis=2), np.asarray(runs.Z))
    missed = margins <= 0
    assert missed.any() and (~missed).any()  # both parts are exercised
    np.testing.assert_array_equal(parts["loss.misclassified"] > 0, missed & (loss_values > 0))
    assert np.all(clipped <= loss_values + 1e-15) and np.all(clipped <= np_loss(0.0, loss))
    trivial = linear_heads.trivial_stability(w[0], w[1:], w[0], runs.Z, "clipped_loss", loss=loss)
    np.testing.assert_allclose(np.asarray(trivial), np_loss(0.0, loss))


def test_per_sample_loss_notion_is_exact_at_huge_margins():
    # l = e^{-m} underflows, but the difference is formed in the log domain:
    # |e^{-1000} - e^{-1001}| = e^{-1000} (1 - e^{-1}), i.e. 0 in float64 but no NaN; at
    # margins 700 and 701 it is representable and exact.
    Z = np.array([[1.0, 0.0]])
    for m in (700.0, 1000.0):
        got = linear_heads.per_sample_stability(
            jnp.array([[m, 0.0]]), jnp.array([[[m + 1.0, 0.0]]]), jnp.asarray(Z), "loss"
        )
        expected = np.exp(-m) * -np.expm1(-1.0)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(np.asarray(got), [expected], rtol=tol(F64))


def test_per_sample_stability_unknown_notion():
    w = jnp.ones((1, 2))
    with pytest.raises(ValueError, match="notion must be one of"):
        linear_heads.per_sample_stability(w, jnp.ones((3, 1, 2)), jnp.ones((3, 2)), "foo")


def test_stability_estimate_from_values():
    values = np.array([0.1, 0.5, 0.2, 0.9])
    est = linear_heads.StabilityEstimate.from_values("loo.weights", values)
    assert est.mean == pytest.approx(0.425, rel=tol(F64)) and est.max == 0.9
    assert est.ci == bootstrap_mean_ci(values)
    est2 = linear_heads.StabilityEstimate.from_values("loo.weights", np.stack([values, 2 * values]))
    np.testing.assert_allclose(est2.mean, [0.425, 0.85], rtol=tol(F64))
    np.testing.assert_array_equal(est2.max, [0.9, 1.8])
    check_estimate(est2, "loo.weights")


@given(
    st.lists(st.floats(0.0, 1e6, allow_subnormal=False), min_size=2, max_size=30),
    st.integers(0, 1000),
)
def test_bootstrap_ci_property(values, seed):
    v = np.asarray(values)
    lo, hi = bootstrap_mean_ci(v, seed=seed, n_boot=500)
    mean = v.mean()
    slack = tol(F64) * max(np.abs(v).max(), 1e-300)
    assert v.min() - slack <= lo <= hi <= v.max() + slack
    assert lo - slack <= mean <= hi + slack


def test_bootstrap_ci_levels_and_batch():
    rng = np.random.default_rng(0)
    v = rng.exponential(size=(3, 40))
    lo90, hi90 = bootstrap_mean_ci(v, level=0.9)
    lo99, hi99 = bootstrap_mean_ci(v, level=0.99)
    assert lo90.shape == (3,)
    assert np.all(lo99 <= lo90) and np.all(hi90 <= hi99)
    # Each row of a batch equals the row bootstrapped on its own.
    for r in range(3):
        lo_r, hi_r = bootstrap_mean_ci(v[r], level=0.9)
        np.testing.assert_allclose([lo_r, hi_r], [lo90[r], hi90[r]], rtol=tol(F64))
    c = bootstrap_mean_ci(np.full(10, 0.3))
    assert c[0] == c[1] == pytest.approx(0.3, rel=tol(F64))


# --------------------------------------------------------------------------------------------
# seed_stability


def seed_reference(X, y, X_test, y_test, w0, lr, steps, loss):
    """Train every seed in numpy and compute the documented summaries from scratch."""
    Z = y[:, None] * X
    W = np.stack([np_train_head(Z, lr, steps, loss, w0=w) for w in w0])  # (seeds, d)
    logits = X_test @ W.T  # (m, seeds)
    acc = np.mean(np.sign(logits) == y_test[:, None], axis=0)
    prob = 1.0 / (1.0 + np.exp(-logits))
    labels = logits > 0
    seeds = W.shape[0]
    pairs = list(itertools.combinations(range(seeds), 2))
    disagree = np.mean(
        [np.mean([labels[j, a] != labels[j, b] for a, b in pairs]) for j in range(X_test.shape[0])]
    )
    return acc, acc.std(ddof=1), prob.std(axis=1, ddof=1).mean(), disagree


def test_seed_stability_matches_numpy(key):
    ds = data.separable_gaussian(20, 3, separation=0.7, seed=4)
    test = data.separable_gaussian(30, 3, separation=0.7, seed=5)
    seeds, lr, steps, scale = 6, 0.5, 15, 3.0
    res = linear_heads.seed_stability(
        ds.X, ds.y, test.X, test.y, seeds=seeds, init_scale=scale, lr=lr, steps=steps, key=key
    )
    w0 = np.asarray(scale * jax.random.normal(key, (seeds, 1, 3), F64) / np.sqrt(3))[:, 0]
    acc, acc_std, pred_std, disagree = seed_reference(
        ds.X, ds.y, test.X, test.y, w0, lr, steps, "logistic"
    )
    assert res.accuracy.shape == (seeds,)
    np.testing.assert_array_equal(res.accuracy, acc)
    assert res.accuracy_std == pytest.approx(acc_std, rel=tol(F64), abs=tol(F64))
    assert res.prediction_std == pytest.approx(pred_std, rel=1e-10)
    assert res.disagreement == pytest.approx(disagree, rel=tol(F64), abs=tol(F64))
    assert res.accuracy_std >= 0 and res.prediction_std >= 0
    assert 0.0 <= res.disagreement <= 1.0
    lo, hi = res.accuracy_std_ci
    assert 0.0 <= lo <= hi


@pytest.mark.parametrize("loss", LOSSES)
def test_seed_stability_zero_init_has_zero_spread(loss):
    ds = data.planted_margin(20, 3, 0.2, seed=0)
    test = data.planted_margin(15, 3, 0.2, seed=1)
    res = linear_heads.seed_stability(
        ds.X, ds.y, test.X, test.y, seeds=4, init_scale=0.0, loss=loss, steps=10
    )
    assert res.accuracy_std == 0.0
    assert res.accuracy_std_ci == (0.0, 0.0)
    assert res.prediction_std == 0.0
    assert res.disagreement == 0.0
    assert np.all(res.accuracy == res.accuracy[0])


def test_seed_stability_runs_with_defaults_and_optimizer(key):
    ds = data.separable_gaussian(16, 4, separation=0.5, seed=2)
    res = linear_heads.seed_stability(ds.X, ds.y, ds.X, ds.y, seeds=5, optimizer="adam", key=key)
    assert res.accuracy_std >= 0.0
    assert np.all((res.accuracy >= 0.0) & (res.accuracy <= 1.0))


def test_seed_stability_negative_steps_raise():
    X, y = random_separable(N, D, 0)
    with pytest.raises(InvalidDataError):
        linear_heads.seed_stability(X, y, X, y, seeds=3, steps=-5)


# --------------------------------------------------------------------------------------------
# Bad input


X_BAD, Y_BAD = random_separable(N, D, 0)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: linear_heads.loo_stability(X_BAD, Y_BAD, notion="foo"), ValueError, "notion"),
        (lambda: linear_heads.loo_stability(X_BAD, Y_BAD, loss="foo"), ValueError, "loss"),
        (lambda: linear_heads.loo_stability(X_BAD, Y_BAD, steps=-1), InvalidDataError, "steps"),
        (
            lambda: linear_heads.loo_stability(X_BAD, Y_BAD, steps=[3, -1]),
            InvalidDataError,
            "steps",
        ),
        (
            lambda: linear_heads.loo_stability(X_BAD, Y_BAD, steps=[5, 2]),
            InvalidDataError,
            "non-decreasing",
        ),
        (lambda: linear_heads.loo_stability(X_BAD, Y_BAD, steps=2.5), InvalidDataError, "integer"),
        (
            lambda: linear_heads.loo_stability(X_BAD, Y_BAD, steps=[[1, 2]]),
            InvalidDataError,
            "steps",
        ),
        (
            lambda: linear_heads.loo_stability(X_BAD, Y_BAD, init=np.ones(D + 1)),
            InvalidDataError,
            "init must have shape",
        ),
        (
            lambda: linear_heads.loo_stability(X_BAD, Y_BAD, optimizer="sgd"),
            ValueError,
            "optimizer",
        ),
        (lambda: linear_heads.loo_stability(X_BAD[:, 0], Y_BAD), InvalidDataError, "2-D"),
        (lambda: linear_heads.loo_stability(X_BAD, Y_BAD + 1), InvalidDataError, "labels"),
        (
            lambda: linear_heads.replace_one_stability(X_BAD, Y_BAD, (X_BAD, Y_BAD), notion="foo"),
            ValueError,
            "notion",
        ),
        (
            lambda: linear_heads.replace_one_stability(X_BAD, Y_BAD, (X_BAD, Y_BAD), loss="foo"),
            ValueError,
            "loss",
        ),
        (
            lambda: linear_heads.replace_one_stability(X_BAD, Y_BAD, (X_BAD, Y_BAD), steps=-3),
            InvalidDataError,
            "steps",
        ),
        (
            lambda: linear_heads.replace_one_stability(X_BAD, Y_BAD, (X_BAD[:3], Y_BAD[:3])),
            InvalidDataError,
            "replacements must have shape",
        ),
        (
            lambda: linear_heads.train_head_runs(X_BAD, Y_BAD, kind="replace"),
            InvalidDataError,
            "replacements",
        ),
        (lambda: linear_heads.train_head_runs(X_BAD, Y_BAD, kind="bootstrap"), ValueError, "kind"),
        (
            lambda: linear_heads.seed_stability(X_BAD, Y_BAD, X_BAD[:, :2], Y_BAD),
            InvalidDataError,
            "features",
        ),
        (
            lambda: linear_heads.seed_stability(X_BAD, Y_BAD, X_BAD, Y_BAD, loss="foo"),
            ValueError,
            "loss",
        ),
    ],
)
def test_bad_input_raises(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_train_head_runs_shapes():
    X, y = random_separable(N, D, 1)
    sim = linear_heads.train_head_runs(X, y, steps=[0, 4, 9], heads_per_run=2)
    assert sim.kind == "loo"
    assert sim.trajectory.w.shape == (N + 1, 3, 2, D)
    np.testing.assert_array_equal(sim.steps, [0, 4, 9])
    np.testing.assert_array_equal(np.asarray(sim.weights)[1:], 1.0 - np.eye(N))
    est = sim.estimate("weights")
    assert est.per_sample.shape == (3, N)


def test_direction_at_step_zero_from_zero_start_is_refused():
    ds = data.planted_margin(8, 3, 0.2, seed=0)
    with pytest.raises(InvalidDataError, match="step 0"):
        linear_heads.loo_stability(ds.X, ds.y, steps=[0, 10], notion="direction")
    # the weights notion is defined there (and zero)
    est = linear_heads.loo_stability(ds.X, ds.y, steps=[0, 10], notion="weights")
    assert np.all(est.per_sample[0] == 0)


def test_accelerator_path_uses_static_checkpoints_with_the_same_result(monkeypatch):
    """On an accelerator the trainer runs fixed-length loops; the estimate is unchanged."""
    ds = data.planted_margin(12, 3, 0.2, seed=1)
    cpu = linear_heads.loo_stability(ds.X, ds.y, lr=0.5, steps=[1, 10, 100], loss="logistic")
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    acc = linear_heads.loo_stability(ds.X, ds.y, lr=0.5, steps=[1, 10, 100], loss="logistic")
    np.testing.assert_allclose(acc.per_sample, cpu.per_sample, rtol=1e-13, atol=1e-15)
