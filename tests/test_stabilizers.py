"""Tests of the stabilizer study: statistics, verdict rules, the quick study end to end, and a
method registered from this file picked up by the loop and the study."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stabtheory.claims import Verdict
from stabtheory.simulations import stabilizers as S
from stabtheory.stabilizers import (
    Mechanism,
    Method,
    finetune_seeds,
    register_method,
    strip_plot,
    unregister_method,
)
from stabtheory.statistics import brown_forsythe, mean_ratio, std_ratio

WORDS = {"supported", "refuted", "regime-dependent", "inconclusive"}


@pytest.fixture(scope="module")
def quick():
    return S.run_stabilizer_study(S.StabilizerStudySpec.quick())


# --------------------------------------------------------------------------------------------
# Statistics


def test_std_ratio_matches_numpy_and_its_interval_covers_a_known_ratio():
    rng = np.random.default_rng(0)
    b = rng.standard_normal(60)
    a = 3.0 * b[::-1]
    ratio, (lo, hi) = std_ratio(a, b, n_boot=500)
    np.testing.assert_allclose(ratio, np.std(a, ddof=1) / np.std(b, ddof=1), rtol=1e-13)
    np.testing.assert_allclose(ratio, 3.0, rtol=1e-13)
    assert lo < 3.0 < hi
    assert math.isnan(std_ratio(a, np.ones(5))[0])  # no spread in the reference


def test_disagreement_is_the_mean_pairwise_label_disagreement():
    rng = np.random.default_rng(1)
    L = rng.standard_normal((6, 9))
    pairs = [np.mean(np.sign(L[s]) != np.sign(L[t])) for s in range(6) for t in range(6) if s != t]
    np.testing.assert_allclose(S.disagreement(L), np.mean(pairs), rtol=1e-13)
    assert S.disagreement(np.tile(L[:1], (4, 1))) == 0.0
    assert S.disagreement(10.0 * L) == S.disagreement(L)  # scale free


def _fake_study(
    acc_ratio: float, margin_shift: float, plain_class: str = "failures"
) -> S.StabilizerStudy:
    """A study with hand-made per-seed values: only the verdict rules run on it. Plain
    fine-tuning's seeds are classified ``plain_class`` (``"failures"``: the testbed shows the
    phenomenon, its regimes count)."""
    spec = S.StabilizerStudySpec(
        testbeds=("t",), methods=("plain", "mmr", "mhloss", "surt"), n_boot=400, attention=None
    )
    rng = np.random.default_rng(2)
    study = S.StabilizerStudy(spec)
    base = rng.standard_normal(200)
    acc = {"plain": 0.8 + 0.01 * base}
    for m in ("mmr", "mhloss", "surt"):
        acc[m] = 0.8 + 0.01 * acc_ratio * rng.permutation(base)
    study.per_seed["t"] = {
        m: {
            "feature_margin": 0.1 + (margin_shift if m == "mmr" else 0.0) + 0.01 * base,
            "weight_distance": (1.0 - (margin_shift if m == "surt" else 0.0)) + 0.01 * base,
        }
        for m in acc
    }
    curve = np.abs(rng.standard_normal((50, 6))) + 1.0
    study.mechanisms["t"] = {
        "mhloss": {
            "features": "test",
            "K": 5,
            "area_ratio": 1.0 - margin_shift,
            "area_ratio_ci": [1.0 - margin_shift - 0.01, 1.0 - margin_shift + 0.01],
            "error_single": curve.mean(0).tolist(),
            "error_multi": ((1 - margin_shift) * curve).mean(0).tolist(),
        }
    }
    for m, a in acc.items():
        ratio, ci = std_ratio(a, acc["plain"], n_boot=400)
        study.configs.append(
            {
                "testbed": "t",
                "method": m,
                "acc_std": float(np.std(a, ddof=1)),
                "std_ratio": ratio,
                "std_ratio_ci": list(ci),
                "bf_p": brown_forsythe(a, acc["plain"]),
                "disagreement": 0.1 * acc_ratio,
                "disagreement_ratio": acc_ratio,
                "disagreement_ratio_ci": [0.9 * acc_ratio, 1.1 * acc_ratio],
                "classification": plain_class if m == "plain" else "failures",
            }
        )
    return study


@pytest.mark.parametrize(
    ("acc_ratio", "shift", "expected"),
    [
        (0.5, 0.3, "supported"),  # mechanism as predicted, spread halved
        (2.0, 0.3, "refuted"),  # mechanism as predicted, spread doubled
        (0.5, -0.3, "supported"),  # the mechanism alone decides nothing (symmetric rule)
        (2.0, -0.3, "refuted"),  # ... either way
        (1.0, 0.3, "inconclusive"),  # mechanism works, spread unchanged
        (1.0, -0.3, "inconclusive"),  # a mechanism moving the wrong way alone does not refute
    ],
)
def test_verdict_rules(acc_ratio, shift, expected):
    verdicts = S.judge_claims(_fake_study(acc_ratio, shift))
    assert [v.claim for v in verdicts] == ["mmr", "mhloss", "surt"]
    for v in verdicts:
        assert v.verdict == expected, (v.claim, v.explanation)
        assert {r.regime for r in v.regimes} == {"t, test accuracy", "t, test predictions"}
        assert all(r.counted for r in v.regimes)
        want = "as predicted" if shift > 0 else "opposite"
        assert all(r.mechanism_verdict == want for r in v.regimes)


def test_a_testbed_without_failed_runs_is_shown_not_counted():
    # Plain fine-tuning never fails on it: the claim is not judged there, whatever the spread.
    for acc_ratio in (0.5, 2.0):
        for v in S.judge_claims(_fake_study(acc_ratio, 0.3, plain_class="stable")):
            assert v.verdict == "inconclusive", v.explanation
            assert not any(r.counted for r in v.regimes)
            assert all("not counted" in r.regime for r in v.regimes)
            assert "no counted regime" in v.explanation


# --------------------------------------------------------------------------------------------
# The quick study, end to end


def test_quick_study_rows_verdicts_report_and_figures(quick, tmp_path):
    spec = quick.spec
    assert len(quick.configs) == len(spec.testbeds) * len(spec.methods)
    assert spec.seeds >= 20
    for task in spec.testbeds:
        plain = quick.row(task, "plain")
        assert plain["std_ratio"] == pytest.approx(1.0)
        assert quick.row(task, "head_only")["weight_distance"] == 0.0
        assert (
            quick.row(task, "surt")["weight_distance_w0"]
            != quick.row(task, "surt")["weight_distance"]
        )
        for row in quick.configs:
            assert 0.0 <= row["acc_mean"] <= 1.0
            lo, hi = row["std_ratio_ci"]
            assert lo <= row["std_ratio"] <= hi or row["method"] == "plain"
    assert [v.claim for v in quick.verdicts] == ["mmr", "mhloss", "surt"]
    arms = spec.attention.arms()
    for v in quick.verdicts:
        assert isinstance(v, Verdict)
        assert v.notion == "seed.std" and v.verdict in WORDS
        attention = 4 * sum(a.method == v.claim for a in arms)  # 2 regimes x 2 endpoints
        assert len(v.regimes) == 2 * len(spec.testbeds) + attention
        assert "Brown-Forsythe" in v.explanation and "ratio" in v.explanation
        for r in v.regimes:
            assert r.verdict in {"supported", "refuted", "inconclusive"}
            assert r.mechanism_verdict in {"as predicted", "opposite", "no detectable change"}
    report = S.to_report(quick)
    text = json.dumps(report, allow_nan=False)  # strict JSON: NaN became null
    assert json.loads(text)["verdicts"][0]["id"] == "mmr"
    assert "runtime_s" not in report  # the report is identical whatever the timings
    names = S.figures(quick, tmp_path)
    assert {"stabilizers_mmr.png", "stabilizers_mhloss.png", "stabilizers_surt.png"} <= set(names)
    assert {v.figure for v in quick.verdicts} <= set(names)
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# A method registered from this file alone: a loss term, a seed measure, a mechanism, a panel


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FeatureNormPenalty:
    """A toy loss term: ``weight`` times the mean squared norm of the batch's features."""

    weight: float

    def __call__(self, features, y):
        return self.weight * jnp.mean(jnp.sum(features**2, axis=-1))


