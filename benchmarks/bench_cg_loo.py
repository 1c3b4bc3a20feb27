"""Benchmark: every leave-one-out minimiser of the Taylor model by vmapped CG, against n + 1
separate retrainings to the same tolerance.

The Taylor model of a flax MLP testbed (``stabtheory.full_finetuning.make_testbed``) is solved
for S and every S\\i (n + 1 masks) in three ways, in the same process:

* ``vmapped CG``: ``stabtheory.full_finetuning.minimizers`` (one vmapped conjugate-gradient
  batch),
* ``CG loop``: a Python loop of n + 1 calls of the same CG, jitted for one mask,
* ``GD loop``: a Python loop of n + 1 retrainings by gradient descent on the quadratic (step
  ``1 / lambda_max``), each run until ``||grad F_s|| <= tol ||gbar_s||``, the same relative
  criterion as CG.

It prints times, ratios, and the largest difference between the solutions.

    python benchmarks/bench_cg_loo.py            # n = 128, p ~ 7e3
    python benchmarks/bench_cg_loo.py --quick    # n = 32, a small net
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import stabtheory  # noqa: F401  (float64)
from stabtheory import full_finetuning as ff
from stabtheory.linear_heads import loo_weights


def _best(f, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f())
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--lam", type=float, default=0.05)
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    n, hidden, features, d_in = args.n, (64, 64), 16, 32
    if args.quick:
        n, hidden, features, d_in, args.repeats = 32, (16,), 8, 16, 1
    bed = ff.make_testbed(
        ff.TestbedConfig(
            "synthetic", n=n, pretrain_steps=200, hidden=hidden, features=features, d_in=d_in
        )
    )
    tm = ff.taylor_expand(bed.apply, jnp.asarray(bed.w0), bed.X, bed.y)
    W = loo_weights(n)
    lam, tol = args.lam, args.tol
    lam_max = float(jax.jit(ff.extreme_eigenvalues)(tm, W[:1], lam)[1][0])
    lr = 1.0 / lam_max

    vmapped = jax.jit(lambda W: ff.minimizers(tm, W, lam, tol=tol))
    one_cg = jax.jit(lambda s: ff.minimizers(tm, s[None], lam, tol=tol)[0])

    @jax.jit
    def one_gd(s):
        A = ff.operator(tm, s, lam)
        gbar = s @ tm.grads / jnp.sum(s)
        target = tol * jnp.linalg.norm(gbar)

        def cond(c):
            _, g, k = c
            return (jnp.linalg.norm(g) > target) & (k < 10_000_000)

        def body(c):
            w, g, k = c
            w = w - lr * g
            return w, gbar + A(w - tm.w0), k + 1

        w, _, k = jax.lax.while_loop(cond, body, (tm.w0, gbar, 0))
        return w, k

    rows = list(W)  # the masks, sliced once, outside the timed loops

    def cg_loop():
        return jnp.stack([one_cg(s) for s in rows])

    def gd_loop():
        return jnp.stack([one_gd(s)[0] for s in rows])

    # compile and warm up every variant (this also gives the solutions compared below)
    ref = jax.block_until_ready(vmapped(W))
    err_cg = float(jnp.max(jnp.abs(cg_loop() - ref)))
    err_gd = float(jnp.max(jnp.abs(gd_loop() - ref)))
    t_vmap = _best(lambda: vmapped(W), args.repeats)
    t_cg = _best(cg_loop, args.repeats)
    t_gd = _best(gd_loop, 1)
    iters = int(one_gd(W[0])[1])
    print(
        f"Leave-one-out minimisers of the Taylor model: n={n} (+1 masks), p={bed.p}, "
        f"lam={lam}, tol={tol:g}, jax {jax.__version__} on {jax.default_backend()}"
    )
    print(
        f"{'method':<12} {'time s':>9} {'vmapped CG is x faster':>24} {'max |w - w_vmapped|':>20}"
    )
    print(f"{'vmapped CG':<12} {t_vmap:>9.3f} {'1.00':>24} {0.0:>20.1e}")
    print(f"{'CG loop':<12} {t_cg:>9.3f} {t_cg / t_vmap:>24.2f} {err_cg:>20.1e}")
    print(f"{'GD loop':<12} {t_gd:>9.3f} {t_gd / t_vmap:>24.2f} {err_gd:>20.1e}")
    print(f"(GD needs {iters} steps per run at step 1/lambda_max = {lr:.3g})")
    return {
        "n": n,
        "p": bed.p,
        "vmapped_s": t_vmap,
        "cg_loop_s": t_cg,
        "gd_loop_s": t_gd,
        "cg_ratio": t_cg / t_vmap,
        "gd_ratio": t_gd / t_vmap,
        "gd_steps": iters,
        "err_cg": err_cg,
        "err_gd": err_gd,
    }


if __name__ == "__main__":
    main()
