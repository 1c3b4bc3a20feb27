"""Conformance of every registered theorem, and a toy theorem registered from this file alone.

Every theorem renders LaTeX, its generated JAX function agrees with its sympy expression at
random points, and its check returns a :class:`BoundCheck` of every notion it bounds on a tiny
problem. The registry's order is the studies' check order.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import sympy as sp

import stabtheory as st
from stabtheory import full_finetuning as ff
from stabtheory.bounds import (
    REGISTRY,
    BoundCheck,
    FTEvidence,
    HeadEvidence,
    Theorem,
    check_all,
    check_bound,
    get,
    register,
    theorems_for,
    tolerance,
    unregister,
)
from stabtheory.bounds import finetune as ft

THEOREMS = list(REGISTRY.values())
IDS = list(REGISTRY)
HEAD_STEPS = [1, 10, 100]
FT_STEPS = [1, 10]


def _draw(symbol: sp.Symbol, rng: np.random.Generator) -> float:
    """A random value in the symbol's domain (log-uniform over 1e-2..1e3 when positive)."""
    if symbol.is_positive or symbol.is_nonnegative:
        return float(10 ** rng.uniform(-2, 3))
    return float(rng.uniform(-1.0, 10.0))


@pytest.mark.parametrize("theorem", THEOREMS, ids=IDS)
def test_renders_latex(theorem):
    latex = theorem.latex()
    assert isinstance(latex, str) and latex
    assert sp.latex(theorem.expression) in latex


@pytest.mark.parametrize("theorem", THEOREMS, ids=IDS)
def test_jax_function_agrees_with_sympy(theorem):
    rng = np.random.default_rng(sum(map(ord, theorem.id)))
    compared = 0
    for _ in range(200):
        point = [_draw(s, rng) for s in theorem.symbols]
        values = {s: sp.Float(v, 40) for s, v in zip(theorem.symbols, point, strict=True)}
        try:
            exact = theorem.expression.subs(values).evalf(40)
        except TypeError:  # a Piecewise condition on a complex value
            continue
        if not (exact.is_real and exact.is_finite):
            continue  # outside the bound's domain (e.g. log(n - 1) for n < 1, Psi(t) <= 0)
        got = float(theorem.evaluate(*point))
        np.testing.assert_allclose(got, float(exact), rtol=1e-12, err_msg=f"{point}")
        compared += 1
        if compared == 25:
            break
    assert compared == 25, f"{theorem.id}: only {compared} points in the domain"


@pytest.fixture(scope="module")
def head_data():
    return st.planted_margin(8, 3, 0.3, seed=0)


@pytest.fixture(scope="module")
def bed():
    return ff.make_testbed(
        ff.TestbedConfig(task="synthetic", n=6, pretrain_steps=0, hidden=(4,), features=2, d_in=3)
    )


@pytest.fixture(scope="module")
def evidence(head_data, bed):
    """A tiny problem's evidence, per evidence kind and optimizer (the fine-tuning one with
    the real network's runs, so that it measures every notion)."""
    cache = {}

    def get_evidence(kind: type, optimizer: str | None):
        if (kind, optimizer) not in cache:
            if kind is FTEvidence:
                ev = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=FT_STEPS)
            else:
                ev = kind.for_check(
                    head_data.X,
                    head_data.y,
                    optimizer=optimizer,
                    loss="exponential",
                    lr=0.9 / head_data.radius**2,
                    steps=HEAD_STEPS,
                    init=None,
                    heads_per_run=1,
                    dtype=np.float64,
                )
            cache[kind, optimizer] = ev
        return cache[kind, optimizer]

    return get_evidence


@pytest.mark.parametrize("theorem", THEOREMS, ids=IDS)
def test_check_returns_a_bound_check_of_every_notion(theorem, evidence):
    optimizer = theorem.optimizers[0] if theorem.optimizers else None
    ev = evidence(theorem.evidence, optimizer)
    assert theorem.applies_to(ev)
    assert theorem.notions_for(ev) == theorem.notions
    for notion in theorem.notions:
        chk = theorem.check(ev, notion)
        assert isinstance(chk, BoundCheck)
        assert (chk.theorem, chk.notion) == (theorem.id, notion)
        assert chk.bound.shape == chk.empirical.shape
        assert chk.bound.shape[0] == len(chk.steps) == len(chk.applicable_at)
        if theorem.converged:
            assert chk.bound.shape[0] == 1
        assert isinstance(chk.summary(), dict)
    assert theorem.check(ev).notion == theorem.notions[0]
    with pytest.raises(ValueError, match=re.escape(theorem.id)):
        theorem.check(ev, "no.such.notion")


