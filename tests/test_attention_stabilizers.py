"""Tests of the stabilizer study on the attention testbed: the paired multi-arm program, SURT's
masked-token re-training, the primary-endpoint statistics, the symmetric verdict rule, the
designs and the attention part of the study end to end."""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import jax_compilations
from scipy.stats import binomtest

from stabtheory import attention as A
from stabtheory.attention.arms import Runs, body_mask, finetune_arms, network
from stabtheory.attention.surt import masked_retraining
from stabtheory.simulations import stabilizers as S
from stabtheory.simulations.stabilizers import attention as att

N, N_TEST, K, STEPS, BS = 32, 40, 3, 8, 8


@pytest.fixture(scope="module")
def tiny():
    """The shipped encoder on a small task; 6 runs: plain, MMR and MHLoss for seeds 0 and 1."""
    data = A.make_task(A.DEFAULT_CORPUS, A.TaskConfig("genre", N, N_TEST, 0.0, 3))
    clf = A.load_classifier()
    net, w = network(clf, K)
    return clf, data, net, w[None]


def _runs(alpha=(0.0, 0.5, 0.0), heads=(1, 1, K), seeds=(0, 1), weights=None):
    arms = len(alpha)
    hw = np.zeros((arms * len(seeds), K), np.float32)
    for r in range(arms * len(seeds)):
        hw[r, : heads[r % arms]] = 1.0 / heads[r % arms]
    R = arms * len(seeds)
    w = np.ones((R, N), np.float32) if weights is None else weights
    return Runs(
        jnp.zeros(R, jnp.int32),
        jnp.asarray(np.tile(alpha, len(seeds)), jnp.float32),
        jnp.asarray(hw),
        jnp.asarray(np.repeat(seeds, arms), jnp.int32),
        jnp.asarray(w),
    )


