"""Tests of stabtheory.linear_heads.optimizers: init and one step of GD, momentum, Adam and
K heads (Multi-Head Loss), against closed forms and an independent numpy loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    assert_close_scaled,
    compare_trajectory,
    np_dloss_abs,
    np_gd,
    np_loss,
    np_train_head,
    random_start,
    signed_points,
    tol,
)

from stabtheory import linear_heads

F64 = np.float64
LOSSES = linear_heads.LOSSES

jtrain = jax.jit(linear_heads.train, static_argnames=("loss", "optimizer"))


def test_unknown_optimizer_raises():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        linear_heads.optimizer_transform("sgd")


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
    state = linear_heads.step(
        linear_heads.init(jnp.asarray(w0)),
        jnp.asarray(Z),
        jnp.asarray(s),
        jnp.asarray(lr),
        loss=loss,
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
    state = linear_heads.init(w0)
    np.testing.assert_array_equal(np.asarray(state.w), 1.0)
    assert float(state.dloss_max) == 0.0


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
