"""Tests of stabtheory.full_finetuning.pretraining: denoising pre-training and its snapshots."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from flax import nnx
from helpers import assert_close_scaled
from jax.flatten_util import ravel_pytree

from stabtheory import full_finetuning as ff


def small_autoencoder(seed=0):
    return ff.DenoisingAutoencoder(
        ff.MLPEncoder(8, (16,), 4, rngs=nnx.Rngs(seed)),
        ff.MLPDecoder(4, (16,), 8, rngs=nnx.Rngs(seed + 1)),
    )


def test_pretraining_lowers_loss_and_is_deterministic():
    X_src = ff.synthetic_source(512, 8)
    ae = small_autoencoder()
    before = ravel_pytree(nnx.state(ae, nnx.Param))[0]
    a = ff.pretrain(ae, X_src, (0, 30, 300), seed=1)
    b = ff.pretrain(small_autoencoder(), X_src, (0, 30, 300), seed=1)
    np.testing.assert_array_equal(ravel_pytree(nnx.state(ae, nnx.Param))[0], before)  # untouched
    assert a.recon_loss[2] < a.recon_loss[1] < a.recon_loss[0]
    np.testing.assert_array_equal(a.recon_loss, b.recon_loss)
    for sa, sb in zip(a.states, b.states, strict=True):
        np.testing.assert_array_equal(ravel_pytree(sa)[0], ravel_pytree(sb)[0])  # same bits
    flat = [ravel_pytree(s)[0] for s in a.states]
    np.testing.assert_array_equal(flat[0], before)  # step 0 is the start
    assert np.linalg.norm(flat[1] - flat[0]) > 0 and np.linalg.norm(flat[2] - flat[1]) > 0
    # another seed gives another run; a snapshot does not depend on the other checkpoints
    c = ff.pretrain(small_autoencoder(), X_src, (0, 300), seed=2)
    assert np.linalg.norm(ravel_pytree(c.states[1])[0] - flat[2]) > 1e-3
    d = ff.pretrain(small_autoencoder(), X_src, (300,), seed=1)
    assert_close_scaled(ravel_pytree(d.states[0])[0], flat[2], scale=np.linalg.norm(flat[2]))


def test_pretrain_config_is_a_frozen_hashable_config():
    cfg = ff.PretrainConfig(lr=1e-3)
    assert cfg == ff.PretrainConfig(1e-3, 128, 0.3) and hash(cfg) == hash(ff.PretrainConfig(1e-3))
    assert dataclasses.asdict(cfg) == {"lr": 1e-3, "batch_size": 128, "noise": 0.3}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 0.1


@pytest.mark.parametrize("steps", [(), (-1, 5), (5, 3)])
def test_pretrain_rejects_bad_steps(steps):
    with pytest.raises(ValueError, match="checkpoint steps"):
        ff.pretrain(small_autoencoder(), ff.synthetic_source(16, 8), steps)
