r"""The compiled program of the fine-tuning evidence: for a batch of problems of one network
(:class:`FTProblem`), the Taylor model, its minimisers and GD runs on S and every S\\i, the real
network's runs (to the checkpoints, then to the stationarity tolerance) and the true Hessian's
curvature along them, as arrays (:func:`~stabtheory.bounds.finetune.evidence.ft_evidence_batch`
turns them into :class:`~stabtheory.bounds.finetune.evidence.FTEvidence`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory import full_finetuning as ff
from stabtheory.bounds.finetune.step import path_lr
from stabtheory.linear_heads import loo_weights

__all__ = ["FTProblem", "evidence_program", "problem_arrays"]


def _evidence_one(
    apply,
    w0,
    X,
    y,
    lam,
    lr,
    lr_fraction,
    tilt,
    shift,
    scale,
    xi,
    v,
    valid,
    max_steps,
    checkpoints,
    *,
    real: bool,
    cg_tol: float,
    maxiter: int,
    batch_size: int | None,
    tol: float,
    passes: int,
) -> dict:
    """Every array of one :class:`FTEvidence` (pure; :func:`evidence_program` maps it over a
    batch).

    The hyperparameters (``lam``, ``lr`` (NaN: :func:`path_lr`), the design's
    ``tilt``, ``shift``, ``scale``, ``xi``, ``v``), the stationarity cap ``max_steps`` and the
    checkpoint values are traced, so
    problems of one size share the compilation. ``valid`` (n,) zeroes the weight of padding
    samples in every mask (rows of padding samples repeat S and are dropped)."""
    n = X.shape[0]
    tm0 = ff.taylor_expand(apply, w0, X, y)
    tm, lam_c, a = ff.apply_design(tm0, lam, tilt, shift, scale, xi, v)
    weights = loo_weights(n) * valid
    lam_min, lam_max = ff.extreme_eigenvalues(tm, weights, lam_c)

    # the true Hessian of the real objective on S (mask row 0), at w0 and along the real run
    def curvature(W):
        return ff.path_curvature(apply, W, w0, X, y, weights[0], lam_c, linear=a, scale=scale)

    curv = curvature(w0[None])
    kw = {"linear": a, "scale": scale}

    def pilot(_):
        return path_lr(
            apply,
            w0,
            X,
            y,
            weights[0],
            lam_c,
            jnp.max(lam_max),
            curv.lam_max[0],
            lr_fraction,
            checkpoints,
            passes=passes,
            **kw,
        )

    lr = jax.lax.cond(jnp.isnan(lr), pilot, lambda _: lr / scale, None)
    w_min = ff.minimizers(tm, weights, lam_c, tol=cg_tol, maxiter=maxiter)
    gbar = weights @ tm.grads / weights.sum(axis=1, keepdims=True)
    resid = jax.vmap(
        lambda s, w, g: (
            jnp.linalg.norm(ff.operator(tm, s, lam_c)(w - tm.w0) + g) / jnp.linalg.norm(g)
        )
    )(weights, w_min, gbar)
    r_S = ff.quadratic_grads(tm, w_min[:1])[0]  # (n, p): r_i = grad lhat_i(w_S)
    out = {
        "tm": tm,
        "lam": lam_c,
        "lr": lr,
        "w_min": w_min,
        "cg_residual": resid,
        "lam_min": lam_min,
        "lam_max": lam_max,
        "beta_i": ff.per_sample_norms(tm),
        "rho": jnp.linalg.norm(r_S, axis=1),
        "rho_loo": jnp.linalg.norm(_own_grads(tm, w_min[1:]), axis=1),
        "deviation": jnp.linalg.norm(r_S - valid @ r_S / jnp.sum(valid), axis=1),
        "min_losses": _own_losses(tm, w_min),
        "w_gd": ff.gd_path(tm, weights, lam_c, lr, checkpoints),
    }
    if real:
        w_real = ff.finetune_runs(
            apply,
            w0,
            X,
            y,
            weights,
            jnp.full((n + 1,), lr),
            lam_c,
            checkpoints,
            batch_size=batch_size,
            linear=a,
            scale=scale,
        )
        lin = jnp.einsum("ip,rcp->rci", a, w_real - w0)
        out["w_real"] = w_real
        out["real_losses"] = scale * (ff.true_losses(apply, w_real, X, y) + lin)
        out["quad_losses"] = ff.quadratic_losses(tm, w_real)
        st = ff.gd_to_tolerance(
            apply,
            w_real[:, -1],
            w0,
            X,
            y,
            weights,
            lr,
            lam_c,
            tol=tol,
            max_steps=max_steps,
            **kw,
        )
        out.update(w_stat=st.w, stat_steps=st.steps, stat_ratio=st.ratio, max_steps=max_steps)
        path = jnp.concatenate([w_real[0], st.w[:1]])
        curv = jax.tree.map(lambda u, v: jnp.concatenate([u, v]), curv, curvature(path))
    out.update(hessian_min=curv.lam_min, hessian_max=curv.lam_max, grad_norm=curv.grad_norm)
    return out


@functools.partial(
    jax.jit,
    static_argnames=(
        "apply",
        "real",
        "cg_tol",
        "maxiter",
        "batch_size",
        "vectorize",
        "mesh",
        "static_steps",
        "tol",
        "passes",
    ),
)
def evidence_program(
    apply, batch: dict, checkpoints, *, vectorize, mesh, static_steps, **static
) -> dict:
    """:func:`_evidence_one` over a batch of problems (the leading axis of every array of
    ``batch``; ``live`` 0 marks a placeholder), as one compiled program per (apply, batch,
    n, p, C, real).

    ``vectorize`` problems run at once (``jax.lax.map``; 1: one after another, ``None``:
    all, ``jax.vmap``); with a ``mesh`` the batch is split over its devices
    (``jax.shard_map``: every device maps over its own problems, no communication).
    ``static_steps``: the checkpoints as a tuple of ints, or ``None`` (the traced
    ``checkpoints``)."""

    def local(b, c):
        c = c if static_steps is None else static_steps

        def one(x):
            return _evidence_one(apply, **x, checkpoints=c, **static)

        def live_or_skip(x):  # filler problems are skipped (computed, then dropped, in a vmap)
            x = dict(x)
            live = x.pop("live")
            shapes = jax.eval_shape(one, x)
            zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
            return jax.lax.cond(live > 0, one, lambda _: zeros, x)

        if vectorize is None:
            return jax.vmap(live_or_skip)(b)
        return jax.lax.map(live_or_skip, b, batch_size=None if vectorize == 1 else vectorize)

    if mesh is None:
        return local(batch, checkpoints)
    spec = jax.sharding.PartitionSpec(mesh.axis_names[0])
    none = jax.sharding.PartitionSpec()
    # check_vma=False: no collectives inside, and the placeholders' zeros are not "varying"
    split = jax.shard_map(local, mesh=mesh, in_specs=(spec, none), out_specs=spec, check_vma=False)
    return split(batch, checkpoints)


def _own_grads(tm: ff.TaylorModel, W: jax.Array) -> jax.Array:
    """``grad lhat_i(W[i])`` for every i (W: (n, p)) -> (n, p)."""
    return tm.grads + ff.sample_hvp(tm, W - tm.w0)


def _own_losses(tm: ff.TaylorModel, W: jax.Array) -> jax.Array:
    """(2, n): ``lhat_i(w_S)`` and ``lhat_i(w_S\\i)`` for every i (W: the (n + 1, p) minimisers)."""
    lq_S = ff.quadratic_losses(tm, W[0])
    D = W[1:] - tm.w0
    Hd = ff.sample_hvp(tm, D)
    own = tm.loss0 + jnp.sum(tm.grads * D, axis=1) + 0.5 * jnp.sum(Hd * D, axis=1)
    return jnp.stack([lq_S, own])


@dataclasses.dataclass(frozen=True, eq=False)
class FTProblem:
    """One fine-tuning problem for :func:`ft_evidence_batch` (the arguments of
    :func:`ft_evidence`, whose docstring describes them; ``max_steps``: this problem's
    stationarity cap, ``None`` for the batch's, 0 to stop the real runs at the last
    checkpoint)."""

    params: np.ndarray
    X: np.ndarray
    y: np.ndarray
    lam: float = 0.05
    lr: float | None = None
    lr_fraction: float = 0.9
    design: ff.FTDesign | None = None
    info: dict | None = None
    max_steps: int | None = None


def problem_arrays(problem: FTProblem, size: int, max_steps: int) -> dict:
    """The host arrays of one problem, padded to ``size`` samples of weight zero
    (``max_steps``: its stationarity cap unless it sets its own)."""
    from stabtheory.data import validate

    X, y = validate(problem.X, problem.y)
    design = problem.design or ff.FTDesign()
    w0 = np.asarray(problem.params, np.float64)
    n, p = X.shape[0], w0.shape[0]
    if size < n:
        raise ValueError(f"pad_to must be at least n = {n}, got {size}.")
    xi, v = design.directions(n, p)
    lr = np.nan if problem.lr is None else problem.lr
    return {
        "w0": w0,
        "X": np.concatenate([np.asarray(X, np.float64), np.zeros((size - n, X.shape[1]))]),
        "y": np.concatenate([np.asarray(y, np.float64), np.ones(size - n)]),
        "lam": np.float64(problem.lam),
        "lr": np.float64(lr),
        "lr_fraction": np.float64(problem.lr_fraction),
        "tilt": np.float64(design.tilt),
        "shift": np.float64(design.shift),
        "scale": np.float64(design.scale),
        "xi": np.concatenate([xi, np.zeros((size - n, p))]),
        "v": v,
        "valid": (np.arange(size) < n).astype(np.float64),
        "max_steps": np.int32(max_steps if problem.max_steps is None else problem.max_steps),
    }
