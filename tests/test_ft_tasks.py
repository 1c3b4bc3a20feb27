"""Tests of the fine-tuning tasks: synthetic, digits (offline) and the task registry."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from stabtheory import full_finetuning as ff

F64 = np.float64


def test_synthetic_task():
    t = ff.synthetic_task(400, 8, shift=0.0, seed=3, n_test=50)
    assert t.X.shape == (400, 8) and t.X_test.shape == (50, 8) and t.y_test.shape == (50,)
    assert t.X.dtype == t.y.dtype == F64
    assert set(np.unique(t.y)) == {-1.0, 1.0}
    assert abs(t.y.mean()) < 0.15  # P(y = 1) = 1/2: 3 standard deviations at n = 400
    assert abs(ff.synthetic_task(400, 8, rule="linear", seed=3).y.mean()) < 0.15
    np.testing.assert_array_equal(t.X, ff.synthetic_task(400, 8, shift=0.0, seed=3, n_test=50).X)
    other = ff.synthetic_task(400, 8, shift=0.0, seed=4, n_test=50)
    assert np.abs(other.X - t.X).max() > 0.1
    np.testing.assert_array_equal(other.X_source, t.X_source)  # the source ignores seed and n
    # the shift moves every input by the same vector of norm shift * sqrt(d_in)
    moved = ff.synthetic_task(400, 8, shift=2.0, seed=3, n_test=50)
    np.testing.assert_array_equal(moved.y, t.y)
    diff = moved.X - t.X
    np.testing.assert_allclose(diff, np.broadcast_to(diff[0], diff.shape), atol=1e-13)
    np.testing.assert_allclose(np.linalg.norm(diff[0]), 2.0 * np.sqrt(8), rtol=1e-12)
    noisy = ff.synthetic_task(400, 8, shift=0.0, seed=3, n_test=50, label_noise=0.3)
    assert 0.15 < np.mean(noisy.y != t.y) < 0.45


def test_digits_tasks_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("digits_task tried to use the network")

    monkeypatch.setattr(socket, "socket", no_network)
    ff.load_digits.cache_clear()
    t = ff.digits_task(64, (3, 8), seed=0)
    assert t.X.shape == (64, 64) and t.X_test.shape[1] == 64 and t.X_source.shape[1] == 64
    assert 0.0 <= t.X.min() and t.X.max() <= 1.0 and t.X.dtype == F64
    assert abs(t.y.mean()) < 0.35 and set(np.unique(t.y)) == {-1.0, 1.0}
    assert t.X_test.shape[0] == t.info["n_test"] > 100
    # train, test and source pools are disjoint
    rows = {r.tobytes() for r in t.X}
    assert not rows & {r.tobytes() for r in t.X_test}
    for classes in ["even_odd", 3]:
        u = ff.digits_task(100, classes, seed=1, n_test=80)
        assert u.X.shape == (100, 64) and u.X_test.shape == (80, 64)
        assert abs(u.y.mean()) < 0.35 and abs(u.y_test.mean()) < 0.4
    s = ff.digits_task(32, (1, 7), standardize=True)
    assert np.abs(s.X_source.mean(0)).max() < 1e-12
    # the source pool does not depend on the task's n or seed
    np.testing.assert_array_equal(ff.digits_task(10, (0, 1), seed=5).X_source, t.X_source)
    with pytest.raises(ValueError, match="task pool"):
        ff.digits_task(10_000, (3, 8))
    with pytest.raises(ValueError):
        ff.digits_task(10, (3, 3))


def test_builtin_task_kinds_are_registered():
    assert set(ff.TASKS) >= {"synthetic", "digits"}
    kind = ff.TASKS["synthetic"]
    assert kind.make is ff.synthetic_task and "source_seed" in kind.source_kwargs
    t = kind.task((("d_in", 8), ("n_test", 5)), n=6, seed=1)
    np.testing.assert_array_equal(t.X, ff.synthetic_task(6, 8, seed=1, n_test=5).X)
    np.testing.assert_array_equal(kind.source_pool((("d_in", 8),)), ff.synthetic_source(4096, 8))
    with pytest.raises(ValueError, match="already registered"):
        ff.register_task(kind)
