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
from jax import monitoring
from jax.extend.core import jaxprs_in_params

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


# --------------------------------------------------------------------------------------------
# |l'| with one transcendental (dloss_abs)


def previous_dloss_abs(m, loss):
    """What ``step`` computed before ``dloss_abs``: ``exp(log_dloss(m))``."""
    return jnp.exp(heads.log_dloss(m, loss))


def margin_grid(dtype):
    rng = np.random.default_rng(0)
    parts = [
        np.linspace(-800.0, 800.0, 8001),
        rng.standard_normal(2000),
        30.0 * rng.standard_normal(2000),
        300.0 * rng.standard_normal(2000),
        np.geomspace(1e-300, 1e3, 500),
        -np.geomspace(1e-300, 1e3, 500),
        np.asarray(MARGINS),
    ]
    return np.concatenate(parts).astype(dtype)


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-14), (np.float32, 1e-6)])
@pytest.mark.parametrize("loss", LOSSES)
def test_dloss_abs_matches_previous_formula(loss, dtype, rtol):
    m = jnp.asarray(margin_grid(dtype))
    new = np.asarray(heads.dloss_abs(m, loss))
    old = np.asarray(previous_dloss_abs(m, loss))
    assert new.dtype == dtype
    assert not np.any(np.isnan(new))
    if loss == "exponential":
        np.testing.assert_array_equal(new, old)  # the same exp(-m)
        return
    assert np.all((new >= 0.0) & (new <= 1.0))
    tiny = np.finfo(dtype).tiny
    normal = old >= tiny
    assert normal.sum() > m.size // 2
    np.testing.assert_allclose(new[normal], old[normal], rtol=rtol, atol=0.0)
    # Where the previous value underflowed (subnormal or zero), so does the new one.
    assert np.all(new[~normal] < tiny)


@pytest.mark.parametrize("loss", LOSSES)
def test_dloss_abs_matches_mpmath(loss):
    m = np.asarray(MARGINS, F64)
    got = np.asarray(heads.dloss_abs(jnp.asarray(m), loss))
    expected = np.array([float(mpmath.exp(mp_log_dloss(v, loss))) for v in m])
    finite = np.isfinite(expected) & (expected >= np.finfo(F64).tiny)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-14, atol=0.0)
    # Underflow and overflow as exp(-m) itself: exactly 0 or inf, never NaN.
    assert not np.any(np.isnan(got))
    np.testing.assert_array_equal(got[~finite], np.where(expected[~finite] > 1.0, np.inf, 0.0))


