"""Full fine-tuning bounds FT-1, FT-1L and FT-2 on small flax testbeds (Taylor model)."""

import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st_

import stabtheory  # noqa: F401
from stabtheory import full_finetuning as ff
from stabtheory.bounds import check_bound, get
from stabtheory.bounds import finetune as ft


@pytest.fixture(scope="module")
def bed():
    return ff.make_testbed(
        ff.TestbedConfig(
            task="synthetic", n=12, pretrain_steps=100, hidden=(8,), features=4, d_in=6
        )
    )


def test_registry_and_signs():
    for tid in ("ft.FT1", "ft.FT1c", "ft.FT1L", "ft.FT2"):
        assert get(tid).latex()
    assert get("ft.FT1").facts()["signs"] == {"n": -1, "rho_i": 1, "d_S": 1, "Lambda_i": -1}


def test_ft2_evaluation_matches_the_formula():
    rho, lam, d, n, Lam, eta, t, beta, di = 0.7, 0.1, 2.0, 20.0, 0.3, 0.5, 7.0, 3.0, 1.5
    expected = (rho + lam * d) / ((n - 1) * Lam) + eta * t * beta * (1 - eta * Lam) ** (
        t - 1
    ) * di / n
    got = float(get("ft.FT2").evaluate(rho, lam, d, n, Lam, eta, t, beta, di))
    assert got == pytest.approx(expected, rel=1e-14)


@settings(max_examples=6, deadline=None)
@given(st_.floats(0.01, 0.5), st_.floats(0.1, 1.0), st_.integers(6, 12))
def test_ft_bounds_hold_on_the_taylor_model(bed, lam, lr_fraction, n):
    X, y = bed.X[:n], bed.y[:n]
    ev = ft.ft_evidence(bed.apply, bed.w0, X, y, lam=lam, steps=[1], real=False)
    lr = lr_fraction / float(ev.lam_max.max())
    ev = ft.ft_evidence(bed.apply, bed.w0, X, y, lam=lam, lr=lr, steps=[1, 5, 30, 200], real=True)
    for tid in ("ft.FT1", "ft.FT1c", "ft.FT1L", "ft.FT2"):
        chk = get(tid).check(ev)
        assert chk.applicable and chk.holds, chk.summary()
    # FT-1c's exact numerator is never above FT-1
    assert np.all(get("ft.FT1c").check(ev).bound <= get("ft.FT1").check(ev).bound * (1 + 1e-12))
    real = get("ft.FT2").check(ev, "loo.weights (real)")
    assert not real.applicable and real.holds is None  # the theorem does not cover it
    assert ft.real_departure(ev) > 0


def test_minimiser_loo_is_exact(bed):
    ev = ft.ft_evidence(bed.apply, bed.w0, bed.X[:8], bed.y[:8], lam=0.1, steps=[1], real=False)
    assert ev.cg_residual.max() < 1e-10
    # the GD path converges to the CG minimisers
    ev2 = ft.ft_evidence(
        bed.apply, bed.w0, bed.X[:8], bed.y[:8], lam=0.1, steps=[20_000], real=False
    )
    np.testing.assert_allclose(ev2.w_gd[:, -1], ev2.w_min, atol=1e-8)


def test_check_bound_accepts_a_flax_module_or_a_function(bed):
    module = bed.model()
    assert isinstance(module, nnx.Module)
    a = check_bound("ft.FT1", bed.X[:8], bed.y[:8], model=module, lam=0.1)
    b = check_bound("ft.FT1", bed.X[:8], bed.y[:8], model=bed.apply, params=bed.w0, lam=0.1)
    np.testing.assert_allclose(a.bound, b.bound, rtol=1e-12)
    assert a.holds and b.holds
    c = check_bound(
        "ft.FT2", bed.X[:8], bed.y[:8], model=bed.apply, params=bed.w0, lam=0.1, steps=[1, 10, 100]
    )
    assert c.bound.shape == (3, 8) and c.holds


def test_lam_zero_with_p_larger_than_n_is_not_applicable(bed):
    chk = check_bound("ft.FT1", bed.X[:8], bed.y[:8], model=bed.apply, params=bed.w0, lam=0.0)
    assert not chk.applicable and chk.holds is None
    (lam_check,) = [a for a in chk.assumptions if a.name == "Lam > 0"]
    assert lam_check.value == 0.0


def test_too_large_a_step_makes_ft2_not_applicable(bed):
    chk = check_bound(
        "ft.FT2",
        bed.X[:8],
        bed.y[:8],
        model=bed.apply,
        params=bed.w0,
        lam=0.1,
        lr=1e3,
        steps=[1, 2],
    )
    assert not chk.applicable


def test_ft_needs_a_model(bed):
    with pytest.raises(ValueError, match="model"):
        check_bound("ft.FT1", bed.X, bed.y)


def test_an_exactly_singular_taylor_operator_is_not_applicable():
    # p <= n and lam = 0 with a zero head: the Gauss-Newton matrix has rank < p, so A_S is
    # singular; eigenvalue rounding noise must not pass for Lam > 0.
    bed = ff.make_testbed(
        ff.TestbedConfig(task="synthetic", n=60, pretrain_steps=0, hidden=(3,), features=2, d_in=2)
    )
    w0 = np.array(bed.w0)
    lo, hi = bed.info["head_slice"]
    w0[lo:hi] = 0.0
    chk = check_bound("ft.FT1", bed.X, bed.y, model=bed.apply, params=w0, lam=0.0)
    assert not chk.applicable


def test_trivial_bounds_of_every_fine_tuning_notion(bed):
    """||w(S) - w0|| + ||w(S\\i) - w0|| for the minimisers, the Taylor GD path and the real
    network, and |l_S| + |l_S\\i| for the losses, recomputed with numpy from the evidence."""
    ev = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=[1, 10, 30])
    w0 = np.asarray(bed.w0)
    for kind, W in (
        ("min.weights", ev.w_min),
        ("gd.weights", ev.w_gd),
        ("real.weights", ev.w_real),
    ):
        d = np.linalg.norm(np.asarray(W) - w0, axis=-1)
        expected = (d[0] + d[1:])[None] if d.ndim == 1 else d[0][:, None] + d[1:].T
        np.testing.assert_allclose(ev.trivial(kind), expected, rtol=1e-12)
        assert ev.trivial(kind).shape == ev.empirical(kind).shape
    L = ev.min_losses
    np.testing.assert_allclose(ev.trivial("min.loss"), (abs(L[0]) + abs(L[1]))[None], rtol=1e-12)
    assert np.all(ev.trivial("real.loss") >= ev.empirical("real.loss"))
    for kind in ("min.weights", "gd.weights", "real.weights", "min.loss"):
        assert np.all(ev.trivial(kind) >= ev.empirical(kind) - 1e-12)  # the triangle inequality
    checks = [get(t).check(ev, n) for t in ("ft.FT1", "ft.FT1L") for n in get(t).notions]
    assert all(c.summary()["trivial_bound"] is not None for c in checks)
