"""Regression on the dataset of Soudry et al. (2018), Fig. 1 (docs/theory.md section 3)."""

import jax.numpy as jnp
import numpy as np
import pytest

import stabtheory as st
from stabtheory import linear_heads


def test_max_margin_of_fig1():
    ds = st.soudry_fig1()
    sol = st.max_margin(ds.X, ds.y)
    np.testing.assert_allclose(sol.direction, np.array([1.0, 1.0]) / np.sqrt(2), atol=1e-12)
    np.testing.assert_allclose(sol.margin, np.sqrt(2), rtol=1e-12)
    assert sol.support.all()


@pytest.fixture(scope="module")
def trajectory():
    # The four support vectors plus two inactive points, so that GD does not start on u_S.
    ds = st.soudry_fig1()
    X = np.vstack([ds.X, [[2.0, 0.2], [-0.3, -2.5]]])
    y = np.r_[ds.y, 1.0, -1.0]
    sol = st.max_margin(X, y)
    np.testing.assert_allclose(sol.direction, ds.direction, atol=1e-12)
    Z = jnp.asarray(y[:, None] * X)
    steps = jnp.array([10**k for k in range(1, 7)])
    tr = linear_heads.train(Z, jnp.ones(6), 0.1, jnp.zeros((1, 2)), steps, loss="exponential")
    w = np.asarray(tr.w[:, 0])
    err = np.linalg.norm(w / np.linalg.norm(w, axis=1, keepdims=True) - sol.direction, axis=1)
    return np.asarray(steps, float), np.exp(np.asarray(tr.log_loss)), err


def test_loss_falls_like_one_over_t(trajectory):
    t, loss, _ = trajectory
    late = t >= 1e4
    tl = loss[late] * t[late]
    assert np.all(np.diff(loss) < 0)
    assert tl.max() / tl.min() < 1.05  # t * L(t) levels off


def test_direction_error_falls_with_log_t(trajectory):
    t, _, err = trajectory
    late = t >= 1e4
    assert np.all(np.diff(err[late]) < 0)
    scaled = err[late] * np.log(t[late])
    assert scaled.max() / scaled.min() < 1.25  # err ~ c / log t
