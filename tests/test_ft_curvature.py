"""The true Hessian of the real fine-tuning objective (full_finetuning.curvature), the default
step rule, and the real network's regime measures (edge of stability, PSD check, stationarity)
in the evidence, the study's measured quantities and the report."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stabtheory  # noqa: F401  (float64)
from stabtheory import full_finetuning as ff
from stabtheory.bounds import finetune as ft
from stabtheory.bounds import get

STEPS = (1, 10, 100)


def tiny_net(d=3, h=4):
    """A one-hidden-layer tanh MLP on flat weights, p = d h + 2 h + 1."""
    p = d * h + 2 * h + 1

    def apply(w, x):
        W1 = w[: d * h].reshape(d, h)
        b1 = w[d * h : d * h + h]
        v = w[d * h + h : d * h + 2 * h]
        return jnp.tanh(x @ W1 + b1) @ v + w[-1]

    return apply, p


def dense_objective(apply, w0, X, y, s, lam, linear=None, scale=1.0):
    """The real objective as a function of w, for jax.hessian / jax.grad references."""
    X, y = jnp.asarray(X), jnp.asarray(y)
    return lambda w: ff.l2sp_objective(apply, w, w0, X, y, s, lam, linear=linear, scale=scale)


@pytest.fixture(scope="module")
def bed():
    return ff.make_testbed(
        ff.TestbedConfig("synthetic", n=12, pretrain_steps=100, hidden=(8,), features=4, d_in=6)
    )


@pytest.mark.parametrize("n", [20, 8], ids=["p<n", "p>n"])
@pytest.mark.parametrize("designed", [False, True])
def test_lanczos_hvp_extremes_match_the_dense_hessian(n, designed):
    """Lanczos on Hessian-vector products gives the dense Hessian's extreme eigenvalues and
    the gradient norm, at several points, for the plain and a designed objective."""
    rng = np.random.default_rng(n)
    apply, p = tiny_net()
    X = rng.standard_normal((n, 3))
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    w0 = jnp.asarray(0.7 * rng.standard_normal(p))
    s = jnp.asarray(rng.random(n))
    linear, scale = (jnp.asarray(rng.standard_normal((n, p))), 2.5) if designed else (None, 1.0)
    F = dense_objective(apply, w0, X, y, s, 0.05, linear, scale)
    W = w0[None] + 0.5 * jnp.asarray(rng.standard_normal((3, p)))
    got = ff.path_curvature(
        apply, W, w0, jnp.asarray(X), jnp.asarray(y), s, 0.05, linear=linear, scale=scale
    )
    for j, w in enumerate(W):
        H = np.asarray(jax.hessian(F)(w))
        ev = np.linalg.eigvalsh(H)
        assert ev[0] < 0 < ev[-1]  # an indefinite Hessian: both ends are checked
        np.testing.assert_allclose(got.lam_min[j], ev[0], rtol=1e-8)
        np.testing.assert_allclose(got.lam_max[j], ev[-1], rtol=1e-8)
        np.testing.assert_allclose(got.grad_norm[j], np.linalg.norm(jax.grad(F)(w)), rtol=1e-12)
        g, hvp = ff.objective_hvp(
            apply, w, w0, jnp.asarray(X), jnp.asarray(y), s, 0.05, linear=linear, scale=scale
        )
        np.testing.assert_allclose(g, jax.grad(F)(w), rtol=1e-12, atol=1e-15)
        v = jnp.asarray(rng.standard_normal(p))
        np.testing.assert_allclose(hvp(v), H @ np.asarray(v), rtol=1e-10, atol=1e-12)


def test_lanczos_steps_suffice_when_p_exceeds_them(bed):
    """On a testbed with p > LANCZOS_STEPS (no exact Krylov space), the evidence's extreme
    eigenvalues at w0 and along the real run are the dense Hessian's."""
    design = ff.FTDesign(tilt=0.3, shift=0.2, scale=2.0, seed=1)
    ev = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=STEPS, design=design)
    p = ev.tm.w0.shape[0]
    assert p > ff.LANCZOS_STEPS
    xi, v = design.directions(ev.n, p)
    w0 = jnp.asarray(bed.w0)
    tm = ff.taylor_expand(bed.apply, w0, bed.X, bed.y)
    _, lam_c, a = ff.apply_design(tm, 0.1, 0.3, 0.2, 2.0, jnp.asarray(xi), jnp.asarray(v))
    F = dense_objective(bed.apply, w0, bed.X, bed.y, jnp.ones(ev.n), lam_c, a, 2.0)
    assert ev.hessian_max.shape == (2 + len(STEPS),)  # w0, the checkpoints, the stationary end
    for j, w in enumerate([w0, *jnp.asarray(ev.w_real[0]), jnp.asarray(ev.w_stat[0])]):
        e = np.linalg.eigvalsh(np.asarray(jax.hessian(F)(w)))
        np.testing.assert_allclose([ev.hessian_min[j], ev.hessian_max[j]], [e[0], e[-1]], rtol=1e-8)
        np.testing.assert_allclose(ev.grad_norm[j], np.linalg.norm(jax.grad(F)(w)), rtol=1e-10)
    assert ft.stationarity(ev) == pytest.approx(ev.grad_norm[-1] / ev.grad_norm[0], rel=1e-15)
    assert ev.edge_of_stability == pytest.approx(ev.config["lr"] * ev.hessian_max.max() / 2)