@pytest.mark.parametrize(
    ("m", "loss", "expected"),
    [
        (1e3, "logistic", 0.0),
        (1e4, "logistic", 0.0),
        (-1e3, "logistic", 1.0),
        (-1e4, "logistic", 1.0),
        (1e3, "exponential", 0.0),
        (1e4, "exponential", 0.0),
        (-1e3, "exponential", np.inf),  # e^1000 overflows, as before
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dloss_abs_extreme_margins_exact(m, loss, expected, dtype):
    got = heads.dloss_abs(jnp.asarray(m, dtype), loss)
    assert got.dtype == dtype
    assert float(got) == expected
    assert float(got) == float(previous_dloss_abs(jnp.asarray(m, dtype), loss))


TRANSCENDENTAL = {"exp", "exp2", "log", "log1p", "expm1", "logistic", "tanh", "pow"}


def transcendental_eqns(jaxpr) -> list[tuple[str, tuple]]:
    """(primitive, output shape) of every transcendental equation, sub-jaxprs included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in TRANSCENDENTAL:
            found.append((eqn.primitive.name, tuple(eqn.outvars[0].aval.shape)))
        for sub in jaxprs_in_params(eqn.params):
            found.extend(transcendental_eqns(sub))
    return found


@pytest.mark.parametrize(("loss", "op"), [("exponential", "exp"), ("logistic", "logistic")])
def test_dloss_abs_is_one_transcendental(loss, op):
    m = jnp.linspace(-5.0, 5.0, 7)
    jaxpr = jax.make_jaxpr(lambda v: heads.dloss_abs(v, loss))(m).jaxpr
    assert transcendental_eqns(jaxpr) == [(op, (7,))]
    # jax.nn.sigmoid is one logistic primitive; JAX lowers it to 1 / (1 + exp(-x)) (or to
    # one StableHLO logistic op): a single exponential either way, no logarithm.
    text = jax.jit(lambda v: heads.dloss_abs(v, loss)).lower(m).as_text()
    n_exp = text.count("stablehlo.exponential")
    n_logistic = text.count("stablehlo.logistic")
    assert n_exp + n_logistic == 1
    assert "stablehlo.log " not in text and "stablehlo.log_plus_one" not in text


@pytest.mark.parametrize(("loss", "op"), [("exponential", "exp"), ("logistic", "logistic")])
def test_step_has_one_transcendental_per_sample(loss, op):
    # Per step: one op over the (K, n) margins, one scalar for the running max of |l'|.
    K, n, d = 2, 9, 3
    state = heads.init(jnp.zeros((K, d)))
    jaxpr = jax.make_jaxpr(lambda st, Z, s: heads.step(st, Z, s, jnp.asarray(0.1), loss=loss))(
        state, jnp.ones((n, d)), jnp.ones(n)
    ).jaxpr
    assert sorted(transcendental_eqns(jaxpr)) == [(op, ()), (op, (K, n))]


def test_logistic_step_exact_at_margins_of_plus_minus_1e3():
    # margins 1e3, -1e3, 0: |l'| = 0, 1, 1/2 exactly; grad = -(0 z1 + z2 + z3/2) / 3.
    Z = jnp.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    w = jnp.asarray([[1e3, -1e3]])
    state = heads.step(heads.init(w), Z, jnp.ones(3), jnp.asarray(1.0), loss="logistic")
    expected = np.array([[1e3 + 0.5 / 3, -1e3 + 1.5 / 3]])
    np.testing.assert_allclose(np.asarray(state.w), expected, rtol=1e-15, atol=0.0)
    assert float(state.dloss_max) == 1.0
    # The S\i mask that drops the wrong-side point: |l'| = 0, 1/2 over two samples.
    state = heads.step(
        heads.init(w), Z, jnp.asarray([1.0, 0.0, 1.0]), jnp.asarray(1.0), loss="logistic"
    )
    np.testing.assert_allclose(
        np.asarray(state.w), np.array([[1e3 + 0.25, -1e3 + 0.25]]), rtol=1e-15, atol=0.0
    )
    assert float(state.dloss_max) == 0.5


@pytest.mark.parametrize("loss", LOSSES)
def test_step_gradient_matches_previous_formula(loss):
    # The GD step with dloss_abs against the same step written with exp(log_dloss).
    rng = np.random.default_rng(5)
    Z = jnp.asarray(rng.standard_normal((40, 5)))
    s = jnp.asarray((rng.uniform(size=40) > 0.2).astype(F64))
    scales = (0.1, 3.0, 30.0) if loss == "exponential" else (0.1, 3.0, 30.0, 300.0)
    for scale in scales:  # margins up to about 1e3 for the logistic loss
        w = jnp.asarray(scale * rng.standard_normal((3, 5)))
        got = heads.step(heads.init(w), Z, s, jnp.asarray(0.7), loss=loss)
        m = w @ Z.T
        g = previous_dloss_abs(m, loss) * s
        grad = -(g @ Z) / (3 * jnp.sum(s))
        want_w = w - 0.7 * grad
        want_dmax = previous_dloss_abs(jnp.min(jnp.where(s > 0, m, jnp.inf)), loss)
        assert np.all(np.isfinite(np.asarray(want_w)))
        assert_close_scaled(got.w, want_w, scale=np.abs(np.asarray(want_w)).max(), factor=0.01)
        np.testing.assert_allclose(float(got.dloss_max), float(want_dmax), rtol=1e-14)


def test_unknown_loss_raises():
    with pytest.raises(ValueError, match="loss must be one of"):
        heads.log_loss(jnp.zeros(2), "hinge")
    with pytest.raises(ValueError, match="loss must be one of"):
        heads.log_dloss(jnp.zeros(2), "hinge")
    with pytest.raises(ValueError, match="loss must be one of"):
        heads.dloss_abs(jnp.zeros(2), "hinge")
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
# Static checkpoints (fixed-length loops) against traced ones (one program for all values)

jtrain_runs_static = jax.jit(
    heads.train_runs, static_argnames=("checkpoints", "loss", "optimizer", "batch_size")
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


@pytest.mark.parametrize("optimizer", heads.OPTIMIZERS)
@pytest.mark.parametrize("loss", LOSSES)
def test_static_checkpoints_give_the_traced_trajectory(loss, optimizer):
    Z, s, lr, w0 = (jnp.asarray(v) for v in runs_inputs(seed=2))
    kw = {"loss": loss, "optimizer": optimizer}
    traced = jtrain_runs(Z, s, lr, w0, jnp.asarray(STATIC_CPS), **kw)
    static = heads.jit_train_runs(Z, s, lr, w0, STATIC_CPS, **kw)
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
    one = heads.train(Z, s[1], lr[1], w0[1], np.asarray(STATIC_CPS[2:4]), **kw)
    assert_same_trajectory(one, jax.tree.map(lambda x: x[1, 2:4], traced))


def test_static_checkpoints_from_one_to_many_segments():
    Z, s, lr, w0 = (jnp.asarray(v) for v in runs_inputs(seed=3))
    for cps in [(), (57,), (0, 0, 5), tuple(range(0, 50, 7))]:
        traced = jtrain_runs(Z, s, lr, w0, jnp.asarray(cps, dtype=int), loss="logistic")
        static = heads.jit_train_runs(Z, s, lr, w0, cps, loss="logistic")
        assert static.w.shape == (5, len(cps), 2, 3)
        assert_same_trajectory(static, traced)


def test_static_checkpoints_compile_once_per_distinct_tuple():
    Z, s, lr, w0 = (jnp.asarray(v) for v in runs_inputs(n=11, d=2, runs=3, seed=5))
    traces = []

    def counted(Z, s, lr, w0, checkpoints):
        traces.append(checkpoints)  # Python side effect: runs once per trace
        return heads.train_runs(Z, s, lr, w0, checkpoints, loss="logistic")

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
        heads.jit_train_runs(*args, (0, 3, 9), loss="exponential")
        assert len(compiles) == 1
        for cps in (
            [0, 3, 9],
            np.array([0, 3, 9]),
            jnp.array([0, 3, 9]),
            (np.int64(0), np.int32(3), 9),
        ):
            heads.jit_train_runs(*args, cps, loss="exponential")
        heads.jit_train_runs(Z, s, lr2, w02, (0, 3, 9), loss="exponential")
        assert len(compiles) == 1
        heads.jit_train_runs(*args, (0, 3, 10), loss="exponential")
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
        return heads.train(Z, jnp.ones(6), 0.5, jnp.zeros((1, 3)), cps, loss="logistic")

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
        heads.static_checkpoints(bad)
    with pytest.raises(ValueError, match="checkpoints must be"):
        heads.train(jnp.eye(2), jnp.ones(2), 0.1, jnp.zeros((1, 2)), bad, loss="logistic")


def test_static_checkpoints_normalises_to_a_tuple_of_ints():
    got = heads.static_checkpoints(np.array([0, 4, 4, 9], np.int32))
    assert got == (0, 4, 4, 9) and all(type(v) is int for v in got)
    assert heads.static_checkpoints(jnp.array([2, 5])) == (2, 5)
    assert heads.static_checkpoints([]) == ()


@pytest.mark.parametrize("loss", LOSSES)
def test_reverse_mode_through_static_checkpoints(loss):
    # Fixed-length loops are differentiable in reverse mode; the traced path is not, but its
    # forward-mode derivative must agree.
    Z = jnp.asarray(signed_points(10, 3, seed=6))
    w0 = jnp.asarray(random_start(1, 3, seed=2))

    def final(lr, cps):
        return heads.train(Z, jnp.ones(10), lr, w0, cps, loss=loss).log_loss[-1]

    rev = jax.jit(jax.grad(lambda a: final(a, (0, 5, 30))))(0.4)
    fwd = jax.jit(lambda a: jax.jvp(lambda b: final(b, jnp.array([0, 5, 30])), (a,), (1.0,))[1])(
        0.4
    )
    assert np.isfinite(float(rev))
    np.testing.assert_allclose(float(rev), float(fwd), rtol=1e-12)


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
