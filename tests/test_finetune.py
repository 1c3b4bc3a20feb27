"""Tests of stabtheory.finetune: backbones as flat-weight functions, pre-training, tasks, GD."""

from __future__ import annotations

import socket

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import assert_close_scaled, tol
from jax.flatten_util import ravel_pytree

from stabtheory import finetune as ft
from stabtheory.heads import loo_weights

F64 = np.float64

# A small architecture so that the pre-training loop compiles and runs in about a second.
SMALL = {"d_in": 8, "hidden": (16,), "features": 4, "n": 24, "n_test": 32}


@pytest.fixture(scope="module")
def family():
    return ft.pretrained_family("synthetic", (0, 20, 200), **SMALL)


@pytest.fixture(scope="module")
def tb(family):
    return family[1]


def np_forward(state, x, activation="tanh"):
    """Independent numpy forward pass of a Classifier from its (pure-dict) parameters."""
    act = {"tanh": np.tanh}[activation]
    d = nnx.to_pure_dict(state)
    layers = d["encoder"]["layers"]
    h = np.asarray(x, F64)
    for i in range(len(layers)):
        h = act(h @ np.asarray(layers[i]["kernel"]) + np.asarray(layers[i]["bias"]))
    return h @ np.asarray(d["head"]["kernel"])[:, 0] + np.asarray(d["head"]["bias"])[0]


# --------------------------------------------------------------------------------------------
# Backbones as pure functions of flat weights


@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_apply_matches_module_forward(activation):
    rngs = nnx.Rngs(3)
    clf = ft.Classifier(ft.MLPEncoder(5, (7, 6), 3, activation=activation, rngs=rngs), rngs=rngs)
    X = np.random.default_rng(0).standard_normal((9, 5))
    apply, w, _ = ft.as_function(clf)
    assert w.dtype == F64 and w.shape == (5 * 7 + 7 + 7 * 6 + 6 + 6 * 3 + 3 + 3 + 1,)
    ours = jax.vmap(apply, in_axes=(None, 0))(w, X)
    theirs = clf(jnp.asarray(X))
    assert ours.shape == theirs.shape == (9,)
    np.testing.assert_allclose(ours, theirs, rtol=tol(F64), atol=tol(F64))
    # gradients in x agree too (apply is differentiable in both arguments)
    gx = jax.grad(apply, argnums=1)(w, jnp.asarray(X[0]))
    np.testing.assert_allclose(gx, jax.grad(clf)(jnp.asarray(X[0])), rtol=1e-10, atol=1e-14)


def test_testbed_apply_matches_model_and_numpy(tb):
    X = tb.X[:7]
    ours = jax.vmap(tb.apply, in_axes=(None, 0))(tb.w0, X)
    np.testing.assert_allclose(ours, tb.model()(jnp.asarray(X)), rtol=tol(F64), atol=tol(F64))
    ref = np.array([np_forward(tb.unravel(tb.w0), x) for x in X])
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    w = tb.w0 + 0.1 * np.random.default_rng(1).standard_normal(tb.p)
    np.testing.assert_allclose(
        jax.vmap(tb.apply, in_axes=(None, 0))(w, X), tb.model(w)(jnp.asarray(X)), rtol=1e-12
    )


def test_ravel_unravel_round_trip(tb):
    state = tb.unravel(tb.w0)
    leaves = jax.tree.leaves(state)
    assert leaves and all(leaf.dtype == F64 for leaf in leaves)
    w_again, _ = ravel_pytree(state)
    np.testing.assert_array_equal(w_again, tb.w0)
    w_model, _ = ravel_pytree(nnx.state(tb.model(), nnx.Param))
    np.testing.assert_array_equal(w_model, tb.w0)
    # head_slice: the head's bias then kernel, at the end of w
    start, stop = tb.info["head_slice"]
    head = nnx.to_pure_dict(state)["head"]
    k = tb.info["features"]
    assert (stop - start, stop) == (k + 1, tb.p) and tb.info["p_encoder"] == start
    np.testing.assert_array_equal(
        tb.w0[start:stop], np.concatenate([head["bias"], np.asarray(head["kernel"]).ravel()])
    )
    assert not tb.w0.flags.writeable and not tb.X.flags.writeable


def test_default_sizes():
    arch = ft._Arch(32, (32, 32), 8, "tanh")
    _, unravel, _ = ft._classifier_functions(arch)
    p = sum(x.size for x in jax.tree.leaves(unravel(jnp.zeros(2385))))
    assert p == 2385


# --------------------------------------------------------------------------------------------
# Pre-training


