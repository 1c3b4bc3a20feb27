"""Tests of stabtheory.data: the Dataset container, planted max margin, the generators."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tol
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import nnls

from stabtheory import data
from stabtheory.errors import InvalidDataError
from stabtheory.svm import max_margin

TOL = tol(np.float64)


def signed(ds: data.Dataset) -> np.ndarray:
    return ds.y[:, None] * ds.X


def in_cone(u: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative coefficients c with Z.T c ~ u, and the residual norm."""
    coef, resid = nnls(Z.T, u)
    return coef, resid


def check_planted(ds: data.Dataset, margin: float, radius: float) -> None:
    """Every exact property that planted_margin promises."""
    Z = signed(ds)
    u = ds.direction
    np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=TOL)
    # Every point has norm R exactly (up to rounding).
    np.testing.assert_allclose(np.linalg.norm(ds.X, axis=1), radius, rtol=TOL)
    np.testing.assert_allclose(ds.radius, radius, rtol=TOL)
    assert ds.margin == margin
    # Support points: u.z = margin exactly; others strictly larger.
    proj = Z @ u
    np.testing.assert_allclose(proj[ds.support], margin, rtol=TOL, atol=TOL * radius)
    assert np.all(proj[~ds.support] > margin + 1e3 * TOL * radius)
    # The support is the leading block, and labels alternate in sign.
    k = int(ds.support.sum())
    assert ds.support[:k].all() and not ds.support[k:].any()
    np.testing.assert_array_equal(ds.y, np.where(np.arange(ds.n) % 2 == 0, 1.0, -1.0))
    # Optimality certificate (KKT): u lies in the cone of the active signed points.
    coef, resid = in_cone(u, Z[ds.support])
    assert resid <= 10 * TOL
    assert np.all(coef >= 0) and coef.sum() > 0


@pytest.mark.parametrize(
    ("n", "d", "margin", "radius", "n_support", "gap", "seed"),
    [
        (20, 3, 0.2, 1.0, None, 0.1, 1),
        (50, 8, 0.05, 1.0, 4, 0.1, 0),
        (16, 2, 0.9, 3.0, 2, 1.0, 5),
        (10, 10, 0.3, 0.5, 10, 0.5, 2),
        (7, 5, 0.01, 2.0, 5, 0.01, 7),
    ],
)
def test_planted_margin_is_exact(n, d, margin, radius, n_support, gap, seed):
    ds = data.planted_margin(n, d, margin, radius=radius, n_support=n_support, gap=gap, seed=seed)
    assert ds.X.shape == (n, d) and ds.y.shape == (n,)
    assert ds.X.dtype == np.float64
    check_planted(ds, margin, radius)
    # The inactive points keep the promised relative slack.
    proj = signed(ds) @ ds.direction
    assert np.all(proj[~ds.support] >= margin + gap * (radius - margin) - TOL * radius)


@given(
    n=st.integers(2, 40),
    d=st.integers(2, 12),
    margin_frac=st.floats(0.01, 0.95),
    radius=st.floats(0.1, 10.0),
    gap=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**31 - 1),
    data_=st.data(),
)
def test_planted_margin_property(n, d, margin_frac, radius, gap, seed, data_):
    k = data_.draw(st.integers(2, min(d, n)), label="n_support")
    margin = margin_frac * radius
    ds = data.planted_margin(n, d, margin, radius=radius, n_support=k, gap=gap, seed=seed)
    assert int(ds.support.sum()) == k
    check_planted(ds, margin, radius)


def test_planted_margin_is_deterministic_in_seed():
    a = data.planted_margin(30, 4, 0.2, seed=11)
    b = data.planted_margin(30, 4, 0.2, seed=11)
    c = data.planted_margin(30, 4, 0.2, seed=12)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 10, "d": 1, "margin": 0.2}, "d >= 2"),
        ({"n": 10, "d": 3, "margin": 0.0}, "0 < margin < radius"),
        ({"n": 10, "d": 3, "margin": 1.0}, "0 < margin < radius"),
        ({"n": 10, "d": 3, "margin": 0.5, "radius": 0.4}, "0 < margin < radius"),
        ({"n": 10, "d": 3, "margin": 0.2, "gap": 0.0}, "gap"),
        ({"n": 10, "d": 3, "margin": 0.2, "gap": 1.5}, "gap"),
        ({"n": 10, "d": 3, "margin": 0.2, "n_support": 1}, "n_support"),
        ({"n": 10, "d": 3, "margin": 0.2, "n_support": 4}, "n_support"),
        ({"n": 2, "d": 5, "margin": 0.2, "n_support": 3}, "n_support"),
    ],
)
def test_planted_margin_bad_arguments(kwargs, match):
    with pytest.raises(InvalidDataError, match=match):
        data.planted_margin(**kwargs)