@pytest.mark.parametrize("lr_fraction", [0.5, 0.9, 1.9])
def test_the_step_set_at_w0_uses_both_curvatures(bed, lr_fraction):
    """Without pilot passes, lr = lr_fraction / max(Gauss-Newton lambda_max over S and every
    S\\i, the true Hessian's at w0 on S): the real GD starts inside its stability region
    (eta lambda_max / 2 < 1 at w0 for lr_fraction < 2), and the Taylor GD and the real GD take
    the same step."""
    ev = ft.ft_evidence(
        bed.apply, bed.w0, bed.X, bed.y, lam=0.1, lr_fraction=lr_fraction, steps=(1,), passes=0
    )
    lr = ev.config["lr"]
    assert lr == pytest.approx(lr_fraction / max(ev.lam_max.max(), ev.hessian_max[0]), rel=1e-15)
    assert lr * ev.lam_max.max() <= lr_fraction * (1 + 1e-15)  # assumption (c) for <= 1
    assert lr * ev.hessian_max[0] / 2 <= lr_fraction / 2 * (1 + 1e-15) < 1
    # one step of each GD with that lr, from the dense gradients
    w0 = jnp.asarray(bed.w0)
    F = dense_objective(bed.apply, w0, bed.X, bed.y, jnp.ones(ev.n), 0.1)
    np.testing.assert_allclose(ev.w_real[0, 0], w0 - lr * jax.grad(F)(w0), rtol=1e-12)
    gbar = np.asarray(ev.tm.grads).mean(axis=0)
    np.testing.assert_allclose(ev.w_gd[0, 0], np.asarray(w0) - lr * gbar, rtol=1e-12)


@pytest.mark.parametrize("passes", [1, 2])
def test_the_default_step_is_set_along_pilot_runs(bed, passes):
    """The default step (path_lr): each pilot pass runs GD on S with the current step to the
    checkpoints and lowers it to lr_fraction over the largest top eigenvalue met so far
    (dense Hessians here), so it never exceeds the step set at w0."""
    steps, lam, frac = (1, 10, 60), 0.1, 0.9
    ev = ft.ft_evidence(
        bed.apply, bed.w0, bed.X, bed.y, lam=lam, steps=steps, passes=passes, max_steps=0
    )
    w0 = jnp.asarray(bed.w0)
    F = dense_objective(bed.apply, w0, bed.X, bed.y, jnp.ones(ev.n), lam)
    hess = jax.jit(jax.hessian(F))
    top = [float(np.linalg.eigvalsh(np.asarray(hess(w0)))[-1])]
    gn = float(ev.lam_max.max())
    lr = frac / max(gn, top[0])
    for _ in range(passes):
        w, t = w0, 0
        for c in steps:
            for _ in range(c - t):
                w = w - lr * jax.grad(F)(w)
            t = c
            top.append(float(np.linalg.eigvalsh(np.asarray(hess(w)))[-1]))
        lr = min(lr, frac / max(gn, max(top)))
    assert ev.config["lr"] == pytest.approx(lr, rel=1e-7)
    assert ev.config["lr"] <= frac / max(gn, top[0]) * (1 + 1e-15)


