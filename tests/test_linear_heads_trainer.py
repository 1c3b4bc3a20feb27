"""Tests of stabtheory.linear_heads.trainer: train against an independent numpy GD loop,
train_runs (vmap, chunks, determinism, no recompilation), huge margins, and the masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from helpers import (
    assert_close_scaled,
    compare_trajectory,
    np_gd,
    np_train_head,
    random_start,
    runs_inputs,
    signed_points,
    tol,
)
from hypothesis import given
from hypothesis import strategies as st

from stabtheory import data, linear_heads

F64 = np.float64
LOSSES = linear_heads.LOSSES

mpmath.mp.dps = 50

# Jitted entry points shared by the tests, so that cases with equal shapes compile once.
jtrain = jax.jit(linear_heads.train, static_argnames=("loss", "optimizer"))
jtrain_runs = jax.jit(linear_heads.train_runs, static_argnames=("loss", "optimizer", "batch_size"))

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
# train_runs: vmap, chunking, determinism, no recompilation


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
    f = jax.jit(linear_heads.train_runs, static_argnames=("loss", "optimizer", "batch_size"))
    for fn in (linear_heads.train_runs, f):
        a = fn(*args, loss="logistic")
        b = fn(*args, loss="logistic")
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_no_recompilation_for_traced_hyperparameters():
    traces = []

    def counted(Z, s, lr, w0, checkpoints):
        traces.append(1)  # Python side effect: runs once per trace
        return linear_heads.train_runs(Z, s, lr, w0, checkpoints, loss="logistic")

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
        return linear_heads.train(Z, jnp.ones(8), lr, jnp.zeros((1, 3)), cps, loss="exponential")

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
        traj = linear_heads.train(Z, jnp.ones(12), lr, w, jnp.array([20]), loss=loss)
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
    W = np.asarray(linear_heads.loo_weights(n))
    assert W.shape == (n + 1, n) and W.dtype == np.float64
    np.testing.assert_array_equal(W[0], 1.0)
    for i in range(n):
        expected = np.ones(n)
        expected[i] = 0.0
        np.testing.assert_array_equal(W[i + 1], expected)
    assert linear_heads.loo_weights(n, jnp.float32).dtype == jnp.float32


@pytest.mark.parametrize("n", [1, 2, 5])
def test_replace_one_weights(n):
    W = np.asarray(linear_heads.replace_one_weights(n))
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