@pytest.mark.parametrize("m", [4, 5, 9, 30])
def test_subset_keeps_truth(m):
    ds = data.planted_margin(30, 6, 0.15, n_support=4, seed=3)
    sub = ds.subset(m)
    assert sub.n == m
    np.testing.assert_array_equal(sub.X, ds.X[:m])
    np.testing.assert_array_equal(sub.y, ds.y[:m])
    np.testing.assert_array_equal(sub.direction, ds.direction)
    assert sub.margin == ds.margin
    np.testing.assert_array_equal(sub.support, ds.support[:m])
    # The kept truth is still the truth for the subset.
    check_planted(sub, ds.margin, 1.0)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_subset_without_all_support_drops_truth(m):
    ds = data.planted_margin(30, 6, 0.15, n_support=4, seed=3)
    sub = ds.subset(m)
    assert sub.direction is None and sub.margin is None and sub.support is None


@pytest.mark.parametrize("m", [0, -1, 31])
def test_subset_bad_size(m):
    ds = data.planted_margin(30, 6, 0.15, seed=3)
    with pytest.raises(InvalidDataError, match=r"subset size must be in \[1, 30\]"):
        ds.subset(m)


def test_subset_of_unknown_truth():
    X, y = data.validate(np.eye(3), [1, -1, 1])
    sub = data.Dataset(X, y).subset(2)
    assert sub.direction is None and sub.n == 2


def test_add_bias():
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(data.add_bias(X), [[1.0, 2.0, 1.0], [3.0, 4.0, 1.0]])
    np.testing.assert_array_equal(data.add_bias(X, 0.5)[:, -1], [0.5, 0.5])
    assert data.add_bias([[1, 2]]).dtype == np.float64


# --------------------------------------------------------------------------------------------
# Reference datasets


def test_soudry_fig1_values():
    ds = data.soudry_fig1()
    np.testing.assert_array_equal(ds.X, [[0.5, 1.5], [1.5, 0.5], [-0.5, -1.5], [-1.5, -0.5]])
    np.testing.assert_array_equal(ds.y, [1.0, 1.0, -1.0, -1.0])
    np.testing.assert_allclose(ds.direction, [2**-0.5, 2**-0.5], rtol=TOL)
    np.testing.assert_allclose(ds.margin, np.sqrt(2.0), rtol=TOL)
    assert ds.support.all()
    Z = signed(ds)
    # Every point is active: u . z_i = sqrt(2).
    np.testing.assert_allclose(Z @ ds.direction, np.sqrt(2.0), rtol=TOL)
    # Optimal: u is in the cone of the (active) signed points.
    _, resid = in_cone(ds.direction, Z)
    assert resid <= 10 * TOL
    np.testing.assert_allclose(ds.radius, np.sqrt(2.5), rtol=TOL)


@pytest.mark.parametrize(
    ("n", "d", "separation", "radius", "seed"),
    [(30, 4, 2.0, None, 0), (40, 2, 1.0, None, 1), (25, 6, 3.0, 1.0, 2), (12, 3, 0.5, 2.5, 3)],
)
def test_separable_gaussian(n, d, separation, radius, seed):
    ds = data.separable_gaussian(n, d, separation=separation, radius=radius, seed=seed)
    assert ds.X.shape == (n, d)
    assert set(np.unique(ds.y).tolist()) == {-1.0, 1.0}
    assert ds.margin > 0
    Z = signed(ds)
    u = ds.direction
    np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=TOL)
    if radius is not None:
        np.testing.assert_allclose(ds.radius, radius, rtol=TOL)
    # The stored margin is the one u achieves, attained on the support, and it is optimal:
    # u lies in the cone of the active signed points (KKT of the hard-margin SVM).
    proj = Z @ u
    np.testing.assert_allclose(proj.min(), ds.margin, rtol=1e-9)
    np.testing.assert_allclose(proj[ds.support], ds.margin, rtol=1e-8)
    _, resid = in_cone(u, Z[ds.support])
    assert resid <= 1e-8


