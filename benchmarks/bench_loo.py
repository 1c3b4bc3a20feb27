"""Benchmark of the leave-one-out simulation: S and every S\\i trained as one vmapped batch.

For each case (n, d, dtype) it times, in the same process:

* **main**: ``jax.jit(heads.train_runs)`` (static loss/optimizer) on the ``n + 1`` LOO masks,
  full-batch GD on the exponential loss, ``checkpoints = [steps]`` (what
  :func:`stabtheory.stability.simulate` runs);
* **loop** (baseline): a Python loop over the ``n + 1`` runs, each calling one jitted
  single-run ``heads.train`` (compiled once, reused by every run); the whole loop is timed;
* **roof**: the minimum work of ``steps`` GD steps of all runs in one ``lax.fori_loop``:
  ``M = W @ Z.T``, ``G = exp(-M)``, ``W = W + c * (G @ Z)``.

Every function is compiled (warmed up) before it is timed; the variants are then timed in
``--repeats`` interleaved rounds (main, loop, roof, main, loop, roof, ...) so that a change of
machine load hits them alike, and each one's time is its best round, ended by
``block_until_ready``. The 1-minute load average is printed at the start and the end.
Targets: main at least 3x faster than the loop and at least 60% of the roof
(``roof_time / main_time >= 0.6``).

Memory: the arrays that scale with the number of runs are ``runs * (n + d)`` numbers (masks,
margins/gradients ``(runs, n)``; weights ``(runs, d)``). The script inspects the compiled
HLO of main and asserts that no array of ``runs * n * d`` elements exists in it.

``--diagnose`` adds a clearly labelled DIAGNOSTIC table: the same vmapped GD re-written in
this file (without optax) with and without the ``dloss_max`` tracking that ``heads.step``
does, and with a static or a traced trip count (``heads.train`` has a traced one), to show
where main's time beyond the roof goes. It is a diagnostic only; the library is what main
measures, and nothing here changes it.

Runs unchanged on CPU and GPU (nothing backend-specific). ``main(["--quick"])`` takes a few
seconds (n=256, d=64, float32 unless ``--dtypes`` says otherwise, 500 steps, 1 repeat) and
returns the results (a list of dicts, one per case).

Usage::

    python benchmarks/bench_loo.py [--quick] [--steps 2000] [--sizes 256x64 512x128]
                                   [--dtypes float32 float64] [--repeats 3] [--diagnose]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import stabtheory  # noqa: F401  (enables float64 in JAX)
from stabtheory import heads
from stabtheory.data import planted_margin

LOSS = "exponential"
OPTIMIZER = "gd"
LR = 1.0
TARGET_SPEEDUP = 3.0
TARGET_ROOF = 0.6
DEFAULT_SIZES = ("256x64", "256x128", "512x64", "512x128")

_train_runs = jax.jit(heads.train_runs, static_argnames=("loss", "optimizer", "batch_size"))
_train_one = jax.jit(heads.train, static_argnames=("loss", "optimizer"))


def _parse_size(text: str) -> tuple[int, int]:
    try:
        n, d = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must look like 256x64, got {text!r}") from err
    if n < 2 or d < 2:
        raise argparse.ArgumentTypeError(f"need n >= 2 and d >= 2, got {text!r}")
    return n, d


def _time_once(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall time of one ``fn()``, ended by ``block_until_ready``, and its output."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - t0, out


_HLO_ARRAY = re.compile(r"\b(bf16|f16|f32|f64|c64|c128)\[([0-9,]*)\]")
_HLO_BYTES = {"bf16": 2, "f16": 2, "f32": 4, "f64": 8, "c64": 8, "c128": 16}


def _largest_hlo_array(hlo_text: str) -> tuple[int, int]:
    """(elements, bytes) of the largest floating-point array shape in an HLO module's text.

    Byte-typed scratch buffers (e.g. a GPU matmul library's ``u8[...]`` workspace) are not
    data arrays and are not counted; they are part of the ``xla`` column.
    """
    elements, nbytes = 0, 0
    for kind, dims in _HLO_ARRAY.findall(hlo_text):
        size = math.prod(int(v) for v in dims.split(",") if v)
        elements = max(elements, size)
        nbytes = max(nbytes, size * _HLO_BYTES[kind])
    return elements, nbytes


def _xla_bytes(compiled) -> int | None:
    """Arguments + outputs + temporaries of a compiled program, when the backend reports it."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # backends without memory analysis
        return None
    if stats is None:
        return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes)


