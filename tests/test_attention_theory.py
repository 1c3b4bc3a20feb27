"""Tests of the theorems on the attention testbed's transformer: stabtheory.attention.theory
(float64 copies, the one-logit function, pooled features, the faithfulness on S) and the
attention-theory study (quick spec, end to end)."""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from stabtheory import attention as at
from stabtheory.attention import theory
from stabtheory.bounds.finetune import ft_evidence
from stabtheory.simulations import STUDIES
from stabtheory.simulations.attention_theory import AttentionTheorySpec

TINY = at.EncoderConfig(vocab=8, length=4, width=8, heads=2, layers=1, mlp=8, genres=4)


def _tiny(seed: int = 0) -> at.PretrainModel:
    return at.PretrainModel(TINY, rngs=nnx.Rngs(seed))


def test_encoder_config_refuses_unknown_dtype():
    with pytest.raises(ValueError, match="dtype"):
        at.EncoderConfig(dtype="float16")


def test_float64_model_computes_the_float32_network_in_float64():
    pre32 = at.load_pretrained()
    pre64 = theory.float64_model(pre32)
    tokens = at.make_task(at.DEFAULT_CORPUS, at.TaskConfig(n=8, n_test=2)).X
    f32 = theory.pooled_features(pre32, tokens)
    f64 = theory.pooled_features(pre64, tokens)
    assert f32.dtype == np.float32 and f64.dtype == np.float64
    # same parameters, float32 rounding only
    np.testing.assert_allclose(f64, f32, atol=1e-4)
    assert not np.array_equal(f64, f32.astype(np.float64))  # really computed in float64
    w32 = at.as_function(pre32)[1]
    w64 = at.as_function(pre64)[1]
    assert w64.dtype == np.float64 and np.array_equal(w64, w32.astype(np.float64))


def test_logit_function_gives_the_two_class_cross_entropy():
    pre = theory.float64_model(_tiny())
    apply, w0 = theory.logit_function(pre, head_seed=3)
    clf = at.Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(3))
    X = np.random.default_rng(0).integers(0, TINY.vocab, (5, TINY.length))
    y01 = np.array([0, 1, 1, 0, 1])
    ce = optax.softmax_cross_entropy_with_integer_labels(clf(jnp.asarray(X)), y01)
    margins = jax.vmap(lambda x: apply(jnp.asarray(w0), x))(jnp.asarray(X, jnp.float64))
    logistic = jax.nn.softplus(-(2.0 * y01 - 1.0) * margins)
    np.testing.assert_allclose(logistic, ce, rtol=1e-12, atol=1e-12)
    assert w0.size == at.as_function(clf)[1].size  # encoder, pooler and head; no MLM heads


def test_encoder_at_lengths():
    assert np.array_equal(
        at.as_function(theory.encoder_at(at.DEFAULT.steps)[0])[1],
        at.as_function(at.load_pretrained())[1],
    )
    cfg = dataclasses.replace(at.DEFAULT, sequences=64, batch_size=8, steps=5)
    model, metrics = theory.encoder_at(2, cfg)
    ref, ref_metrics = at.pretrain(dataclasses.replace(cfg, steps=2))
    assert metrics == ref_metrics
    assert np.array_equal(at.as_function(model)[1], at.as_function(ref)[1])
    init, none = theory.encoder_at(0, cfg)
    assert none is None
    # the initialisation pre-training starts from: a one-step run's only step has learning
    # rate 0 (the warmup starts at 0), so it returns the initialisation exactly
    one = at.as_function(at.pretrain(dataclasses.replace(cfg, steps=1))[0])[1]
    assert np.array_equal(one, at.as_function(init)[1])
    assert not np.array_equal(one, at.as_function(model)[1])
    with pytest.raises(ValueError, match="steps"):
        theory.encoder_at(-1)


def test_faithfulness_on_s_agrees_with_the_evidence_real_runs():
    apply, w0 = theory.logit_function(theory.float64_model(_tiny()))
    rng = np.random.default_rng(1)
    X = rng.integers(0, TINY.vocab, (6, TINY.length)).astype(np.float64)
    y = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 1.0])
    ev = ft_evidence(apply, w0, X, y, lam=0.1, steps=(1, 5, 20), real=True)
    from_evidence = theory.faithfulness_on_s(apply, ev)
    alone = dataclasses.replace(ev, w_real=None, real_losses=None, quad_losses=None)
    run_here = theory.faithfulness_on_s(apply, alone)
    # the same GD weights (run here or inside the evidence program) ...
    np.testing.assert_allclose(run_here["departure"], from_evidence["departure"], rtol=1e-9)
    np.testing.assert_allclose(run_here["quad_loss"], from_evidence["quad_loss"], rtol=1e-9)
    # ... and the same losses up to the rounding of two differently compiled float64 programs
    # (measured: about 1e-9 relative on the network's loss)
    np.testing.assert_allclose(run_here["real_loss"], from_evidence["real_loss"], rtol=1e-7)
    np.testing.assert_allclose(run_here["loss_gap"], from_evidence["loss_gap"], atol=1e-7)
    assert from_evidence["departure"] > 0  # a nonlinear network is never exactly quadratic


def test_spec_refuses_what_the_theorems_do_not_cover():
    with pytest.raises(ValueError, match="FT-1/FT-2"):
        AttentionTheorySpec(lam=0.0)
    with pytest.raises(ValueError, match="real_ns"):
        AttentionTheorySpec(ns=(32,), real_ns=(64,))
    with pytest.raises(ValueError, match="even"):
        AttentionTheorySpec(ns=(33,))


def test_quick_spec_end_to_end(tmp_path):
    study = STUDIES["attention-theory"]
    assert not study.default and study.reference_s
    spec = study.spec(quick=True)
    result = study.run(spec)
    part = study.section(result)
    at_section = part["extra"]["attention_theory"]
    # every check row is a BoundCheck summary: a violated rigorous bound counts
    assert part["checks"] and all("violations" in c and "applicable" in c for c in part["checks"])
    assert sum(c["violations"] for c in part["checks"] if c["applicable"]) == 0
    (ft,) = at_section["ft"]
    assert ft["n"] == spec.ns[0] and ft["p"] > 20_000 and ft["lam"] == spec.lam
    theorems = {c["theorem"] for c in ft["checks"] if c["applicable"]}
    assert {"ft.FT1", "ft.FT1c", "ft.FT2"} <= theorems
    assert ft["departure"] > 0 and np.isfinite(ft["loss_gap"])
    lengths = [r["pretrain_steps"] for r in at_section["head"]]
    assert lengths == list(spec.lengths)
    for r in at_section["head"]:
        assert isinstance(r["separable"], bool)
        assert (r["gamma"] is None) == (not r["separable"])
        c1 = next(c for c in r["checks"] if c["theorem"] == "head.C1")
        assert c1["applicable"] and c1["last_step"]["measured"] > 0
    report = {**part["extra"], "checks": part["checks"]}
    text = "\n".join(study.markdown(report))
    assert "The theorems on the attention testbed's transformer" in text and "FT-1" in text
    assert len(study.appendix(report)) == 4 + len(part["checks"])
    names = study.figures(result, tmp_path)
    assert names == ["attention_theory_ft.png", "attention_theory_head.png"]
    assert all(os.path.getsize(tmp_path / n) > 0 for n in names)
