"""`stabtheory verify` end to end (the quick study) and its exit status."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stabtheory
from stabtheory import claims, cli
from stabtheory.bounds import REGISTRY
from stabtheory.report.figures import plot_claim, save_figure
from stabtheory.report.format import jsonable
from stabtheory.simulations import (
    STUDIES,
    DrawResult,
    Study,
    StudyProtocol,
    draws_by_config,
    engine,
    register_study,
)
from stabtheory.simulations import head as head_study

TINY = head_study.HeadStudySpec(
    n=12,
    d=3,
    gamma=0.2,
    t_max=1000,
    checkpoints=4,
    lrs=(0.1, 0.9),
    gammas=(0.2, 0.4),
    ns=(8, 12),
    losses=("exponential",),
    early_t=10,
    families=("planted",),
    replicates=2,
)


def _console_script() -> list[str]:
    """The installed ``stabtheory`` command beside this interpreter (``python -m`` otherwise)."""
    script = Path(sys.executable).with_name("stabtheory")
    return [str(script)] if script.exists() else [sys.executable, "-m", "stabtheory.cli"]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """``stabtheory verify --quick --out DIR`` run as the README writes it: a separate process,
    the progress bar on (the default), stderr captured."""
    out = tmp_path_factory.mktemp("report")
    proc = subprocess.run(
        [*_console_script(), "verify", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.returncode, out, proc


def test_readme_command_runs_with_the_progress_bar_on(quick_report):
    _, out, proc = quick_report
    # the bar of every study that ran reached its end (the FT label once crashed with KeyError)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("[" + "#" * 30 + "]") >= 2
    assert "FT synthetic" in proc.stderr
    assert "0 violations" in proc.stdout and (out / "report.md").exists()


def test_quick_verify_reports_zero_violations(quick_report):
    status, out, _ = quick_report
    assert status == 0
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "stabtheory.report/1"
    assert report["violations"] == 0 and "runtime_s" not in report
    assert json.loads((out / "timings.json").read_text())["runtime_s"] > 0
    env = report["environment"]
    assert {"backend", "devices", "device_kind", "jax", "stabtheory", "replicates"} <= set(env)
    assert env["replicates"] == {"head": 3, "finetune": 2, "generalization": 10}
    keys = {
        "theorem",
        "config",
        "notion",
        "applicable",
        "empirical_mean",
        "bound_mean",
        "empirical_max",
        "bound_max",
        "violations",
        "assumptions",
    }
    assert all(keys <= set(c) for c in report["checks"])
    assert {c["theorem"] for c in report["checks"]} == {
        "head.svm_loo",
        "head.H1",
        "head.H2",
        "head.H2m",
        "head.H3",
        "head.H3m",
        "head.C1",
        "ft.FT1",
        "ft.FT1c",
        "ft.FT1L",
        "ft.FT2",
    }
    for claim in ("ft.n", "ft.lipschitz", "ft.distance"):
        for notion in ("loo.weights", "loo.loss"):
            assert (claim, notion) in {(c["id"], c["notion"]) for c in report["claims"]}
    assert report["taylor"] and all(r["taylor_departure"] >= 0 for r in report["taylor"])
    # a nonlinear network is never exactly quadratic: assumption (d) fails in every row
    assert all(r["faithful"] is (r["taylor_departure"] <= 0.0) for r in report["taylor"])
    for c in report["claims"]:  # no control, confounded or placebo regime is ever counted
        assert all(r["design"] == "natural" or not r["counted"] for r in c["regimes"])
    placebo = report["placebo"]
    assert placebo["claims"] >= 1 and set(placebo) >= {"claims", "decisive", "rate", "ci"}
    rows = [c for c in report["checks"] if c["applicable"]]
    assert all(isinstance(c["trivial_bound"], float) for c in rows)
    ids = {(c["id"], c["notion"]) for c in report["claims"]}
    for claim in ("head.iterations", "head.lr", "head.margin", "head.n"):
        for notion in ("loo.direction", "loo.weights", "loo.loss"):
            assert (claim, notion) in ids
    for c in report["claims"]:
        assert c["verdict"] in {"supported", "refuted", "regime-dependent", "inconclusive"}
        assert (out / c["figure"]).exists()
    for f in report["figures"]:
        assert (out / f).stat().st_size > 10_000
    assert "violations" in (out / "report.md").read_text()
    # issue 16's fields: elasticities, votes, the generalization table
    for c in report["claims"]:
        assert c["text"] and all({"slope", "runs"} <= set(r) for r in c["regimes"])
        for r in c["regimes"]:
            assert set(r["slope"]) >= {"estimate", "ci", "predicted"}
    gen = report["generalization"]
    keys = {"study", "config", "loss", "gap", "stability", "identity_holds", "be_bound", "be_holds"}
    assert gen and all(keys <= set(g) for g in gen)
    assert all(g["identity_holds"] for g in gen)


def test_report_md_opens_in_words_and_report_html_stands_alone(quick_report):
    _, out, _ = quick_report
    report = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    first_page = md.split("## Head tuning")[0]
    assert "## What was verified" in first_page and "What to do next" in first_page
    for c in report["claims"]:  # every claim as the paper's sentence, its verdict in words
        assert c["text"] in first_page
    assert md.index("## Appendix B: the check tables") < md.index("| head.H1 |")
    assert md.count("*Figure ") == len(report["figures"])
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == len(
        report["figures"]
    )
    assert "<details>" in page and 'src="http' not in page and "<script" not in page


def test_existing_report_needs_force(quick_report, capsys):
    _, out, _ = quick_report
    assert cli.main(["verify", "--quick", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_a_violation_exits_1_and_names_the_bound(tmp_path, monkeypatch, capsys):
    def broken_h1(ev, notion):
        chk = original.checker(ev, notion)
        return dataclasses.replace(chk, bound=chk.bound * 1e-6)

    original = REGISTRY["head.H1"]
    monkeypatch.setitem(REGISTRY, "head.H1", dataclasses.replace(original, checker=broken_h1))
    monkeypatch.setattr(head_study.HeadStudySpec, "quick", classmethod(lambda cls: TINY))
    status = cli.main(
        ["verify", "--quick", "--study", "head", "--out", str(tmp_path), "--no-progress"]
    )
    assert status == 1
    assert "VIOLATION: head.H1" in capsys.readouterr().err


def test_claim_plot_uses_a_log_axis_only_over_a_decade():
    import matplotlib

    matplotlib.use("Agg")

    values = [np.ones(5), 2 * np.ones(5)]
    assert plot_claim("t", {"a": ([1, 1000], values)}).get_xscale() == "log"
    assert plot_claim("n", {"a": ([16, 64], values)}).get_xscale() == "linear"


@pytest.fixture(scope="module")
def stabilizers_report(tmp_path_factory):
    """``stabtheory verify --quick --study stabilizers phenomenon attention-theory`` (the studies
    that are not run by default)."""
    out = tmp_path_factory.mktemp("stabilizers")
    studies = ["stabilizers", "phenomenon", "attention-theory"]
    argv = ["verify", "--quick", "--study", *studies, "--out", str(out)]
    status = cli.main([*argv, "--no-progress"])
    return status, out


def test_verify_stabilizers_study_reports_verdicts(stabilizers_report):
    status, tmp_path = stabilizers_report
    assert status == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert {c["id"] for c in report["claims"]} == {"mmr", "mhloss", "surt"}
    assert report["stabilizers"]["rows"]
    for c in report["claims"]:
        assert (tmp_path / c["figure"]).exists()
    md = (tmp_path / "report.md").read_text()
    assert "Stabilizers across seeds" in md
    # the claims table sizes an attention regime as draws (and their pre-training) x seeds
    quick = STUDIES["stabilizers"].spec(quick=True).attention
    assert f"{quick.draws} draws (one pre-training) x {quick.seeds} paired seeds" in md
    assert "McNemar exact p=" in md and "BF p=" not in md.split("## Appendix")[0]
    # --replicates does not move a stabilizer design: the advice names --full instead
    if any(c["verdict"] == "inconclusive" for c in report["claims"]):
        assert "stabilizer verdicts are inconclusive" in md and "stabilizers --full" in md
    # the attention testbed's phenomenon (issue 17): per-setting failure rates
    settings = report["phenomenon"]["settings"]
    keys = {"n", "optimizer", "seeds", "failure_rate", "failure_ci", "accuracy_std"}
    assert settings and all(keys <= set(s) for s in settings)


def test_every_registered_study_runs_its_quick_spec(quick_report, stabilizers_report):
    """Conformance over the study registry, on the runs above: every registered study ran its
    quick spec through the CLI and has its entry, claims and figures in a report."""
    reports = [
        json.loads((out / "report.json").read_text())
        for out in (quick_report[1], stabilizers_report[1])
    ]
    ran = {name: entry for r in reports for name, entry in r["studies"].items()}
    assert set(ran) == set(STUDIES)
    for name, study in STUDIES.items():
        assert ran[name]["spec"] == jsonable(dataclasses.asdict(study.spec(quick=True)))
        assert study.name == name and study.description and study.spec_type
    assert all(r["claims"] and r["figures"] for r in reports)


@dataclasses.dataclass(frozen=True)
class ToySpec:
    """The toy study's spec: sample sizes and draws."""

    sizes: tuple[int, ...] = (4, 8, 16)
    replicates: int = 3
    seed: int = 0

    @classmethod
    def quick(cls) -> "ToySpec":
        return cls(sizes=(4, 8), replicates=2)


