"""Tests of stabtheory.statistics and the verdict rules built on it (docs/theory.md section 6)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st_h

from stabtheory import elasticities as el
from stabtheory import statistics as st
from stabtheory.claims import HEAD_CLAIMS, RegimeVerdict, combine, verdict

X = [1.0, 2.0, 4.0, 8.0]


def _kendall_brute(x, y) -> float:
    """Kendall tau-b by the O(n^2) definition."""
    conc = disc = tx = ty = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if sx == 0 and sy == 0:
                continue
            if sx == 0:
                tx += 1
            elif sy == 0:
                ty += 1
            elif sx == sy:
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / denom if denom > 0 else 0.0


@pytest.mark.parametrize("seed", range(8))
def test_kendall_tau_matches_a_brute_force_loop_with_ties(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, 11).astype(float)  # many ties in x
    Y = rng.integers(0, 5, (6, 11)).astype(float)  # and in y, six rows at once
    taus = st.kendall_tau(x, Y)
    for y, tau in zip(Y, taus, strict=True):
        assert tau == pytest.approx(_kendall_brute(x, y), abs=1e-12)
    assert st.kendall_tau(x, Y[0]) == pytest.approx(_kendall_brute(x, Y[0]), abs=1e-12)
    assert st.kendall_tau(x, np.ones(11)) == 0.0  # y constant: no untied pair


@pytest.mark.parametrize(("up", "down", "ties"), [(0, 0, 2), (1, 0, 0), (3, 1, 1), (7, 3, 0)])
def test_sign_test_p_value_is_the_brute_force_binomial_sum(up, down, ties):
    values = [0.3] * up + [-0.2] * down + [0.0] * ties
    t = st.sign_test(values)
    assert (t.up, t.down, t.ties) == (up, down, ties)
    n = up + down
    # Brute force: enumerate every sign pattern of n fair coins; the p-value is the share of
    # patterns at least as unbalanced as the observed one.
    extreme = sum(
        abs(sum(signs)) >= abs(up - down) for signs in itertools.product((-1, 1), repeat=n)
    )
    assert t.p == pytest.approx(extreme / 2**n, rel=1e-12)
    binom = min(1.0, 2 * sum(math.comb(n, k) for k in range(min(up, down) + 1)) / 2**n)
    assert t.p == pytest.approx(binom, rel=1e-12)


def _disagreeing_draws(draws: int = 10, n: int = 30, seed: int = 0) -> list[np.ndarray]:
    """Half the draws rise along X and half fall, with tiny within-draw noise."""
    rng = np.random.default_rng(seed)
    up = np.arange(draws) % 2 == 0
    per_config = []
    for k in range(len(X)):
        level = np.where(up, 1.0 + 0.5 * k, 1.0 + 0.5 * (len(X) - 1 - k))  # (draws,)
        per_config.append(level[:, None] * (1.0 + 1e-4 * rng.standard_normal((draws, n))))
    return per_config


def test_hierarchical_interval_is_wide_when_draws_disagree():
    claim = HEAD_CLAIMS["head.margin"]
    per_config = _disagreeing_draws()
    # One draw alone: the within-draw bootstrap is narrow (it would wrongly be decisive), but
    # the elasticity has no interval over draws, so the regime is not decisive.
    one = verdict(claim, X, [v[0] for v in per_config], regime="draw 0")
    assert one.ci == (1.0, 1.0) and one.replicates == 1
    assert one.effect > 1.1 and one.effect_ci[0] > 1
    assert one.verdict == "inconclusive" and one.slope.draws == 1
    # All draws: resampling the draws makes the tau interval cover 0.
    r = verdict(claim, X, per_config, regime="all draws")
    lo, hi = r.ci
    assert lo < 0 < hi and hi - lo >= 1.0
    assert r.verdict == "inconclusive" and r.replicates == 10
    assert (r.draws_up, r.draws_down) == (5, 5) and r.sign_p == 1.0


@pytest.mark.parametrize(("size", "expected"), [(1.05, "inconclusive"), (1.5, "refuted")])
def test_the_effect_rule(size, expected):
    """A perfectly monotone sweep is decisive only when the effect ratio is >= 1.1."""
    rng = np.random.default_rng(1)
    claim = HEAD_CLAIMS["head.margin"]  # predicts a fall; the data rise
    levels = np.linspace(1.0, size, len(X))
    per_config = [m * (1.0 + 1e-4 * rng.standard_normal((10, 20))) for m in levels]
    r = verdict(claim, X, per_config, regime="r")
    assert r.ci == (1.0, 1.0)  # tau is decisive either way
    assert r.effect == pytest.approx(size, rel=1e-3)
    assert r.effect_ci[0] > 1.0  # and the effect's interval excludes 1
    assert r.verdict == expected
    # The mirror image (a fall) is decided the same way, on the other side.
    mirrored = verdict(claim, X, per_config[::-1], regime="r")
    assert mirrored.effect == pytest.approx(1 / size, rel=1e-3)
    assert mirrored.verdict == {"refuted": "supported"}.get(expected, expected)


def test_effect_ratio_uses_the_ends_of_the_sweep_in_any_order():
    assert st.effect_ratio([8, 1, 4], [2.0, 4.0, 3.0]) == 0.5
    assert st.effect_ratio([1, 1, 2], [1.0, 3.0, 4.0]) == 2.0  # ties at an end are averaged
    assert st.effect_ratio([1, 2], [0.0, 1.0]) == math.inf
    assert math.isnan(st.effect_ratio([1, 2], [0.0, 0.0]))


def test_effect_ratio_interval_covers_the_true_ratio_most_of_the_time():
    """Draw effects shared across configurations (paired) and noisy samples; true ratio 2."""
    rng = np.random.default_rng(7)
    hits, trials = 0, 60
    for t in range(trials):
        draw_effect = rng.lognormal(0.0, 0.3, size=(15, 1))
        low = draw_effect * rng.exponential(1.0, size=(15, 20))
        high = 2.0 * draw_effect * rng.exponential(1.0, size=(15, 20))
        # E[high] / E[low] = 2 exactly; the sample ratio is an estimate of it.
        s = st.sweep_statistics([1.0, 2.0], [low, high], n_boot=400, seed=t)
        hits += s.effect_ci[0] <= 2.0 <= s.effect_ci[1]
    assert hits / trials >= 0.85


def test_bootstrap_means_are_paired_when_shapes_agree():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 7))
    boot = st.bootstrap_means([a, a + 1.0], 50, np.random.default_rng(0))
    np.testing.assert_allclose(boot[:, 1] - boot[:, 0], 1.0, rtol=1e-12)
    unpaired = st.bootstrap_means([a, np.zeros((5, 8))], 50, np.random.default_rng(0))
    assert unpaired.shape == (50, 2) and np.all(unpaired[:, 1] == 0.0)


def test_percentile_interval_handles_nan_and_inf():
    assert all(math.isnan(c) for c in st.percentile_interval([np.nan, np.nan]))
    lo, hi = st.percentile_interval([1.0, 2.0, np.inf, np.nan], 1.0)
    assert (lo, hi) == (1.0, math.inf)


def _rv(name, word, design="natural", effect=2.0, replicates=10):
    return RegimeVerdict(
        name,
        word,
        {"supported": -1.0, "refuted": 1.0}.get(word, 0.0),
        (-1.0, 1.0),
        [1.0, 2.0],
        [1.0, 0.5],
        design=design,
        replicates=replicates,
        effect=effect,
        effect_ci=(effect * 0.9, effect * 1.1),
        counted=design == "natural",
    )


def test_combine_ignores_control_regimes():
    claim = HEAD_CLAIMS["head.n"]
    planted = _rv("planted", "supported", design="positive-control", effect=0.2, replicates=3)
    generic = _rv("generic", "inconclusive", effect=0.95, replicates=12)
    real = _rv("real", "refuted", effect=1.4, replicates=10)
    v = combine(claim, "loo.weights", [planted, generic])
    assert v.verdict == "inconclusive"  # the planted support does not count
    assert "not counted" in v.explanation and "planted" in v.explanation
    assert v.replicates == 12 and v.effect == 0.95
    v = combine(claim, "loo.weights", [planted, generic, real])
    assert v.verdict == "refuted"  # 1 of 2 counted regimes refutes, none supports
    assert v.replicates == 10 and v.effect == 1.4 and v.effect_ci == pytest.approx((1.26, 1.54))
    # Controls and confounded regimes never decide, not even when they are all there is.
    null = _rv("scaled", "inconclusive", design="software-control", effect=1.0)
    v = combine(claim, "loo.weights", [null, null])
    assert v.verdict == "inconclusive" and "no counted regime" in v.explanation
    assert combine(claim, "loo.weights", [planted]).verdict == "inconclusive"
    eta = _rv("fixed t", "supported", design="confounded")
    v = combine(claim, "loo.weights", [eta, generic])
    assert v.verdict == "inconclusive" and "[confounded]" in v.explanation


def test_a_regime_other_than_natural_is_never_counted():
    for design in ("confounded", "positive-control", "software-control", "placebo"):
        with pytest.raises(ValueError, match="never counted"):
            dataclasses.replace(_rv("r", "supported", design=design), counted=True)


def test_natural_variation_outside_the_theory_is_shown_not_counted():
    x = [1.0, 2.0, 4.0]
    rng = np.random.default_rng(3)
    falling = [1.0 / g + 0.01 * rng.random((10, 20)) for g in x]
    r = verdict(HEAD_CLAIMS["head.n"], x, falling, regime="real network", counted=False)
    assert r.design == "natural" and not r.counted and r.verdict == "supported"
    v = combine(HEAD_CLAIMS["head.n"], "loo.weights", [r])
    assert v.verdict == "inconclusive" and "real network" in v.explanation


def test_verdict_rejects_an_unknown_design():
    with pytest.raises(ValueError, match="design"):
        verdict(HEAD_CLAIMS["head.n"], [1, 2], [np.ones(3), np.ones(3)], regime="r", design="x")


def test_to_dict_has_the_report_fields():
    claim = HEAD_CLAIMS["head.margin"]
    rng = np.random.default_rng(4)
    falling = [1.0 / g + 0.01 * rng.random((10, 20)) for g in X]
    r1 = verdict(claim, X, falling, regime="generic")
    r2 = verdict(claim, X, falling, regime="planted", design="positive-control")
    d = combine(claim, "loo.direction", [r1, r2], figure="f.png").to_dict()
    json.dumps(d, allow_nan=False)  # strict JSON
    assert d["verdict"] == "supported" and d["replicates"] == 10
    assert set(d["effect"]) == {"ratio", "ci"} and d["effect"]["ratio"] == pytest.approx(r1.effect)
    assert "effect" in d["statistic"]["name"] and "regimes" not in d["statistic"]
    assert [g["name"] for g in d["regimes"]] == ["generic", "planted"]
    g = d["regimes"][0]
    assert set(g) == {
        "name",
        "design",
        "counted",
        "verdict",
        "statistic",
        "effect",
        "slope",
        "runs",
        "replicates",
        "parameter_values",
        "instability",
    }
    assert g["design"] == "natural" and d["regimes"][1]["design"] == "positive-control"
    assert g["counted"] is True and d["regimes"][1]["counted"] is False
    assert {"tau", "ci", "sign_p", "draws_up", "draws_down"} <= set(g["statistic"])
    assert g["statistic"]["tau"] == -1.0 and g["statistic"]["draws_down"] == 10
    assert g["statistic"]["sign_p"] == pytest.approx(2 / 2**10)
    assert g["replicates"] == 10 and len(g["effect"]["ci"]) == 2
    assert g["parameter_values"] == X and len(g["instability"]) == len(X)


def test_std_ratio_and_brown_forsythe():
    rng = np.random.default_rng(5)
    b = rng.standard_normal(80)
    ratio, (lo, hi) = st.std_ratio(3.0 * b[::-1], b, n_boot=500)
    assert ratio == pytest.approx(3.0, rel=1e-12) and lo < 3.0 < hi
    assert math.isnan(st.std_ratio(b, np.ones(5))[0])
    assert st.brown_forsythe(3.0 * b, b) < 1e-6
    assert math.isnan(st.brown_forsythe(np.ones(4), np.ones(4)))
    x = rng.standard_normal((3, 7))
    np.testing.assert_array_equal(st.sample_std(x), np.std(x, axis=-1, ddof=1))
    np.testing.assert_array_equal(st.sample_std(x, axis=0), np.std(x, axis=0, ddof=1))


def test_bootstrap_ratio_in_batches_matches_one_batch():
    rng = np.random.default_rng(6)
    a, b = rng.random((9, 4)), rng.random((9, 4))

    def stat(x):
        return x.mean(axis=(-2, -1))

    whole = st.bootstrap_ratio(stat, a, b, n_boot=101, paired=True)
    batched = st.bootstrap_ratio(stat, a, b, n_boot=101, paired=True, batch_size=10)
    assert whole == batched


def test_stabilizer_verdicts_carry_the_same_entry_fields():
    from test_stabilizers import _fake_study

    from stabtheory.simulations import stabilizers as S

    for acc_ratio, expected in [(0.5, "supported"), (1.05, "inconclusive")]:
        for v in S.judge_claims(_fake_study(acc_ratio, 0.3)):
            assert v.verdict == expected, (acc_ratio, v.claim, v.explanation)
            d = v.to_dict()
            json.dumps(d, allow_nan=False)
            assert d["replicates"] == 200 and d["effect"]["ratio"] == pytest.approx(acc_ratio)
            assert d["statistic"]["name"] == S.STATISTIC
            for g in d["regimes"]:
                assert g["design"] == "natural" and g["replicates"] == 200
                assert g["statistic"]["tau"] is None and "p_value" in g["statistic"]
                assert g["mechanism"]["verdict"] == "as predicted"


def test_float64_noise_is_a_tie_not_an_order():
    from stabtheory import statistics as S

    same = 0.2831 * (1 + np.array([0.0, 3e-15, 7e-15]))  # equal in theory, rounding apart
    assert S.kendall_tau([1, 2, 3], same) == 1.0  # exact comparison sees an order
    assert S.kendall_tau([1, 2, 3], same, tie_tol=S.NOISE_TIE) == 0.0
    st = S.sweep_statistics([1, 2, 3], [np.full((4, 5), v) for v in same])
    assert st.tau == 0.0 and st.tau_ci == (0.0, 0.0)
    # a real difference is still an order
    real = np.array([1.0, 1.001, 1.002])
    assert S.kendall_tau([1, 2, 3], real, tie_tol=S.NOISE_TIE) == 1.0


def test_bootstrap_pairs_the_draws_of_configurations_of_different_sizes():
    """An n sweep of nested subsets: the same draws in every configuration, so the bootstrap
    resamples the draws once for all of them (the samples within a draw apart)."""
    per_draw = np.array([1.0, 5.0, 9.0, 20.0])  # draws differ a lot, samples within one do not
    small, large = np.repeat(per_draw[:, None], 4, 1), np.repeat(per_draw[:, None], 8, 1)
    b = st.bootstrap_means([small, large], 200, np.random.default_rng(0))
    np.testing.assert_array_equal(b[:, 0], b[:, 1])
    # different numbers of draws cannot be paired: resampled apart
    b = st.bootstrap_means([small, large[:3]], 200, np.random.default_rng(0))
    assert not np.array_equal(b[:, 0], b[:, 1])


@pytest.mark.parametrize("seed", range(4))
def test_per_draw_slope_matches_polyfit(seed):
    rng = np.random.default_rng(seed)
    draws, configs = 6, 4
    x = rng.uniform(0.5, 5.0, (configs, draws))  # measured on each draw
    per_sample = [rng.uniform(0.1, 2.0, (draws, 7)) for _ in range(configs)]
    slopes = el.per_draw_slope(x, per_sample)
    for r in range(draws):
        y = [np.log(per_sample[k][r].mean()) for k in range(configs)]
        assert slopes[r] == pytest.approx(np.polyfit(np.log(x[:, r]), y, 1)[0], rel=1e-10)
    # a non-positive mean makes that draw's slope undefined, not a clamped number
    per_sample[1][2] = 0.0
    assert np.isnan(el.per_draw_slope(x, per_sample)[2])
    assert el.per_draw_slope(x[:, 0], [p[: 1 + k] for k, p in enumerate(per_sample)]) is None


def test_t_interval_matches_scipy():
    from scipy import stats

    v = np.array([0.3, -0.1, 0.5, 0.2, 0.4, np.nan])
    lo, hi, p = el.t_interval(v, 0.9)
    w = v[~np.isnan(v)]
    ref = stats.ttest_1samp(w, 0.0)
    assert p == pytest.approx(ref.pvalue, rel=1e-10)
    ci = ref.confidence_interval(0.9)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert all(np.isnan(el.t_interval([1.0])))


@given(st_h.lists(st_h.floats(0.0, 1.0), min_size=1, max_size=8))
def test_holm_is_monotone_and_controls_like_bonferroni(ps):
    adj = el.holm(ps)
    p = np.asarray(ps)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= np.minimum(1.0, len(p) * p) + 1e-15)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)