def _fit(tiny, runs, *, steps=STEPS, target=0.5, y=None):
    clf, data, net, starts = tiny
    recipe = A.Recipe.make(3e-3, steps, 0.1, False)
    y = data.y if y is None else y
    return finetune_arms(
        clf, starts, data.X, y, data.X_test, data.y_test, recipe, runs, K=K, target=target,
        window=2, batch_size=BS, net=net, feature_runs=2,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The paired program


def test_plain_arm_is_finetune_seeds_and_seeds_are_paired_across_arms(tiny):
    clf, data, _, _ = tiny
    out = _fit(tiny, _runs())
    ref = A.finetune_seeds(
        clf, data.X, data.y, data.X_test, data.y_test, A.Recipe.make(3e-3, STEPS, 0.1, False), 2,
        batch_size=BS,
    )  # fmt: skip
    plain = out.test_accuracy[[0, 3]]
    np.testing.assert_allclose(plain, ref.test_accuracy, atol=1.5 / N_TEST)
    np.testing.assert_allclose(out.train_loss[[0, 3]], ref.train_loss, rtol=1e-3)
    # before any step, every arm of one seed holds the same head 0 (pairing); MMR's alpha does
    # not enter the weights, MHLoss adds its own heads; another seed is another head
    start = _fit(tiny, _runs(), steps=0)
    np.testing.assert_array_equal(start.test_pred[0], start.test_pred[1])
    np.testing.assert_array_equal(start.body[0], start.body[4])
    assert not np.array_equal(start.test_pred[0], start.test_pred[3])
    # training separates them
    assert not np.array_equal(out.body[0], out.body[1])


def test_doses_targets_and_masks_are_traced_one_compilation(tiny):
    _fit(tiny, _runs())
    with jax_compilations() as events:
        _fit(tiny, _runs(alpha=(0.0, 2.0, 0.0)), steps=STEPS + 2, target=0.1)
    assert events == []
    with jax_compilations() as first:
        _fit(tiny, _runs(alpha=(0.0, 2.0)))  # fewer runs: a new shape compiles
    assert first


def test_a_zero_weight_leaves_the_example_out(tiny):
    # Leave-one-out as a mask: with weight 0 the example's label does not matter.
    _, data, _, _ = tiny
    weights = np.ones((6, N), np.float32)
    weights[:, 5] = 0.0
    flipped = data.y.copy()
    flipped[5] = 1 - flipped[5]
    a = _fit(tiny, _runs(weights=weights))
    b = _fit(tiny, _runs(weights=weights), y=flipped)
    np.testing.assert_array_equal(a.body, b.body)
    np.testing.assert_array_equal(a.test_pred, b.test_pred)
    full = _fit(tiny, _runs())
    assert not np.array_equal(a.body, full.body)


def test_loss_target_freezes_in_the_same_scan(tiny):
    easy = _fit(tiny, _runs(), target=1e3)  # reached at the first window (2 steps)
    assert easy.reached.all() and (easy.reach_step == 2).all()
    assert not np.array_equal(easy.body_target, easy.body)
    never = _fit(tiny, _runs(), target=-1.0)
    assert not never.reached.any() and (never.reach_step == STEPS).all()
    np.testing.assert_array_equal(never.body_target, never.body)
    np.testing.assert_array_equal(never.test_accuracy_target, never.test_accuracy)


def test_body_mask_leaves_out_the_head(tiny):
    clf = tiny[0]
    mask = body_mask(clf)
    head = clf.head.kernel[...].size + clf.head.bias[...].size
    assert mask.size - mask.sum() == head
    assert not (mask & A.head_mask(clf)).any()


def test_masked_retraining_snapshots_are_the_shorter_runs():
    cfg = A.EncoderConfig(length=4, vocab=12, width=8, mlp=8)
    pre = A.PretrainModel(cfg, rngs=nnx.Rngs(0))
    X = np.random.default_rng(0).integers(0, 12, (16, 4))
    key = jax.random.key(3)
    (at2, at4), loss = masked_retraining(pre, X, (2, 4), key=key, batch_size=4)
    (only2,), _ = masked_retraining(pre, X, (2,), key=key, batch_size=4)
    w = [A.as_function(c)[1] for c in (at2, at4, only2)]
    np.testing.assert_array_equal(w[0], w[2])
    assert not np.array_equal(w[0], w[1]) and loss.shape == (4,)
    w0 = A.as_function(A.Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(0)))[1]
    assert not np.array_equal(w0, w[0])  # the input model is re-trained, not the snapshot
    with pytest.raises(ValueError, match="increasing"):
        masked_retraining(pre, X, (4, 2), key=key)


# --------------------------------------------------------------------------------------------
# Statistics of the primary endpoint


def test_paired_failures_is_mcnemar_on_the_pooled_discordant_pairs():
    rng = np.random.default_rng(0)
    plain = rng.random((5, 30)) < 0.3
    arm = np.where(rng.random((5, 30)) < 0.6, False, plain)  # the arm rescues some seeds
    arm |= rng.random((5, 30)) < 0.03
    r = att.paired_failures(plain, arm, n_boot=500)
    b, c = int(np.sum(plain & ~arm)), int(np.sum(~plain & arm))
    assert (r["b"], r["c"]) == (b, c)
    np.testing.assert_allclose(r["p"], binomtest(b, b + c, 0.5).pvalue, rtol=1e-12)
    assert r["ratio"] == arm.sum() / plain.sum()
    lo, hi = r["ratio_ci"]
    assert lo <= r["ratio"] <= hi < 1.0
    same = att.paired_failures(plain, plain, n_boot=100)
    assert same["p"] == 1.0 and same["ratio"] == 1.0


