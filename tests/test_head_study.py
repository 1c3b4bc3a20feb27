"""The head study's data families, its plan and its regimes (head.lr at fixed t and at
matched eta * t; planted head.n as a control)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import test_engine as engine_tests

from stabtheory.data.families import FAMILIES
from stabtheory.report.document import write_report
from stabtheory.simulations import engine
from stabtheory.simulations import head as head_study

TINY = engine_tests.TINY  # the engine tests' small spec: every family, seconds to run


@pytest.fixture(scope="module")
def study():
    return head_study.run_head_study(TINY)


def _regimes(study, claim_id, notion="direction"):
    (v,) = [v for v in study.verdicts if v.claim == claim_id and v.notion == f"loo.{notion}"]
    return v.regimes


@pytest.mark.parametrize("spec", [head_study.HeadStudySpec(), head_study.HeadStudySpec.quick()])
def test_plan_has_every_family_and_each_family_its_sweeps(spec):
    plan = spec.plan()
    assert {c.family for c in plan} == set(spec.families)
    assert len(plan) == len(set(plan))
    for family in spec.families:
        for loss in spec.losses_of(family):
            base = spec.base(loss, family)
            mine = [c for c in plan if c.family == family and c.loss == loss]
            assert base in mine
            assert {c.lr for c in mine} == set(spec.lr_values)
            assert len({c.n for c in mine}) >= 2
            assert len({(c.gamma, c.pair) for c in mine}) >= 2
    digits = [c for c in plan if c.family == "digits"]
    assert {c.pair for c in digits} == (set(spec.digits_pairs) if digits else set())
    assert all(c.gamma is None for c in digits)


def test_the_default_study_has_every_family():
    assert set(head_study.HeadStudySpec().families) == set(FAMILIES)


@pytest.mark.parametrize(
    "spec", [head_study.HeadStudySpec(), head_study.HeadStudySpec.quick(), TINY]
)
def test_matched_checkpoints_are_exact_checkpoints(spec):
    matched = spec.matched_steps
    assert set(matched) == set(spec.lr_values)
    assert matched[spec.lr] == spec.t_ref
    for lr, t in matched.items():
        assert t in spec.steps and 1 <= t <= spec.t_max
        # eta * t matches up to the rounding of t to an integer
        assert abs(lr * t - spec.lr * spec.t_ref) <= lr / 2 + 1e-9


def test_matched_t_outside_the_run_is_refused():
    with pytest.raises(ValueError, match="matched_t"):
        dataclasses.replace(TINY, matched_t=200)  # lr 0.1 would need t = 600 > t_max
    with pytest.raises(ValueError, match="families"):
        dataclasses.replace(TINY, families=("planted", "mnist"))


def test_head_lr_is_judged_at_fixed_t_and_matched_eta_t(study):
    for notion in head_study.NOTIONS:
        regimes = [r.regime for r in _regimes(study, "head.lr", notion)]
        for family in FAMILIES:
            mine = [r for r in regimes if r.startswith(family)]
            assert sum("fixed t=" in r for r in mine) == 1
            assert sum("matched eta*t=" in r for r in mine) == 1
    # the matched regime reads each lr's run at its own checkpoint
    (matched,) = [
        r
        for r in _regimes(study, "head.lr")
        if r.regime.startswith("planted, ") and "matched" in r.regime
    ]
    steps = study.steps
    lrs = sorted(TINY.lr_values)
    for lr, mean in zip(lrs, matched.instability, strict=True):
        (k,) = [
            k
            for k, c in enumerate(study.plan)
            if c == dataclasses.replace(TINY.base("exponential"), lr=lr)
        ]
        t = int(np.argmin(np.abs(steps - TINY.matched_steps[lr])))
        assert mean == pytest.approx(float(np.mean(study.stability[k]["direction"][t])))


def test_planted_head_n_is_a_control_and_every_family_is_a_regime(study):
    for claim_id in ("head.iterations", "head.lr", "head.margin", "head.n"):
        regimes = _regimes(study, claim_id)
        for family in FAMILIES:
            assert any(r.regime.startswith(family) for r in regimes), (claim_id, family)
    for r in _regimes(study, "head.n"):
        planted = r.regime.startswith("planted")
        assert r.design == ("positive-control" if planted else "natural")
        assert r.counted == (not planted)
    for r in _regimes(study, "head.margin"):
        assert r.design == "natural" and r.counted
    for r in _regimes(study, "head.lr"):  # eta at fixed t also moves eta * t
        assert (r.design == "confounded") == ("fixed t" in r.regime)
    for v in study.verdicts:
        if v.claim == "head.iterations" and v.notion == "loo.weights":
            assert all(r.design == "positive-control" for r in v.regimes)
            assert all("grows by construction" in r.regime for r in v.regimes)
    (digits,) = {
        r.regime.split(",")[0] for r in _regimes(study, "head.margin") if "digits" in r.regime
    }
    assert "pairs differ in more than margin" in ", ".join(
        r.regime for r in _regimes(study, "head.margin") if r.regime.startswith(digits)
    )


def test_families_share_the_compiled_programs(study):
    groups = {c.group[:3] for c in head_study.chunks(TINY)}
    assert groups == {
        ("exponential", "gd", 8),
        ("exponential", "gd", 16),
        ("exponential", "ngd", 16),
    }
    # digits features (width 8) and d = 3 data in one program: weights sliced back to each d
    widths = {c["family"]: c["d"] for c in study.configs if c["optimizer"] == "gd"}
    assert widths == {"planted": 3, "generic": 3, "digits": 8}
    for k, values in study.stability.items():
        assert all(np.all(np.isfinite(v)) for v in values.values()), study.configs[k]


def test_report_has_a_row_per_family_and_the_figures(study, tmp_path):
    write_report({"head": study}, tmp_path, environment=engine.environment({}))
    md = (tmp_path / "report.md").read_text()
    table = md[md.index("## Head tuning: data families") :].split("\n\n")[2].splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == list(FAMILIES)
    for name in ("claims_direction.png", "stability_vs_n.png", "bounds_exponential.png"):
        assert (tmp_path / name).exists()


def test_normalized_gd_runs_check_theorem_h3_and_inform_no_claim(study):
    ngd = [k for k, c in enumerate(study.configs) if c["optimizer"] == "ngd"]
    assert [study.configs[k]["gamma_planted"] for k in ngd] == list(TINY.ngd_gammas)
    rows = {c.theorem: c for k, c in study.checks if k in ngd}
    assert set(rows) == {"head.H1", "head.H3", "head.H3m"}
    assert rows["head.H3"].applicable and rows["head.H3"].holds
    assert rows["head.H3m"].applicable and rows["head.H3m"].holds
    for v in study.verdicts:
        for r in v.regimes:
            assert "ngd" not in r.regime
    # no GD sweep picks up an NGD run
    for claim_id in ("head.lr", "head.margin", "head.n"):
        assert not set(head_study.sweep(study, "planted", "exponential", claim_id)) & set(ngd)


def test_figures_rendered_by_worker_processes_are_the_same_files(study, tmp_path):
    env = engine.environment({})
    serial = write_report({"head": study}, tmp_path / "serial", environment=env)
    pooled = write_report({"head": study}, tmp_path / "pooled", environment=env, workers=2)
    assert serial == pooled
    assert "rates_h1_h2_h3.png" in pooled["figures"]
    for name in pooled["figures"]:
        png = (tmp_path / "pooled" / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        assert len(png) == pytest.approx(len((tmp_path / "serial" / name).read_bytes()), rel=0.05)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_draws_data_certified_separable(name):
    from stabtheory.svm import max_margin

    spec = dataclasses.replace(TINY, families=(name,))
    for cfg in [c for c in spec.plan() if c.family == name]:
        for draw in range(2):
            ds = spec.dataset(cfg, draw)
            assert ds.n == cfg.n and ds.d == (FAMILIES[name].width or spec.d)
            assert max_margin(ds.X, ds.y).margin > 0
            # nested subsets: a draw of size n is a prefix of the family's largest draw
            big = spec.dataset(dataclasses.replace(cfg, n=max(spec.ns_of(name))), draw)
            np.testing.assert_array_equal(ds.X, big.X[: cfg.n])


@pytest.fixture
def toy_family():
    """A data family defined and registered here alone (no edit to the package)."""
    from stabtheory.data import separable_gaussian
    from stabtheory.data.families import Family, register_family

    def sample(n, margin, *, d, radius, seed):
        return separable_gaussian(n, d, separation=1.0 + 4 * margin, seed=seed + 17)

    family = register_family(
        Family(
            name="toy",
            sample=sample,
            description="separable_gaussian (d={d})",
            margin_label="toy margin",
            margins=(0.2, 0.5),
            config_key="gamma_toy",
            regimes={"head.margin": "toy across margins {margins} (observational)"},
        )
    )
    yield family
    del FAMILIES["toy"]


def test_register_family_refuses_a_taken_name(toy_family):
    from stabtheory.data.families import register_family

    with pytest.raises(ValueError, match="already registered"):
        register_family(toy_family)
    assert list(FAMILIES)[-1] == "toy"


def test_a_registered_family_is_planned_run_judged_and_reported(toy_family, tmp_path):
    spec = dataclasses.replace(TINY, families=("planted", "toy"), replicates=2)
    plan = spec.plan()
    toy = [c for c in plan if c.family == "toy"]
    assert {c.gamma for c in toy} == {spec.gamma, 0.2, 0.5}
    assert {c.n for c in toy} == set(spec.family_ns) | {spec.family_n}
    study = head_study.run_head_study(spec)
    toy_configs = [c for c in study.configs if c["family"] == "toy"]
    assert [c["gamma_toy"] for c in toy_configs] == [c.gamma for c in toy]
    assert all(np.isnan(c["gamma_toy"]) for c in study.configs if c["family"] != "toy")
    margins = [
        head_study.margin_parameter(study.configs[k])
        for k in head_study.sweep(study, "toy", "exponential", "head.margin")
    ]
    assert margins == sorted({spec.gamma, 0.2, 0.5})
    (regime,) = [
        r
        for v in study.verdicts
        if v.claim == "head.margin" and v.notion == "loo.direction"
        for r in v.regimes
        if r.regime.startswith("toy") and "late" in r.regime
    ]
    assert regime.regime.startswith("toy across margins 0.2, 0.5 (observational), exponential")
    report = write_report({"head": study}, tmp_path, environment=engine.environment({}))
    (row,) = [f for f in report["studies"]["head"]["families"] if f["family"] == "toy"]
    assert row["data"] == f"separable_gaussian (d={spec.d})" and row["pairs"] is None
    assert "| toy | separable_gaussian" in (tmp_path / "report.md").read_text()


def test_placebo_copies_are_independent_draws_of_the_base():
    spec = head_study.HeadStudySpec.quick()
    base = spec.base("exponential", "generic")
    copies = [c for c in spec.plan() if c.copy and c.family == "generic"]
    assert [c.copy for c in copies] == list(range(1, spec.placebo_copies))
    assert all(dataclasses.replace(c, copy=0) == base for c in copies)
    a, b = spec.dataset(base, 0), spec.dataset(copies[0], 0)
    assert a.X.shape == b.X.shape and not np.allclose(a.X, b.X)
    # no draw of a copy is a draw of the base
    assert not any(np.allclose(b.X, spec.dataset(base, r).X) for r in range(spec.replicates))


def test_placebo_claims_are_judged_by_the_claims_statistics_and_never_counted(study):
    from stabtheory.simulations.head.claims import judge_placebo

    placebo = judge_placebo(study)
    spec = study.spec
    pairs = sum(len(spec.losses_of(f)) for f in spec.families)
    assert placebo["claims"] == pairs * 3 * 2  # every notion, early and late
    assert placebo["decisive"] == sum(r["verdict"] != "inconclusive" for r in placebo["regimes"])
    assert placebo["rate"] == placebo["decisive"] / placebo["claims"]
    lo, hi = placebo["ci"]
    assert 0.0 <= lo <= placebo["rate"] <= hi <= 1.0
    assert all(r["design"] == "placebo" and not r["counted"] for r in placebo["regimes"])
    # the copy number, from 1 (the elasticity takes logs)
    assert all(r["parameter_values"] == [1.0, 2.0, 3.0, 4.0] for r in placebo["regimes"])
    assert all(r["slope"]["draws"] == spec.replicates for r in placebo["regimes"])