def small_autoencoder(seed=0):
    return ft.DenoisingAutoencoder(
        ft.MLPEncoder(8, (16,), 4, rngs=nnx.Rngs(seed)),
        ft.MLPDecoder(4, (16,), 8, rngs=nnx.Rngs(seed + 1)),
    )


def test_pretraining_lowers_loss_and_is_deterministic():
    X_src = ft.synthetic_source(512, 8)
    ae = small_autoencoder()
    before = ravel_pytree(nnx.state(ae, nnx.Param))[0]
    a = ft.pretrain(ae, X_src, (0, 30, 300), seed=1)
    b = ft.pretrain(small_autoencoder(), X_src, (0, 30, 300), seed=1)
    np.testing.assert_array_equal(ravel_pytree(nnx.state(ae, nnx.Param))[0], before)  # untouched
    assert a.recon_loss[2] < a.recon_loss[1] < a.recon_loss[0]
    np.testing.assert_array_equal(a.recon_loss, b.recon_loss)
    for sa, sb in zip(a.states, b.states, strict=True):
        np.testing.assert_array_equal(ravel_pytree(sa)[0], ravel_pytree(sb)[0])  # same bits
    flat = [ravel_pytree(s)[0] for s in a.states]
    np.testing.assert_array_equal(flat[0], before)  # step 0 is the start
    assert np.linalg.norm(flat[1] - flat[0]) > 0 and np.linalg.norm(flat[2] - flat[1]) > 0
    # another seed gives another run; a snapshot does not depend on the other checkpoints
    c = ft.pretrain(small_autoencoder(), X_src, (0, 300), seed=2)
    assert np.linalg.norm(ravel_pytree(c.states[1])[0] - flat[2]) > 1e-3
    d = ft.pretrain(small_autoencoder(), X_src, (300,), seed=1)
    assert_close_scaled(ravel_pytree(d.states[0])[0], flat[2], scale=np.linalg.norm(flat[2]))


def test_family_shares_data_and_varies_encoder(family):
    f0, f1, f2 = family
    for f in family:
        assert f.apply is f0.apply and f.unravel is f0.unravel  # compiled once per architecture
        np.testing.assert_array_equal(f.X, f0.X)
        np.testing.assert_array_equal(f.y_test, f0.y_test)
    start, stop = f0.info["head_slice"]
    np.testing.assert_array_equal(f1.w0[start:stop], f0.w0[start:stop])  # same head
    dist = [np.linalg.norm(f.w0 - f0.w0) for f in family]
    assert 0.0 == dist[0] < dist[1] < dist[2]
    assert f0.info["recon_loss"] == f0.info["recon_loss_init"] > f2.info["recon_loss"]
    assert [f.info["pretrain_steps"] for f in family] == [0, 20, 200]
    single = ft.make_testbed(pretrain_steps=20, **SMALL)
    assert_close_scaled(single.w0, f1.w0, scale=np.linalg.norm(f1.w0))
    np.testing.assert_array_equal(single.X, f1.X)


def test_make_testbed_options():
    a = ft.make_testbed(pretrain_steps=0, seed=0, **SMALL)
    b = ft.make_testbed(pretrain_steps=0, seed=1, input_scale=3.0, **SMALL)
    np.testing.assert_array_equal(a.w0, b.w0)  # seed draws data only
    assert np.abs(a.X - b.X / 3.0).max() > 0.1
    c = ft.make_testbed(pretrain_steps=0, seed=0, input_scale=3.0, **SMALL)
    np.testing.assert_array_equal(c.X, 3.0 * a.X)
    np.testing.assert_array_equal(c.X_test, 3.0 * a.X_test)
    assert c.info["input_scale"] == 3.0 and c.info["p"] == c.p == a.p
    d = ft.make_testbed(pretrain_steps=0, init_seed=1, **SMALL)
    assert np.abs(d.w0 - a.w0).max() > 1e-3
    # sweeping the task (n, seed, shift) reuses the cached pre-training: same w0, no new run
    misses = ft._pretrained.cache_info().misses
    e = ft.make_testbed(pretrain_steps=0, **{**SMALL, "n": 10}, seed=7, shift=1.5)
    assert ft._pretrained.cache_info().misses == misses
    np.testing.assert_array_equal(e.w0, a.w0)
    assert e.n == 10 and e.info["shift"] == 1.5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task": "imagenet"},
        {"task": "digits", "shift": 1.0},
        {"task": "digits", "d_in": 8},
        {"task": "synthetic", "classes": (3, 8)},
        {"task": "synthetic", "activation": "relu"},
        {"task": "synthetic", "pretrain_steps": -1},
    ],
)
def test_make_testbed_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        ft.make_testbed(**kwargs)