def _roof(steps: int) -> Callable:
    """Minimum work of ``steps`` GD steps of all runs: two matmuls and one exp per (run, i)."""

    @jax.jit
    def roof(W, Z, c):
        def body(_, W):
            M = W @ Z.T  # (runs, n)
            G = jnp.exp(-M)  # one exponential per run and sample
            return W + c * (G @ Z)  # (runs, d)

        return jax.lax.fori_loop(0, steps, body, W)

    return roof


# --- DIAGNOSTIC ONLY -------------------------------------------------------------------------
# The library's GD step (heads.step) re-written here without optax, with or without the
# running max of |l'| (dloss_max) that heads.step tracks, and with a static trip count or a
# traced one (as heads.train has: its checkpoint increments are traced, so its fori_loop is
# a while loop with a dynamic bound). These are not used for the main numbers; they show
# where main's time beyond the roof goes.

DIAGNOSTICS = {  # name: (track dloss_max, traced trip count)
    "diag_no_dmax": (False, False),
    "diag_dmax": (True, False),
    "diag_dmax_traced": (True, True),
}


def _diagnostic_gd(steps: int, track_dloss_max: bool, traced_steps: bool) -> Callable:
    @jax.jit
    def diag(Z, sample_weights, lr, w0, n_steps):
        upper = n_steps if traced_steps else steps

        def one(s, a, w):
            scale = a / (w.shape[0] * jnp.sum(s))

            def body(_, carry):
                w, dmax = carry
                e = jnp.exp(-(w @ Z.T))  # |l'(m)| of the exponential loss, (K, n)
                w = w + scale * ((e * s) @ Z)
                if track_dloss_max:
                    dmax = jnp.maximum(dmax, jnp.max(jnp.where(s > 0, e, 0.0)))
                return w, dmax

            return jax.lax.fori_loop(0, upper, body, (w, jnp.zeros((), w.dtype)))

        return jax.vmap(one)(sample_weights, lr, w0)

    return lambda Z, s, lr, w0: diag(Z, s, lr, w0, jnp.asarray(steps))


# ---------------------------------------------------------------------------------------------


