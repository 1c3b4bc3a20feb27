"""Tests of the fine-tuning losses and GD (stabtheory.full_finetuning.losses and .training)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close_scaled

from stabtheory import full_finetuning as ff
from stabtheory.linear_heads import loo_weights

F64 = np.float64

# A small architecture so that the pre-training loop compiles and runs in about a second.
SMALL = ff.TestbedConfig(d_in=8, hidden=(16,), features=4, n=24, n_test=32)


@pytest.fixture(scope="module")
def tb():
    return ff.pretrained_family(SMALL, (0, 20, 200))[1]


def test_logistic_loss(tb):
    loss_fn = ff.logistic_loss(tb)
    f = np.asarray(jax.vmap(tb.apply, in_axes=(None, 0))(tb.w0, tb.X))
    ours = jax.vmap(loss_fn, in_axes=(None, 0, 0))(tb.w0, tb.X, tb.y)
    np.testing.assert_allclose(ours, np.logaddexp(0.0, -tb.y * f), rtol=1e-13)
    assert ff.logistic_loss(tb.apply)(tb.w0, tb.X[0], tb.y[0]) == ours[0]
    # huge logits: exact loss, finite gradients (log domain, nothing clamped)
    big = ff.make_testbed(
        dataclasses.replace(SMALL, pretrain_steps=20, input_scale=1e4, head_scale=1e3)
    )
    g = jax.vmap(jax.grad(ff.logistic_loss(big)), in_axes=(None, 0, 0))(big.w0, big.X, big.y)
    assert np.all(np.isfinite(g))


@pytest.fixture(scope="module")
def jstep(tb):
    return jax.jit(ff.gd_step, static_argnums=0)


def python_loop(tb, jstep, s, lr, lam, checkpoints, X=None, y=None):
    X = tb.X if X is None else X
    y = tb.y if y is None else y
    w, t, out = jnp.asarray(tb.w0), 0, []
    for target in checkpoints:
        while t < target:
            w = jstep(tb.apply, w, tb.w0, X, y, s, lr, lam)
            t += 1
        out.append(np.asarray(w))
    return np.stack(out)


def test_finetune_runs_equals_python_loop(tb, jstep):
    n = tb.n
    S = np.asarray(loo_weights(n))[[0, 1, 6]]  # S, S\0, S\5
    lr = np.array([0.3, 0.5, 0.2])
    checkpoints = np.array([0, 3, 3, 11])
    W, L = ff.jit_finetune_runs(
        tb.apply, tb.w0, tb.X, tb.y, S, lr, 0.05, checkpoints, return_loss=True
    )
    assert W.shape == (3, 4, tb.p) and L.shape == (3, 4) and W.dtype == F64
    for r in range(3):
        ref = python_loop(tb, jstep, S[r], lr[r], 0.05, checkpoints)
        assert_close_scaled(W[r], ref, scale=np.linalg.norm(tb.w0), factor=100)
        loss = [ff.weighted_loss(tb.apply, w, tb.X, tb.y, S[r]) for w in ref]
        np.testing.assert_allclose(L[r], loss, rtol=1e-10)
    np.testing.assert_array_equal(W[:, 0], np.broadcast_to(tb.w0, (3, tb.p)))
    np.testing.assert_array_equal(W[:, 1], W[:, 2])  # a repeated checkpoint: zero steps
    assert np.all(np.diff(L[:, [0, 1, 3]], axis=1) < 0)  # GD decreases the loss here
    # S\i drops sample i and averages over the other n - 1: the same as training on them
    keep = np.arange(n) != 5
    sliced = python_loop(
        tb, jstep, np.ones(n - 1), lr[2], 0.05, checkpoints, tb.X[keep], tb.y[keep]
    )
    assert_close_scaled(W[2], sliced, scale=np.linalg.norm(tb.w0), factor=100)


def test_one_run_is_a_row_of_the_runs(tb):
    S = loo_weights(tb.n)[:2]
    cps = jnp.array([0, 3, 8])
    W, L = ff.finetune_runs(
        tb.apply, tb.w0, tb.X, tb.y, S, jnp.full(2, 0.4), 0.1, cps, return_loss=True
    )
    w1, l1 = ff.gd_finetune(tb.apply, tb.w0, tb.X, tb.y, S[1], 0.4, 0.1, cps, return_loss=True)
    assert_close_scaled(W[1], w1, scale=np.linalg.norm(tb.w0), factor=10)
    np.testing.assert_allclose(L[1], l1, rtol=1e-12)


def test_batch_size_chunking_equals_vmap(tb):
    S = loo_weights(tb.n)[:5]
    lr, lam = jnp.linspace(0.1, 0.5, 5), jnp.linspace(0.0, 0.2, 5)
    cps = jnp.array([0, 4, 9])
    full = ff.jit_finetune_runs(tb.apply, tb.w0, tb.X, tb.y, S, lr, lam, cps)
    chunked = ff.jit_finetune_runs(tb.apply, tb.w0, tb.X, tb.y, S, lr, lam, cps, batch_size=2)
    assert_close_scaled(chunked, full, scale=np.linalg.norm(tb.w0), factor=10)
    # one start per run equals the shared start
    per_run = ff.jit_finetune_runs(
        tb.apply, jnp.broadcast_to(tb.w0, (5, tb.p)), tb.X, tb.y, S, lr, lam, cps
    )
    np.testing.assert_array_equal(per_run, full)


def test_pull_toward_w0(tb):
    S = jnp.ones((2, tb.n))
    W = ff.jit_finetune_runs(
        tb.apply, tb.w0, tb.X, tb.y, S, jnp.full(2, 0.5), jnp.array([0.0, 0.5]), jnp.array([300])
    )
    d_free, d_pulled = np.linalg.norm(W[:, -1] - tb.w0, axis=1)
    assert 0.0 < d_pulled < 0.7 * d_free


def test_sweeps_do_not_recompile(tb):
    traces = []

    def apply(w, x):
        traces.append(None)
        return tb.apply(w, x)

    S = loo_weights(tb.n)[:3]
    args = (apply, tb.w0, tb.X, tb.y)
    lam = jnp.zeros(3)
    ff.jit_finetune_runs(*args, S, jnp.full(3, 0.1), lam, jnp.array([0, 2])).block_until_ready()
    count = len(traces)
    assert count > 0
    # other masks, step sizes, pulls and checkpoint values (same shapes): no new trace
    ff.jit_finetune_runs(
        *args, 1.0 - S, jnp.full(3, 0.3), lam + 0.1, jnp.array([1, 5])
    ).block_until_ready()
    assert len(traces) == count


def test_designed_objective_linear_terms_and_scale(tb):
    """``l2sp_objective`` with per-sample linear terms and a loss scale, against its definition;
    GD with (c, c lam, lr / c) retraces the plain run (the loss-scaling negative control)."""
    n, p = tb.X.shape[0], tb.p
    rng = np.random.default_rng(5)
    a = rng.standard_normal((n, p))
    s = rng.random(n)
    w = tb.w0 + 0.01 * rng.standard_normal(p)
    c, lam = 2.5, 0.05
    got = ff.l2sp_objective(tb.apply, w, tb.w0, tb.X, tb.y, s, c * lam, linear=a, scale=c)
    losses = np.asarray(jax.vmap(ff.logistic_loss(tb), in_axes=(None, 0, 0))(w, tb.X, tb.y))
    data = (s @ (losses + a @ (w - tb.w0))) / s.sum()
    expected = c * data + 0.5 * c * lam * np.sum((w - tb.w0) ** 2)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    W = loo_weights(n)[:3]
    kw = dict(checkpoints=jnp.array([5, 40]))
    plain = ff.jit_finetune_runs(tb.apply, tb.w0, tb.X, tb.y, W, jnp.full(3, 0.5), lam, **kw)
    scaled = ff.jit_finetune_runs(
        tb.apply, tb.w0, tb.X, tb.y, W, jnp.full(3, 0.5 / c), c * lam, scale=c, **kw
    )
    np.testing.assert_allclose(scaled, plain, rtol=0, atol=1e-12)
