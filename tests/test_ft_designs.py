"""Controlled designs of full fine-tuning (docs/theory.md section 6) and the FT-1c check."""

from __future__ import annotations

import contextlib
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring

from stabtheory import full_finetuning as ff
from stabtheory.bounds import check_bound, get
from stabtheory.bounds import finetune as ft
from stabtheory.linear_heads import loo_weights

STEPS = (1, 10, 100, 1000)


@contextlib.contextmanager
def traces():
    """The names of the functions JAX traces to a jaxpr inside the block (jit, eager ops)."""
    names = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            names.append(kwargs.get("fun_name"))

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(scope="module")
def bed():
    return ff.make_testbed(
        ff.TestbedConfig("synthetic", n=12, pretrain_steps=100, hidden=(8,), features=4, d_in=6)
    )


def evidence(bed, design=None, *, real=False, lam=0.1):
    return ft.ft_evidence(
        bed.apply, bed.w0, bed.X, bed.y, lam=lam, steps=STEPS, real=real, design=design
    )


@pytest.fixture(scope="module")
def plain(bed):
    return evidence(bed, real=True)


def dense_A(ev, row):
    return ff.dense_operator(ev.tm, np.asarray(loo_weights(ev.n))[row], ev.config["lam"])


def test_tilt_directions_are_zero_sum_and_seeded():
    design = ff.FTDesign(tilt=1.0, shift=1.0, seed=3)
    xi, v = design.directions(12, 40)
    np.testing.assert_allclose(xi.sum(axis=0), 0.0, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(xi, axis=1), np.sqrt(1 - 1 / 12), rtol=0.3)
    assert float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-15)
    xi2, _ = design.directions(12, 40)
    assert np.array_equal(xi, xi2)
    other = dataclasses.replace(design, seed=4)
    assert not np.allclose(xi, other.directions(12, 40)[0])
    # a plain design draws nothing
    assert not np.any(ff.FTDesign().directions(3, 5)[0])


