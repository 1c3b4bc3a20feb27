"""Tests of stabtheory.full_finetuning.testbed: configs, pre-trained families and testbeds."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import assert_close_scaled, tol
from jax.flatten_util import ravel_pytree

from stabtheory import full_finetuning as ff

F64 = np.float64

# A small architecture so that the pre-training loop compiles and runs in about a second.
SMALL = ff.TestbedConfig(d_in=8, hidden=(16,), features=4, n=24, n_test=32)


@pytest.fixture(scope="module")
def family():
    return ff.pretrained_family(SMALL, (0, 20, 200))


@pytest.fixture(scope="module")
def tb(family):
    return family[1]


def small(**changes) -> ff.TestbedConfig:
    return dataclasses.replace(SMALL, **changes)


def np_forward(state, x, activation="tanh"):
    """Independent numpy forward pass of a Classifier from its (pure-dict) parameters."""
    act = {"tanh": np.tanh}[activation]
    d = nnx.to_pure_dict(state)
    layers = d["encoder"]["layers"]
    h = np.asarray(x, F64)
    for i in range(len(layers)):
        h = act(h @ np.asarray(layers[i]["kernel"]) + np.asarray(layers[i]["bias"]))
    return h @ np.asarray(d["head"]["kernel"])[:, 0] + np.asarray(d["head"]["bias"])[0]


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
    assert [f.config for f in family] == [small(pretrain_steps=s) for s in (0, 20, 200)]
    single = ff.make_testbed(small(pretrain_steps=20))
    assert single.config == small(pretrain_steps=20) and single.config.pretrain_config == (
        ff.PretrainConfig(**single.info["pretrain_config"])
    )
    assert_close_scaled(single.w0, f1.w0, scale=np.linalg.norm(f1.w0))
    np.testing.assert_array_equal(single.X, f1.X)


def test_make_testbed_options():
    a = ff.make_testbed(small(pretrain_steps=0, seed=0))
    b = ff.make_testbed(small(pretrain_steps=0, seed=1, input_scale=3.0))
    np.testing.assert_array_equal(a.w0, b.w0)  # seed draws data only
    assert np.abs(a.X - b.X / 3.0).max() > 0.1
    c = ff.make_testbed(small(pretrain_steps=0, seed=0, input_scale=3.0))
    np.testing.assert_array_equal(c.X, 3.0 * a.X)
    np.testing.assert_array_equal(c.X_test, 3.0 * a.X_test)
    assert c.info["input_scale"] == 3.0 and c.info["p"] == c.p == a.p
    d = ff.make_testbed(small(pretrain_steps=0, init_seed=1))
    assert np.abs(d.w0 - a.w0).max() > 1e-3
    # sweeping the task (n, seed, shift) reuses the cached pre-training: same w0, no new run
    misses = ff.pretrained_autoencoders.cache_info().misses
    e = ff.make_testbed(small(pretrain_steps=0, n=10, seed=7, shift=1.5))
    assert ff.pretrained_autoencoders.cache_info().misses == misses
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
        ff.make_testbed(ff.TestbedConfig(**kwargs))


def test_testbed_config_is_one_hashable_object():
    a = ff.TestbedConfig(hidden=[8], classes=None, task_kwargs={"rule": "linear", "n_source": 9})
    b = ff.TestbedConfig(hidden=(8,), task_kwargs=(("n_source", 9), ("rule", "linear")))
    assert a == b and hash(a) == hash(b)
    assert a.hidden == (8,) and a.task_kwargs == (("n_source", 9), ("rule", "linear"))
    assert ff.TestbedConfig(task="digits", classes=[1, 7]).classes == (1, 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.n = 3
    # the task keyword arguments reach the task
    lin = ff.make_testbed(small(pretrain_steps=0, task_kwargs={"rule": "linear"}))
    assert lin.info["rule"] == "linear" and lin.name.startswith("synthetic-linear")


def test_digits_testbed():
    tb = ff.make_testbed(
        ff.TestbedConfig("digits", n=16, n_test=20, pretrain_steps=0, hidden=(8,), features=4)
    )
    assert tb.X.shape == (16, 64) and tb.info["d_in"] == 64 and tb.p == 64 * 8 + 8 + 36 + 5
    assert tb.name.startswith("digits-3v8")


def test_a_registered_task_kind_builds_testbeds():
    """A new task is one TaskKind and one register_task call, from outside the package."""

    def toy_task(n, seed=0, *, n_test=16, source_seed=0):
        rng = np.random.default_rng([source_seed, seed])
        X = rng.standard_normal((n + n_test, 5))
        y = np.where(X[:, 0] > 0, 1.0, -1.0)
        source = np.random.default_rng(source_seed).standard_normal((64, 5))
        info = {"task": "toy", "n": n, "seed": seed}
        return ff.Task(X[:n], y[:n], X[n:], y[n:], source, "toy", info)

    def toy_kwargs(config):
        if config.shift is not None or config.classes is not None:
            raise ValueError("the toy task has no shift and no classes.")
        return 5, {} if config.n_test is None else {"n_test": int(config.n_test)}

    ff.register_task(ff.TaskKind("toy", toy_task, ("source_seed",), toy_kwargs))
    try:
        cfg = ff.TestbedConfig("toy", n=8, pretrain_steps=10, hidden=(4,), features=2)
        fam = ff.pretrained_family(cfg, (0, 10))
        tb = ff.make_testbed(cfg)
        assert tb.X.shape == (8, 5) and tb.X_test.shape == (16, 5) and tb.name == "toy/pre10"
        assert tb.info["task"] == "toy" and tb.p == 5 * 4 + 4 + 4 * 2 + 2 + 3
        np.testing.assert_array_equal(tb.X, fam[1].X)
        assert_close_scaled(tb.w0, fam[1].w0, scale=np.linalg.norm(tb.w0))
        with pytest.raises(ValueError, match="toy"):
            ff.TestbedConfig("toy", shift=1.0)
    finally:
        del ff.TASKS["toy"]


def test_large_testbed_memory_sanity():
    big = ff.make_testbed(
        ff.TestbedConfig(pretrain_steps=0, n=16, n_test=16, hidden=(300, 300), features=32)
    )
    assert big.p == 109_865 >= 1e5
    g = jax.jit(jax.grad(ff.logistic_loss(big)))(big.w0, big.X[0], big.y[0])
    assert g.shape == (big.p,) and g.dtype == F64 and np.all(np.isfinite(g))
    assert np.linalg.norm(g) > 0
