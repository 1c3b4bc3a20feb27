"""Tests of stabtheory.linear_heads.losses: the margin losses in the log domain, exact at huge
margins, and ``|l'|`` with one transcendental per sample (also inside the optimizer step)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from helpers import assert_close_scaled, np_loss, tol
from jax.extend.core import jaxprs_in_params

from stabtheory import linear_heads

F64 = np.float64
LOSSES = linear_heads.LOSSES

mpmath.mp.dps = 50


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
    got = np.asarray(linear_heads.log_loss(jnp.asarray(m), loss))
    assert got.dtype == dtype
    assert np.all(np.isfinite(got))
    expected = np.array([float(mp_log_loss(v, loss)) for v in m])
    # Absolute accuracy of log l is relative accuracy of l itself.
    np.testing.assert_allclose(got, expected, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", LOSSES)
def test_log_dloss_matches_mpmath(loss, dtype):
    m = np.asarray(MARGINS, dtype=dtype)
    got = np.asarray(linear_heads.log_dloss(jnp.asarray(m), loss))
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
    got = float(linear_heads.log_loss(jnp.asarray(m, F64), loss))
    assert got == pytest.approx(expected, rel=tol(F64), abs=0.0)


@pytest.mark.parametrize("loss", LOSSES)
def test_log_loss_derivative_finite_and_exact(loss):
    m = jnp.asarray(MARGINS, F64)
    got = np.asarray(jax.vmap(jax.grad(lambda v: linear_heads.log_loss(v, loss)))(m))
    assert np.all(np.isfinite(got))
    expected = np.array([float(mp_dlog_loss(v, loss)) for v in MARGINS])
    np.testing.assert_allclose(got, expected, rtol=tol(F64), atol=tol(F64))


# --------------------------------------------------------------------------------------------
# |l'| with one transcendental (dloss_abs)


def previous_dloss_abs(m, loss):
    """What ``step`` computed before ``dloss_abs``: ``exp(log_dloss(m))``."""
    return jnp.exp(linear_heads.log_dloss(m, loss))


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
    new = np.asarray(linear_heads.dloss_abs(m, loss))
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
    got = np.asarray(linear_heads.dloss_abs(jnp.asarray(m), loss))
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
    got = linear_heads.dloss_abs(jnp.asarray(m, dtype), loss)
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
    jaxpr = jax.make_jaxpr(lambda v: linear_heads.dloss_abs(v, loss))(m).jaxpr
    assert transcendental_eqns(jaxpr) == [(op, (7,))]
    # jax.nn.sigmoid is one logistic primitive; JAX lowers it to 1 / (1 + exp(-x)) (or to
    # one StableHLO logistic op): a single exponential either way, no logarithm.
    text = jax.jit(lambda v: linear_heads.dloss_abs(v, loss)).lower(m).as_text()
    n_exp = text.count("stablehlo.exponential")
    n_logistic = text.count("stablehlo.logistic")
    assert n_exp + n_logistic == 1
    assert "stablehlo.log " not in text and "stablehlo.log_plus_one" not in text


@pytest.mark.parametrize(("loss", "op"), [("exponential", "exp"), ("logistic", "logistic")])
def test_step_has_one_transcendental_per_sample(loss, op):
    # Per step: one op over the (K, n) margins, one scalar for the running max of |l'|.
    K, n, d = 2, 9, 3
    state = linear_heads.init(jnp.zeros((K, d)))
    jaxpr = jax.make_jaxpr(
        lambda st, Z, s: linear_heads.step(st, Z, s, jnp.asarray(0.1), loss=loss)
    )(state, jnp.ones((n, d)), jnp.ones(n)).jaxpr
    assert sorted(transcendental_eqns(jaxpr)) == [(op, ()), (op, (K, n))]


def test_logistic_step_exact_at_margins_of_plus_minus_1e3():
    # margins 1e3, -1e3, 0: |l'| = 0, 1, 1/2 exactly; grad = -(0 z1 + z2 + z3/2) / 3.
    Z = jnp.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    w = jnp.asarray([[1e3, -1e3]])
    state = linear_heads.step(
        linear_heads.init(w), Z, jnp.ones(3), jnp.asarray(1.0), loss="logistic"
    )
    expected = np.array([[1e3 + 0.5 / 3, -1e3 + 1.5 / 3]])
    np.testing.assert_allclose(np.asarray(state.w), expected, rtol=1e-15, atol=0.0)
    assert float(state.dloss_max) == 1.0
    # The S\i mask that drops the wrong-side point: |l'| = 0, 1/2 over two samples.
    state = linear_heads.step(
        linear_heads.init(w), Z, jnp.asarray([1.0, 0.0, 1.0]), jnp.asarray(1.0), loss="logistic"
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
        got = linear_heads.step(linear_heads.init(w), Z, s, jnp.asarray(0.7), loss=loss)
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
        linear_heads.log_loss(jnp.zeros(2), "hinge")
    with pytest.raises(ValueError, match="loss must be one of"):
        linear_heads.log_dloss(jnp.zeros(2), "hinge")
    with pytest.raises(ValueError, match="loss must be one of"):
        linear_heads.dloss_abs(jnp.zeros(2), "hinge")
    with pytest.raises(ValueError, match="loss must be one of"):
        linear_heads.train(
            jnp.eye(2), jnp.ones(2), 0.1, jnp.zeros((1, 2)), jnp.array([1]), loss="hinge"
        )


@pytest.mark.parametrize("loss", LOSSES)
def test_log_mean_loss_matches_numpy(loss):
    rng = np.random.default_rng(3)
    margins = rng.uniform(-3, 5, size=(3, 7))
    s = rng.uniform(0, 2, size=7)
    s[2] = 0.0
    got = np.asarray(linear_heads.log_mean_loss(jnp.asarray(margins), jnp.asarray(s), loss))
    expected = np.log((np_loss(margins, loss) * s).sum(axis=-1) / s.sum())
    np.testing.assert_allclose(got, expected, rtol=tol(F64))


@pytest.mark.parametrize("loss", LOSSES)
def test_log_mean_loss_huge_margins(loss):
    # Every l(m) underflows in float64, but log F is exact: log mean e^{-m} (to 1e-18 for
    # the logistic loss at these margins).
    margins = np.array([1e3, 1e3 + np.log(2.0), 2e3, 1e4])
    s = np.array([1.0, 2.0, 1.0, 0.0])
    got = float(linear_heads.log_mean_loss(jnp.asarray(margins), jnp.asarray(s), loss))
    expected = float(mpmath.log((mpmath.exp(-1000) * 2) / 4 + mpmath.exp(-2000) / 4))
    assert got == pytest.approx(expected, rel=tol(F64))