def bench_case(n: int, d: int, dtype, steps: int, repeats: int, diagnose: bool) -> dict:
    """Time main, loop and roof (and the diagnostics) for one case; return the numbers."""
    dtype = jnp.dtype(dtype)
    ds = planted_margin(n, d, 0.1, seed=0)
    Z = jnp.asarray(ds.y[:, None] * ds.X, dtype=dtype)  # explicit dtype (float32 stays float32)
    runs = n + 1
    weights = heads.loo_weights(n, dtype)  # (runs, n): S, then every S\i
    lr = jnp.full((runs,), LR, dtype)
    w0 = jnp.zeros((runs, 1, d), dtype)
    checkpoints = jnp.asarray([steps])
    itemsize = dtype.itemsize

    # main: the vmapped library training.
    main_args = (Z, weights, lr, w0, checkpoints)
    compiled = _train_runs.lower(*main_args, loss=LOSS, optimizer=OPTIMIZER).compile()
    largest, largest_bytes = _largest_hlo_array(compiled.as_text())
    assert largest < runs * n * d, (
        f"an array of {largest} elements (>= runs*n*d = {runs * n * d}) is materialized"
    )

    def run_main():
        return _train_runs(*main_args, loss=LOSS, optimizer=OPTIMIZER)

    # (a) baseline: one jitted single-run train per run, compiled once and reused.
    per_run = [(weights[r], lr[r], w0[r]) for r in range(runs)]
    jax.block_until_ready(per_run)

    def run_loop():
        return [
            _train_one(Z, s, a, w, checkpoints, loss=LOSS, optimizer=OPTIMIZER)
            for s, a, w in per_run
        ]

    # (b) roof.
    roof = _roof(steps)
    W0 = jnp.zeros((runs, d), dtype)
    c = jnp.asarray(LR / n, dtype)

    def run_roof():
        return roof(W0, Z, c)

    variants = {"main": run_main, "loop": run_loop, "roof": run_roof}
    if diagnose:
        for name, (track, traced) in DIAGNOSTICS.items():
            fn = _diagnostic_gd(steps, track, traced)
            variants[name] = lambda fn=fn: fn(Z, weights, lr, w0)

    # Warm up (compile) everything, then time the variants in interleaved rounds, so that
    # a change of machine load affects them alike; keep each one's best time.
    traj = jax.block_until_ready(run_main())
    assert traj.w.dtype == dtype, traj.w.dtype
    jax.block_until_ready(_train_one(Z, *per_run[0], checkpoints, loss=LOSS, optimizer=OPTIMIZER))
    outputs = {k: jax.block_until_ready(fn()) for k, fn in variants.items() if k != "loop"}
    best = dict.fromkeys(variants, math.inf)
    for _ in range(repeats):
        for k, fn in variants.items():
            seconds, outputs[k] = _time_once(fn)
            best[k] = min(best[k], seconds)
    t_main, t_loop, t_roof = best["main"], best["loop"], best["roof"]

    # Check that main computes what the loop of single runs computes.
    w_loop = np.stack([np.asarray(t.w) for t in outputs["loop"]])
    loop_err = float(np.max(np.abs(np.asarray(traj.w) - w_loop)))

    result = {
        "n": n,
        "d": d,
        "dtype": dtype.name,
        "runs": runs,
        "steps": steps,
        "main_s": t_main,
        "loop_s": t_loop,
        "roof_s": t_roof,
        "runs_steps_per_s": runs * steps / t_main,
        "speedup": t_loop / t_main,
        "roof_frac": t_roof / t_main,
        "mem_est": runs * (n + d) * itemsize,
        "mem_rnd": runs * n * d * itemsize,
        "largest_hlo_bytes": largest_bytes,
        "xla_bytes": _xla_bytes(compiled),
        "max_abs_diff_vs_loop": loop_err,
    }
    result["speedup_ok"] = result["speedup"] >= TARGET_SPEEDUP
    result["roof_ok"] = result["roof_frac"] >= TARGET_ROOF

    if diagnose:
        for k in DIAGNOSTICS:
            result[f"{k}_s"] = best[k]
            w_diag = np.asarray(outputs[k][0])
            result[f"{k}_diff"] = float(np.max(np.abs(w_diag - np.asarray(traj.w[:, -1]))))
    return result


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)"
    except (AttributeError, OSError):  # not available on this platform
        return "n/a"


def _mib(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:.2f}"