# --------------------------------------------------------------------------------------------
# Tasks


def test_synthetic_task():
    t = ft.synthetic_task(400, 8, shift=0.0, seed=3, n_test=50)
    assert t.X.shape == (400, 8) and t.X_test.shape == (50, 8) and t.y_test.shape == (50,)
    assert t.X.dtype == t.y.dtype == F64
    assert set(np.unique(t.y)) == {-1.0, 1.0}
    assert abs(t.y.mean()) < 0.15  # P(y = 1) = 1/2: 3 standard deviations at n = 400
    assert abs(ft.synthetic_task(400, 8, rule="linear", seed=3).y.mean()) < 0.15
    np.testing.assert_array_equal(t.X, ft.synthetic_task(400, 8, shift=0.0, seed=3, n_test=50).X)
    other = ft.synthetic_task(400, 8, shift=0.0, seed=4, n_test=50)
    assert np.abs(other.X - t.X).max() > 0.1
    np.testing.assert_array_equal(other.X_source, t.X_source)  # the source ignores seed and n
    # the shift moves every input by the same vector of norm shift * sqrt(d_in)
    moved = ft.synthetic_task(400, 8, shift=2.0, seed=3, n_test=50)
    np.testing.assert_array_equal(moved.y, t.y)
    diff = moved.X - t.X
    np.testing.assert_allclose(diff, np.broadcast_to(diff[0], diff.shape), atol=1e-13)
    np.testing.assert_allclose(np.linalg.norm(diff[0]), 2.0 * np.sqrt(8), rtol=1e-12)
    noisy = ft.synthetic_task(400, 8, shift=0.0, seed=3, n_test=50, label_noise=0.3)
    assert 0.15 < np.mean(noisy.y != t.y) < 0.45


def test_digits_tasks_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("digits_task tried to use the network")

    monkeypatch.setattr(socket, "socket", no_network)
    ft._load_digits.cache_clear()
    t = ft.digits_task(64, (3, 8), seed=0)
    assert t.X.shape == (64, 64) and t.X_test.shape[1] == 64 and t.X_source.shape[1] == 64
    assert 0.0 <= t.X.min() and t.X.max() <= 1.0 and t.X.dtype == F64
    assert abs(t.y.mean()) < 0.35 and set(np.unique(t.y)) == {-1.0, 1.0}
    assert t.X_test.shape[0] == t.info["n_test"] > 100
    # train, test and source pools are disjoint
    rows = {r.tobytes() for r in t.X}
    assert not rows & {r.tobytes() for r in t.X_test}
    for classes in ["even_odd", 3]:
        u = ft.digits_task(100, classes, seed=1, n_test=80)
        assert u.X.shape == (100, 64) and u.X_test.shape == (80, 64)
        assert abs(u.y.mean()) < 0.35 and abs(u.y_test.mean()) < 0.4
    s = ft.digits_task(32, (1, 7), standardize=True)
    assert np.abs(s.X_source.mean(0)).max() < 1e-12
    # the source pool does not depend on the task's n or seed
    np.testing.assert_array_equal(ft.digits_task(10, (0, 1), seed=5).X_source, t.X_source)
    with pytest.raises(ValueError, match="task pool"):
        ft.digits_task(10_000, (3, 8))
    with pytest.raises(ValueError):
        ft.digits_task(10, (3, 3))


def test_digits_testbed():
    tb = ft.make_testbed("digits", n=16, n_test=20, pretrain_steps=0, hidden=(8,), features=4)
    assert tb.X.shape == (16, 64) and tb.info["d_in"] == 64 and tb.p == 64 * 8 + 8 + 36 + 5
    assert tb.name.startswith("digits-3v8")


# --------------------------------------------------------------------------------------------
# Losses and fine-tuning


def test_logistic_loss(tb):
    loss_fn = ft.logistic_loss(tb)
    f = np.asarray(jax.vmap(tb.apply, in_axes=(None, 0))(tb.w0, tb.X))
    ours = jax.vmap(loss_fn, in_axes=(None, 0, 0))(tb.w0, tb.X, tb.y)
    np.testing.assert_allclose(ours, np.logaddexp(0.0, -tb.y * f), rtol=1e-13)
    assert ft.logistic_loss(tb.apply)(tb.w0, tb.X[0], tb.y[0]) == ours[0]
    # huge logits: exact loss, finite gradients (log domain, nothing clamped)
    big = ft.make_testbed(pretrain_steps=20, input_scale=1e4, head_scale=1e3, **SMALL)
    g = jax.vmap(jax.grad(ft.logistic_loss(big)), in_axes=(None, 0, 0))(big.w0, big.X, big.y)
    assert np.all(np.isfinite(g))