@pytest.mark.parametrize(
    "b,c,a", [(0, 0, 3), (6, 0, 0), (0, 5, 2), (9, 2, 4), (3, 3, 0), (1, 7, 1)]
)
def test_conditional_ratio_interval_inverts_mcnemar_and_never_collapses(b, c, a):
    # a concordant failures, b plain-only, c arm-only, the rest of 40 pairs fail in neither
    plain = np.zeros(40, bool)
    arm = np.zeros(40, bool)
    plain[:a] = arm[:a] = True
    plain[a : a + b] = True
    arm[a + b : a + b + c] = True
    lo, hi = att.conditional_ratio_interval(plain[None], arm[None])
    if b + c == 0:
        assert (lo, hi) == (1.0, 1.0)
        return
    ratio = (a + c) / (a + b) if a + b else math.inf
    assert lo <= ratio <= hi and lo < hi  # a count of 0 still gives an interval
    rejects = binomtest(b, b + c, 0.5).pvalue <= 0.05
    assert rejects == (hi < 1.0 or lo > 1.0)
    # the reported interval holds the exact one and the bootstrap's
    r = att.paired_failures(plain[None], arm[None], n_boot=300)
    assert r["ratio_ci"][0] <= lo and r["ratio_ci"][1] >= hi


def test_log_std_ratio_combines_draws_by_a_t_interval():
    rng = np.random.default_rng(1)
    plain = rng.standard_normal((6, 40))
    arm = 0.5 * rng.standard_normal((6, 40))
    r = att.log_std_ratio(plain, arm)
    per = np.log(arm.std(axis=1, ddof=1) / plain.std(axis=1, ddof=1))
    np.testing.assert_allclose(r["per_draw"], per, rtol=1e-12)
    np.testing.assert_allclose(r["ratio"], np.exp(per.mean()), rtol=1e-12)
    lo, hi = r["ratio_ci"]
    assert lo < r["ratio"] < hi < 1.0 and r["p"] < 0.01
    assert math.isnan(att.log_std_ratio(plain[:1], arm[:1])["p"])  # one draw: no interval


# --------------------------------------------------------------------------------------------
# The verdict rule on hand-made draws


def _fake(spec, *, arm_fail: float, arm_spread: float, mechanism: float, plain_fail=0.3):
    """An assembled attention study with hand-made seeds (every arm as ``mmr@0.3`` says)."""
    rng = np.random.default_rng(4)
    D, S_ = spec.draws, spec.seeds
    u = rng.random((D, S_))
    base = rng.standard_normal((D, S_))

    def arm_values(fail, spread, shift):
        acc = 0.7 + 0.03 * spread * rng.permutation(base.ravel()).reshape(D, S_)
        acc = np.where(u < fail, 0.5, acc)
        return {
            "test_accuracy": acc,
            "test_accuracy_target": acc,
            "test_pred": (rng.random((D, S_, 20)) < 0.5).astype(np.int8),
            "test_pred_target": (rng.random((D, S_, 20)) < 0.5).astype(np.int8),
            "train_loss": np.where(acc <= 0.51, 0.693, 0.5),
            "train_accuracy": acc,
            "centroid_distance": 0.5 + shift + 0.01 * base,
            "reached": acc > 0.51,
            "reach_step": np.full((D, S_), 50.0) - 10 * shift,
            "distance_start": 3.0 - shift + 0.01 * base,
            "distance_start_target": 2.0 - shift + 0.01 * base,
            "separable": np.zeros((D, 2), bool),
            "margin_subset": np.full((D, 2), 0.01 + shift),
            "loo_flip": np.full((D, 1), 0.05),
            "loo_distance": np.ones((D, 1)),
            "loo_accuracy": np.zeros((D, 1)),
        }

    arms = {}
    for a in spec.arms():
        plain = a.method == "plain"
        values = arm_values(
            plain_fail if plain else arm_fail, 1.0 if plain else arm_spread,
            0.0 if plain else mechanism,
        )  # fmt: skip
        arms[a.name] = {"method": a.method, "dose": a.dose, "primary": a.primary, **values}
    return {
        "arms": arms,
        "majority": np.full(D, 0.5),
        "surt_doses": list(spec.surt_doses),
        "surt_distance": [[0.3] * len(spec.surt_doses)] * D,
        "margin_subset": spec.margin_subset,
    }


