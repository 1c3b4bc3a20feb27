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
    (result,) = load("bench_loo").main(["--quick"])
    assert result["max_abs_diff_vs_loop"] < 1e-4  # float32
    assert result["main_s"] > 0


@pytest.mark.slow
def test_cg_benchmark_quick_runs_and_agrees():
    res = load("bench_cg_loo").main(["--quick"])
    assert res["err_cg"] < 1e-8 and res["err_gd"] < 1e-8
