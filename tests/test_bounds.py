"""The bounds registry: sympy expressions, generated JAX functions, assumptions and checks.

The property tests draw random separable problems and check bound >= empirical for Lemma H-1,
Lemma H-2, Theorems H-1, H-2 and C-1, per sample and checkpoint.
"""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st_

import stabtheory as st
from stabtheory.bounds import REGISTRY, check_bound, get, head, tolerance
from stabtheory.errors import NotSeparableError, UnknownTheoremError

PROPERTY = settings(max_examples=12, deadline=None)


def problems():
    """Random planted-margin problems: (n, d, gamma, radius, n_support, seed)."""
    return st_.tuples(
        st_.integers(6, 20),
        st_.integers(2, 6),
        st_.floats(0.05, 0.6),
        st_.sampled_from([0.5, 1.0, 3.0]),
        st_.integers(2, 6),
        st_.integers(0, 10_000),
    ).map(
        lambda p: st.planted_margin(
            p[0], p[1], p[2] * p[3], radius=p[3], n_support=min(p[4], p[1], p[0]), seed=p[5]
        )
    )


# ---------------------------------------------------------------- sympy is the source of truth
def test_registry_has_the_head_theorems():
    assert set(REGISTRY) >= {"head.svm_loo", "head.H1", "head.H2", "head.C1"}
    for th in REGISTRY.values():
        assert th.latex()
        assert th.reference
        assert th.assumptions


def test_unknown_theorem_lists_known_ids():
    with pytest.raises(UnknownTheoremError, match=r"head\.H1"):
        get("head.H9")


@pytest.mark.parametrize("seed", range(5))
def test_h2_jax_evaluation_matches_the_formula(seed):
    rng = np.random.default_rng(seed)
    t, eta, n = 10 ** rng.uniform(4, 7), rng.uniform(0.05, 1), int(rng.integers(5, 200))
    g, R, D, gi, Ri = rng.uniform(0.1, 0.5), 1.0, rng.uniform(0, 1), 0.6, 0.9

    def rate(n_, g_, R_):
        g1, e1 = g_ / R_, eta * R_**2
        C = np.log(n_) + g1 * e1**2 / 2 + e1 / g1
        psi = np.log(1 + e1 * g1**2 * t / 2) - np.log(n_)
        return 2 * np.sqrt(C / (g1 * psi))

    expected = rate(n, g, R) + D + rate(n - 1, gi, Ri)
    got = float(get("head.H2").evaluate(t, eta, n, g, R, D, gi, Ri))
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_direction_gap_piecewise():
    H1 = get("head.H1")
    # delta > 2 gamma: the trivial bound 2; delta = 0: 0; otherwise Lemma H-1's formula.
    assert float(H1.evaluate(1.0, 3.0, 0.0, 1.0, 0.0)) == 2.0
    assert float(H1.evaluate(1.0, 0.0, 0.25, 1.0, 0.0)) == 0.25
    np.testing.assert_allclose(
        float(H1.evaluate(1.0, 0.5, 0.0, 1.0, 0.0)), np.sqrt(4 - 1.5**2), rtol=1e-15
    )


def test_evaluate_rejects_unknown_arguments():
    with pytest.raises(TypeError, match="unknown"):
        get("head.C1").evaluate(eta=1, t=1, L=1, m=3)


@pytest.mark.parametrize(("symbol", "sign"), [("t", 1), ("eta", 1), ("L", 1), ("n", -1)])
def test_c1_derivative_signs_follow_from_positivity(symbol, sign):
    assert get("head.C1").derivative_sign(symbol) == sign


def test_h2_decreases_in_t_by_sympy():
    mono = get("head.H2").facts()["d bound / d t"]
    assert mono["sign"] == -1
    # and numerically, on a grid where Psi > 0
    ts = np.logspace(5, 9, 20)
    vals = np.asarray(get("head.H2").evaluate(ts, 0.5, 50.0, 0.2, 1.0, 0.0, 0.2, 1.0))
    assert np.all(np.diff(vals) < 0)


def test_h2_latex_is_rendered_from_the_expression():
    th = get("head.H2")
    assert sp.latex(th.expression) in th.latex()
    assert "\\log" in th.latex()