def print_table(results: Sequence[dict]) -> None:
    header = (
        f"{'n':>5} {'d':>4} {'dtype':>7} {'runs':>5} {'main s':>8} {'runs*steps/s':>13} "
        f"{'vs loop':>8} {'of roof':>8} {'mem MiB':>8} {'r*n*d MiB':>10} {'hlo max MiB':>11} "
        f"{'xla MiB':>8} {'loop s':>8} {'roof s':>8}  targets (>=3x, >=60%)"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ok = f"{'met' if r['speedup_ok'] else 'MISSED'}, {'met' if r['roof_ok'] else 'MISSED'}"
        print(
            f"{r['n']:>5} {r['d']:>4} {r['dtype']:>7} {r['runs']:>5} {r['main_s']:>8.3f} "
            f"{r['runs_steps_per_s']:>13.4g} {r['speedup']:>7.2f}x {r['roof_frac']:>7.0%} "
            f"{_mib(r['mem_est']):>8} {_mib(r['mem_rnd']):>10} "
            f"{_mib(r['largest_hlo_bytes']):>11} {_mib(r['xla_bytes']):>8} "
            f"{r['loop_s']:>8.3f} {r['roof_s']:>8.3f}  {ok}"
        )


def print_diagnostics(results: Sequence[dict]) -> None:
    print()
    print("DIAGNOSTIC (not the library): the same vmapped GD written in this file without optax.")
    print("'no dmax' omits heads.step's dloss_max tracking, 'dmax' keeps it (both with a static")
    print("trip count); 'dmax traced' also has a traced trip count, as heads.train has.")
    print("'x roof' = time / roof time; |w-main| = max abs difference of the final weights.")
    header = (
        f"{'n':>5} {'d':>4} {'dtype':>7} {'roof s':>8} {'no dmax s':>10} {'dmax s':>8} "
        f"{'dmax traced s':>14} {'main s':>8} {'x roof:':>8} {'no dmax':>8} {'dmax':>6} "
        f"{'traced':>7} {'main':>6} {'|w-main| max':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        roof = r["roof_s"]
        diff = max(r[f"{k}_diff"] for k in DIAGNOSTICS)
        print(
            f"{r['n']:>5} {r['d']:>4} {r['dtype']:>7} {roof:>8.3f} "
            f"{r['diag_no_dmax_s']:>10.3f} {r['diag_dmax_s']:>8.3f} "
            f"{r['diag_dmax_traced_s']:>14.3f} {r['main_s']:>8.3f} {'':>8} "
            f"{r['diag_no_dmax_s'] / roof:>8.2f} {r['diag_dmax_s'] / roof:>6.2f} "
            f"{r['diag_dmax_traced_s'] / roof:>7.2f} {r['main_s'] / roof:>6.2f} {diff:>13.2g}"
        )


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="n=256, d=64 only, float32, 500 steps, 1 repeat"
    )
    parser.add_argument("--steps", type=int, default=None, help="GD steps (default 2000)")
    parser.add_argument(
        "--sizes", nargs="+", type=_parse_size, default=None, help="n x d, e.g. 256x64 512x128"
    )
    parser.add_argument(
        "--dtypes", nargs="+", default=None, choices=("float32", "float64"), help="dtypes"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (best of)")
    parser.add_argument(
        "--diagnose", action="store_true", help="also time the labelled diagnostic variants"
    )
    args = parser.parse_args(argv)

    steps = args.steps if args.steps is not None else (500 if args.quick else 2000)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    sizes = args.sizes or ([(256, 64)] if args.quick else [_parse_size(s) for s in DEFAULT_SIZES])
    dtypes = args.dtypes or (["float32"] if args.quick else ["float32", "float64"])
    if steps < 1 or repeats < 1:
        parser.error("--steps and --repeats must be positive")

    dev = jax.devices()[0]
    print(
        f"LOO simulation benchmark: jax {jax.__version__}, backend {jax.default_backend()}, "
        f"device {dev.device_kind} (x{jax.device_count()}); {LOSS} loss, GD lr={LR}, "
        f"{steps} steps, best of {repeats}"
    )
    print(f"load average (1 min) at start: {_load()}")
    results = []
    for dtype in dtypes:
        for n, d in sizes:
            t0 = time.perf_counter()
            results.append(bench_case(n, d, dtype, steps, repeats, args.diagnose))
            print(f"  measured n={n} d={d} {dtype} in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"load average (1 min) at end: {_load()}")
    print()
    print_table(results)
    print()
    print(
        "vs loop = loop_s / main_s; of roof = roof_s / main_s; mem = runs*(n+d)*itemsize; "
        "r*n*d = runs*n*d*itemsize (never materialized: hlo max = largest array in main's "
        "compiled HLO, asserted < runs*n*d elements); xla = arguments + outputs + temporaries "
        "of main's compiled program."
    )
    worst = max(r["max_abs_diff_vs_loop"] for r in results)
    print(f"max |w_main - w_loop| over all cases: {worst:.3g}")
    n_speed = sum(r["speedup_ok"] for r in results)
    n_roof = sum(r["roof_ok"] for r in results)
    print(
        f"target >= {TARGET_SPEEDUP:g}x vs loop met in {n_speed}/{len(results)} cases; "
        f"target >= {TARGET_ROOF:.0%} of roof met in {n_roof}/{len(results)} cases"
    )
    met = n_speed == n_roof == len(results)
    print(f"all targets met: {'yes' if met else 'NO'}")
    if args.diagnose:
        print_diagnostics(results)
    return results


if __name__ == "__main__":
    main()
