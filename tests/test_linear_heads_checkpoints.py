"""Tests of stabtheory.linear_heads.checkpoints: static checkpoints (fixed-length loops) give
the traced trajectory, compile once per distinct tuple, and are reverse-differentiable."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import compare_trajectory, np_gd, random_start, runs_inputs, signed_points
from jax import monitoring

from stabtheory import linear_heads

LOSSES = linear_heads.LOSSES

jtrain_runs = jax.jit(linear_heads.train_runs, static_argnames=("loss", "optimizer", "batch_size"))

# --------------------------------------------------------------------------------------------
# Static checkpoints (fixed-length loops) against traced ones (one program for all values)

jtrain_runs_static = jax.jit(
    linear_heads.train_runs, static_argnames=("checkpoints", "loss", "optimizer", "batch_size")
)

# A start, repeats, a run of equal increments (13, 13, 13) and single steps.
STATIC_CPS = (0, 1, 1, 7, 20, 33, 46, 47, 120)


def assert_same_trajectory(got, want):
    """Equal to rounding: weights within 1e-15 of their size per checkpoint, the rest likewise."""
    np.testing.assert_array_equal(np.asarray(got.steps), np.asarray(want.steps))
    assert np.asarray(got.steps).dtype == np.asarray(want.steps).dtype
    w, w_ref = np.asarray(got.w), np.asarray(want.w)
    assert w.shape == w_ref.shape
    axes = tuple(i for i in range(w.ndim) if i != w.ndim - 3)  # all but the checkpoint axis
    scale = np.max(np.abs(w_ref), axis=axes, keepdims=True)
    assert np.all(np.abs(w - w_ref) <= 1e-15 * scale), np.max(np.abs(w - w_ref) / scale)
    for field in ("log_loss", "dloss_max"):
        a, b = np.asarray(getattr(got, field)), np.asarray(getattr(want, field))
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("optimizer", linear_heads.OPTIMIZERS)
@pytest.mark.parametrize("loss", LOSSES)
def test_static_checkpoints_give_the_traced_trajectory(loss, optimizer):
    Z, s, lr, w0 = (jnp.asarray(v) for v in runs_inputs(seed=2))
    kw = {"loss": loss, "optimizer": optimizer}
    traced = jtrain_runs(Z, s, lr, w0, jnp.asarray(STATIC_CPS), **kw)
    static = linear_heads.jit_train_runs(Z, s, lr, w0, STATIC_CPS, **kw)
    assert_same_trajectory(static, traced)
    # And both match the independent numpy loop.
    ref = np_gd(
        np.asarray(Z),
        float(lr[1]),
        np.asarray(w0[1]),
        STATIC_CPS,
        loss,
        sample_weights=np.asarray(s[1]),
        optimizer=optimizer,
    )
    compare_trajectory(jax.tree.map(lambda x: x[1], static), ref)


def test_static_checkpoints_through_every_entry_point():
    Z, s, lr, w0 = (jnp.asarray(v) for v in runs_inputs(seed=2))
    kw = {"loss": "logistic", "optimizer": "momentum"}
    traced = jtrain_runs(Z, s, lr, w0, jnp.asarray(STATIC_CPS), **kw)
    # jax.jit with checkpoints marked static, in chunks.
    chunked = jtrain_runs_static(Z, s, lr, w0, STATIC_CPS[:4], batch_size=2, **kw)
    assert_same_trajectory(chunked, jax.tree.map(lambda x: x[:, :4], traced))
    # One run through train, with a NumPy array of checkpoints (static, eager).
    one = linear_heads.train(Z, s[1], lr[1], w0[1], np.asarray(STATIC_CPS[2:4]), **kw)
    assert_same_trajectory(one, jax.tree.map(lambda x: x[1, 2:4], traced))


def test_static_checkpoints_from_one_to_many_segments():
    Z, s, lr, w0 = (jnp.asarray(v) for v in runs_inputs(seed=3))
    for cps in [(), (57,), (0, 0, 5), tuple(range(0, 50, 7))]:
        traced = jtrain_runs(Z, s, lr, w0, jnp.asarray(cps, dtype=int), loss="logistic")
        static = linear_heads.jit_train_runs(Z, s, lr, w0, cps, loss="logistic")
        assert static.w.shape == (5, len(cps), 2, 3)
        assert_same_trajectory(static, traced)


def test_static_checkpoints_compile_once_per_distinct_tuple():
    Z, s, lr, w0 = (jnp.asarray(v) for v in runs_inputs(n=11, d=2, runs=3, seed=5))
    traces = []

    def counted(Z, s, lr, w0, checkpoints):
        traces.append(checkpoints)  # Python side effect: runs once per trace
        return linear_heads.train_runs(Z, s, lr, w0, checkpoints, loss="logistic")

    f = jax.jit(counted, static_argnames="checkpoints")
    a = f(Z, s, lr, w0, (0, 5, 10))
    b = f(Z, s, 2.0 * lr, w0 + 0.1, (0, 5, 10))  # new traced values: no new trace
    c = f(Z, s, lr, w0, (0, 5, 20))  # new checkpoints: one new trace
    d = f(Z, s, lr, w0, (0, 5, 10))
    assert traces == [(0, 5, 10), (0, 5, 20)]
    assert not np.array_equal(np.asarray(a.w), np.asarray(b.w))
    np.testing.assert_array_equal(np.asarray(a.w[:, :2]), np.asarray(c.w[:, :2]))
    np.testing.assert_array_equal(np.asarray(a.w), np.asarray(d.w))

    # jit_train_runs: one XLA compilation per distinct checkpoint tuple, whatever its type.
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    args = (Z, s, lr, w0)
    lr2, w02 = jax.block_until_ready((lr + 0.5, -w0))
    monitoring.register_event_duration_secs_listener(listener)
    try:
        linear_heads.jit_train_runs(*args, (0, 3, 9), loss="exponential")
        assert len(compiles) == 1
        for cps in (
            [0, 3, 9],
            np.array([0, 3, 9]),
            jnp.array([0, 3, 9]),
            (np.int64(0), np.int32(3), 9),
        ):
            linear_heads.jit_train_runs(*args, cps, loss="exponential")
        linear_heads.jit_train_runs(Z, s, lr2, w02, (0, 3, 9), loss="exponential")
        assert len(compiles) == 1
        linear_heads.jit_train_runs(*args, (0, 3, 10), loss="exponential")
        assert len(compiles) == 2
    finally:
        monitoring.unregister_event_duration_listener(listener)


def test_checkpoints_traced_by_jit_take_the_traced_path():
    # A list passed to jax.jit without marking it static is a list of tracers: the traced
    # path, as before (one program for all values).
    Z = jnp.asarray(signed_points(6, 3, seed=2))
    traces = []

    def counted(cps):
        traces.append(1)
        return linear_heads.train(Z, jnp.ones(6), 0.5, jnp.zeros((1, 3)), cps, loss="logistic")

    f = jax.jit(counted)
    a = f([2, 9])
    b = f([3, 40])
    assert len(traces) == 1
    ref = np_gd(np.asarray(Z), 0.5, np.zeros((1, 3)), [3, 40], "logistic")
    compare_trajectory(b, ref)
    assert not np.array_equal(np.asarray(a.w), np.asarray(b.w))


@pytest.mark.parametrize(
    "bad", [(3, 1), (-1, 2), (1.0, 2.0), [[1, 2]], np.array([0.5]), (True, False)]
)
def test_static_checkpoints_validation(bad):
    with pytest.raises(ValueError, match="checkpoints must be"):
        linear_heads.static_checkpoints(bad)
    with pytest.raises(ValueError, match="checkpoints must be"):
        linear_heads.train(jnp.eye(2), jnp.ones(2), 0.1, jnp.zeros((1, 2)), bad, loss="logistic")


def test_static_checkpoints_normalises_to_a_tuple_of_ints():
    got = linear_heads.static_checkpoints(np.array([0, 4, 4, 9], np.int32))
    assert got == (0, 4, 4, 9) and all(type(v) is int for v in got)
    assert linear_heads.static_checkpoints(jnp.array([2, 5])) == (2, 5)
    assert linear_heads.static_checkpoints([]) == ()


@pytest.mark.parametrize("loss", LOSSES)
def test_reverse_mode_through_static_checkpoints(loss):
    # Fixed-length loops are differentiable in reverse mode; the traced path is not, but its
    # forward-mode derivative must agree.
    Z = jnp.asarray(signed_points(10, 3, seed=6))
    w0 = jnp.asarray(random_start(1, 3, seed=2))

    def final(lr, cps):
        return linear_heads.train(Z, jnp.ones(10), lr, w0, cps, loss=loss).log_loss[-1]

    rev = jax.jit(jax.grad(lambda a: final(a, (0, 5, 30))))(0.4)
    fwd = jax.jit(lambda a: jax.jvp(lambda b: final(b, jnp.array([0, 5, 30])), (a,), (1.0,))[1])(
        0.4
    )
    assert np.isfinite(float(rev))
    np.testing.assert_allclose(float(rev), float(fwd), rtol=1e-12)