def test_replacement_draws_planted_keep_separability():
    ds = data.planted_margin(24, 5, 0.2, radius=2.0, seed=4)
    rep = data.replacement_draws(ds, seed=9)
    assert rep.X.shape == ds.X.shape
    assert set(np.unique(rep.y).tolist()) <= {-1.0, 1.0}
    Zr = signed(rep)
    u = ds.direction
    np.testing.assert_allclose(np.linalg.norm(rep.X, axis=1), 2.0, rtol=TOL)
    # Fresh inactive points: u . z' >= margin + 0.1 (R - margin) > margin.
    assert np.all(Zr @ u >= 0.2 + 0.1 * (2.0 - 0.2) - TOL)
    Z = signed(ds)
    for i in range(ds.n):
        Zi = Z.copy()
        Zi[i] = Zr[i]
        # S^(i) is separable with margin >= gamma(S) along u ...
        assert np.min(Zi @ u) >= 0.2 - TOL
        # ... and if z_i was inactive, u stays the max-margin direction (KKT unchanged).
        if not ds.support[i]:
            np.testing.assert_allclose(np.min(Zi @ u), 0.2, rtol=TOL)
    # Different seeds give different draws; the same seed the same.
    np.testing.assert_array_equal(rep.X, data.replacement_draws(ds, seed=9).X)
    assert not np.array_equal(rep.X, data.replacement_draws(ds, seed=10).X)


def test_replacement_draws_unknown_truth_shape():
    X, y = data.validate(np.random.default_rng(0).standard_normal((6, 3)), [1, -1] * 3)
    rep = data.replacement_draws(data.Dataset(X, y), seed=2)
    assert rep.X.shape == X.shape and rep.y.shape == y.shape


def test_replacement_draws_unknown_truth_are_not_copies():
    X, y = data.validate(np.random.default_rng(0).standard_normal((6, 3)), [1, -1] * 3)
    rep = data.replacement_draws(data.Dataset(X, y), seed=2)
    for xr in rep.X:
        assert not np.any(np.all(X == xr, axis=1))


# --- the generic family: separable_band -----------------------------------------------------


@pytest.mark.parametrize(("n", "d", "margin"), [(20, 2, 0.3), (64, 8, 0.1), (100, 5, 0.05)])
def test_separable_band_labels_and_certified_margin(n, d, margin):

    ds = data.separable_band(n, d, margin, seed=3)
    assert ds.X.shape == (n, d) and set(np.unique(ds.y)) <= {-1.0, 1.0}
    assert ds.radius <= 1.0 + TOL
    sol = max_margin(ds.X, ds.y)
    assert sol.margin >= margin * (1 - 1e-9)  # certified lower bound >= the band
    # labels are consistent: one unit direction separates with margin >= the band
    assert np.min(signed(ds) @ sol.direction) >= margin * (1 - 1e-9)


def test_separable_band_is_deterministic_and_nested_draws_move_the_support():

    a, b = data.separable_band(64, 4, 0.1, seed=7), data.separable_band(64, 4, 0.1, seed=7)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, data.separable_band(64, 4, 0.1, seed=8).X)
    changed = False
    for seed in range(5):
        ds = data.separable_band(64, 4, 0.1, seed=seed)
        small, large = ds.subset(16), ds
        sv_small = set(np.flatnonzero(max_margin(small.X, small.y).support))
        sv_large = set(np.flatnonzero(max_margin(large.X, large.y).support))
        changed |= sv_small != sv_large
    assert changed  # new samples become support vectors as n grows


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 1, "d": 3, "margin": 0.1}, "n >= 2"),
        ({"n": 10, "d": 1, "margin": 0.1}, "d >= 2"),
        ({"n": 10, "d": 3, "margin": 0.0}, "0 < margin < radius"),
        ({"n": 10, "d": 3, "margin": 1.0}, "0 < margin < radius"),
    ],
)
def test_separable_band_rejects_bad_arguments(kwargs, match):
    with pytest.raises(InvalidDataError, match=match):
        data.separable_band(**kwargs)