def test_real_runs_go_on_to_the_stationarity_tolerance(bed):
    """After the last checkpoint every real run (S and every S\\i) continues by GD, all of
    them for a common number of steps T: the first at which every run's own relative gradient
    norm is at most tol (one step earlier some run was above it); a cap of 0 stops at the last
    checkpoint."""
    tol = 1e-4
    ev = ft.ft_evidence(
        bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=STEPS, tol=tol, max_steps=5000
    )
    assert ev.stationary and ev.w_stat.shape == (ev.n + 1, ev.tm.w0.shape[0])
    assert np.all(ev.stat_ratio <= tol) and ev.config["tol"] == tol
    T = ev.stat_steps
    assert isinstance(T, int) and T > 0
    w0, lr = jnp.asarray(bed.w0), ev.config["lr"]
    masks = np.asarray(jnp.concatenate([jnp.ones((1, ev.n)), 1 - jnp.eye(ev.n)]))
    before = []
    for r in range(ev.n + 1):
        F = jax.jit(dense_objective(bed.apply, w0, bed.X, bed.y, jnp.asarray(masks[r]), 0.1))
        grad = jax.jit(jax.grad(F))
        g0 = np.linalg.norm(grad(w0))
        w = jnp.asarray(ev.w_real[r, -1])
        for _ in range(T - 1):
            w = w - lr * grad(w)
        before.append(np.linalg.norm(grad(w)) / g0)
        w = w - lr * grad(w)
        if r in (0, 3):
            np.testing.assert_allclose(w, ev.w_stat[r], rtol=1e-9, atol=1e-12)
            assert ev.stat_ratio[r] == pytest.approx(np.linalg.norm(grad(w)) / g0, rel=1e-9)
    assert max(before) > tol  # T is the first step at which every run is below it
    assert ft.stationarity(ev) == pytest.approx(ev.stat_ratio[0], rel=1e-9)
    capped = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=STEPS)  # default 0
    np.testing.assert_array_equal(capped.w_stat, capped.w_real[:, -1])
    assert capped.stat_steps == 0
    no_real = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=(1,), real=False)
    assert no_real.stationary is None


def test_gd_to_tolerance_stops_every_run_together_and_respects_its_cap():
    apply = lambda w, x: w @ x  # noqa: E731
    X, y, w0 = jnp.eye(2), jnp.array([1.0, -1.0]), jnp.zeros(2)
    S = jnp.array([[1.0, 1.0], [1.0, 0.0]])
    st = ff.gd_to_tolerance(apply, jnp.zeros((2, 2)), w0, X, y, S, 0.5, 0.1, tol=1e-12, max_steps=7)
    assert int(st.steps) == 7 and np.all(st.ratio > 1e-12)
    loose = ff.gd_to_tolerance(
        apply, jnp.zeros((2, 2)), w0, X, y, S, 0.5, 0.1, tol=0.5, max_steps=1000
    )
    assert np.all(loose.ratio <= 0.5) and int(loose.steps) < 1000
    # the same GD as gd_finetune for that many steps, on each mask
    for r in range(2):
        W = ff.gd_finetune(apply, w0, X, y, S[r], 0.5, 0.1, (int(loose.steps),))
        np.testing.assert_allclose(loose.w[r], W[0], rtol=1e-12)


def test_an_explicit_step_is_kept(bed):
    ev = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, lr=0.123, steps=(1,))
    assert ev.config["lr"] == 0.123
    design = ff.FTDesign(scale=4.0)
    scaled = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, lr=0.123, design=design)
    assert scaled.config["lr"] == pytest.approx(0.123 / 4.0, rel=1e-15)


def test_evidence_without_the_real_network_has_the_curvature_at_w0(bed):
    ev = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=(1,), real=False)
    assert ev.hessian_min.shape == ev.hessian_max.shape == ev.grad_norm.shape == (1,)
    with pytest.raises(ValueError, match="real=True"):
        ft.stationarity(ev)
    top = max(ev.lam_max.max(), ev.hessian_max[0])
    assert ev.config["lr"] <= 0.9 / top * (1 + 1e-15)  # the pilot passes only lower it
    assert ev.edge_of_stability == pytest.approx(ev.config["lr"] * ev.hessian_max[0] / 2)
    with_real = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=(1,))
    assert with_real.config["lr"] == ev.config["lr"]  # the step does not depend on `real`


