"""Benchmark of the leave-one-out simulation: S and every S\\i trained as one vmapped batch.

For each case (loss, n, d, dtype) it times, in the same process, full-batch GD (lr = 1,
zero start, one head) of the ``n + 1`` runs (S and every S\\i) for ``steps`` steps:

* **public**: :func:`stabtheory.linear_heads.loo_stability` (direction notion), the public
  path: input validation, the jitted :func:`stabtheory.linear_heads.train_runs` with whatever
  checkpoints it passes (traced or static: measured per case by counting the traces of
  ``train_runs`` at a new step count, and printed), and the estimate;
* **traced**: ``jax.jit(linear_heads.train_runs)`` with the checkpoints ``[steps]`` as a
  traced ``jax.Array`` (one program for any checkpoint values; a ``while`` loop with a traced
  trip count);
* **static**: :func:`stabtheory.linear_heads.jit_train_runs` with the static checkpoints
  ``(steps,)`` (a loop of fixed length);
* **loop** (baseline): a Python loop over the ``n + 1`` runs, each calling one jitted
  single-run ``linear_heads.train`` (traced checkpoints, compiled once, reused by every run);
  the whole loop is timed;
* **roof**: the minimum work of ``steps`` GD steps of all runs in one ``lax.fori_loop``:
  ``M = W @ Z.T``, ``G = |l'(M)|``, ``W = W + c * (G @ Z)``, with one transcendental per run
  and sample: ``exp(-M)`` (exponential) or ``sigmoid(-M)`` (logistic).

Every function is compiled (warmed up) before it is timed; the variants are then timed in
``--repeats`` interleaved rounds (public, traced, static, loop, roof, public, ...) so that a
change of machine load hits them alike, and each one's time is its best round, ended by
``block_until_ready``. The 1-minute load average is printed at the start and the end.
"Of roof" is ``roof_time / time``. Targets: the public path at least 80% of the roof and
at least 3x faster than the loop.

Memory: the arrays that scale with the number of runs are ``runs * (n + d)`` numbers (masks,
margins/gradients ``(runs, n)``; weights ``(runs, d)``). The script inspects the compiled
HLO of the traced and static programs and asserts that no array of ``runs * n * d``
elements exists in them.

``--diagnose`` adds a clearly labelled DIAGNOSTIC table: the same vmapped GD re-written in
this file (without optax) with and without the ``dloss_max`` tracking that
``linear_heads.step`` does, and with a static or a traced trip count, to show where the
library's time beyond the roof goes. It is a diagnostic only; nothing here changes the library.

Runs unchanged on CPU and GPU (nothing backend-specific). ``main(["--quick"])`` takes some
seconds (n=256, d=64, float32 unless ``--dtypes`` says otherwise, 500 steps, 1 repeat, both
losses) and returns the results (a list of dicts, one per case).

Usage::

    python benchmarks/bench_loo.py [--quick] [--steps 2000] [--sizes 256x64 512x128]
                                   [--dtypes float32 float64] [--losses exponential logistic]
                                   [--repeats 3] [--diagnose]
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
from stabtheory import linear_heads
from stabtheory.data import planted_margin

LOSSES = ("exponential", "logistic")
OPTIMIZER = "gd"
LR = 1.0
TARGET_SPEEDUP = 3.0
TARGET_ROOF = 0.8
DEFAULT_SIZES = ("256x64",)
DEFAULT_DTYPES = ("float64",)

_train_runs = jax.jit(linear_heads.train_runs, static_argnames=("loss", "optimizer", "batch_size"))
_train_runs_static = jax.jit(
    linear_heads.train_runs, static_argnames=("checkpoints", "loss", "optimizer", "batch_size")
)
_train_one = jax.jit(linear_heads.train, static_argnames=("loss", "optimizer"))

#: JAX's monitoring event of one trace of a jitted function (a cache hit records none).
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


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


def public_checkpoints(run: Callable[[int], object]) -> str:
    """Which checkpoints the public path passes to ``linear_heads.train_runs``, measured:
    ``"static"`` when a new step count traces ``train_runs`` again (one program per checkpoint
    tuple), ``"traced"`` when it does not (one program for any checkpoint values).

    ``run(steps)`` calls the public path; it is called at 1 step, then the traces of
    ``train_runs`` (JAX's monitoring events) are counted during a call at 2 steps.
    """
    traces = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == TRACE_EVENT and kwargs.get("fun_name") == linear_heads.train_runs.__name__:
            traces.append(duration)

    jax.block_until_ready(run(1))
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        jax.block_until_ready(run(2))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return "static" if traces else "traced"


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


def _dloss_abs(M: jax.Array, loss: str) -> jax.Array:
    """``|l'(M)|`` with one transcendental: ``exp(-M)`` or ``sigmoid(-M)``."""
    return jnp.exp(-M) if loss == "exponential" else jax.nn.sigmoid(-M)


def _roof(steps: int, loss: str) -> Callable:
    """Minimum work of ``steps`` GD steps of all runs: two matmuls and one transcendental per
    (run, i)."""

    @jax.jit
    def roof(W, Z, c):
        def body(_, W):
            M = W @ Z.T  # (runs, n)
            G = _dloss_abs(M, loss)  # one transcendental per run and sample
            return W + c * (G @ Z)  # (runs, d)

        return jax.lax.fori_loop(0, steps, body, W)

    return roof


# --- DIAGNOSTIC ONLY -------------------------------------------------------------------------
# The library's GD step (linear_heads.step) re-written here without optax, with or without the
# running max of |l'| (dloss_max) that linear_heads.step tracks, and with a static trip count or
# a traced one (as linear_heads.train has with traced checkpoints: a while loop with a dynamic
# bound).
# These are not used for the main numbers; they show where the library's time beyond the roof
# goes.

DIAGNOSTICS = {  # name: (track dloss_max, traced trip count)
    "diag_no_dmax": (False, False),
    "diag_dmax": (True, False),
    "diag_dmax_traced": (True, True),
}


def _diagnostic_gd(steps: int, loss: str, track_dloss_max: bool, traced_steps: bool) -> Callable:
    @jax.jit
    def diag(Z, sample_weights, lr, w0, n_steps):
        upper = n_steps if traced_steps else steps

        def one(s, a, w):
            scale = a / (w.shape[0] * jnp.sum(s))

            def body(_, carry):
                w, dmax = carry
                e = _dloss_abs(w @ Z.T, loss)  # |l'(m)|, (K, n)
                w = w + scale * ((e * s) @ Z)
                if track_dloss_max:
                    dmax = jnp.maximum(dmax, jnp.max(jnp.where(s > 0, e, 0.0)))
                return w, dmax

            return jax.lax.fori_loop(0, upper, body, (w, jnp.zeros((), w.dtype)))

        return jax.vmap(one)(sample_weights, lr, w0)

    return lambda Z, s, lr, w0: diag(Z, s, lr, w0, jnp.asarray(steps))


# ---------------------------------------------------------------------------------------------


def _check_memory(compiled, runs: int, n: int, d: int) -> tuple[int, int | None]:
    """Assert no runs*n*d array in a compiled program; (largest array bytes, xla bytes)."""
    largest, largest_bytes = _largest_hlo_array(compiled.as_text())
    assert largest < runs * n * d, (
        f"an array of {largest} elements (>= runs*n*d = {runs * n * d}) is materialized"
    )
    return largest_bytes, _xla_bytes(compiled)


def bench_case(loss: str, n: int, d: int, dtype, steps: int, repeats: int, diagnose: bool) -> dict:
    """Time public, traced, static, loop and roof (and the diagnostics) for one case."""
    dtype = jnp.dtype(dtype)
    ds = planted_margin(n, d, 0.1, seed=0)
    Z = jnp.asarray(ds.y[:, None] * ds.X, dtype=dtype)  # explicit dtype (float32 stays float32)
    runs = n + 1
    weights = linear_heads.loo_weights(n, dtype)  # (runs, n): S, then every S\i
    lr = jnp.full((runs,), LR, dtype)
    w0 = jnp.zeros((runs, 1, d), dtype)
    checkpoints = jnp.asarray([steps])
    static_cps = (steps,)
    kw = {"loss": loss, "optimizer": OPTIMIZER}
    itemsize = dtype.itemsize
    args = (Z, weights, lr, w0)

    # Memory: neither compiled program holds a per-run copy of the data.
    traced_bytes = _check_memory(_train_runs.lower(*args, checkpoints, **kw).compile(), runs, n, d)
    static_bytes = _check_memory(
        _train_runs_static.lower(*args, static_cps, **kw).compile(), runs, n, d
    )

    def run_public(steps=steps):
        return linear_heads.loo_stability(
            ds.X, ds.y, loss=loss, lr=LR, steps=steps, notion="direction", dtype=dtype
        )

    def run_traced():
        return _train_runs(*args, checkpoints, **kw)

    def run_static():
        return linear_heads.jit_train_runs(*args, static_cps, **kw)

    # The baseline: one jitted single-run train per run, compiled once and reused.
    per_run = [(weights[r], lr[r], w0[r]) for r in range(runs)]
    jax.block_until_ready(per_run)

    def run_loop():
        return [_train_one(Z, s, a, w, checkpoints, **kw) for s, a, w in per_run]

    roof = _roof(steps, loss)
    W0 = jnp.zeros((runs, d), dtype)
    c = jnp.asarray(LR / n, dtype)

    def run_roof():
        return roof(W0, Z, c)

    variants = {
        "public": run_public,
        "traced": run_traced,
        "static": run_static,
        "loop": run_loop,
        "roof": run_roof,
    }
    if diagnose:
        for name, (track, traced) in DIAGNOSTICS.items():
            fn = _diagnostic_gd(steps, loss, track, traced)
            variants[name] = lambda fn=fn: fn(*args)

    # Warm up (compile) everything; the public path's trajectory comes from train_head_runs,
    # the training loo_stability runs (same compiled program).
    sim = linear_heads.train_head_runs(ds.X, ds.y, loss=loss, lr=LR, steps=steps, dtype=dtype)
    public_w = np.asarray(jax.block_until_ready(sim.trajectory.w))
    assert public_w.dtype == dtype, public_w.dtype
    jax.block_until_ready(_train_one(Z, *per_run[0], checkpoints, **kw))
    outputs = {k: jax.block_until_ready(fn()) for k, fn in variants.items() if k != "loop"}
    # Then time the variants in interleaved rounds, so that a change of machine load affects
    # them alike; keep each one's best time.
    best = dict.fromkeys(variants, math.inf)
    for _ in range(repeats):
        for k, fn in variants.items():
            seconds, outputs[k] = _time_once(fn)
            best[k] = min(best[k], seconds)
    t_roof, t_loop = best["roof"], best["loop"]

    # Check that every path computes what the loop of single runs computes.
    w_loop = np.stack([np.asarray(t.w) for t in outputs["loop"]])
    w_traced = np.asarray(outputs["traced"].w)
    w_static = np.asarray(outputs["static"].w)
    result = {
        "loss": loss,
        "n": n,
        "d": d,
        "dtype": dtype.name,
        "runs": runs,
        "steps": steps,
        "public_path": public_checkpoints(lambda steps: run_public(steps).per_sample),
        "roof_s": t_roof,
        "loop_s": t_loop,
        "mem_est": runs * (n + d) * itemsize,
        "mem_rnd": runs * n * d * itemsize,
        "largest_hlo_bytes": max(traced_bytes[0], static_bytes[0]),
        "xla_bytes": traced_bytes[1],
        "xla_bytes_static": static_bytes[1],
        "max_abs_diff_vs_loop": float(
            max(np.max(np.abs(w - w_loop)) for w in (public_w, w_traced, w_static))
        ),
        "max_abs_diff_static_vs_traced": float(np.max(np.abs(w_static - w_traced))),
    }
    for k in ("public", "traced", "static"):
        result[f"{k}_s"] = best[k]
        result[f"{k}_roof_frac"] = t_roof / best[k]
        result[f"{k}_speedup"] = t_loop / best[k]
    # Backward-compatible names: "main" is the public path.
    result["main_s"] = result["public_s"]
    result["roof_frac"] = result["public_roof_frac"]
    result["speedup"] = result["public_speedup"]
    result["runs_steps_per_s"] = runs * steps / result["public_s"]
    result["speedup_ok"] = result["speedup"] >= TARGET_SPEEDUP
    result["roof_ok"] = result["roof_frac"] >= TARGET_ROOF

    if diagnose:
        for k in DIAGNOSTICS:
            result[f"{k}_s"] = best[k]
            w_diag = np.asarray(outputs[k][0])
            result[f"{k}_diff"] = float(np.max(np.abs(w_diag - w_traced[:, -1])))
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
        f"{'loss':>11} {'n':>5} {'d':>4} {'dtype':>7} {'runs':>5} | {'public s':>8} "
        f"{'of roof':>7} {'vs loop':>8} | {'traced s':>8} {'of roof':>7} {'vs loop':>8} | "
        f"{'static s':>8} {'of roof':>7} {'vs loop':>8} | {'loop s':>8} {'roof s':>7}  "
        f"targets (public: >={TARGET_ROOF:.0%} of roof, >={TARGET_SPEEDUP:g}x)"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ok = f"{'met' if r['roof_ok'] else 'MISSED'}, {'met' if r['speedup_ok'] else 'MISSED'}"
        cells = " | ".join(
            f"{r[f'{k}_s']:>8.3f} {r[f'{k}_roof_frac']:>7.0%} {r[f'{k}_speedup']:>7.1f}x"
            for k in ("public", "traced", "static")
        )
        print(
            f"{r['loss']:>11} {r['n']:>5} {r['d']:>4} {r['dtype']:>7} {r['runs']:>5} | {cells} | "
            f"{r['loop_s']:>8.3f} {r['roof_s']:>7.3f}  {ok}"
        )


def print_memory(results: Sequence[dict]) -> None:
    header = (
        f"{'loss':>11} {'n':>5} {'d':>4} {'dtype':>7} {'runs*steps/s':>13} {'mem MiB':>8} "
        f"{'r*n*d MiB':>10} {'hlo max MiB':>11} {'xla MiB':>8} {'xla static':>10} "
        f"{'|w-loop| max':>12} {'|static-traced|':>15}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['loss']:>11} {r['n']:>5} {r['d']:>4} {r['dtype']:>7} "
            f"{r['runs_steps_per_s']:>13.4g} {_mib(r['mem_est']):>8} {_mib(r['mem_rnd']):>10} "
            f"{_mib(r['largest_hlo_bytes']):>11} {_mib(r['xla_bytes']):>8} "
            f"{_mib(r['xla_bytes_static']):>10} {r['max_abs_diff_vs_loop']:>12.3g} "
            f"{r['max_abs_diff_static_vs_traced']:>15.3g}"
        )


def print_diagnostics(results: Sequence[dict]) -> None:
    print()
    print("DIAGNOSTIC (not the library): the same vmapped GD written in this file without optax.")
    print("'no dmax' omits linear_heads.step's dloss_max tracking, 'dmax' keeps it (both with a")
    print("static trip count); 'dmax traced' also has a traced trip count, as linear_heads.train")
    print("has with traced checkpoints. 'x roof' = time / roof time; |w-traced| = max abs")
    print("difference of the final weights from the library's traced path.")
    header = (
        f"{'loss':>11} {'n':>5} {'d':>4} {'dtype':>7} {'roof s':>8} {'no dmax s':>10} "
        f"{'dmax s':>8} {'dmax traced s':>14} {'x roof:':>8} {'no dmax':>8} {'dmax':>6} "
        f"{'traced':>7} {'public':>7} {'static':>7} {'|w-traced|':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        roof = r["roof_s"]
        diff = max(r[f"{k}_diff"] for k in DIAGNOSTICS)
        print(
            f"{r['loss']:>11} {r['n']:>5} {r['d']:>4} {r['dtype']:>7} {roof:>8.3f} "
            f"{r['diag_no_dmax_s']:>10.3f} {r['diag_dmax_s']:>8.3f} "
            f"{r['diag_dmax_traced_s']:>14.3f} {'':>8} "
            f"{r['diag_no_dmax_s'] / roof:>8.2f} {r['diag_dmax_s'] / roof:>6.2f} "
            f"{r['diag_dmax_traced_s'] / roof:>7.2f} {r['public_s'] / roof:>7.2f} "
            f"{r['static_s'] / roof:>7.2f} {diff:>11.2g}"
        )


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="n=256, d=64 only, float32, 500 steps, 1 repeat"
    )
    parser.add_argument("--steps", type=int, default=None, help="GD steps (default 2000)")
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=_parse_size,
        default=None,
        help=f"n x d, e.g. 256x64 512x128 (default {' '.join(DEFAULT_SIZES)})",
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=None,
        choices=("float32", "float64"),
        help=f"dtypes (default {' '.join(DEFAULT_DTYPES)}; float32 with --quick)",
    )
    parser.add_argument(
        "--losses", nargs="+", default=list(LOSSES), choices=LOSSES, help="losses (default both)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (best of)")
    parser.add_argument(
        "--diagnose", action="store_true", help="also time the labelled diagnostic variants"
    )
    args = parser.parse_args(argv)

    steps = args.steps if args.steps is not None else (500 if args.quick else 2000)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    sizes = args.sizes or [_parse_size(s) for s in DEFAULT_SIZES]
    dtypes = args.dtypes or (["float32"] if args.quick else list(DEFAULT_DTYPES))
    if steps < 1 or repeats < 1:
        parser.error("--steps and --repeats must be positive")

    dev = jax.devices()[0]
    print(
        f"LOO simulation benchmark: jax {jax.__version__}, backend {jax.default_backend()}, "
        f"device {dev.device_kind} (x{jax.device_count()}); GD lr={LR}, {steps} steps, "
        f"best of {repeats}; public path = linear_heads.loo_stability"
    )
    print(f"load average (1 min) at start: {_load()}")
    results = []
    for loss in args.losses:
        for dtype in dtypes:
            for n, d in sizes:
                t0 = time.perf_counter()
                results.append(bench_case(loss, n, d, dtype, steps, repeats, args.diagnose))
                print(
                    f"  measured {loss} n={n} d={d} {dtype} in {time.perf_counter() - t0:.1f} s "
                    f"(public path: {results[-1]['public_path']} checkpoints)",
                    flush=True,
                )
    print(f"load average (1 min) at end: {_load()}")
    print()
    print_table(results)
    print()
    print(
        "of roof = roof s / time; vs loop = loop s / time. public = "
        "linear_heads.loo_stability, traced = jit(linear_heads.train_runs) with a jax.Array of "
        "checkpoints, static = linear_heads.jit_train_runs with checkpoints (steps,)."
    )
    print()
    print_memory(results)
    print()
    print(
        "runs*steps/s of the public path; mem = runs*(n+d)*itemsize; r*n*d = runs*n*d*itemsize "
        "(never materialized: hlo max = largest array in the traced and static compiled HLO, "
        "asserted < runs*n*d elements); xla = arguments + outputs + temporaries of the traced "
        "(xla) and static (xla static) compiled programs; |w-loop| = max abs difference of "
        "the public, traced and static weights from the loop's."
    )
    n_speed = sum(r["speedup_ok"] for r in results)
    n_roof = sum(r["roof_ok"] for r in results)
    print(
        f"public path: target >= {TARGET_ROOF:.0%} of roof met in {n_roof}/{len(results)} "
        f"cases; target >= {TARGET_SPEEDUP:g}x vs loop met in {n_speed}/{len(results)} cases"
    )
    met = n_speed == n_roof == len(results)
    print(f"all targets met: {'yes' if met else 'NO'}")
    if args.diagnose:
        print_diagnostics(results)
    return results


if __name__ == "__main__":
    main()
