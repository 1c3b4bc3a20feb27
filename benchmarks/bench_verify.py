"""Wall time of ``stabtheory verify`` at several replicate counts, on whatever JAX finds.

Runs the command as a user does (a fresh process each time, a fresh ``--out``), first at the
default replicates, then at growing ``--replicates`` until one run would not fit the budget,
and prints one line per run and the largest replicate count that finished within the budget.
The persistent compilation cache is turned off by default, so every run pays its compilations
as a first run on a new machine does (``--cache`` keeps it).

    python benchmarks/bench_verify.py --study all --budget-s 600 --ladder 20 40 80

Compare times only between runs on the same machine (the script prints the backend and
device); the GPU figures in the README were measured by running it there with
``PYTHONPATH=.``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(study: list[str], replicates: int | None, out: Path, timeout: float, cache: bool):
    cmd = [sys.executable, "-m", "stabtheory.cli", "verify", "--no-progress", "--out", str(out)]
    cmd += ["--study", *study]
    if replicates is not None:
        cmd += ["--replicates", str(replicates)]
    env = dict(os.environ)
    if not cache:
        env["STABTHEORY_NO_COMPILATION_CACHE"] = "1"
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        return None, proc.stderr[-2000:]
    return wall, proc.stdout.splitlines()[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", nargs="+", default=["all"])
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument("--ladder", type=int, nargs="*", default=[20, 40, 80, 160])
    parser.add_argument("--cache", action="store_true", help="keep the compilation cache on")
    args = parser.parse_args(argv)
    import jax

    dev = jax.devices()[0]
    print(
        f"backend {jax.default_backend()}, {jax.device_count()} x {dev.device_kind}, "
        f"jax {jax.__version__}",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    spent = 0.0
    best = None
    for reps in [None, *args.ladder]:
        left = args.budget_s - spent
        wall, text = run(args.study, reps, root / f"r{reps}", left, args.cache)
        label = "default" if reps is None else str(reps)
        if wall is None:
            print(f"replicates {label}: did not finish ({text})", flush=True)
            break
        spent += wall
        env = json.loads((root / f"r{reps}" / "report.json").read_text())["environment"]
        print(f"replicates {label} {env['replicates']}: {wall:.1f} s wall; {text}", flush=True)
        best = env["replicates"]
    print(f"largest replicates finished: {best} (total {spent:.0f} s of {args.budget_s:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