SPEC = dataclasses.replace(att.AttentionSpec.quick(), draws=att.MIN_DRAWS, seeds=40)


@pytest.mark.parametrize(
    ("arm_fail", "arm_spread", "mechanism", "expected"),
    [
        (0.05, 1.0, 0.2, "supported"),  # failures rescued
        (0.3, 1.0, 0.2, "inconclusive"),  # the mechanism alone (as predicted) does not support
        (0.6, 1.0, 0.2, "refuted"),  # more failures: refuted even with the mechanism working
        (0.3, 1.0, -0.2, "inconclusive"),  # the mechanism alone (the wrong way) does not refute
        (0.05, 1.0, -0.2, "supported"),  # ... nor block a supported endpoint
    ],
)
def test_symmetric_rule_the_endpoint_decides(arm_fail, arm_spread, mechanism, expected):
    study = _fake(SPEC, arm_fail=arm_fail, arm_spread=arm_spread, mechanism=mechanism)
    table = att.arm_table(study, SPEC.level, 300)
    for method in ("mmr", "mhloss", "surt"):
        regimes = att.attention_regimes(study, method, SPEC, table)
        counted = [r for r in regimes if r.counted]
        assert len(counted) == 4 and {r.runs for r in counted} == {counted[0].runs}
        words = {r.verdict for r in counted} - {"inconclusive"}
        assert words == ({expected} - {"inconclusive"}), [(r.regime, r.p_holm) for r in counted]
        for r in counted:
            assert r.replicates == SPEC.draws and r.seeds == SPEC.seeds
            assert r.mechanism_verdict == ("as predicted" if mechanism > 0 else "opposite")
            assert r.p_holm >= r.p_value
            json.dumps(r.to_dict(), allow_nan=False)


def test_fewer_than_ten_draws_are_not_counted():
    """docs/theory.md section 6: a claim is about the algorithm, so a regime counts only with
    at least MIN_DRAWS (10) data draws, whatever its effect (here failures all rescued)."""
    few = dataclasses.replace(SPEC, draws=att.MIN_DRAWS - 1)
    study = _fake(few, arm_fail=0.05, arm_spread=1.0, mechanism=0.2)
    table = att.arm_table(study, few.level, 300)
    for method in ("mmr", "mhloss", "surt"):
        regimes = att.attention_regimes(study, method, few, table)
        assert not any(r.counted for r in regimes)
        primary = [r for r in regimes if "secondary" not in r.regime]
        assert primary and all("fewer than 10" in r.regime for r in primary)


def test_no_failures_in_plain_means_not_counted():
    study = _fake(SPEC, arm_fail=0.0, arm_spread=0.4, mechanism=0.2, plain_fail=0.0)
    table = att.arm_table(study, SPEC.level, 300)
    plain = next(r for r in table if r["arm"] == "plain")
    assert plain["classification"] == "stable"
    regimes = att.attention_regimes(study, "mmr", SPEC, table)
    assert not any(r.counted for r in regimes)
    assert all("not counted" in r.regime for r in regimes if "secondary" not in r.regime)


# --------------------------------------------------------------------------------------------
# Designs


def test_a_draw_pretrains_its_own_encoder_when_asked():
    from stabtheory.simulations.stabilizers.attention.compute import pretrained_model

    spec = dataclasses.replace(att.AttentionSpec.quick(), pretrain_draws=True, pretrain_steps=2)
    shipped = A.as_function(A.load_classifier())[1]

    def weights(pre):
        return A.as_function(A.Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(0)))[1]

    np.testing.assert_array_equal(weights(pretrained_model(spec, 0)), shipped)  # draw 0: shipped
    own = weights(pretrained_model(spec, 1))
    assert own.shape == shipped.shape and not np.allclose(own, shipped)
    shared = dataclasses.replace(spec, pretrain_draws=False)
    np.testing.assert_array_equal(weights(pretrained_model(shared, 1)), shipped)


