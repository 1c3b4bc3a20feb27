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
    falling = [1.0 / g + 0.01 * rng.standard_normal(30) for g in (1, 2, 4, 8)]
    assert verdict(claim, [1, 2, 4, 8], falling).verdict == "supported"
    assert verdict(claim, [1, 2, 4, 8], falling[::-1]).verdict == "refuted"
    flat = [rng.standard_normal(30) for _ in range(4)]
    assert verdict(claim, [1, 2, 4, 8], flat).verdict == "inconclusive"


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
    assert combine(claim, "loo.weights", [sup, inc, inc]).verdict == "inconclusive"
    assert "inconclusive in b" in combine(claim, "loo.weights", [sup, inc]).explanation


def test_a_negligible_effect_is_never_decisive():
    claim = HEAD_CLAIMS["head.margin"]
    values = [np.full(20, 1.0 + k * 1e-15) for k in range(4)][::-1]
    assert verdict(claim, [1, 2, 3, 4], values).verdict == "inconclusive"