def test_true_hessian_psd_check_is_reported_on_the_real_row(bed):
    """The PSD check measures lambda_min of the mean loss's true Hessian at w0 (the pull
    removed), against the dense value; it sits on the real network's FT-2 row only."""
    lam = 0.1
    ev = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=lam, steps=STEPS)
    w0 = jnp.asarray(bed.w0)
    mean_loss = dense_objective(bed.apply, w0, bed.X, bed.y, jnp.ones(ev.n), 0.0)
    e = np.linalg.eigvalsh(np.asarray(jax.hessian(mean_loss)(w0)))
    assert ft.hessian_min_eig(ev) == pytest.approx(e[0], rel=1e-8)
    assert ft.curvature_ratio(ev)[0] == pytest.approx(e[0] / e[-1], rel=1e-8)
    assert ft.curvature_ratio(ev).shape == (2 + len(STEPS),)
    psd = ft.true_hessian_psd(ev)
    assert psd.value == ft.hessian_min_eig(ev) and e[0] < psd.threshold and not psd.holds
    assert psd.threshold < 0 and abs(psd.threshold) < 1e-10 * e[-1]
    real = get("ft.FT2").check(ev, "loo.weights (real)")
    assert "true Hessian PSD" in [a.name for a in real.assumptions]
    taylor = get("ft.FT2").check(ev)
    assert "true Hessian PSD" not in [a.name for a in taylor.assumptions]
    assert taylor.applicable  # the Taylor model's Gauss-Newton curvature is PSD


def test_the_study_reports_the_regime_of_the_real_network(bed):
    """draw_result's measured quantities, merge_measured's max / min over draws, and every
    ``taylor`` row of report.json and its markdown table."""
    from stabtheory.simulations import finetune as study
    from stabtheory.simulations.finetune import compute, report

    spec = dataclasses.replace(
        study.FineTuneStudySpec.quick(),
        n=bed.n,
        ns=(bed.n,),
        pretrain_sweep=(100,),
        pretrain_steps=100,
        interpolation=(0.0,),
        full_sweeps_on=(),
        controlled_on=(),
        steps=STEPS,
        replicates=2,
    )
    (cfg,) = spec.plan()
    evs = [
        ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=lam, lr_fraction=f, steps=STEPS)
        for lam, f in ((0.05, 0.9), (0.2, 1.5))
    ]
    results = [compute.draw_result(cfg, r, ev) for r, ev in enumerate(evs)]
    for res, ev in zip(results, evs, strict=True):
        m = res.measured
        assert m["edge_of_stability"] == ev.edge_of_stability
        assert m["hessian_min_eig"] == ft.hessian_min_eig(ev)
        assert m["hessian_min_rel"] == ft.curvature_ratio(ev)[0]
        assert m["hessian_min_rel_path"] == ft.curvature_ratio(ev).min()
        assert m["stationarity"] == ft.stationarity(ev)
    merged = compute.merge_measured(results)
    for q, agg in (
        ("edge_of_stability", max),
        ("stationarity", max),
        ("hessian_min_eig", min),
        ("hessian_min_rel", min),
        ("hessian_min_rel_path", min),
    ):
        assert merged[q] == agg(r.measured[q] for r in results)
    section = report.section(compute.assemble(spec, [results]))  # one chunk
    keys = ("edge_of_stability", "hessian_min_eig", "hessian_min_rel", "stationarity")
    (row,) = section["extra"]["taylor"]
    assert all(row[k] == merged[k] for k in (*keys, "hessian_min_rel_path"))
    lines = report.markdown({"checks": section["checks"], **section["extra"]})
    header = next(line for line in lines if line.startswith("| task | n |"))
    assert "| edge |" in header and "stationarity" in header
    assert lines[lines.index(header) + 2].count("|") == lines[lines.index(header) + 1].count("|")


def test_true_hessian_psd_check_passes_for_a_convex_loss():
    """A linear model's logistic loss has a PSD Hessian, singular when p > n: the check
    passes at the rounding level (and the curvature ratio is 0 up to rounding)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 10))
    y = np.where(rng.random(6) < 0.5, 1.0, -1.0)
    ev = ft.ft_evidence(
        lambda w, x: w @ x, 0.3 * rng.standard_normal(10), X, y, lam=0.1, steps=(1, 10)
    )
    psd = ft.true_hessian_psd(ev)
    assert psd.holds and abs(ft.hessian_min_eig(ev)) <= abs(psd.threshold)
    np.testing.assert_allclose(ft.curvature_ratio(ev), 0.0, atol=1e-12)