class ToyStudy(StudyProtocol):
    """A study defined in this file alone: per-sample values that shrink with n."""

    name = "toy"
    description = "a toy study defined in the tests"
    spec_type = ToySpec

    def chunks(self, spec):
        items = lambda n: tuple((n, r) for r in range(spec.replicates))  # noqa: E731
        return [engine.Chunk(self.name, (n,), items(n), spec) for n in spec.sizes]

    def compute(self, spec, chunk):
        (n,) = chunk.group
        return [
            DrawResult(
                n, r, {}, (), {"toy": np.random.default_rng([spec.seed, n, r]).random(n) / n}
            )
            for _, r in chunk.items
        ]

    def assemble(self, spec, results):
        study = Study(spec)
        for n, members in draws_by_config(results).items():
            study.add_config({"n": n, "replicates": len(members)}, members)
        return study

    def judge(self, study):
        claim = claims.Claim("toy.n", "toy: larger n gives more stability", "n", -1)
        ns = [c["n"] for c in study.configs]
        values = [study.stability[k]["toy"][0] for k in range(len(ns))]
        regime = claims.verdict(claim, ns, values, regime="toy")
        return [claims.combine(claim, "loo.toy", [regime], figure="toy.png")]

    def section(self, study):
        rows = [
            {"n": c["n"], "mean": float(np.mean(study.stability[k]["toy"]))}
            for k, c in enumerate(study.configs)
        ]
        return {
            "checks": [],
            "claims": list(study.verdicts),
            "study": {"spec": dataclasses.asdict(study.spec)},
            "extra": {"toy": rows},
        }

    def markdown(self, report):
        return ["", "## Toy study", "", f"{len(report['toy'])} sizes."] if "toy" in report else []

    def figures(self, study, out):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ns = [c["n"] for c in study.configs]
        values = [study.stability[k]["toy"][0] for k in range(len(ns))]
        plot_claim("n", {"toy": (ns, values)}, ax=ax, title="toy.n")
        return [save_figure(fig, out, "toy.png")]