def feature_norm(features: np.ndarray) -> np.ndarray:
    """Per seed, the mean norm of the final training features (S, n, k) -> (S,)."""
    return np.linalg.norm(features, axis=-1).mean(axis=-1)


@dataclasses.dataclass(frozen=True)
class ShrinkFeatures(Method):
    """A toy stabilizer: the feature-norm penalty; mechanism: smaller features than plain's."""

    name: str = "toy_shrink"
    weight: float = 10.0
    claim: ClassVar[str] = "shrinking the features raises stability"

    def settings(self, base):
        term = FeatureNormPenalty(self.weight)
        return dataclasses.replace(base, name=self.name, terms=(*base.terms, term))

    def seed_measures(self, runs, testbed):
        return {"feature_norm": feature_norm(runs.train_features)}

    def mechanism(self, c):
        a, b = c.values(self.name, "feature_norm"), c.values(c.reference, "feature_norm")
        est, ci = mean_ratio(a, b, n_boot=c.n_boot, level=c.level)
        text = f"feature norm ratio {est:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
        return Mechanism(est, ci, 1.0, -1, text, [float(b.mean()), float(a.mean())])

    def draw(self, ax, c, rng):
        values = [c.values(m, "feature_norm") for m in c.methods]
        strip_plot(ax, values, c.methods, "mean feature norm", rng)
        ax.set_title(f"{c.testbed}: feature norm per method", fontsize=9)


