import dataclasses

import numpy as np
import pytest
from scipy.stats import kendalltau

from stabtheory.claims import HEAD_CLAIMS, RegimeVerdict, combine, verdict
from stabtheory.statistics import kendall_tau


@pytest.mark.parametrize("seed", range(5))
def test_kendall_tau_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 4, 9).astype(float), rng.standard_normal(9)
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)


def test_verdicts_follow_the_predicted_sign():
    rng = np.random.default_rng(0)
    claim = HEAD_CLAIMS["head.margin"]  # instability should fall with the margin
    falling = [1.0 / g + 0.01 * rng.standard_normal((10, 30)) for g in (1, 2, 4, 8)]
    assert verdict(claim, [1, 2, 4, 8], falling).verdict == "supported"
    assert verdict(claim, [1, 2, 4, 8], falling[::-1]).verdict == "refuted"
    flat = [1.0 + 0.1 * rng.standard_normal((10, 30)) for _ in range(4)]
    assert verdict(claim, [1, 2, 4, 8], flat).verdict == "inconclusive"
    # One data draw is never decisive: its elasticity has no interval over draws.
    one = verdict(claim, [1, 2, 4, 8], [f[0] for f in falling])
    assert one.verdict == "inconclusive" and np.isnan(one.slope.ci[0])


def test_combine_names_the_regimes():
    claim = HEAD_CLAIMS["head.lr"]
    a = RegimeVerdict("early", "supported", 1.0, (1.0, 1.0), [], [])
    b = RegimeVerdict("late", "refuted", -1.0, (-1.0, -1.0), [], [])
    v = combine(claim, "loo.direction", [a, b])
    assert v.verdict == "regime-dependent"
    assert "supported in early" in v.explanation and "refuted in late" in v.explanation
    assert combine(claim, "loo.direction", [a, a]).verdict == "supported"


def test_inconclusive_regimes_do_not_make_a_claim_regime_dependent():
    claim = HEAD_CLAIMS["head.n"]
    sup = RegimeVerdict("a", "supported", -1.0, (-1.0, -1.0), [], [])
    inc = RegimeVerdict("b", "inconclusive", 0.0, (-1.0, 1.0), [], [])
    assert combine(claim, "loo.weights", [sup, sup, inc]).verdict == "supported"
    inc_c = dataclasses.replace(inc, regime="c")
    assert combine(claim, "loo.weights", [sup, inc, inc_c]).verdict == "inconclusive"
    assert "inconclusive in b" in combine(claim, "loo.weights", [sup, inc]).explanation


def test_regimes_on_the_same_runs_are_one_vote():
    claim = HEAD_CLAIMS["head.n"]
    sup = RegimeVerdict("a early", "supported", -1.0, (-1.0, -1.0), [], [], runs="a")
    late = dataclasses.replace(sup, regime="a late", verdict="inconclusive")
    inc_b = RegimeVerdict("b", "inconclusive", 0.0, (-1.0, 1.0), [], [])
    inc_c = dataclasses.replace(inc_b, regime="c")
    # as separate regimes, 1 of 4 would be a minority; as votes, 1 of 3 still is
    assert combine(claim, "loo.weights", [sup, late, inc_b, inc_c]).verdict == "inconclusive"
    # two decisive regimes of the same runs are one vote, not a majority of three
    twice = dataclasses.replace(sup, regime="a late")
    v = combine(claim, "loo.weights", [sup, twice, inc_b, inc_c])
    assert v.verdict == "inconclusive" and "in 3 votes" in v.explanation
    # disagreeing regimes of one vote make the claim regime-dependent
    ref = dataclasses.replace(sup, regime="a late", verdict="refuted")
    assert combine(claim, "loo.weights", [sup, ref]).verdict == "regime-dependent"


def test_holm_correction_over_the_counted_regimes():
    """Ten regimes each at p = 0.01: decisive alone, not after Holm (0.1 > 0.05)."""
    claim = HEAD_CLAIMS["head.margin"]
    rng = np.random.default_rng(0)
    x = [1.0, 2.0, 4.0]
    r = verdict(claim, x, [1.0 / g + 0.01 * rng.random((10, 20)) for g in x])
    assert r.verdict == "supported" and r.slope.p < 1e-6
    weak = dataclasses.replace(r.slope, p=0.01)
    regimes = [dataclasses.replace(r, regime=f"r{k}", runs=f"r{k}", slope=weak) for k in range(10)]
    v = combine(claim, "loo.direction", regimes)
    assert v.verdict == "inconclusive"
    assert all(g.p_holm == pytest.approx(0.1) and g.verdict == "inconclusive" for g in v.regimes)
    v = combine(claim, "loo.direction", regimes[:4])  # 4 * 0.01 <= 0.05
    assert v.verdict == "supported" and v.regimes[0].to_dict()["slope"]["p_holm"] == 0.04


def test_a_negligible_effect_is_never_decisive():
    claim = HEAD_CLAIMS["head.margin"]
    values = [np.full(20, 1.0 + k * 1e-15) for k in range(4)][::-1]
    assert verdict(claim, [1, 2, 3, 4], values).verdict == "inconclusive"


def test_a_sweep_reaching_zero_instability_is_decided_by_tau_and_effect():
    """log 0 is undefined: the elasticity cannot be formed, so it does not veto; Holm then
    takes the sign test of the per-draw taus (10 draws: p = 2 / 2^10)."""
    claim = HEAD_CLAIMS["head.margin"]
    rng = np.random.default_rng(0)
    x = [1.0, 2.0, 4.0]
    falling = [v + 0.01 * v * rng.random((10, 20)) for v in (1.0, 0.5, 0.0)]
    r = verdict(claim, x, falling)
    assert r.slope.draws == 0 and r.verdict == "supported"
    v = combine(claim, "loo.direction", [r])
    assert v.verdict == "supported" and v.regimes[0].p_holm == r.sign_p < 0.01
