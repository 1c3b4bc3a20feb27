"""Tests of stabtheory.heads: losses in the log domain, GD steps, vmapped training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from helpers import (
    assert_close_scaled,
    np_dloss_abs,
    np_gd,
    np_loss,
    np_train_head,
    random_separable,
    tol,
)
from hypothesis import given
from hypothesis import strategies as st

from stabtheory import data, heads

F64 = np.float64
LOSSES = heads.LOSSES

mpmath.mp.dps = 50

# Jitted entry points shared by the tests, so that cases with equal shapes compile once.
jtrain = jax.jit(heads.train, static_argnames=("loss", "optimizer"))
jtrain_runs = jax.jit(heads.train_runs, static_argnames=("loss", "optimizer", "batch_size"))


def signed_points(n=12, d=4, seed=0):
    X, y = random_separable(n, d, seed)
    return y[:, None] * X


def random_start(K, d, seed, scale=0.3):
    return scale * np.random.default_rng(seed).standard_normal((K, d))


# --------------------------------------------------------------------------------------------
# Losses


def mp_log_loss(m, loss):
    m = mpmath.mpf(float(m))
    if loss == "exponential":
        return -m
    return mpmath.log(mpmath.log1p(mpmath.exp(-m)))


def mp_log_dloss(m, loss):
    m = mpmath.mpf(float(m))
    if loss == "exponential":
        return -m
    return -mpmath.log1p(mpmath.exp(m))  # log sigmoid(-m)


def mp_dlog_loss(m, loss):
    """d/dm log l(m)."""
    m = mpmath.mpf(float(m))
    if loss == "exponential":
        return mpmath.mpf(-1)
    return -(1 / (1 + mpmath.exp(m))) / mpmath.log1p(mpmath.exp(-m))


MARGINS = [-1e4, -1e3, -50.0, -20.0, -1.0, 0.0, 0.5, 0.54, 1.0, 19.99, 20.0, 20.01, 35.0]
MARGINS += [50.0, 700.0, 1e3, 1e4]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", LOSSES)
def test_log_loss_matches_mpmath(loss, dtype):
    m = np.asarray(MARGINS, dtype=dtype)
    got = np.asarray(heads.log_loss(jnp.asarray(m), loss))
    assert got.dtype == dtype
    assert np.all(np.isfinite(got))
    expected = np.array([float(mp_log_loss(v, loss)) for v in m])
    # Absolute accuracy of log l is relative accuracy of l itself.
    np.testing.assert_allclose(got, expected, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", LOSSES)
def test_log_dloss_matches_mpmath(loss, dtype):
    m = np.asarray(MARGINS, dtype=dtype)
    got = np.asarray(heads.log_dloss(jnp.asarray(m), loss))
    assert got.dtype == dtype
    assert not np.any(np.isnan(got)) and np.all(np.isfinite(got))
    expected = np.array([float(mp_log_dloss(v, loss)) for v in m])
    np.testing.assert_allclose(got, expected, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize(
    ("m", "loss", "expected"),
    [
        (1e3, "exponential", -1e3),
        (1e4, "exponential", -1e4),
        (-1e3, "exponential", 1e3),
        (1e3, "logistic", -1e3),
        (1e4, "logistic", -1e4),
        (-1e3, "logistic", float(np.log(1e3))),
    ],
)
def test_log_loss_extreme_margins_exact(m, loss, expected):
    got = float(heads.log_loss(jnp.asarray(m, F64), loss))
    assert got == pytest.approx(expected, rel=tol(F64), abs=0.0)


@pytest.mark.parametrize("loss", LOSSES)
def test_log_loss_derivative_finite_and_exact(loss):
    m = jnp.asarray(MARGINS, F64)
    got = np.asarray(jax.vmap(jax.grad(lambda v: heads.log_loss(v, loss)))(m))
    assert np.all(np.isfinite(got))
    expected = np.array([float(mp_dlog_loss(v, loss)) for v in MARGINS])
    np.testing.assert_allclose(got, expected, rtol=tol(F64), atol=tol(F64))


def test_unknown_loss_raises():
    with pytest.raises(ValueError, match="loss must be one of"):
        heads.log_loss(jnp.zeros(2), "hinge")
    with pytest.raises(ValueError, match="loss must be one of"):
        heads.log_dloss(jnp.zeros(2), "hinge")
    with pytest.raises(ValueError, match="loss must be one of"):
        heads.train(jnp.eye(2), jnp.ones(2), 0.1, jnp.zeros((1, 2)), jnp.array([1]), loss="hinge")


def test_unknown_optimizer_raises():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        heads.optimizer_transform("sgd")


@pytest.mark.parametrize("loss", LOSSES)
def test_log_mean_loss_matches_numpy(loss):
    rng = np.random.default_rng(3)
    margins = rng.uniform(-3, 5, size=(3, 7))
    s = rng.uniform(0, 2, size=7)
    s[2] = 0.0
    got = np.asarray(heads.log_mean_loss(jnp.asarray(margins), jnp.asarray(s), loss))
    expected = np.log((np_loss(margins, loss) * s).sum(axis=-1) / s.sum())
    np.testing.assert_allclose(got, expected, rtol=tol(F64))


@pytest.mark.parametrize("loss", LOSSES)
def test_log_mean_loss_huge_margins(loss):
    # Every l(m) underflows in float64, but log F is exact: log mean e^{-m} (to 1e-18 for
    # the logistic loss at these margins).
    margins = np.array([1e3, 1e3 + np.log(2.0), 2e3, 1e4])
    s = np.array([1.0, 2.0, 1.0, 0.0])
    got = float(heads.log_mean_loss(jnp.asarray(margins), jnp.asarray(s), loss))
    expected = float(mpmath.log((mpmath.exp(-1000) * 2) / 4 + mpmath.exp(-2000) / 4))
    assert got == pytest.approx(expected, rel=tol(F64))


# --------------------------------------------------------------------------------------------
# One step


@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("loss", LOSSES)
def test_step_closed_form(loss, K):
    Z = signed_points(9, 3, seed=1)
    s = np.ones(9)
    s[4] = 0.0
    s[6] = 2.5
    w0 = random_start(K, 3, seed=2)
    lr = 0.7
    state = heads.step(
        heads.init(jnp.asarray(w0)), jnp.asarray(Z), jnp.asarray(s), jnp.asarray(lr), loss=loss
    )
    g_abs = np_dloss_abs(w0 @ Z.T, loss)  # (K, n)
    expected = w0 + lr * ((g_abs * s) @ Z) / (K * s.sum())
    np.testing.assert_allclose(np.asarray(state.w), expected, rtol=tol(F64), atol=tol(F64))
    np.testing.assert_allclose(float(state.dloss_max), g_abs[:, s > 0].max(), rtol=tol(F64))


def test_one_step_from_zero_is_lr_times_mean_point():
    # From w = 0, |l'(0)| = 1 (exponential) or 1/2 (logistic).
    Z = signed_points(6, 3, seed=5)
    for loss, scale in [("exponential", 1.0), ("logistic", 0.5)]:
        traj = jtrain(
            jnp.asarray(Z), jnp.ones(6), 0.3, jnp.zeros((1, 3)), jnp.array([0, 1]), loss=loss
        )
        np.testing.assert_array_equal(np.asarray(traj.w[0]), 0.0)
        np.testing.assert_allclose(
            np.asarray(traj.w[1, 0]), 0.3 * scale * Z.mean(axis=0), rtol=tol(F64)
        )


def test_init_state():
    w0 = jnp.ones((2, 3))
    state = heads.init(w0)
    np.testing.assert_array_equal(np.asarray(state.w), 1.0)
    assert float(state.dloss_max) == 0.0


# --------------------------------------------------------------------------------------------
# train against an independent numpy GD loop


CHECKPOINTS = [0, 1, 2, 7, 50, 300]


def mask(kind: str, n: int) -> np.ndarray:
    if kind == "full":
        return np.ones(n)
    if kind == "loo":
        s = np.ones(n)
        s[3] = 0.0
        return s
    if kind == "weighted":
        return np.random.default_rng(7).uniform(0.2, 2.0, n)
    raise ValueError(kind)


def compare_trajectory(traj, ref, dtype=F64):
    """Weights relative to their size at each checkpoint; log F absolutely (= F relatively)."""
    ref_w = ref["w"]
    scale = np.max(np.abs(ref_w), axis=(-2, -1), keepdims=True)
    assert_close_scaled(traj.w, ref_w, dtype, scale=scale)
    np.testing.assert_allclose(
        np.asarray(traj.log_loss), ref["log_loss"], rtol=tol(dtype), atol=tol(dtype)
    )
    np.testing.assert_allclose(np.asarray(traj.dloss_max), ref["dloss_max"], rtol=tol(dtype))


@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("mask_kind", ["full", "loo", "weighted"])
@pytest.mark.parametrize("lr", [0.05, 0.5, 2.0])
@pytest.mark.parametrize("loss", LOSSES)
def test_train_matches_numpy_gd(loss, lr, mask_kind, K):
    Z = signed_points(10, 4, seed=11)
    s = mask(mask_kind, 10)
    w0 = np.zeros((K, 4)) if K == 1 else random_start(K, 4, seed=3)
    traj = jtrain(
        jnp.asarray(Z), jnp.asarray(s), lr, jnp.asarray(w0), jnp.asarray(CHECKPOINTS), loss=loss
    )
    ref = np_gd(Z, lr, w0, CHECKPOINTS, loss, sample_weights=s)
    np.testing.assert_array_equal(np.asarray(traj.steps), CHECKPOINTS)
    np.testing.assert_array_equal(np.asarray(traj.w[0]), w0)  # checkpoint 0 is the start
    compare_trajectory(traj, ref)


def test_train_loo_mask_equals_training_without_the_sample():
    # S\i by mask (weight 0) must equal S\i by deleting the row: a mean over n - 1 samples.
    Z = signed_points(8, 3, seed=4)
    for loss in LOSSES:
        s = np.ones(8)
        s[5] = 0.0
        traj = jtrain(
            jnp.asarray(Z), jnp.asarray(s), 0.8, jnp.zeros((1, 3)), jnp.array([120]), loss=loss
        )
        ref = np_train_head(np.delete(Z, 5, axis=0), 0.8, 120, loss)
        assert_close_scaled(traj.w[0, 0], ref, scale=np.abs(ref).max())


def test_train_repeated_checkpoints():
    Z = jnp.asarray(signed_points(6, 3, seed=2))
    traj = jtrain(Z, jnp.ones(6), 0.5, jnp.zeros((1, 3)), jnp.array([3, 3, 9]), loss="logistic")
    np.testing.assert_array_equal(np.asarray(traj.w[0]), np.asarray(traj.w[1]))
    ref = np_gd(np.asarray(Z), 0.5, np.zeros((1, 3)), [3, 3, 9], "logistic")
    compare_trajectory(traj, ref)


@pytest.mark.parametrize("loss", LOSSES)
def test_train_float32(loss):
    Z = signed_points(10, 4, seed=8)
    cps = [0, 1, 5, 20]
    traj = jtrain(
        jnp.asarray(Z, jnp.float32),
        jnp.ones(10, jnp.float32),
        0.5,
        jnp.zeros((1, 4), jnp.float32),
        jnp.asarray(cps),
        loss=loss,
    )
    assert traj.w.dtype == jnp.float32 and traj.log_loss.dtype == jnp.float32
    # float32 inputs: compare with float64 GD from the float32-rounded data.
    ref = np_gd(Z.astype(np.float32).astype(F64), 0.5, np.zeros((1, 4)), cps, loss)
    compare_trajectory(traj, ref, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Optimizers


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("loss", LOSSES)
def test_optimizers_match_numpy_and_differ_from_gd(loss, optimizer):
    Z = signed_points(10, 4, seed=13)
    w0 = random_start(2, 4, seed=1)
    cps = [0, 1, 5, 40]
    args = (jnp.asarray(Z), jnp.ones(10), 0.1, jnp.asarray(w0), jnp.asarray(cps))
    traj = jtrain(*args, loss=loss, optimizer=optimizer)
    gd = jtrain(*args, loss=loss, optimizer="gd")
    ref = np_gd(Z, 0.1, w0, cps, loss, optimizer=optimizer)
    compare_trajectory(traj, ref)
    assert np.all(np.isfinite(np.asarray(traj.w)))
    assert np.max(np.abs(np.asarray(traj.w[-1]) - np.asarray(gd.w[-1]))) > 1e-3


# --------------------------------------------------------------------------------------------
# K heads (Multi-Head Loss)


@pytest.mark.parametrize("K", [2, 4])
@pytest.mark.parametrize("loss", LOSSES)
def test_identical_heads_follow_gd_with_gradient_over_K(loss, K):
    # Loss = mean of the K heads' losses, so each head's gradient is grad F / K: K identical
    # starts move together, each as single-head GD with step lr / K.
    Z = signed_points(9, 3, seed=6)
    lr, steps = 1.5, 80
    start = np.array([0.1, -0.2, 0.05])
    traj = jtrain(
        jnp.asarray(Z),
        jnp.ones(9),
        lr,
        jnp.asarray(np.tile(start, (K, 1))),
        jnp.array([steps]),
        loss=loss,
    )
    ref = np_train_head(Z, lr / K, steps, loss, w0=start)
    w = np.asarray(traj.w[0])
    for k in range(K):
        np.testing.assert_array_equal(w[k], w[0])
        assert_close_scaled(w[k], ref, scale=np.abs(ref).max())


@pytest.mark.parametrize("loss", LOSSES)
def test_heads_with_different_starts_are_independent(loss):
    Z = signed_points(9, 3, seed=6)
    K, lr, steps = 3, 0.9, 60
    w0 = random_start(K, 3, seed=9)
    traj = jtrain(jnp.asarray(Z), jnp.ones(9), lr, jnp.asarray(w0), jnp.array([steps]), loss=loss)
    for k in range(K):
        ref = np_train_head(Z, lr / K, steps, loss, w0=w0[k])
        assert_close_scaled(traj.w[0, k], ref, scale=np.abs(ref).max())
    # Reported loss: log of the mean over heads of the mean loss.
    w = np.asarray(traj.w[0])
    expected = np.log(np_loss(w @ Z.T, loss).mean(axis=1).mean())
    np.testing.assert_allclose(float(traj.log_loss[0]), expected, rtol=tol(F64))


# --------------------------------------------------------------------------------------------
# train_runs: vmap, chunking, determinism, no recompilation


def runs_inputs(runs=5, n=8, d=3, K=2, seed=0):
    rng = np.random.default_rng(seed)
    Z = signed_points(n, d, seed=seed)
    s = rng.uniform(0.0, 1.0, (runs, n))
    s[:, 0] = 1.0
    s[1, 2] = 0.0
    lr = rng.uniform(0.1, 1.5, runs)
    w0 = 0.2 * rng.standard_normal((runs, K, d))
    return Z, s, lr, w0


@pytest.mark.parametrize("loss", LOSSES)
def test_train_runs_equals_per_run_train(loss):
    Z, s, lr, w0 = runs_inputs()
    cps = jnp.array([0, 3, 30, 100])
    batched = jtrain_runs(
        jnp.asarray(Z), jnp.asarray(s), jnp.asarray(lr), jnp.asarray(w0), cps, loss=loss
    )
    assert batched.w.shape == (5, 4, 2, 3)
    assert batched.steps.shape == (5, 4)
    for r in range(5):
        one = jtrain(jnp.asarray(Z), jnp.asarray(s[r]), lr[r], jnp.asarray(w0[r]), cps, loss=loss)
        for field in ("w", "log_loss", "dloss_max"):
            got = np.asarray(getattr(batched, field)[r])
            want = np.asarray(getattr(one, field))
            scale = np.max(np.abs(want), axis=tuple(range(1, want.ndim)), keepdims=True)
            assert_close_scaled(got, want, scale=scale, factor=0.1)  # 1e-13


@pytest.mark.parametrize("batch_size", [1, 2, 7])
def test_train_runs_batch_size_gives_same_result(batch_size):
    Z, s, lr, w0 = runs_inputs()
    args = (jnp.asarray(Z), jnp.asarray(s), jnp.asarray(lr), jnp.asarray(w0), jnp.array([0, 25]))
    full = jtrain_runs(*args, loss="exponential")
    chunked = jtrain_runs(*args, loss="exponential", batch_size=batch_size)
    for field in ("steps", "w", "log_loss", "dloss_max"):
        got, want = np.asarray(getattr(chunked, field)), np.asarray(getattr(full, field))
        assert got.shape == want.shape
        scale = np.max(np.abs(want), axis=tuple(range(2, want.ndim)), keepdims=True)
        assert_close_scaled(got, want, scale=scale, factor=0.1)  # 1e-13


def test_train_runs_is_deterministic():
    Z, s, lr, w0 = runs_inputs(seed=4)
    args = (jnp.asarray(Z), jnp.asarray(s), jnp.asarray(lr), jnp.asarray(w0), jnp.array([5, 60]))
    f = jax.jit(heads.train_runs, static_argnames=("loss", "optimizer", "batch_size"))
    for fn in (heads.train_runs, f):
        a = fn(*args, loss="logistic")
        b = fn(*args, loss="logistic")
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_no_recompilation_for_traced_hyperparameters():
    traces = []

    def counted(Z, s, lr, w0, checkpoints):
        traces.append(1)  # Python side effect: runs once per trace
        return heads.train_runs(Z, s, lr, w0, checkpoints, loss="logistic")

    fn = jax.jit(counted)
    rng = np.random.default_rng(0)
    Z = jnp.asarray(signed_points(8, 3, seed=1))
    outs = []
    for trial in range(4):
        s = jnp.asarray(rng.uniform(0.1, 1.0, (4, 8)))
        lr = jnp.asarray(rng.uniform(0.1, 2.0, 4))
        w0 = jnp.asarray(rng.standard_normal((4, 2, 3)))
        cps = jnp.asarray(np.sort(rng.integers(0, 40, 3)) + trial)
        outs.append(fn(Z, s, lr, w0, cps))
    assert len(traces) == 1
    # The compiled program really used the new checkpoint values.
    assert not np.array_equal(np.asarray(outs[0].steps), np.asarray(outs[1].steps))

    # Same for the checkpoints of a single run through train.
    traces_one = []

    def counted_one(lr, cps):
        traces_one.append(1)
        return heads.train(Z, jnp.ones(8), lr, jnp.zeros((1, 3)), cps, loss="exponential")

    g = jax.jit(counted_one)
    a = g(0.5, jnp.array([0, 10]))
    b = g(1.5, jnp.array([3, 400]))
    assert len(traces_one) == 1
    ref = np_gd(np.asarray(Z), 1.5, np.zeros((1, 3)), [3, 400], "exponential")
    compare_trajectory(b, ref)
    assert not np.array_equal(np.asarray(a.w), np.asarray(b.w))


# --------------------------------------------------------------------------------------------
# Huge margins


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("scale", [1e3, 1e4])
def test_training_with_huge_margins_is_finite_and_exact(loss, scale):
    ds = data.planted_margin(12, 4, 0.2, seed=2)
    Z = ds.y[:, None] * ds.X
    # Start on the max-margin direction with margins in [0.2, 1] * scale / 0.2 >= 1e3.
    w0 = (scale / 0.2) * ds.direction[None, :]
    cps = [0, 1, 10]
    traj = jtrain(jnp.asarray(Z), jnp.ones(12), 1.0, jnp.asarray(w0), jnp.asarray(cps), loss=loss)
    for leaf in jax.tree.leaves(traj):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # The gradient underflows exactly to zero: the weights do not move.
    np.testing.assert_array_equal(np.asarray(traj.w[-1]), w0)
    # log F = log mean_i e^{-m_i} (+ O(e^{-m}) for logistic): exact, not -inf.
    m = mpmath.matrix((Z @ w0[0]).tolist())
    expected = float(mpmath.log(sum(mpmath.exp(-v) for v in m) / len(m)))
    np.testing.assert_allclose(np.asarray(traj.log_loss), expected, rtol=tol(F64))
    assert np.all(np.asarray(traj.dloss_max[1:]) == 0.0)


def test_logistic_training_with_huge_negative_margins_is_finite():
    # Wrong-side start: margins down to -1e3; |l'| = sigmoid(-m) = 1 exactly in float64.
    ds = data.planted_margin(12, 4, 0.2, seed=2)
    Z = ds.y[:, None] * ds.X
    w0 = -(1e3 / 0.2) * ds.direction[None, :]
    cps = [0, 1, 5]
    traj = jtrain(
        jnp.asarray(Z), jnp.ones(12), 1.0, jnp.asarray(w0), jnp.asarray(cps), loss="logistic"
    )
    for leaf in jax.tree.leaves(traj):
        assert np.all(np.isfinite(np.asarray(leaf)))
    ref = np_gd(Z, 1.0, w0, cps, "logistic")
    compare_trajectory(traj, ref)
    np.testing.assert_allclose(np.asarray(traj.dloss_max[1:]), 1.0, rtol=tol(F64))


@pytest.mark.parametrize("loss", LOSSES)
def test_forward_derivative_through_training_is_finite_at_huge_margins(loss):
    # Derivative of the trained weights and loss with respect to lr and w0 (forward mode:
    # training runs a while loop between traced checkpoints).
    ds = data.planted_margin(12, 4, 0.2, seed=2)
    Z = jnp.asarray(ds.y[:, None] * ds.X)
    w0 = jnp.asarray((1e3 / 0.2) * ds.direction[None, :])

    @jax.jit
    def final(lr, w):
        traj = heads.train(Z, jnp.ones(12), lr, w, jnp.array([20]), loss=loss)
        return traj.w[-1], traj.log_loss[-1]

    (w, log_f), (dw, dlog_f) = jax.jvp(final, (1.0, w0), (1.0, jnp.ones_like(w0)))
    for x in (w, log_f, dw, dlog_f):
        assert np.all(np.isfinite(np.asarray(x)))
    # l' underflows to 0 at these margins: d w / d lr = 0 and d w / d w0 = identity.
    np.testing.assert_array_equal(np.asarray(dw), 1.0)
    # d log F / d w0 . 1 = -sum_i softmax_i(-m) (z_i . 1), exact in the log domain.
    m = np.asarray(Z @ w0[0])
    p = np.exp(-(m - m.min()))
    p /= p.sum()
    expected = -(p * np.asarray(Z).sum(axis=1)).sum()
    np.testing.assert_allclose(float(dlog_f), expected, rtol=tol(F64))


# --------------------------------------------------------------------------------------------
# Masks


@pytest.mark.parametrize("n", [1, 2, 5])
def test_loo_weights(n):
    W = np.asarray(heads.loo_weights(n))
    assert W.shape == (n + 1, n) and W.dtype == np.float64
    np.testing.assert_array_equal(W[0], 1.0)
    for i in range(n):
        expected = np.ones(n)
        expected[i] = 0.0
        np.testing.assert_array_equal(W[i + 1], expected)
    assert heads.loo_weights(n, jnp.float32).dtype == jnp.float32


@pytest.mark.parametrize("n", [1, 2, 5])
def test_replace_one_weights(n):
    W = np.asarray(heads.replace_one_weights(n))
    assert W.shape == (n + 1, 2 * n)
    np.testing.assert_array_equal(W[0], np.r_[np.ones(n), np.zeros(n)])
    for i in range(n):
        expected = np.r_[np.ones(n), np.zeros(n)]
        expected[i] = 0.0
        expected[n + i] = 1.0
        np.testing.assert_array_equal(W[i + 1], expected)
    np.testing.assert_array_equal(W.sum(axis=1), n)


@given(
    seed=st.integers(0, 2**31 - 1),
    lr=st.floats(0.01, 2.0),
    loss=st.sampled_from(LOSSES),
    cps=st.lists(st.integers(0, 120), min_size=3, max_size=3).map(sorted),
    drop=st.integers(-1, 7),
)
def test_train_matches_numpy_gd_property(seed, lr, loss, cps, drop):
    # Fixed shapes (n=8, d=3, K=2, C=3), so every example reuses one compiled program.
    Z = signed_points(8, 3, seed=seed % 1000)
    s = np.ones(8)
    if drop >= 0:
        s[drop] = 0.0
    w0 = random_start(2, 3, seed=seed)
    traj = jtrain(jnp.asarray(Z), jnp.asarray(s), lr, jnp.asarray(w0), jnp.asarray(cps), loss=loss)
    compare_trajectory(traj, np_gd(Z, lr, w0, cps, loss, sample_weights=s))