@pytest.fixture
def toy():
    method = register_method(ShrinkFeatures())
    try:
        yield method
    finally:
        unregister_method(method.name)


def test_a_method_registered_in_a_test_runs_through_the_loop_and_the_study(toy, tmp_path):
    # Registered: the default specs run it, after the built-in methods.
    assert S.StabilizerStudySpec.quick().methods[-1] == toy
    spec = S.StabilizerStudySpec(
        testbeds=("synthetic",),
        n=16,
        n_test=32,
        hidden=(8,),
        features=3,
        pretrain_steps=20,
        methods=("plain", "toy_shrink"),
        seeds=8,
        steps=40,
        batch_size=8,
        n_boot=100,
        attention=None,
    )
    # The shared loop runs it by name, with its loss term in the objective.
    tb = spec.testbed("synthetic")
    settings = spec.method_configs()["toy_shrink"]
    assert settings.terms == (FeatureNormPenalty(10.0),)
    shrunk = finetune_seeds(tb, "toy_shrink", seeds=4)
    plain = finetune_seeds(tb, "plain", seeds=4)
    assert shrunk.settings.terms == settings.terms
    assert np.all(feature_norm(shrunk.train_features) < feature_norm(plain.train_features))

    # The study measures every method with its hook, judges its claim and draws its figure.
    study = S.run_stabilizer_study(spec)
    assert [r["method"] for r in study.configs] == ["plain", "toy_shrink"]
    assert study.row("synthetic", "toy_shrink")["settings"]["terms"] == [repr(settings.terms[0])]
    assert "terms" not in study.row("synthetic", "plain")["settings"]
    for name in ("plain", "toy_shrink"):
        assert study.per_seed["synthetic"][name]["feature_norm"].shape == (spec.seeds,)
    (v,) = study.verdicts
    assert v.claim == "toy_shrink" and v.figure == "stabilizers_toy_shrink.png"
    assert v.verdict in WORDS and len(v.regimes) == 2
    assert all(r.mechanism.startswith("feature norm ratio") for r in v.regimes)
    assert all(r.mechanism_verdict == "as predicted" for r in v.regimes)
    report = json.loads(json.dumps(S.to_report(study), allow_nan=False))
    assert report["verdicts"][0]["id"] == "toy_shrink"
    assert [m["name"] for m in report["spec"]["methods"]] == ["plain", "toy_shrink"]
    names = S.figures(study, tmp_path)
    assert "stabilizers_toy_shrink.png" in names
    assert (tmp_path / "stabilizers_toy_shrink.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_toy_method_is_gone_after_the_test():
    assert "toy_shrink" not in [m.name for m in S.StabilizerStudySpec().methods]