def test_check_order_is_the_registration_order(evidence):
    def order(ev, **kwargs):
        return [(c.theorem, c.notion) for c in check_all(ev, **kwargs)]

    gd = evidence(HeadEvidence, "gd")
    assert order(gd) == [
        ("head.svm_loo", "svm.direction"),
        ("head.H1", "loo.direction"),
        ("head.H2", "loo.direction"),
        ("head.H2m", "margin.gap"),
        ("head.C1", "loo.weights"),
        ("head.C1", "loo.loss"),
    ]
    # a theorem of the data alone is left out for a second run on the same data
    assert order(gd, trained_only=True) == order(gd)[1:]
    assert [th.id for th in theorems_for(evidence(HeadEvidence, "ngd"))] == [
        "head.H1",
        "head.H3",
        "head.H3m",
    ]
    assert order(evidence(FTEvidence, None)) == [
        ("ft.FT1", "loo.weights"),
        ("ft.FT1c", "loo.weights"),
        ("ft.FT1L", "loo.loss"),
        ("ft.FT2", "loo.weights (gd)"),
        ("ft.FT2", "loo.weights (real)"),
    ]


def test_checks_without_the_real_network_leave_out_its_notion(bed):
    ev = ft.ft_evidence(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=FT_STEPS, real=False)
    assert [(c.theorem, c.notion) for c in check_all(ev)][-1] == ("ft.FT2", "loo.weights (gd)")
    with pytest.raises(ValueError, match="real=True"):
        get("ft.FT2").check(ev, "loo.weights (real)")


def test_facts_are_the_symbolic_derivations():
    facts = {th.id: th.facts() for th in REGISTRY.values() if th.facts()}
    assert list(facts) == ["head.H2", "ft.FT1"]
    assert facts["head.H2"]["d bound / d t"]["sign"] == -1
    assert facts["ft.FT1"]["signs"] == {"n": -1, "rho_i": 1, "d_S": 1, "Lambda_i": -1}


def test_register_refuses_a_duplicate_id():
    with pytest.raises(ValueError, match=re.escape("head.H1")):
        register(get("head.H1"))


# --------------------------------------------------------------------------------------------
# Extension: a toy theorem defined and registered here, with no edit to the package

c = sp.Symbol("c", positive=True)


def _check_toy(ev: HeadEvidence, notion: str) -> BoundCheck:
    """Two unit vectors are at most 2 apart: the trivial bound, at every checkpoint."""
    empirical = ev.empirical("direction")
    bound = np.broadcast_to(np.asarray(TOY.evaluate(1.0)), empirical.shape)
    return BoundCheck(
        theorem=TOY.id,
        notion=notion,
        steps=ev.steps,
        bound=np.array(bound),
        empirical=empirical,
        applicable_at=np.ones(len(ev.steps), bool),
        assumptions=(),
        tol=tolerance(np.float64),
        config=dict(ev.config),
        trivial=2.0,
    )


TOY = Theorem(
    id="toy.unit_distance",
    title="Two unit vectors are at most 2 c apart (c = 1)",
    expression=2 * c,
    symbols=(c,),
    notions=("loo.direction",),
    assumptions=("the heads are non-zero",),
    reference="the triangle inequality",
    evidence=HeadEvidence,
    checker=_check_toy,
    optimizers=("gd",),
)


@pytest.fixture
def toy():
    register(TOY)
    try:
        yield TOY
    finally:
        unregister(TOY.id)


def test_a_toy_theorem_is_picked_up_end_to_end(toy, head_data, evidence):
    assert list(REGISTRY)[-1] == toy.id and get(toy.id) is toy
    gd = evidence(HeadEvidence, "gd")
    assert toy in theorems_for(gd)
    assert toy not in theorems_for(evidence(HeadEvidence, "ngd"))
    assert toy not in theorems_for(evidence(FTEvidence, None))
    (chk,) = [c for c in check_all(gd) if c.theorem == toy.id]
    assert chk.holds and chk.notion == "loo.direction"
    lr = 0.9 / head_data.radius**2
    res = check_bound(toy.id, head_data.X, head_data.y, lr=lr, steps=HEAD_STEPS)
    assert res.theorem == toy.id and res.holds
    np.testing.assert_array_equal(res.empirical, chk.empirical)
    one = check_bound(toy.id, head_data.X, head_data.y, lr=lr, steps=10)
    assert one.bound.shape == (head_data.n,)  # one step count: per sample


def test_unregister_leaves_the_registry_as_it_was(toy):
    assert toy.id in REGISTRY
    ids = [i for i in REGISTRY if i != toy.id]
    replaced = dataclasses.replace(toy, title="replaced")
    unregister(toy.id)
    register(replaced)
    assert get(toy.id).title == "replaced"
    assert [i for i in REGISTRY if i != toy.id] == ids