@pytest.mark.parametrize("kappa", [0.5, 2.0, 8.0])
def test_tilt_fixes_the_problem_on_S_and_moves_rho(bed, plain, kappa):
    ev = evidence(bed, ff.FTDesign(tilt=kappa * float(np.median(plain.rho))), real=True)
    # w_S, the GD path on S, the distance, A_S (Lambda, beta) are unchanged ...
    np.testing.assert_allclose(ev.w_min[0], plain.w_min[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ev.w_gd[0], plain.w_gd[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ev.w_real[0], plain.w_real[0], rtol=0, atol=1e-12)
    assert ev.distance == pytest.approx(plain.distance, rel=1e-12)
    np.testing.assert_allclose(dense_A(ev, 0), dense_A(plain, 0), rtol=0, atol=1e-12)
    assert ev.lam_min[0] == pytest.approx(plain.lam_min[0], rel=1e-10)
    np.testing.assert_allclose(ev.beta_i, plain.beta_i, rtol=1e-12)
    # ... while rho_i = ||grad l_i(w_S) + kappa xi_i|| and the leave-one-out runs change
    assert not np.allclose(ev.rho, plain.rho, rtol=1e-3)
    xi, _ = ev.design.directions(ev.n, ev.tm.w0.size)
    r_plain = np.asarray(ff.quadratic_grads(plain.tm, plain.w_min[:1])[0])
    np.testing.assert_allclose(
        ev.rho, np.linalg.norm(r_plain + ev.design.tilt * np.asarray(xi), axis=1), rtol=1e-10
    )
    assert not np.allclose(ev.w_min[1:], plain.w_min[1:], rtol=1e-6)
    for chk in (ft.check_ft1(ev), ft.check_ft1c(ev), ft.check_ft2(ev)):
        assert chk.applicable and chk.holds, chk.summary()


@pytest.mark.parametrize("s", [0.3, -1.0, 2.5])
def test_shift_moves_the_minimiser_by_s_v_only(bed, plain, s):
    v = np.random.default_rng(0).standard_normal(plain.tm.w0.size)
    v /= np.linalg.norm(v)
    ev = evidence(bed, ff.FTDesign(shift=s, v=v))
    # w_S - w0 and every w_S\i - w0 move by exactly s v
    np.testing.assert_allclose(
        ev.w_min - plain.w_min, np.broadcast_to(s * v, ev.w_min.shape), rtol=0, atol=1e-9
    )
    # r_i - mean r and A are unchanged (so the exact LOO change is too)
    np.testing.assert_allclose(ev.deviation, plain.deviation, rtol=1e-8)
    for row in (0, 1, 5):
        np.testing.assert_allclose(dense_A(ev, row), dense_A(plain, row), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        ev.empirical("min.weights"), plain.empirical("min.weights"), rtol=1e-7, atol=1e-12
    )
    assert ev.distance == pytest.approx(np.linalg.norm(plain.w_min[0] + s * v - plain.tm.w0))


@pytest.mark.parametrize("c", [0.25, 4.0])
def test_loss_scaling_is_a_negative_control(bed, plain, c):
    ev = evidence(bed, ff.FTDesign(scale=c), real=True)
    assert ev.config["lam"] == pytest.approx(c * plain.config["lam"])
    assert ev.config["lr"] == pytest.approx(plain.config["lr"] / c, rel=1e-12)
    for a, b in ((ev.w_min, plain.w_min), (ev.w_gd, plain.w_gd), (ev.w_real, plain.w_real)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ev.rho, c * plain.rho, rtol=1e-9)
    np.testing.assert_allclose(ev.Lam, c * plain.Lam, rtol=1e-9)
    np.testing.assert_allclose(ev.beta_i, c * plain.beta_i, rtol=1e-12)
    np.testing.assert_allclose(ev.real_losses, c * plain.real_losses, rtol=1e-9)
    # the weight notion does not move; the loss notion scales by c
    np.testing.assert_allclose(
        ev.empirical("real.weights"), plain.empirical("real.weights"), rtol=1e-6, atol=1e-12
    )


def test_real_network_tilt_keeps_the_S_run(bed):
    """``gd_finetune`` with zero-sum linear terms: the S run is the plain one, an S\\i run not."""
    n, p = bed.X.shape[0], bed.p
    xi, _ = ff.FTDesign(tilt=1.0, seed=1).directions(n, p)
    W = loo_weights(n)[:3]
    kw = dict(lr=jnp.full(3, 0.3), lam=0.05, checkpoints=jnp.array([5, 50]))
    plain = ff.jit_finetune_runs(bed.apply, bed.w0, bed.X, bed.y, W, **kw)
    tilted = ff.jit_finetune_runs(bed.apply, bed.w0, bed.X, bed.y, W, linear=2.0 * xi, **kw)
    np.testing.assert_allclose(tilted[0], plain[0], rtol=0, atol=1e-12)
    assert not np.allclose(tilted[1], plain[1], atol=1e-6)


def test_ft1c_holds_and_is_at_most_ft1(bed, plain):
    for ev in (plain, evidence(bed, ff.FTDesign(tilt=1.0)), evidence(bed, lam=0.01)):
        c1, c1c = ft.check_ft1(ev), ft.check_ft1c(ev)
        assert c1c.applicable and c1c.holds, c1c.summary()
        d = np.linalg.norm(np.asarray(ev.w_min) - np.asarray(ev.tm.w0), axis=1)
        np.testing.assert_allclose(c1c.trivial, (d[0] + d[1:])[None], rtol=1e-12)
        both = c1.applicable_at & c1c.applicable_at
        assert both.any()
        assert np.all(c1c.bound[both] <= c1.bound[both] * (1 + 1e-12))
        # FT-1c is the exact identity's bound: tight within the condition number of A_S\i
        assert np.all(c1c.bound >= c1c.empirical * (1 - 1e-9))


def test_ft1c_matches_the_exact_identity(plain):
    """w_S - w_S\\i = -A_S\\i^{-1} (r_i - mean r) / (n - 1), with dense matrices."""
    r = np.asarray(ff.quadratic_grads(plain.tm, plain.w_min[:1])[0])
    n = plain.n
    for i in (0, 3, n - 1):
        A = dense_A(plain, i + 1)
        expected = -np.linalg.solve(A, r[i] - r.mean(axis=0)) / (n - 1)
        np.testing.assert_allclose(plain.w_min[0] - plain.w_min[i + 1], expected, atol=1e-10)
    assert plain.deviation == pytest.approx(np.linalg.norm(r - r.mean(axis=0), axis=1))


def test_ft1c_registry_and_formula():
    th = get("ft.FT1c")
    assert th.latex() and "lambda_min(A_S\\i) > 0" in th.assumptions[0]
    assert float(th.evaluate(0.7, 11.0, 0.2)) == pytest.approx(0.7 / (10 * 0.2), rel=1e-15)


def test_check_bound_ft1c(bed):
    res = check_bound("ft.FT1c", bed.X, bed.y, model=bed.apply, params=bed.w0, lam=0.1)
    assert res.applicable and res.holds and res.bound.shape == (bed.n,)


def test_evidence_compiles_once_per_shape(bed):
    """Designs, lam, lr and checkpoint values are traced: no new trace per configuration."""
    evidence(bed)
    with traces() as names:
        for design in (ff.FTDesign(tilt=0.3), ff.FTDesign(shift=0.2, scale=2.0)):
            ev = ft.ft_evidence(
                bed.apply,
                bed.w0,
                bed.X,
                bed.y,
                lam=0.3,
                steps=(2, 20, 200, 2000),
                real=False,
                design=design,
            )
    assert names == []
    assert ev.config["scale"] == 2.0


def test_study_traces_do_not_grow_with_configs_or_draws():
    from stabtheory.simulations import finetune as study

    tiny = dataclasses.replace(
        study.FineTuneStudySpec.quick(),
        n=8,
        ns=(6, 8),
        pretrain_sweep=(0, 50),
        pretrain_steps=50,
        input_scales=(1.0,),
        interpolation=(0.0,),
        tilts=(4.0,),
        shifts=(),
        scales=(),
        steps=(1, 10),
        replicates=1,
    )
    study.run_finetune_study(tiny)  # warm the compilation cache
    wide = dataclasses.replace(
        tiny,
        replicates=3,
        tilts=(0.5, 2.0, 8.0),
        shifts=(1.0, 3.0),
        scales=(4.0,),
        interpolation=(0.0, 0.5),
    )
    with traces() as names:
        result = study.run_finetune_study(wide)
    assert names == []  # sizes n = 6, 8 were compiled by the small study
    assert len(result.configs) > len(tiny.plan())
    verdicts = {(v.claim, v.notion): v for v in result.verdicts}
    control = verdicts[("control.scale", "loo.weights")]
    assert all(r.design == "software-control" and not r.counted for r in control.regimes)
    assert control.verdict == "inconclusive"  # a software control is shown, never counted
    tilt = [r for r in verdicts[("ft.lipschitz", "loo.weights")].regimes if "tilt" in r.regime]
    assert tilt and not any(r.counted for r in tilt)
    for r in tilt:  # Taylor: decided by an identity; the real network: outside assumption (d)
        assert r.design == ("natural" if "real network" in r.regime else "positive-control")
    shift = [
        r.regime for r in verdicts[("ft.distance", "loo.weights")].regimes if "shift" in r.regime
    ]
    assert any(r.startswith("early") for r in shift) and any(r.startswith("late") for r in shift)


def test_padding_gives_the_unpadded_evidence(bed):
    X, y = bed.X[:7], bed.y[:7]
    design = ff.FTDesign(tilt=0.4, shift=0.2, scale=2.0)
    a, b = (
        ft.ft_evidence(
            bed.apply,
            bed.w0,
            X,
            y,
            lam=0.1,
            lr_fraction=0.5,
            steps=STEPS,
            design=design,
            pad_to=m,
        )
        for m in (None, 12)
    )
    for key in (
        "w_min",
        "lam_min",
        "lam_max",
        "beta_i",
        "rho",
        "rho_loo",
        "deviation",
        "min_losses",
        "w_gd",
    ):
        np.testing.assert_allclose(
            getattr(b, key), getattr(a, key), rtol=1e-8, atol=1e-11, err_msg=key
        )
    # the real network's GD on this small testbed amplifies rounding (a different summation
    # order) over hundreds of steps: compare its early checkpoints only
    for key in ("w_real", "real_losses", "quad_losses"):
        np.testing.assert_allclose(
            getattr(b, key)[:, :2], getattr(a, key)[:, :2], rtol=1e-10, atol=1e-12, err_msg=key
        )
    assert b.n == 7 and b.config["lr"] == pytest.approx(a.config["lr"], rel=1e-12)
    with pytest.raises(ValueError, match="pad_to"):
        ft.ft_evidence(bed.apply, bed.w0, X, y, pad_to=5, real=False)