# ---------------------------------------------------------------- property tests
@PROPERTY
@given(problems(), st_.integers(0, 10_000))
def test_lemma_h1_holds_for_random_unit_vectors(ds, seed):
    sol = st.max_margin(ds.X, ds.y)
    rng = np.random.default_rng(seed)
    Z = ds.y[:, None] * ds.X
    for scale in (0.01, 0.3, 3.0):
        v = sol.direction + scale * rng.standard_normal(ds.d)
        v /= np.linalg.norm(v)
        delta = sol.margin - np.min(Z @ v)
        if not 0 <= delta <= 2 * sol.margin:
            continue
        lhs = np.sum((v - sol.direction) ** 2)
        sharp = 4 - (2 * sol.margin - delta) ** 2 / sol.margin**2
        assert lhs <= sharp + 1e-10
        assert sharp <= 4 * delta / sol.margin + 1e-12


@PROPERTY
@given(problems())
def test_lemma_h2_bounds_the_exact_max_margin_change(ds):
    ev = head.head_evidence(ds.X, ds.y, steps=[1])
    chk = get("head.svm_loo").check(ev)
    assert chk.applicable and chk.holds, chk.summary()
    # inactive constraints: no change and a zero bound
    inactive = ~ev.loo.full.support
    assert np.all(chk.bound[0, inactive] == 0)
    assert np.all(chk.empirical[0, inactive] == 0)


STEPS = [1, 3, 10, 30, 100, 1000, 10_000]


@PROPERTY
@given(problems(), st_.sampled_from(["exponential", "logistic"]), st_.floats(0.05, 2.0))
def test_h1_and_c1_hold_on_random_problems(ds, loss, lr1):
    lr = lr1 / ds.radius**2
    ev = head.head_evidence(ds.X, ds.y, loss=loss, lr=lr, steps=STEPS)
    h1 = get("head.H1").check(ev)
    assert h1.applicable and h1.holds, h1.summary()
    for notion in ("loo.weights", "loo.loss"):
        c1 = get("head.C1").check(ev, notion)
        if c1.applicable:
            assert c1.holds, c1.summary()


@PROPERTY
@given(problems(), st_.floats(0.3, 1.0))
def test_h2_holds_where_it_applies(ds, lr1):
    lr = lr1 / ds.radius**2 * (1 - 1e-9)
    steps = [10, 1000, 30_000, 100_000]
    chk = check_bound("head.H2", ds.X, ds.y, loss="exponential", lr=lr, steps=steps)
    if chk.applicable:
        assert chk.holds, chk.summary()
        assert np.all(np.isnan(chk.bound[~chk.applicable_at]))


# ---------------------------------------------------------------- applicability
def test_h2_not_applicable_outside_its_setting():
    ds = st.planted_margin(12, 3, 0.3, seed=1)
    big = check_bound("head.H2", ds.X, ds.y, loss="exponential", lr=1.5, steps=[10**5])
    assert not big.applicable and big.holds is None and big.violations == 0
    (eta_check,) = [a for a in big.assumptions if a.name == "eta R^2 <= 1"]
    assert not eta_check.holds and eta_check.value == pytest.approx(1.5 * ds.radius**2)
    logistic = check_bound("head.H2", ds.X, ds.y, loss="logistic", lr=0.5, steps=[10**5])
    assert not logistic.applicable
    early = check_bound("head.H2", ds.X, ds.y, loss="exponential", lr=0.5, steps=[1])
    assert not early.applicable  # Psi(1) <= 0


def test_c1_not_applicable_when_the_step_is_too_large():
    ds = st.planted_margin(12, 3, 0.3, seed=2)
    chk = check_bound("head.C1", ds.X, ds.y, loss="logistic", lr=9.0, steps=[10, 100])
    assert not chk.applicable and chk.holds is None
    ok = check_bound("head.C1", ds.X, ds.y, loss="logistic", lr=7.9, steps=[10, 100])
    assert ok.applicable and ok.holds


