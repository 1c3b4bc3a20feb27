"""`stabtheory verify` end to end (the quick study) and its exit status."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stabtheory import cli
from stabtheory.bounds import head
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
    assert env["replicates"] == {"head": 3, "finetune": 2}
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


def test_existing_report_needs_force(quick_report, capsys):
    _, out, _ = quick_report
    assert cli.main(["verify", "--quick", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_a_violation_exits_1_and_names_the_bound(tmp_path, monkeypatch, capsys):
    def broken_h1(ev):
        chk = original(ev)
        return dataclasses.replace(chk, bound=chk.bound * 1e-6)

    original = head.check_h1
    monkeypatch.setattr(head, "check_h1", broken_h1)
    monkeypatch.setattr(head_study.HeadStudySpec, "quick", classmethod(lambda cls: TINY))
    status = cli.main(
        ["verify", "--quick", "--study", "head", "--out", str(tmp_path), "--no-progress"]
    )
    assert status == 1
    assert "VIOLATION: head.H1" in capsys.readouterr().err


def test_claim_plot_uses_a_log_axis_only_over_a_decade():
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from stabtheory.plotting import plot_claim

    values = [np.ones(5), 2 * np.ones(5)]
    assert plot_claim("t", {"a": ([1, 1000], values)}).get_xscale() == "log"
    assert plot_claim("n", {"a": ([16, 64], values)}).get_xscale() == "linear"


def test_verify_stabilizers_study_reports_verdicts(tmp_path):
    status = cli.main(
        ["verify", "--quick", "--study", "stabilizers", "--out", str(tmp_path), "--no-progress"]
    )
    assert status == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert {c["id"] for c in report["claims"]} == {"mmr", "mhloss", "surt"}
    assert report["stabilizers"]["rows"]
    for c in report["claims"]:
        assert (tmp_path / c["figure"]).exists()
    assert "Stabilizers across seeds" in (tmp_path / "report.md").read_text()
