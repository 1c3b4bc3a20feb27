"""Tests of stabtheory.svm: exact max margin (Wolfe), leave-one-out, normalized margin."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stabtheory.data import add_bias, planted_margin, soudry_fig1
from stabtheory.errors import InvalidDataError, NotSeparableError
from stabtheory.svm import (
    LooMaxMargin,
    MaxMarginConvergenceError,
    MaxMarginResult,
    loo_max_margin,
    max_margin,
    min_norm_point,
    normalized_margin,
)


def random_separable(n: int, d: int, seed: int):
    """Gaussian features labelled by a random teacher (separable through the origin)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d)
    X = rng.standard_normal((n, d))
    y = np.sign(X @ w)
    y[y == 0] = 1.0
    return X, y


def check_certificate(res: MaxMarginResult, X, y, *, gap_tol: float = 1e-10) -> None:
    """Everything a max-margin result claims, checked from the data."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    Z = y[:, None] * X
    R = np.max(np.linalg.norm(X, axis=1))
    assert np.isclose(np.linalg.norm(res.direction), 1.0, atol=1e-14)
    v = Z @ res.direction
    assert v.min() == pytest.approx(res.margin, abs=1e-15 * R)
    assert np.all(v >= res.margin - 1e-12 * R)
    assert 0.0 < res.margin <= res.margin_upper + 1e-15 * R
    assert -1e-15 * R <= res.duality_gap <= gap_tol * R
    # hull weights: a convex combination whose point is margin_upper * direction (KKT)
    lam = res.hull_weights
    assert np.all(lam >= 0.0) and lam.sum() == pytest.approx(1.0, abs=1e-14)
    p = lam @ Z
    assert np.linalg.norm(p) == pytest.approx(res.margin_upper, rel=1e-14)
    np.testing.assert_allclose(p / np.linalg.norm(p), res.direction, atol=1e-14)
    # complementary slackness: weight only on active constraints, support = active set
    assert np.all(res.support[lam > 0])
    assert np.all(np.abs(v[lam > 0] - res.margin) <= 1e-10 * R)
    np.testing.assert_array_equal(res.support, v <= res.margin + 1e-9 * R)
    # SVM dual: w = sum alpha_i y_i x_i = u / margin_upper, alpha >= 0
    assert np.all(res.dual >= 0.0)
    np.testing.assert_allclose(res.dual @ Z, res.direction / res.margin_upper, atol=1e-10 / R)
    np.testing.assert_allclose(res.weight, res.direction / res.margin)
    assert res.iterations >= 1


# -- exact reference problems ----------------------------------------------------------------


def test_soudry_fig1_exact():
    ds = soudry_fig1()
    res = max_margin(ds.X, ds.y)
    np.testing.assert_allclose(res.direction, ds.direction, atol=1e-12, rtol=0)
    assert res.margin == pytest.approx(np.sqrt(2.0), abs=1e-12)
    assert res.margin_upper == pytest.approx(np.sqrt(2.0), abs=1e-12)
    np.testing.assert_array_equal(res.support, ds.support)
    np.testing.assert_allclose(res.weight, [0.5, 0.5], atol=1e-12)
    assert res.n_support == 4
    check_certificate(res, ds.X, ds.y, gap_tol=1e-12)


@pytest.mark.parametrize(
    ("n", "d", "margin", "n_support", "radius"),
    [
        (2, 2, 0.5, 2, 1.0),
        (10, 2, 0.3, 2, 1.0),
        (20, 3, 0.2, 3, 1.0),
        (50, 5, 0.05, 4, 1.0),
        (50, 5, 0.9, 5, 2.0),
        (100, 10, 0.01, 10, 1.0),
        (200, 20, 1.0, 7, 10.0),
        (64, 8, 0.003, 8, 0.5),
        (300, 64, 0.25, 32, 3.0),
        (40, 40, 0.1, 40, 1.0),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_margin_recovered(n, d, margin, n_support, radius, seed):
    ds = planted_margin(n, d, margin, radius=radius, n_support=n_support, seed=seed)
    res = max_margin(ds.X, ds.y)
    np.testing.assert_allclose(res.direction, ds.direction, atol=1e-10, rtol=0)
    assert res.margin == pytest.approx(ds.margin, abs=1e-10)
    assert res.margin_upper == pytest.approx(ds.margin, abs=1e-10)
    assert res.duality_gap <= 1e-10
    np.testing.assert_array_equal(res.support, ds.support)
    check_certificate(res, ds.X, ds.y)


def test_planted_subset_keeps_truth():
    ds = planted_margin(60, 6, 0.2, n_support=4, seed=3).subset(10)
    res = max_margin(ds.X, ds.y)
    np.testing.assert_allclose(res.direction, ds.direction, atol=1e-10, rtol=0)
    assert res.margin == pytest.approx(ds.margin, abs=1e-10)


# -- agreement with independent solvers ------------------------------------------------------


@pytest.mark.parametrize(("n", "d", "seed"), [(30, 2, 0), (60, 5, 1), (100, 10, 2), (80, 20, 3)])
def test_agrees_with_sklearn_linearsvc(n, d, seed):
    from sklearn.svm import LinearSVC

    X, y = random_separable(n, d, seed)
    res = max_margin(X, y)
    # tol=1e-10, not smaller: at tol=1e-12 liblinear's dual coordinate descent never meets its
    # stopping rule and stalls (e.g. n=80, d=20: 1e6 iterations, direction off by 1.5e-3, margin
    # 0.2465 < the certified 0.24987); at 1e-10 it converges in ~2000 iterations to ~1e-11.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would make the reference invalid
        clf = LinearSVC(
            fit_intercept=False, loss="hinge", C=1e6, tol=1e-10, max_iter=1_000_000, dual=True
        ).fit(X, y)
    w = clf.coef_.ravel()
    np.testing.assert_allclose(w / np.linalg.norm(w), res.direction, atol=1e-4, rtol=0)
    assert normalized_margin(w, X, y) == pytest.approx(res.margin, abs=1e-4)
    check_certificate(res, X, y)


@pytest.mark.parametrize(("n", "d", "seed"), [(6, 2, 0), (10, 3, 1), (15, 4, 2), (20, 5, 3)])
def test_agrees_with_scipy_slsqp(n, d, seed):
    from scipy.optimize import minimize

    X, y = random_separable(n, d, seed)
    Z = y[:, None] * X
    ref = minimize(
        lambda w: 0.5 * w @ w,
        x0=np.linalg.lstsq(Z, np.ones(n), rcond=None)[0] * 10.0,
        jac=lambda w: w,
        constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1.0, "jac": lambda w: Z}],
        method="SLSQP",
        options={"ftol": 1e-13, "maxiter": 1000},
    )
    assert ref.success, ref.message
    res = max_margin(X, y)
    np.testing.assert_allclose(ref.x / np.linalg.norm(ref.x), res.direction, atol=1e-7, rtol=0)
    assert 1.0 / np.linalg.norm(ref.x) == pytest.approx(res.margin, abs=1e-7)
    np.testing.assert_allclose(ref.x, res.weight, rtol=1e-6, atol=0)


@given(
    n=st.integers(2, 40),
    d=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_certificate_random(n, d, seed, scale):
    X, y = random_separable(n, d, seed)
    X = X * scale
    res = max_margin(X, y)
    check_certificate(res, X, y)


@given(
    n=st.integers(3, 40),
    d=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
    spread=st.floats(0.0, 8.0),
)
def test_certificate_and_loo_badly_scaled_rows(n, d, seed, spread):
    """Row norms spread over up to 7 orders of magnitude: still accurate to ~eps * R."""
    X, y = random_separable(n, d, seed)
    rng = np.random.default_rng(seed)
    X = X * np.exp(rng.uniform(-spread, spread, size=(X.shape[0], 1)))
    res = max_margin(X, y)
    check_certificate(res, X, y)
    check_loo(loo_max_margin(X, y, result=res), X, y)


def test_badly_scaled_regression():
    # Found while testing: anchoring the affine solves at a long point lost the short ones
    # (here: reported margin 3.35e-5 instead of 3.88e-5, duality gap 1.5e-10 R; now ~eps R).
    rng = np.random.default_rng(2)
    X, y = random_separable(100, 6, 2)
    X = X * np.exp(rng.uniform(-10, 10, size=(100, 1)))
    res = max_margin(X, y)
    R = np.max(np.linalg.norm(X, axis=1))
    assert R > 1e4 and res.margin < 1e-4
    assert res.duality_gap <= 1e-14 * R
    assert res.margin == pytest.approx(3.87812285e-05, rel=1e-7)  # certified: gap ~ 4e-8 relative
    check_certificate(res, X, y)


# -- invariances and edge cases --------------------------------------------------------------


def test_zero_one_labels_same_as_pm1():
    X, y = random_separable(40, 4, 5)
    a = max_margin(X, y)
    b = max_margin(X, (y + 1) / 2)
    c = max_margin(X, ((y + 1) / 2).astype(int))
    for r in (b, c):
        np.testing.assert_array_equal(r.direction, a.direction)
        assert r.margin == a.margin
        np.testing.assert_array_equal(r.support, a.support)


@pytest.mark.parametrize("c", [1e-4, 0.5, 3.0, 1e5])
def test_scaling(c):
    X, y = random_separable(50, 6, 7)
    a = max_margin(X, y)
    b = max_margin(c * X, y)
    assert b.margin == pytest.approx(c * a.margin, rel=1e-12)
    np.testing.assert_allclose(b.direction, a.direction, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(b.support, a.support)
    np.testing.assert_allclose(b.dual, a.dual / c**2, rtol=1e-9, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permutation_invariance(seed):
    X, y = random_separable(60, 5, seed)
    perm = np.random.default_rng(seed + 100).permutation(len(y))
    a = max_margin(X, y)
    b = max_margin(X[perm], y[perm])
    np.testing.assert_allclose(b.direction, a.direction, atol=1e-12, rtol=0)
    assert b.margin == pytest.approx(a.margin, abs=1e-12)
    np.testing.assert_array_equal(b.support, a.support[perm])
    np.testing.assert_allclose(b.hull_weights, a.hull_weights[perm], atol=1e-10)


def test_duplicate_points():
    ds = soudry_fig1()  # its signed points are two duplicated pairs already
    X = np.concatenate([ds.X, ds.X[:2], ds.X])
    y = np.concatenate([ds.y, ds.y[:2], ds.y])
    res = max_margin(X, y)
    np.testing.assert_allclose(res.direction, ds.direction, atol=1e-12, rtol=0)
    assert res.margin == pytest.approx(np.sqrt(2.0), abs=1e-12)
    assert res.support.all()
    check_certificate(res, X, y)

    Xr, yr = random_separable(30, 4, 11)
    base = max_margin(Xr, yr)
    dup = max_margin(np.concatenate([Xr, Xr[::3]]), np.concatenate([yr, yr[::3]]))
    np.testing.assert_allclose(dup.direction, base.direction, atol=1e-12, rtol=0)
    assert dup.margin == pytest.approx(base.margin, abs=1e-12)


def test_one_dimensional():
    res = max_margin([[1.0], [2.0], [-3.0], [0.5]], [1, 1, -1, 1])
    np.testing.assert_array_equal(res.direction, [1.0])
    assert res.margin == 0.5
    assert res.support.tolist() == [False, False, False, True]
    res = max_margin([[-1.0], [-2.0]], [0, 0])
    assert res.direction.tolist() == [1.0] and res.margin == 1.0


def test_single_class():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    res = max_margin(X, np.ones(3))
    np.testing.assert_allclose(res.direction, [np.sqrt(0.5)] * 2, atol=1e-15)
    assert res.margin == pytest.approx(np.sqrt(0.5), abs=1e-15)
    assert res.support.tolist() == [True, True, False]
    check_certificate(res, X, np.ones(3))


def test_two_points_and_nearest_vertex():
    # the min-norm point is a vertex: a single-point corral
    X = np.array([[1.0, 0.0], [3.0, 1.0], [2.0, -1.0]])
    res = max_margin(X, [1, 1, 1])
    np.testing.assert_array_equal(res.direction, [1.0, 0.0])
    assert res.margin == 1.0
    assert res.hull_weights.tolist() == [1.0, 0.0, 0.0]


def test_tolerance_certificate_holds_for_loose_tol():
    X, y = random_separable(200, 10, 4)
    exact = max_margin(X, y)
    loose = max_margin(X, y, tol=1e-3)
    R = np.max(np.linalg.norm(X, axis=1))
    # the stopping rule guarantees duality_gap <= tol * R, and both results are certified
    assert 0.0 < loose.duality_gap <= 1e-3 * R
    assert loose.margin <= exact.margin_upper + 1e-15
    assert exact.margin <= loose.margin_upper + 1e-15
    assert loose.iterations <= exact.iterations


@pytest.mark.parametrize(("n", "d", "seed"), [(50, 5, 0), (300, 30, 1)])
def test_zero_tol_terminates(n, d, seed):
    # tol=0 cannot be met in float64: the solver must stop on stagnation, not hang
    X, y = random_separable(n, d, seed)
    res = max_margin(X, y, tol=0.0)
    check_certificate(res, X, y)
    ref = max_margin(X, y)
    np.testing.assert_allclose(res.direction, ref.direction, atol=1e-12, rtol=0)


def test_active_tol_option():
    ds = planted_margin(30, 4, 0.2, n_support=3, gap=0.1, seed=0)
    res = max_margin(ds.X, ds.y, active_tol=1.0)
    assert res.support.all()
    np.testing.assert_array_equal(max_margin(ds.X, ds.y).support, ds.support)


def test_max_iter_cap_raises():
    X, y = random_separable(200, 20, 0)
    with pytest.raises(MaxMarginConvergenceError, match="max_iter=3"):
        max_margin(X, y, max_iter=3)


def test_performance_sanity_n512_d128():
    X, y = random_separable(512, 128, 0)
    t0 = time.perf_counter()
    res = max_margin(X, y)
    elapsed = time.perf_counter() - t0
    check_certificate(res, X, y)
    assert elapsed >= 0.0  # informative only; no timing assertion (shared CI machines)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "y"),
    [
        pytest.param([[1, 1], [-1, -1], [1, -1], [-1, 1]], [1, 1, -1, -1], id="xor"),
        pytest.param(add_bias([[1, 1], [-1, -1], [1, -1], [-1, 1]]), [1, 1, -1, -1], id="xor+bias"),
        pytest.param([[1.0, 2.0], [-1.0, -2.0]], [1, 1], id="point-and-negation"),
        pytest.param([[1.0, 2.0], [1.0, 2.0]], [1, -1], id="conflicting-duplicate"),
        pytest.param([[1.0], [2.0], [-1.0]], [1, 1, 1], id="1d"),
        pytest.param([[0.0, 0.0], [1.0, 1.0]], [1, 1], id="zero-row"),
        pytest.param(np.zeros((3, 2)), [1, -1, 1], id="all-zero"),
        pytest.param([[1, 0], [0, 1], [-1, -1], [5, 5]], [1, 1, 1, 1], id="origin-interior"),
    ],
)
def test_not_separable(X, y):
    with pytest.raises(NotSeparableError, match="not linearly separable through the origin") as e:
        max_margin(X, y)
    msg = str(e.value)
    assert "add_bias" in msg and "different or more features" in msg
    assert "nan" not in msg.lower()


def test_not_separable_random_gaussian_labels():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = np.where(rng.random(200) < 0.5, 1, -1)
    with pytest.raises(NotSeparableError):
        max_margin(X, y)


def test_not_separable_without_bias_but_separable_with():
    X = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = np.array([1, 1, -1, -1])
    with pytest.raises(NotSeparableError):
        max_margin(X, y)
    res = max_margin(add_bias(X, -2.5), y)
    assert res.margin > 0
    check_certificate(res, add_bias(X, -2.5), y)


@pytest.mark.parametrize(
    ("X", "y"),
    [
        pytest.param([[np.nan, 1.0], [1.0, 1.0]], [1, -1], id="nan"),
        pytest.param([[np.inf, 1.0], [1.0, 1.0]], [1, -1], id="inf"),
        pytest.param([[1.0, 1.0], [2.0, 1.0]], [1, 2], id="bad-labels"),
        pytest.param([[1.0, 1.0], [2.0, 1.0]], [1, -1, 1], id="shape-mismatch"),
        pytest.param([1.0, 2.0], [1, -1], id="1d-X"),
        pytest.param([[1.0, 1.0]], [1], id="one-sample"),
    ],
)
def test_invalid_data(X, y):
    with pytest.raises(InvalidDataError):
        max_margin(X, y)
    with pytest.raises(InvalidDataError):
        loo_max_margin(X, y)


# -- leave-one-out ---------------------------------------------------------------------------


def brute_force_loo(X, y):
    n, d = X.shape
    margins, directions = np.empty(n), np.empty((n, d))
    for i in range(n):
        r = max_margin(np.delete(X, i, 0), np.delete(y, i))
        margins[i], directions[i] = r.margin, r.direction
    return margins, directions


def check_loo(loo: LooMaxMargin, X, y):
    X, y = np.asarray(X, float), np.asarray(y, float)
    margins, directions = brute_force_loo(X, y)
    np.testing.assert_allclose(loo.margins, margins, atol=1e-10, rtol=0)
    np.testing.assert_allclose(loo.directions, directions, atol=1e-8, rtol=0)
    full = loo.full
    # re-solved only on the corral, a subset of the active set; the others copy u_S exactly
    assert np.all(full.support[loo.resolved])
    np.testing.assert_array_equal(loo.resolved, full.hull_weights > 0)
    assert np.all(loo.change[~loo.resolved] == 0.0)
    assert np.all(loo.change[~full.support] == 0.0)  # inactive constraints never move u
    assert np.all(loo.directions[~loo.resolved] == full.direction)
    assert np.all(loo.margins[~loo.resolved] == full.margin)
    np.testing.assert_allclose(
        loo.change, np.linalg.norm(directions - full.direction, axis=1), atol=1e-8
    )
    # gamma(S \ i) >= gamma(S); Lemma H-2's m_i and its bound
    assert np.all(loo.margins >= full.margin - 1e-12)
    Z = y[:, None] * X
    v = Z @ full.direction
    for i in range(len(y)):
        assert loo.min_other[i] == np.delete(v, i).min()
    g = loo.margins
    h2 = np.sqrt(np.maximum(0.0, 4.0 - (loo.min_other + g) ** 2 / g**2))
    assert np.all(loo.change <= h2 + 1e-7)
    assert np.all(loo.duality_gaps <= 1e-10)


@pytest.mark.parametrize(
    ("n", "d", "seed"), [(3, 2, 0), (8, 2, 1), (20, 3, 2), (40, 6, 3), (60, 10, 4), (30, 30, 5)]
)
def test_loo_matches_brute_force(n, d, seed):
    X, y = random_separable(n, d, seed)
    loo = loo_max_margin(X, y)
    check_loo(loo, X, y)
    assert loo.resolved.any()


@pytest.mark.parametrize("seed", [0, 1])
def test_loo_planted(seed):
    ds = planted_margin(40, 6, 0.15, n_support=5, seed=seed)
    loo = loo_max_margin(ds.X, ds.y)
    check_loo(loo, ds.X, ds.y)
    np.testing.assert_array_equal(loo.resolved, ds.support)
    assert np.all(loo.change[ds.support] > 0)


@given(n=st.integers(3, 16), d=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_loo_random(n, d, seed):
    X, y = random_separable(n, d, seed)
    check_loo(loo_max_margin(X, y), X, y)


def test_loo_duplicates_and_soudry():
    ds = soudry_fig1()
    loo = loo_max_margin(ds.X, ds.y)  # each signed point has a duplicate: nothing moves
    np.testing.assert_allclose(loo.margins, np.sqrt(2.0), atol=1e-12)
    np.testing.assert_allclose(loo.change, 0.0, atol=1e-12)
    check_loo(loo, ds.X, ds.y)


def test_loo_two_points():
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    loo = loo_max_margin(X, [1, 1])
    np.testing.assert_allclose(loo.margins, [2.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(loo.directions, [[0.0, 1.0], [1.0, 0.0]], atol=1e-15)
    assert loo.resolved.all()
    u = loo.full.direction
    np.testing.assert_allclose(loo.min_other, [2 * u[1], u[0]], atol=1e-15)


def test_loo_accepts_result_and_checks_it():
    X, y = random_separable(30, 4, 8)
    full = max_margin(X, y)
    loo = loo_max_margin(X, y, result=full)
    assert loo.full is full
    with pytest.raises(ValueError, match="result is for data"):
        loo_max_margin(X[:-1], y[:-1], result=full)


def test_loo_not_separable():
    with pytest.raises(NotSeparableError):
        loo_max_margin([[1, 1], [-1, -1], [1, -1], [-1, 1]], [1, 1, -1, -1])


# -- Wolfe's min-norm point ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 3])
def test_min_norm_point_is_the_margin_and_the_loo_solution(seed):
    X, y = random_separable(30, 5, seed)
    Z = y[:, None] * X
    full = max_margin(X, y)
    p, lam, iterations, corral = min_norm_point(Z, tol=1e-12)
    np.testing.assert_array_equal(lam, full.hull_weights)  # max_margin is built on it
    assert iterations == full.iterations and sorted(corral.S) == np.flatnonzero(lam).tolist()
    assert np.linalg.norm(p) == full.margin_upper
    # Without a corral point i: the leave-one-out solution, warm-started or not.
    loo = loo_max_margin(X, y, result=full)
    i = int(np.flatnonzero(lam)[0])
    p_i, lam_i, _, _ = min_norm_point(Z, tol=1e-12, exclude=i)
    assert lam_i[i] == 0.0 and lam_i.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(p_i / np.linalg.norm(p_i), loo.directions[i], atol=1e-10)


# -- normalized margin -----------------------------------------------------------------------


def test_normalized_margin_single_and_batch():
    X, y = random_separable(50, 5, 9)
    res = max_margin(X, y)
    assert isinstance(normalized_margin(res.direction, X, y), float)
    assert normalized_margin(res.direction, X, y) == pytest.approx(res.margin, abs=1e-15)
    assert normalized_margin(7.0 * res.weight, X, y) == pytest.approx(res.margin, abs=1e-14)
    W = np.random.default_rng(0).standard_normal((3, 4, 5))
    out = normalized_margin(W, X, y)
    assert out.shape == (3, 4)
    Z = y[:, None] * X
    for idx in np.ndindex(3, 4):
        w = W[idx]
        assert out[idx] == pytest.approx(np.min(Z @ w) / np.linalg.norm(w), rel=1e-13)
    assert np.all(out <= res.margin_upper + 1e-15)
    assert normalized_margin(-res.direction, X, y) < 0


@pytest.mark.parametrize(
    "w", [np.zeros(5), np.array([1.0, 2.0]), np.array([np.nan, 0, 0, 0, 1.0]), np.ones((2, 0))]
)
def test_normalized_margin_rejects_bad_w(w):
    X, y = random_separable(10, 5, 0)
    with pytest.raises(InvalidDataError):
        normalized_margin(w, X, y)