def test_designs_cpu_default_full_and_flops():
    cpu, acc = att.AttentionSpec(), att.AttentionSpec.full()
    assert acc.draws >= 10 and acc.seeds >= 50 and acc.pretrain_draws
    assert [a.name for a in acc.arms()] == [a.name for a in cpu.arms()]
    assert {a.method for a in cpu.arms() if a.primary} == {"mmr", "mhloss", "surt"}
    size = cpu.size()
    assert size["paired_seeds_per_arm"] == cpu.draws * cpu.seeds
    assert size["fine_tuning_runs"] == cpu.draws * len(cpu.arms()) * (
        cpu.seeds + cpu.loo_seeds * cpu.loo_points
    )
    f = acc.flops()
    assert f["pretraining"] > 0 and cpu.flops()["pretraining"] == 0
    assert f["total"] == pytest.approx(sum(v for k, v in f.items() if k != "total"))
    with pytest.raises(ValueError, match="primary"):
        att.AttentionSpec(mmr_primary=0.7)


def test_flop_count_matches_xla_cost_analysis_of_a_forward():
    # The analytic count of one sequence's forward against XLA's count of a batch's.
    clf = A.load_classifier()
    apply, w, _ = A.as_function(clf)
    X = jnp.zeros((64, 16), jnp.int32)
    cost = jax.jit(apply).lower(jnp.asarray(w), X).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    one = dataclasses.replace(
        att.AttentionSpec(), draws=1, seeds=2, loo_seeds=0, margin_seeds=0, n=16, n_test=24
    )
    per_seq = one.flops()["evaluation"] / (
        (one.n + 2 * one.n_test) * one.size()["fine_tuning_runs"]
    )
    assert 0.7 < cost["flops"] / (64 * per_seq) < 1.5


# --------------------------------------------------------------------------------------------
# The attention part of the study, end to end


@pytest.fixture(scope="module")
def study():
    spec = S.StabilizerStudySpec(
        testbeds=(), methods=("plain", "mmr", "mhloss", "surt"), attention=att.AttentionSpec.quick()
    )
    return S.run_stabilizer_study(spec)


def test_study_regimes_report_and_figure(study, tmp_path):
    a = study.spec.attention
    assert [v.claim for v in study.verdicts] == ["mmr", "mhloss", "surt"]
    for v in study.verdicts:
        assert v.replicates == a.draws
        assert {r.runs for r in v.regimes if r.counted} <= {f"attention {a.primary(v.claim).name}"}
    assert study.attention["arms"]["plain"]["test_accuracy"].shape == (a.draws, a.seeds)
    rows = study.attention_table
    assert len(rows) == 2 * len(a.arms())
    for r in rows:
        lo, hi = r["failure_ci"]
        assert lo <= r["failure_rate"] <= hi and r["seeds"] == a.draws * a.seeds
    report = json.loads(json.dumps(S.to_report(study), allow_nan=False))
    entry = report["attention"]
    assert entry["design"]["draws"] == a.draws
    assert entry["design"]["full"]["draws"] >= 10
    assert entry["design"]["full"]["flops"]["total"] > entry["design"]["flops"]["total"]
    assert set(entry["mechanisms"]) == {x.name for x in a.arms() if x.method != "plain"}
    text = "\n".join(S.markdown({"stabilizers": report}))
    assert "Stabilizers on the attention testbed" in text
    # the quick design shares the shipped checkpoint: every regime and the section say so
    assert "verdicts are about fine-tuning that checkpoint" in text
    regimes = [r.to_dict() for v in study.verdicts for r in v.regimes]
    regimes = json.loads(json.dumps([r for r in regimes if r.get("testbed")], allow_nan=False))
    assert regimes and {r["pretraining"] for r in regimes} == {"shared"}
    assert {r["statistic"]["test"] for r in regimes} == {"McNemar exact", "t over draws"}
    names = S.figures(study, tmp_path)
    assert names == ["stabilizers_attention.png"]
    assert (tmp_path / names[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {v.figure for v in study.verdicts} == {"stabilizers_attention.png"}