def test_c1_equals_its_formula_for_the_logistic_loss():
    ds = st.planted_margin(10, 3, 0.2, radius=2.0, seed=3)
    chk = check_bound("head.C1", ds.X, ds.y, loss="logistic", lr=0.3, steps=[5, 50])
    expected = 2 * 0.3 * np.array([5, 50])[:, None] * ds.radius / ds.n
    np.testing.assert_allclose(chk.bound, np.broadcast_to(expected, chk.bound.shape), rtol=1e-14)


def test_check_bound_refuses_non_separable_data():
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 1, -1])
    with pytest.raises(NotSeparableError):
        check_bound("head.H1", X, y, steps=10)


def test_a_violation_is_counted_and_reported():
    ds = st.planted_margin(10, 3, 0.2, seed=4)
    chk = check_bound("head.C1", ds.X, ds.y, loss="logistic", lr=0.5, steps=[10, 100])
    import dataclasses

    broken = dataclasses.replace(chk, bound=chk.bound * 1e-3)
    assert broken.violations > 0 and broken.holds is False
    assert broken.summary()["violations"] == broken.violations


def test_tolerance_table():
    assert tolerance(np.float64) < tolerance(np.float32)


def test_h2_applies_and_holds_on_a_fixed_problem():
    ds = st.planted_margin(16, 4, 0.4, seed=5)
    lr = 0.9 / ds.radius**2
    chk = check_bound("head.H2", ds.X, ds.y, loss="exponential", lr=lr, steps=[10, 10_000, 50_000])
    assert chk.applicable_at.tolist() == [False, True, True]
    assert chk.holds and np.all(chk.bound[1:] >= chk.empirical[1:])
    # the a-priori bound tightens with t
    assert np.all(chk.bound[2] < chk.bound[1])


def test_svm_loo_is_conservative_when_the_direction_barely_moves():
    # Removing a point moves u_S by ~1e-9: D_i^2 ~ 1e-17 is below the rounding of 4, so the
    # naive form 4 - (m + g)^2 / g^2 gives 0; the stable form with certified margins holds.
    for a in (2e-9, 5e-9, 1e-8):
        Z = np.array([[0.5, 1, a], [0.5, -1, a], [0.5, 0, -1], [1, 0.3, 0.2]])
        y = np.array([1.0, -1.0, 1.0, -1.0])
        chk = check_bound("head.svm_loo", y[:, None] * Z, y, lr=0.1, steps=[1])
        assert chk.holds, chk.summary()


def test_c1_refuses_the_direction_notion():
    ds = st.soudry_fig1()
    with pytest.raises(ValueError, match=r"loo\.weights and loo\.loss"):
        check_bound("head.C1", ds.X, ds.y, lr=0.1, steps=[1, 10], notion="loo.direction")
    with pytest.raises(ValueError, match="direction"):
        check_bound("head.H1", ds.X, ds.y, lr=0.1, steps=[1, 10], notion="svm.direction")


def test_diverged_runs_are_not_applicable_for_a_stated_reason():
    ds = st.planted_margin(8, 3, 0.2, seed=0)
    chk = check_bound("head.H1", ds.X, ds.y, lr=1.0, steps=[5], init=-5000 * ds.direction)
    (finite,) = [a for a in chk.assumptions if a.name == "finite weights"]
    assert not finite.holds and not chk.applicable


@PROPERTY
@given(problems(), st_.floats(0.3, 1.0))
def test_h2_margin_form_holds_and_is_not_vacuous(ds, lr1):
    lr = lr1 / ds.radius**2 * (1 - 1e-9)
    chk = check_bound("head.H2m", ds.X, ds.y, lr=lr, steps=[10, 30_000, 100_000])
    if chk.applicable:
        assert chk.holds, chk.summary()
        assert chk.bound.shape[1] == ds.n + 1  # S and every S\\i


def test_an_int_step_count_gives_per_sample_arrays():
    ds = st.planted_margin(10, 3, 0.2, seed=6)
    one = check_bound("head.H1", ds.X, ds.y, lr=0.5, steps=100)
    many = check_bound("head.H1", ds.X, ds.y, lr=0.5, steps=[10, 100])
    assert one.bound.shape == one.empirical.shape == (10,)
    assert many.bound.shape == (2, 10)
    np.testing.assert_allclose(one.bound, many.bound[1], rtol=1e-12)
    np.testing.assert_allclose(one.empirical, many.empirical[1], rtol=1e-12)
    assert one.violation_mask.shape == (10,) and one.holds
    assert check_bound("head.svm_loo", ds.X, ds.y, steps=[1, 2]).bound.shape == (10,)


