"""The benchmarks run (smoke tests on their --quick sizes). Timings are never asserted: the
benchmarks print ratios; here only their numerical agreement is checked."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loo_benchmark_quick_runs_and_agrees_with_the_loop():
    results = load("bench_loo").main(["--quick"])
    assert [r["loss"] for r in results] == ["exponential", "logistic"]
    for result in results:
        assert result["dtype"] == "float32"
        # public path, traced and static checkpoints all agree with the per-run loop.
        assert result["max_abs_diff_vs_loop"] < 1e-4
        assert result["max_abs_diff_static_vs_traced"] < 1e-5
        for k in ("public", "traced", "static", "loop", "roof"):
            assert result[f"{k}_s"] > 0
        assert result["public_path"] in ("traced", "static")


@pytest.mark.slow
def test_cg_benchmark_quick_runs_and_agrees():
    res = load("bench_cg_loo").main(["--quick"])
    assert res["err_cg"] < 1e-8 and res["err_gd"] < 1e-8
