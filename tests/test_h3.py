"""Normalized GD (``optimizer="ngd"``) and Theorem H-3 (docs/theory.md section 3).

The trainer is compared with an independent plain-numpy normalized GD loop (slicing instead of
masks, a shifted softmax instead of the log domain) and with ``-lr grad log F`` by autodiff;
the theorem's margin and direction forms are checked on random separable problems, and the
solver gap terms of Lemma H-2's ``D_i`` against the planted exact direction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from helpers import assert_close_scaled, random_separable, tol
from hypothesis import given, settings
from hypothesis import strategies as st_
from test_bounds import problems

import stabtheory as st
from stabtheory import linear_heads
from stabtheory.bounds import REGISTRY, check_bound, get, head
from stabtheory.linear_heads import loo_stability, train_head_runs
from stabtheory.svm import loo_max_margin, max_margin

F64 = np.float64
PROPERTY = settings(max_examples=12, deadline=None)
jtrain = jax.jit(linear_heads.train, static_argnames=("loss", "optimizer"))
jtrain_runs = jax.jit(linear_heads.train_runs, static_argnames=("loss", "optimizer", "batch_size"))


# --------------------------------------------------------------------------------------------
# An independent reference: plain numpy float64 normalized GD


def np_ngd(Z, lr, w0, checkpoints, loss: str, sample_weights=None) -> dict:
    """``w_k <- w_k - lr grad F / F`` with ``F = (1/K) sum_k sum_i s_i l(w_k . z_i) / sum s``.

    The samples with weight 0 are sliced away. Exponential loss: ``grad F / F`` is a softmax,
    computed with the textbook shift by the smallest margin. Logistic loss: the textbook
    ``|l'| = 1 / (1 + e^m)`` and ``l = log(1 + e^-m)`` (moderate margins only).
    """
    Z = np.asarray(Z, F64)
    s = np.ones(len(Z)) if sample_weights is None else np.asarray(sample_weights, F64)
    keep = s > 0
    Zk, sk = Z[keep], s[keep]
    w = np.array(w0, F64, copy=True)
    dmax, t = 0.0, 0
    out_w, out_l, out_d = [], [], []
    for target in checkpoints:
        while t < target:
            m = w @ Zk.T  # (K, n_keep)
            if loss == "exponential":
                e = sk * np.exp(-(m - m.min()))
                q = e / e.sum()
                dmax = max(dmax, float(np.exp(-m.min())))
            else:
                q = (sk / (1.0 + np.exp(m))) / np.sum(sk * np.logaddexp(0.0, -m))
                dmax = max(dmax, float(np.max(1.0 / (1.0 + np.exp(m)))))
            w = w + lr * q @ Zk
            t += 1
        m = w @ Zk.T
        losses = np.exp(-m) if loss == "exponential" else np.logaddexp(0.0, -m)
        out_w.append(w.copy())
        out_l.append(np.log(np.mean((losses * sk).sum(axis=1) / sk.sum())))
        out_d.append(dmax)
    return {"w": np.array(out_w), "log_loss": np.array(out_l), "dloss_max": np.array(out_d)}


def problem(n, d, seed, zero=(3,)):
    """Signed points with R = 1 and sample weights with zeros at ``zero`` and unequal others."""
    X, y = random_separable(n, d, seed)
    s = np.random.default_rng(seed).uniform(0.5, 2.0, n)
    s[list(zero)] = 0.0
    return y[:, None] * X, s


def compare(traj, ref, dtype=F64, factor=1.0):
    scale = np.max(np.abs(ref["w"]), axis=(-2, -1), keepdims=True)
    assert_close_scaled(traj.w, ref["w"], dtype, scale=scale, factor=factor)
    np.testing.assert_allclose(np.asarray(traj.log_loss), ref["log_loss"], atol=10 * tol(dtype))
    np.testing.assert_allclose(np.asarray(traj.dloss_max), ref["dloss_max"], rtol=tol(dtype))


CPS = [0, 1, 2, 9, 60, 300]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("loss", linear_heads.LOSSES)
def test_ngd_matches_numpy_normalized_gd(loss, K, seed):
    Z, s = problem(12, 4, seed, zero=(3, 7))
    w0 = np.zeros((1, 4)) if K == 1 else 0.3 * np.random.default_rng(seed).normal(size=(K, 4))
    lr = [0.1, 0.5, 1.0, 2.0][seed]
    ref = np_ngd(Z, lr, w0, CPS, loss, s)
    args = (jnp.asarray(Z), jnp.asarray(s), lr, jnp.asarray(w0))
    traced = jtrain(*args, jnp.asarray(CPS), loss=loss, optimizer="ngd")
    static = linear_heads.train(*args, tuple(CPS), loss=loss, optimizer="ngd")
    compare(traced, ref)
    compare(static, ref)
    np.testing.assert_array_equal(np.asarray(traced.w[0]), w0)


@pytest.mark.parametrize("loss", linear_heads.LOSSES)
def test_ngd_step_is_minus_lr_grad_log_loss(loss):
    # w - lr grad F / F = w - lr grad log F: the same step for the mean and the sum loss.
    Z, s = problem(10, 3, seed=5, zero=(0,))
    w = jnp.asarray(0.7 * np.random.default_rng(1).normal(size=(2, 3)))
    Zj, sj = jnp.asarray(Z), jnp.asarray(s)

    def log_f(w):
        per_head = linear_heads.log_mean_loss(w @ Zj.T, sj, loss)  # (K,)
        return jax.nn.logsumexp(per_head) - jnp.log(w.shape[0])

    expected = w - 0.3 * jax.grad(log_f)(w)
    state = linear_heads.step(
        linear_heads.init(w, optimizer="ngd"), Zj, sj, 0.3, loss=loss, optimizer="ngd"
    )
    np.testing.assert_allclose(np.asarray(state.w), np.asarray(expected), rtol=1e-13, atol=1e-14)


def test_zero_weight_samples_are_ignored_exactly():
    Z, s = problem(9, 3, seed=2, zero=(4,))
    q = linear_heads.normalized_weights(
        (jnp.asarray(Z) @ jnp.ones(3))[None], jnp.asarray(s), "exponential"
    )
    assert float(q[0, 4]) == 0.0
    np.testing.assert_allclose(float(q.sum()), 1.0, rtol=1e-15)
    # moving the left-out point anywhere does not change the trajectory
    Z2 = Z.copy()
    Z2[4] = [-50.0, 30.0, 7.0]
    a, b = (
        jtrain(
            jnp.asarray(M),
            jnp.asarray(s),
            1.0,
            jnp.zeros((1, 3)),
            jnp.asarray([50]),
            loss="exponential",
            optimizer="ngd",
        )
        for M in (Z, Z2)
    )
    np.testing.assert_array_equal(np.asarray(a.w), np.asarray(b.w))


@pytest.mark.parametrize("scale", [1e3, 1e5, -1e3])
def test_log_domain_step_is_finite_at_huge_margins(scale):
    # Margins of +-1e3..1e5: exp(-m) under- or overflows, the normalized step does not.
    ds = st.planted_margin(10, 3, 0.3, seed=0)
    Z = ds.y[:, None] * ds.X
    w0 = scale * ds.direction[None]
    s = np.ones(10)
    s[2] = 0.0
    traj = jtrain(
        jnp.asarray(Z),
        jnp.asarray(s),
        0.5,
        jnp.asarray(w0),
        jnp.asarray([0, 1, 20]),
        loss="exponential",
        optimizer="ngd",
    )
    w = np.asarray(traj.w)
    assert np.all(np.isfinite(w)) and np.all(np.isfinite(np.asarray(traj.log_loss)))
    with np.errstate(over="ignore", divide="ignore"):  # the reference's loss values only
        ref = np_ngd(Z, 0.5, w0, [0, 1, 20], "exponential", s)
    step = w[1] - w[0]
    np.testing.assert_allclose(step, ref["w"][1] - ref["w"][0], rtol=1e-9, atol=1e-12)
    assert 0.5 * 0.3 <= np.linalg.norm(step) <= 0.5 * ds.radius + 1e-12  # gamma <= ||Z^T q|| <= R
    # plain GD from the same start does not move (positive margins: exact underflow)
    if scale > 0:
        gd = jtrain(
            jnp.asarray(Z),
            jnp.asarray(s),
            0.5,
            jnp.asarray(w0),
            jnp.asarray([1]),
            loss="exponential",
        )
        np.testing.assert_array_equal(np.asarray(gd.w[0]), w0)


# --------------------------------------------------------------------------------------------
# Everywhere the other optimizers work


def runs_inputs(n=9, d=3, runs=4, seed=0):
    Z, _ = problem(n, d, seed)
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.3, 1.5, (runs, n))
    s[np.arange(runs), np.arange(runs)] = 0.0
    lr = rng.uniform(0.2, 1.5, runs)
    w0 = 0.3 * rng.standard_normal((runs, 1, d))
    return (jnp.asarray(v) for v in (Z, s, lr, w0))


def test_vmapped_static_and_chunked_runs_equal_per_run_training():
    Z, s, lr, w0 = runs_inputs()
    cps = (0, 3, 3, 17, 40)
    traced = jtrain_runs(Z, s, lr, w0, jnp.asarray(cps), loss="exponential", optimizer="ngd")
    static = linear_heads.jit_train_runs(Z, s, lr, w0, cps, loss="exponential", optimizer="ngd")
    chunked = linear_heads.jit_train_runs(
        Z, s, lr, w0, cps, loss="exponential", optimizer="ngd", batch_size=3
    )
    for r in range(4):
        ref = np_ngd(
            np.asarray(Z), float(lr[r]), np.asarray(w0[r]), cps, "exponential", np.asarray(s[r])
        )
        for traj in (traced, static, chunked):
            compare(jax.tree.map(lambda x, r=r: x[r], traj), ref)


def test_traced_lr_masks_and_checkpoints_do_not_recompile():
    traces = []

    def counted(Z, s, lr, w0, cps):
        traces.append(1)
        return linear_heads.train_runs(Z, s, lr, w0, cps, loss="exponential", optimizer="ngd")

    f = jax.jit(counted)
    Z, s, lr, w0 = runs_inputs(seed=1)
    a = f(Z, s, lr, w0, jnp.asarray([2, 10]))
    b = f(Z, s[::-1], 2.0 * lr, -w0, jnp.asarray([5, 30]))
    assert len(traces) == 1
    ref = np_ngd(
        np.asarray(Z),
        2.0 * float(lr[0]),
        -np.asarray(w0[0]),
        [5, 30],
        "exponential",
        np.asarray(s[::-1][0]),
    )
    compare(jax.tree.map(lambda x: x[0], b), ref)
    assert not np.array_equal(np.asarray(a.w), np.asarray(b.w))


def test_loo_stability_and_simulate_with_ngd():
    X, y = random_separable(10, 3, seed=3)
    Z = y[:, None] * X
    sim = train_head_runs(X, y, lr=0.8, steps=[5, 200], optimizer="ngd")
    assert sim.optimizer == "ngd"
    est = loo_stability(X, y, lr=0.8, steps=200, optimizer="ngd", notion="direction")
    full = np_ngd(Z, 0.8, np.zeros((1, 3)), [200], "exponential")["w"][-1, 0]
    u = full / np.linalg.norm(full)
    expected = []
    for i in range(10):
        wi = np_ngd(np.delete(Z, i, 0), 0.8, np.zeros((1, 3)), [200], "exponential")["w"][-1, 0]
        expected.append(np.linalg.norm(u - wi / np.linalg.norm(wi)))
    np.testing.assert_allclose(est.per_sample, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sim.estimate("direction").per_sample[1], expected, atol=1e-12)
    gd = loo_stability(X, y, lr=0.8, steps=200, optimizer="gd", notion="direction")
    assert not np.allclose(gd.per_sample, est.per_sample)


def test_unknown_optimizer_is_refused_and_lists_ngd():
    X, y = random_separable(6, 2, seed=0)
    with pytest.raises(ValueError, match="ngd"):
        train_head_runs(X, y, optimizer="sgd", steps=3)
    assert "ngd" in linear_heads.OPTIMIZERS


# --------------------------------------------------------------------------------------------
# Theorem H-3: sympy expressions and registry


def test_h3_is_registered_with_its_reference():
    for tid in ("head.H3", "head.H3m"):
        th = REGISTRY[tid]
        assert "Ji & Telgarsky 2021" in th.reference and "section 3" in th.reference
        assert "\\log" in th.latex() and th.assumptions
    assert REGISTRY["head.H3"].checker is head.check_h3
    assert REGISTRY["head.H3m"].checker is head.check_h3_margin
    assert REGISTRY["head.H3"].optimizers == REGISTRY["head.H3m"].optimizers == ("ngd",)


@pytest.mark.parametrize("seed", range(5))
def test_h3_evaluation_matches_the_formula(seed):
    rng = np.random.default_rng(seed)
    t, eta, n = 10 ** rng.uniform(0, 5), rng.uniform(0.05, 1), int(rng.integers(3, 300))
    g, R, D, gi, Ri = rng.uniform(0.05, 0.5), rng.uniform(0.8, 1.2), rng.uniform(0, 1), 0.6, 0.9

    def b(n_, g_, R_):
        return (np.log(n_) + eta * R_**2 / 2) / (eta * g_ * t)

    def e(g_, d_):
        return 2.0 if d_ > 2 * g_ else np.sqrt(max(0.0, d_ * (4 * g_ - d_))) / g_

    got = float(get("head.H3").evaluate(t, eta, n, g, R, D, gi, Ri))
    expected = e(g, b(n, g, R)) + D + e(gi, b(n - 1, gi, Ri))
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    np.testing.assert_allclose(
        float(get("head.H3m").evaluate(t, eta, n, g, R)), b(n, g, R), rtol=1e-14
    )
    # the direction part is tighter than 2 sqrt(delta / gamma) and at most 2
    assert e(g, b(n, g, R)) <= min(2.0, 2 * np.sqrt(b(n, g, R) / g)) + 1e-15


def test_h3m_decreases_in_t_and_gamma_by_sympy():
    # n >= 1 (log n >= 0) is not a property of a positive symbol: write n = 1 + m, m >= 0.
    th = get("head.H3m")
    n = next(s for s in th.symbols if s.name == "n")
    via = {n: 1 + sp.Symbol("m", nonnegative=True)}
    assert th.derivative_sign("t", via=via) == -1
    assert th.derivative_sign("gamma", via=via) == -1
    assert th.derivative_sign("R") == 1


# --------------------------------------------------------------------------------------------
# Theorem H-3 on data


H3_STEPS = [1, 3, 10, 100, 1000, 10_000, 30_000]


@PROPERTY
@given(problems(), st_.floats(0.01, 1.0))
def test_h3_and_h3m_hold_on_random_separable_problems(ds, lr1):
    lr = lr1 / ds.radius**2 * (1 - 1e-9)
    ev = head.head_evidence(ds.X, ds.y, lr=lr, steps=H3_STEPS, optimizer="ngd")
    for chk in (get("head.H3").check(ev), get("head.H3m").check(ev)):
        assert chk.applicable and chk.applicable_at.all(), chk.summary()
        assert chk.holds, chk.summary()
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.nanmax(np.asarray(chk.empirical) / np.asarray(chk.bound))
        assert ratio <= 1.0 + 1e-9
    assert get("head.H3m").check(ev).bound.shape == (len(H3_STEPS), ds.n + 1)
    # H-1 (a posteriori, any optimizer) holds on the same NGD runs
    assert get("head.H1").check(ev).holds


def test_h3_direction_form_is_not_vacuous_at_large_t():
    ds = st.planted_margin(64, 8, 0.3, seed=0)
    steps = [10, 1000, 10_000]
    chk = check_bound("head.H3", ds.X, ds.y, lr=1.0 / ds.radius**2 * (1 - 1e-12), steps=steps)
    assert chk.applicable and chk.holds, chk.summary()
    assert chk.trivial == 2.0
    below = np.mean(np.asarray(chk.bound) < 2.0, axis=1)
    assert below[-1] >= 0.9 and below[0] == 0.0  # vacuous at t = 10, informative at 1e4
    late = dataclass_at(chk, -1)
    assert late.vacuous_share <= 0.1
    # direction form at t = 1e4 is a real bound on the measured stability
    assert np.all(np.asarray(chk.empirical)[-1] <= np.asarray(chk.bound)[-1])


def dataclass_at(chk, c):
    import dataclasses

    return dataclasses.replace(
        chk,
        steps=chk.steps[c : c + 1 or None],
        bound=chk.bound[c : c + 1 or None],
        empirical=chk.empirical[c : c + 1 or None],
        applicable_at=chk.applicable_at[c : c + 1 or None],
    )


def test_h3_not_applicable_outside_its_setting():
    ds = st.planted_margin(12, 3, 0.3, seed=1)
    big = check_bound("head.H3", ds.X, ds.y, lr=1.5 / ds.radius**2, steps=[100])
    assert not big.applicable and big.holds is None and big.violations == 0
    (eta_check,) = [a for a in big.assumptions if a.name == "eta R^2 <= 1"]
    assert not eta_check.holds and eta_check.value == pytest.approx(1.5)
    for tid in ("head.H3", "head.H3m"):
        gd = check_bound(tid, ds.X, ds.y, lr=0.5, steps=[100], optimizer="gd")
        assert not gd.applicable and gd.holds is None
        (setting,) = [a for a in gd.assumptions if a.name.startswith("exponential loss, NGD")]
        assert not setting.holds and "'gd'" in setting.description
        assert gd.config["optimizer"] == "gd"
    logistic = check_bound("head.H3", ds.X, ds.y, lr=0.5, steps=[100], loss="logistic")
    assert not logistic.applicable
    # the default trains NGD
    ok = check_bound("head.H3m", ds.X, ds.y, lr=0.5, steps=[0, 100])
    assert ok.config["optimizer"] == "ngd"
    assert ok.applicable_at.tolist() == [False, True] and ok.holds


def test_soudry_fig1():
    ds = st.soudry_fig1()
    lr = 0.4 * (1 - 1e-12)  # eta R^2 = 1 (R^2 = 2.5 up to rounding)
    steps = [1, 10, 100, 1000]
    h3 = check_bound("head.H3", ds.X, ds.y, lr=lr, steps=steps)
    h3m = check_bound("head.H3m", ds.X, ds.y, lr=lr, steps=steps)
    assert h3.holds and h3m.holds and h3.applicable_at.all()
    assert np.all(np.asarray(h3.bound)[-1] < 0.2)  # gamma / R = 0.89: tight quickly
    sim = train_head_runs(ds.X, ds.y, lr=lr, steps=[1000], optimizer="ngd")
    w = np.asarray(sim.trajectory.w[0, 0, 0])
    v = w / np.linalg.norm(w)
    gap = ds.margin - np.min((ds.y[:, None] * ds.X) @ v)
    assert gap <= float(get("head.H3m").evaluate(1000, lr, 4, ds.margin, np.sqrt(2.5)))
    assert np.linalg.norm(v - ds.direction) <= 2 * np.sqrt(gap / ds.margin) + 1e-12


# --------------------------------------------------------------------------------------------
# Lemma H-2's D_i with the solver's duality-gap terms


def test_solver_gap_terms_are_nonnegative_and_tiny_when_converged():
    ds = st.planted_margin(30, 5, 0.25, seed=3)
    ev = head.head_evidence(ds.X, ds.y, steps=[1])
    assert 0.0 <= ev.solver_gap < 1e-6
    gaps = ev.solver_gap_loo
    assert np.all(gaps >= 0.0) and gaps.max() < 1e-6
    # the planted exact direction is within the gap term of the solver's direction
    assert np.linalg.norm(ds.direction - ev.loo.full.direction) <= ev.solver_gap
    # certified inactive = the planted inactive points; they keep D_i = 0
    np.testing.assert_array_equal(ev.certified_inactive, ~ds.support)
    assert np.all(ev.D[~ds.support] == 0.0)
    # D_i exceeds Lemma H-2's term alone by exactly the two gap terms
    gamma_i = ev.gamma_loo_upper
    lemma = np.asarray(
        head.SVM_LOO.evaluate(gamma_i - (ev.loo.min_other - ev.allowance), gamma_i, 1.0, 0.0, 0.0)
    )
    np.testing.assert_allclose(
        ev.D[ds.support], (lemma + ev.solver_gap + gaps)[ds.support], rtol=1e-12
    )


def test_solver_gap_covers_an_unconverged_solve():
    # A loose solve: the gap term is what makes D_i (and H-1, H-3) hold for the exact u_S.
    ds = st.planted_margin(40, 6, 0.1, n_support=5, seed=4)
    loose = max_margin(ds.X, ds.y, tol=3e-2)
    loo = loo_max_margin(ds.X, ds.y, result=loose, tol=3e-2)
    ev = head.head_evidence(ds.X, ds.y, steps=[10, 1000], loo=loo)
    err = np.linalg.norm(ds.direction - loose.direction)
    assert err <= ev.solver_gap
    assert ev.solver_gap >= 0.0
    assert get("head.svm_loo").check(ev).holds
    assert get("head.H1").check(ev).holds