@pytest.fixture(scope="module")
def jstep(tb):
    return jax.jit(ft.gd_step, static_argnums=0)


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
    W, L = ft.finetune_runs_jit(
        tb.apply, tb.w0, tb.X, tb.y, S, lr, 0.05, checkpoints, return_loss=True
    )
    assert W.shape == (3, 4, tb.p) and L.shape == (3, 4) and W.dtype == F64
    for r in range(3):
        ref = python_loop(tb, jstep, S[r], lr[r], 0.05, checkpoints)
        assert_close_scaled(W[r], ref, scale=np.linalg.norm(tb.w0), factor=100)
        loss = [ft.weighted_loss(tb.apply, w, tb.X, tb.y, S[r]) for w in ref]
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


def test_batch_size_chunking_equals_vmap(tb):
    S = loo_weights(tb.n)[:5]
    lr, lam = jnp.linspace(0.1, 0.5, 5), jnp.linspace(0.0, 0.2, 5)
    cps = jnp.array([0, 4, 9])
    full = ft.finetune_runs_jit(tb.apply, tb.w0, tb.X, tb.y, S, lr, lam, cps)
    chunked = ft.finetune_runs_jit(tb.apply, tb.w0, tb.X, tb.y, S, lr, lam, cps, batch_size=2)
    assert_close_scaled(chunked, full, scale=np.linalg.norm(tb.w0), factor=10)
    # one start per run equals the shared start
    per_run = ft.finetune_runs_jit(
        tb.apply, jnp.broadcast_to(tb.w0, (5, tb.p)), tb.X, tb.y, S, lr, lam, cps
    )
    np.testing.assert_array_equal(per_run, full)


def test_pull_toward_w0(tb):
    S = jnp.ones((2, tb.n))
    W = ft.finetune_runs_jit(
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
    ft.finetune_runs_jit(*args, S, jnp.full(3, 0.1), lam, jnp.array([0, 2])).block_until_ready()
    count = len(traces)
    assert count > 0
    # other masks, step sizes, pulls and checkpoint values (same shapes): no new trace
    ft.finetune_runs_jit(
        *args, 1.0 - S, jnp.full(3, 0.3), lam + 0.1, jnp.array([1, 5])
    ).block_until_ready()
    assert len(traces) == count


def test_large_testbed_memory_sanity():
    big = ft.make_testbed(pretrain_steps=0, n=16, n_test=16, hidden=(300, 300), features=32)
    assert big.p == 109_865 >= 1e5
    g = jax.jit(jax.grad(ft.logistic_loss(big)))(big.w0, big.X[0], big.y[0])
    assert g.shape == (big.p,) and g.dtype == F64 and np.all(np.isfinite(g))
    assert np.linalg.norm(g) > 0


def test_designed_objective_linear_terms_and_scale(tb):
    """``objective`` with per-sample linear terms and a loss scale, against its definition;
    GD with (c, c lam, lr / c) retraces the plain run (the loss-scaling negative control)."""
    n, p = tb.X.shape[0], tb.p
    rng = np.random.default_rng(5)
    a = rng.standard_normal((n, p))
    s = rng.random(n)
    w = tb.w0 + 0.01 * rng.standard_normal(p)
    c, lam = 2.5, 0.05
    got = ft.objective(tb.apply, w, tb.w0, tb.X, tb.y, s, c * lam, linear=a, scale=c)
    losses = np.asarray(jax.vmap(ft.logistic_loss(tb), in_axes=(None, 0, 0))(w, tb.X, tb.y))
    data = (s @ (losses + a @ (w - tb.w0))) / s.sum()
    expected = c * data + 0.5 * c * lam * np.sum((w - tb.w0) ** 2)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    W = loo_weights(n)[:3]
    kw = dict(checkpoints=jnp.array([5, 40]))
    plain = ft.finetune_runs_jit(tb.apply, tb.w0, tb.X, tb.y, W, jnp.full(3, 0.5), lam, **kw)
    scaled = ft.finetune_runs_jit(
        tb.apply, tb.w0, tb.X, tb.y, W, jnp.full(3, 0.5 / c), c * lam, scale=c, **kw
    )
    np.testing.assert_allclose(scaled, plain, rtol=0, atol=1e-12)