def test_vacuous_share_counts_bounds_at_least_the_trivial_bound():
    ds = st.planted_margin(12, 3, 0.2, seed=7)
    chk = check_bound("head.H1", ds.X, ds.y, lr=0.5, steps=[1, 10_000])
    assert chk.trivial == 2.0
    expected = np.mean(chk.bound[chk.entry_mask] >= 2.0)
    assert chk.vacuous_share == pytest.approx(expected)
    assert chk.summary()["vacuous_share"] == chk.vacuous_share
    import dataclasses

    assert dataclasses.replace(chk, bound=chk.bound * 0 + 2.0).vacuous_share == 1.0
    assert dataclasses.replace(chk, bound=chk.bound * 0 + 1.9).vacuous_share == 0.0


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_weights_and_loss_trivial_bounds_follow_from_the_runs(loss):
    """||w(S) - w0|| + ||w(S\\i) - w0|| and l(w(S); z_i) + l(w(S\\i); z_i), recomputed with
    numpy from the runs (both start at w0 = 0 here)."""
    ds = st.planted_margin(10, 3, 0.2, seed=5)
    steps = [3, 30]
    runs = st.linear_heads.train_head_runs(ds.X, ds.y, loss=loss, lr=0.5, steps=steps)
    w = np.asarray(runs.trajectory.w).mean(axis=-2)  # (n + 1, C, d)
    norms = np.linalg.norm(w, axis=-1)
    expected_w = norms[0][:, None] + norms[1:].T  # (C, n)
    Z = ds.y[:, None] * ds.X
    m_S = w[0] @ Z.T  # (C, n): margins of the run on S at every z_i
    m_i = np.einsum("icd,id->ci", w[1:], Z)  # run S\i at its own z_i
    ell = (lambda m: np.exp(-m)) if loss == "exponential" else (lambda m: np.log1p(np.exp(-m)))
    expected_l = ell(m_S) + ell(m_i)
    for notion, expected in (("weights", expected_w), ("loss", expected_l)):
        chk = check_bound(
            "head.C1", ds.X, ds.y, loss=loss, lr=0.5, steps=steps, notion=f"loo.{notion}"
        )
        np.testing.assert_allclose(chk.trivial, expected, rtol=1e-12)
        assert chk.vacuous_share is not None
        assert chk.summary()["trivial_bound"] == pytest.approx(expected.max(), rel=1e-12)


def test_margin_gap_trivial_bound_is_gamma_plus_radius_per_run():
    ds = st.planted_margin(12, 3, 0.4, seed=8)
    lr = 0.9 / ds.radius**2
    chk = check_bound("head.H2m", ds.X, ds.y, lr=lr, steps=[10, 100_000])
    trivial = np.atleast_1d(chk.trivial)
    assert trivial.shape == (ds.n + 1,)
    gamma = st.max_margin(ds.X, ds.y).margin
    assert trivial[0] == pytest.approx(gamma + ds.radius, rel=1e-6)
    share = chk.vacuous_share
    assert share is not None and 0.0 <= share <= 1.0


def test_merging_draws_keeps_the_trivial_bound_per_entry():
    from stabtheory.bounds import merge_draws

    a, b = (
        check_bound("head.H2m", ds.X, ds.y, lr=0.9 / ds.radius**2, steps=[10, 100_000])
        for ds in (st.planted_margin(8, 3, 0.4, seed=s) for s in (1, 2))
    )
    merged = merge_draws([a, b], config={})
    assert np.shape(merged.trivial) == (2, 18)
    expected = (np.sum(a.vacuous_mask) + np.sum(b.vacuous_mask)) / (
        a.entry_mask.sum() + b.entry_mask.sum()
    )
    assert merged.vacuous_share == pytest.approx(expected)