@pytest.fixture
def toy_study():
    """The toy study registered for one test (no edit to the package)."""
    study = register_study(ToyStudy())
    yield study
    del STUDIES[study.name]


def test_a_registered_study_runs_end_to_end_through_the_cli(toy_study, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["verify", "--help"])
    assert "toy: a toy study defined in the tests" in " ".join(capsys.readouterr().out.split())
    argv = ["verify", "--quick", "--study", "toy", "--no-progress", "--out"]
    assert cli.main([*argv, str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["studies"] == {"toy": {"spec": {"sizes": [4, 8], "replicates": 2, "seed": 0}}}
    assert [(c["id"], c["figure"]) for c in report["claims"]] == [("toy.n", "toy.png")]
    assert [r["n"] for r in report["toy"]] == [4, 8] and report["figures"] == ["toy.png"]
    assert report["environment"]["replicates"] == {"toy": 2} and report["checks"] == []
    assert (tmp_path / "toy.png").stat().st_size > 1000
    assert "## Toy study" in (tmp_path / "report.md").read_text()
    assert len(list((tmp_path / ".chunks" / "toy").glob("*.chunk"))) == 2
    # a second run resumes from the persisted chunks and writes the same report
    again = tmp_path / "again"
    again.mkdir()
    (tmp_path / ".chunks").rename(again / ".chunks")
    assert cli.main([*argv, str(again)]) == 0
    assert "2 chunks loaded" in capsys.readouterr().out
    resumed = json.loads((again / "report.json").read_text())
    assert {k: v for k, v in resumed.items() if k != "environment"} == {
        k: v for k, v in report.items() if k != "environment"
    }


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"stabtheory {stabtheory.__version__}"


def test_an_out_that_cannot_take_the_report_is_bad_usage_before_any_work(tmp_path, capsys):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    assert cli.main(["verify", "--quick", "--no-progress", "--out", str(afile)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err and "Traceback" not in err


class _Failing(ToyStudy):
    """A toy study whose chunks fail: an internal error or an interruption."""

    name = "failing"
    raises: type = RuntimeError

    def compute(self, spec, chunk):
        raise self.raises("boom")


@pytest.mark.parametrize(("raises", "status"), [(RuntimeError, 3), (KeyboardInterrupt, 130)])
def test_internal_errors_and_interruptions_have_their_own_status(raises, status, tmp_path, capsys):
    study = register_study(type("Failing", (_Failing,), {"raises": raises})())
    try:
        argv = ["verify", "--quick", "--study", "failing", "--no-progress", "--out", str(tmp_path)]
        assert cli.main(argv) == status
    finally:
        del STUDIES[study.name]
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    if status == 3:
        assert "RuntimeError: boom" in err
        assert "RuntimeError: boom" in (tmp_path / "error.log").read_text()
    else:
        assert err == "interrupted; run the same command to resume"


def test_a_long_run_says_so_before_it_starts():
    from stabtheory.cli import long_run_note
    from stabtheory.simulations import STUDIES

    note = long_run_note(["head"], {"head": STUDIES["head"].spec(replicates=1000)})
    assert "estimated to take about 175 minutes" in note
    assert long_run_note(["head"], {"head": STUDIES["head"].spec()}) is None


@pytest.mark.parametrize(
    "argv,words",
    [
        (["--quick", "--full"], "--quick and --full exclude each other"),
        (["--full", "--study", "head", "finetune"], "--full: none of the studies head finetune"),
    ],
)
def test_full_is_bad_usage_with_quick_or_without_a_study_that_has_one(
    tmp_path, capsys, argv, words
):
    assert cli.main(["verify", "--no-progress", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err
    assert not (tmp_path / "report.json").exists()


def test_full_picks_the_full_design_where_a_study_has_one():
    from stabtheory.simulations.stabilizers import AttentionSpec, StabilizerStudySpec

    stab, head = STUDIES["stabilizers"], STUDIES["head"]
    assert stab.has_full() and not head.has_full()
    assert stab.spec(full=True) == StabilizerStudySpec.full()
    assert stab.spec(full=True).attention == AttentionSpec.full()
    assert head.spec(full=True) == head.spec()  # no full design: its default
    with pytest.raises(ValueError, match="exclude"):
        stab.spec(quick=True, full=True)
    # the estimate scales the attention part by its FLOP count (pre-training included)
    default, full = stab.estimate_s(stab.spec()), stab.estimate_s(stab.spec(full=True))
    assert default == pytest.approx(stab.reference_s)
    assert 5 * default < full < 10 * default
    note = cli.long_run_note(["stabilizers"], {"stabilizers": stab.spec(full=True)})
    assert note is not None and "minutes" in note
