"""Tests of stabtheory.full_finetuning.networks: backbones as pure functions of flat weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import tol

from stabtheory import full_finetuning as ff

F64 = np.float64


@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_apply_matches_module_forward(activation):
    rngs = nnx.Rngs(3)
    clf = ff.Classifier(ff.MLPEncoder(5, (7, 6), 3, activation=activation, rngs=rngs), rngs=rngs)
    X = np.random.default_rng(0).standard_normal((9, 5))
    apply, w, _ = ff.as_function(clf)
    assert w.dtype == F64 and w.shape == (5 * 7 + 7 + 7 * 6 + 6 + 6 * 3 + 3 + 3 + 1,)
    ours = jax.vmap(apply, in_axes=(None, 0))(w, X)
    theirs = clf(jnp.asarray(X))
    assert ours.shape == theirs.shape == (9,)
    np.testing.assert_allclose(ours, theirs, rtol=tol(F64), atol=tol(F64))
    # gradients in x agree too (apply is differentiable in both arguments)
    gx = jax.grad(apply, argnums=1)(w, jnp.asarray(X[0]))
    np.testing.assert_allclose(gx, jax.grad(clf)(jnp.asarray(X[0])), rtol=1e-10, atol=1e-14)


def test_default_sizes():
    arch = ff.Architecture(32, (32, 32), 8, "tanh")
    _, unravel, _ = ff.classifier_functions(arch)
    p = sum(x.size for x in jax.tree.leaves(unravel(jnp.zeros(2385))))
    assert p == 2385


def test_architecture_is_a_hashable_config():
    a = ff.Architecture(8, [16, 4], 3)
    assert a == ff.Architecture(8, (16, 4), 3, "tanh") and a.hidden == (16, 4)
    assert hash(a) == hash(ff.Architecture(8, (16, 4), 3))
    assert ff.classifier_functions(a) is ff.classifier_functions(ff.Architecture(8, (16, 4), 3))
    with pytest.raises(ValueError, match="activation"):
        ff.Architecture(8, (16,), 3, "relu")
    # the same seed builds the same weights; the classifier's encoder is the autoencoder's
    w_a = ff.as_function(a.classifier(1))[1]
    np.testing.assert_array_equal(w_a, ff.as_function(a.classifier(1))[1])
    enc = a.autoencoder(1).encoder
    np.testing.assert_array_equal(ff.as_function(a.classifier(1, enc))[1], w_a)
    assert np.abs(ff.as_function(a.classifier(2))[1] - w_a).max() > 1e-3
