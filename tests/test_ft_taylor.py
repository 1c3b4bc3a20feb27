"""The matrix-free Taylor model (stabtheory.full_finetuning.taylor) against dense references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stabtheory  # noqa: F401  (float64)
from stabtheory import full_finetuning as ff
from stabtheory import linear_heads


def tiny_net(d=3, h=4):
    p = d * h + 2 * h + 1

    def apply(w, x):
        W1 = w[: d * h].reshape(d, h)
        b1 = w[d * h : d * h + h]
        v = w[d * h + h : d * h + 2 * h]
        return jnp.tanh(x @ W1 + b1) @ v + w[-1]

    return apply, p


@pytest.fixture(params=[(20, 3, 4), (8, 3, 4), (30, 2, 2)], ids=["p>n", "p>>n", "p<n"])
def problem(request):
    n, d, h = request.param
    rng = np.random.default_rng(n + d + h)
    apply, p = tiny_net(d, h)
    X = rng.standard_normal((n, d))
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    w0 = jnp.asarray(0.7 * rng.standard_normal(p))
    return apply, ff.taylor_expand(apply, w0, X, y), n, p


@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_operator_matches_dense(problem, curvature):
    apply, tm, n, p = problem
    s = jnp.asarray(np.random.default_rng(1).random(n))
    A = ff.dense_operator(tm, s, 0.1, curvature=curvature, apply=apply)
    v = jnp.asarray(np.random.default_rng(2).standard_normal(p))
    got = ff.operator(tm, s, 0.1, curvature=curvature, apply=apply)(v)
    np.testing.assert_allclose(got, A @ np.asarray(v), atol=1e-13)


def test_gradients_match_autodiff(problem):
    apply, tm, _n, _ = problem
    loss = lambda w, x, y: jax.nn.softplus(-y * apply(w, x))  # noqa: E731
    g = jax.vmap(jax.grad(loss), (None, 0, 0))(tm.w0, tm.X, tm.y)
    np.testing.assert_allclose(tm.grads, g, atol=1e-14)
    H = ff.dense_curvatures(tm, curvature="hessian", apply=apply)
    Hd = jax.vmap(jax.hessian(loss), (None, 0, 0))(tm.w0, tm.X, tm.y)
    np.testing.assert_allclose(H, Hd, atol=1e-13)


def test_exact_extreme_eigenvalues_match_dense(problem):
    _, tm, n, _ = problem
    W = linear_heads.loo_weights(n)
    lo, hi = ff.extreme_eigenvalues(tm, W, 0.05)
    for k in (0, 1, n):
        ev = np.linalg.eigvalsh(ff.dense_operator(tm, W[k], 0.05))
        np.testing.assert_allclose([lo[k], hi[k]], [ev[0], ev[-1]], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_lanczos_and_power_iteration_match_dense(problem, curvature):
    apply, tm, n, p = problem
    s = jnp.ones(n)
    ev = np.linalg.eigvalsh(ff.dense_operator(tm, s, 0.05, curvature=curvature, apply=apply))
    mv = ff.operator(tm, s, 0.05, curvature=curvature, apply=apply)
    v0 = jnp.asarray(np.random.default_rng(3).standard_normal(p))
    lo, hi = ff.lanczos_extremes(mv, v0, k=p)
    np.testing.assert_allclose([lo, hi], [ev[0], ev[-1]], rtol=1e-8, atol=1e-10)
    if curvature == "ggn":  # PSD: power iteration converges to the top
        np.testing.assert_allclose(ff.power_iteration(mv, v0, iters=2000), ev[-1], rtol=1e-6)


def test_per_sample_norms_are_exact(problem):
    _, tm, _, _ = problem
    dense = [np.linalg.norm(H, 2) for H in ff.dense_curvatures(tm)]
    np.testing.assert_allclose(ff.per_sample_norms(tm), dense, rtol=1e-12)


def test_minimizers_by_cg_match_dense_solves(problem):
    _, tm, n, _ = problem
    W = linear_heads.loo_weights(n)
    got = ff.minimizers(tm, W, 0.05)
    G = np.asarray(tm.grads)
    for k in (0, 1, n):
        s = np.asarray(W[k])
        A = ff.dense_operator(tm, s, 0.05)
        expected = np.asarray(tm.w0) - np.linalg.solve(A, s @ G / s.sum())
        np.testing.assert_allclose(got[k], expected, rtol=1e-9, atol=1e-10)


def test_gd_path_matches_closed_form(problem):
    _, tm, n, p = problem
    W = linear_heads.loo_weights(n)[:3]
    steps = jnp.array([0, 1, 5, 40])
    A = ff.dense_operator(tm, W[1], 0.05)
    lr = 0.5 / np.linalg.eigvalsh(A)[-1]
    path = ff.gd_path(tm, W, 0.05, lr, steps)
    s = np.asarray(W[1])
    w_star = np.asarray(tm.w0) - np.linalg.solve(A, s @ np.asarray(tm.grads) / s.sum())
    M = np.eye(p) - lr * A
    for c, t in enumerate([0, 1, 5, 40]):
        expected = w_star + np.linalg.matrix_power(M, t) @ (np.asarray(tm.w0) - w_star)
        np.testing.assert_allclose(path[1, c], expected, atol=1e-12)


def test_quadratic_loss_is_exact_for_a_quadratic_step(problem):
    apply, tm, _n, p = problem
    d = 1e-4 * jnp.asarray(np.random.default_rng(5).standard_normal(p))
    w = tm.w0 + d
    true = ff.true_losses(apply, w[None], tm.X, tm.y)[0]
    quad = ff.quadratic_losses(tm, w[None], curvature="hessian", apply=apply)[0]
    np.testing.assert_allclose(quad, true, atol=1e-11)  # O(||d||^3)


def test_scales_to_1e5_parameters_without_p_by_p():
    d, h = 200, 500  # p = 101_501
    apply, p = tiny_net(d, h)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, d)) / np.sqrt(d)
    y = np.where(rng.random(16) < 0.5, 1.0, -1.0)
    tm = ff.taylor_expand(apply, jnp.asarray(0.05 * rng.standard_normal(p)), X, y)
    W = linear_heads.loo_weights(16)[:3]
    lo, hi = ff.extreme_eigenvalues(tm, W, 0.1)
    assert p > 1e5 and np.all(lo == 0.1) and np.all(hi > 0.1)
    w = ff.minimizers(tm, W, 0.1, maxiter=200)
    assert w.shape == (3, p) and bool(jnp.all(jnp.isfinite(w)))


@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_per_sample_power_iteration_matches_dense_norms(problem, curvature):
    apply, tm, _, _ = problem
    dense = [
        np.abs(np.linalg.eigvalsh(H)).max()
        for H in ff.dense_curvatures(tm, curvature=curvature, apply=apply)
    ]
    got = ff.per_sample_power_iteration(tm, curvature=curvature, apply=apply, iters=3000)
    np.testing.assert_allclose(got, dense, rtol=1e-6)


def test_apply_design_is_the_designed_quadratic(problem):
    """lhat^c_i(w) = c (lhat_i(w) + a_i . (w - w0)) with a_i = kappa xi_i - s (H_i + lam I) v."""
    _, tm, n, p = problem
    lam, kappa, s, c = 0.1, 0.7, -0.4, 3.0
    xi, v = ff.FTDesign(tilt=1.0, shift=1.0, seed=2).directions(n, p)
    tm_c, lam_c, a = ff.apply_design(tm, lam, kappa, s, c, xi, v)
    H = ff.dense_curvatures(tm)
    np.testing.assert_allclose(
        a, kappa * np.asarray(xi) - s * (H @ np.asarray(v) + lam * np.asarray(v)), atol=1e-13
    )
    W = tm.w0 + np.random.default_rng(0).standard_normal((4, p))
    expected = c * (np.asarray(ff.quadratic_losses(tm, W)) + (W - tm.w0) @ np.asarray(a).T)
    np.testing.assert_allclose(ff.quadratic_losses(tm_c, W), expected, rtol=1e-12)
    assert lam_c == pytest.approx(c * lam)
