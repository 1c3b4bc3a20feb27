r"""Full fine-tuning by full-batch gradient descent from ``w0``: one run or many, vmapped.

.. math::
    w_{t+1} = w_t - \eta\, \nabla F_s(w_t), \qquad w_0 = \text{w0},

on the L2-SP objective :func:`~stabtheory.full_finetuning.l2sp_objective`, with snapshots at
checkpoints (:func:`stabtheory.linear_heads.run_checkpoints`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from stabtheory.full_finetuning.losses import data_term, l2sp_grad
from stabtheory.linear_heads import run_checkpoints

__all__ = [
    "Stationary",
    "finetune_runs",
    "gd_finetune",
    "gd_step",
    "gd_to_tolerance",
    "jit_finetune_runs",
]


def gd_step(
    apply: Callable,
    w: jax.Array,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array | float,
    lam: jax.Array | float,
    *,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
) -> jax.Array:
    r"""One full-batch GD step ``w - lr * grad F_s(w)`` (see
    :func:`~stabtheory.full_finetuning.l2sp_objective`)."""
    return w - lr * l2sp_grad(apply, w, w0, X, y, sample_weights, lam, linear=linear, scale=scale)


class Stationary(NamedTuple):
    """Where :func:`gd_to_tolerance` stopped, per run.

    Attributes:
      w: (runs, p) the weights.
      steps: the GD steps every run took after the start (``max_steps`` where the tolerance
        was not reached).
      ratio: (runs,) ``||grad F_s(w)|| / ||grad F_s(w0)||`` at ``w``.
    """

    w: jax.Array
    steps: jax.Array
    ratio: jax.Array


def gd_to_tolerance(
    apply: Callable,
    w_start: jax.Array,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array | float,
    lam: jax.Array | float,
    *,
    tol: jax.Array | float,
    max_steps: jax.Array | int,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
) -> Stationary:
    r"""Continue full-batch GD (:func:`gd_step`) on every run from ``w_start`` until every
    run's relative gradient norm ``||grad F_s(w)|| / ||grad F_s(w0)||`` is at most ``tol``, or
    ``max_steps`` steps.

    The runs stop **together**: every run takes the same number of steps, the first at which
    all of them are below the tolerance (or the cap). So run ``r`` is GD on its own mask for a
    common number of steps, and the difference between two runs is not a difference in where
    each happened to stop (a run stopped at its own first iterate below the tolerance would
    carry an optimisation error of up to ``tol ||grad F_s(w0)|| / lambda_min`` into every
    leave-one-out difference). ``tol``, ``max_steps`` and ``lr`` are traced. Pure: no jit
    inside.

    Args:
      apply, w0, X, y, lr, lam, linear, scale: as in :func:`gd_finetune` (``w0`` the start of
        training and the anchor of the pull; shared by the runs).
      w_start: (runs, p) where each run continues from (e.g. its last checkpoint).
      sample_weights: (runs, n) the masks.
      tol: the relative gradient-norm tolerance, > 0.
      max_steps: the most steps.

    Returns:
      :class:`Stationary`.

    Example:
      >>> apply = lambda w, x: w @ x
      >>> X, y, w0 = jnp.eye(2), jnp.array([1.0, -1.0]), jnp.zeros(2)
      >>> st = gd_to_tolerance(apply, w0[None], w0, X, y, jnp.ones((1, 2)), 1.0, 0.5,
      ...                      tol=1e-6, max_steps=1000)
      >>> bool(st.ratio[0] <= 1e-6), int(st.steps) < 1000
      (True, True)
    """
    w0 = jnp.asarray(w0, jnp.float64)
    X, y = jnp.asarray(X, jnp.float64), jnp.asarray(y, jnp.float64)
    S = jnp.asarray(sample_weights, jnp.float64)
    lr, lam = jnp.asarray(lr, jnp.float64), jnp.asarray(lam, jnp.float64)
    tol = jnp.asarray(tol, jnp.float64)
    kw = {"linear": linear, "scale": scale}

    def grad(w, s):
        return l2sp_grad(apply, w, w0, X, y, s, lam, **kw)

    g_ref = jax.vmap(lambda s: jnp.linalg.norm(grad(w0, s)))(S)

    def ratios(W):
        return jax.vmap(lambda w, s: jnp.linalg.norm(grad(w, s)))(W, S) / g_ref

    def cond(state):
        t, _, done = state
        return (t < max_steps) & ~done

    def body(state):  # one gradient per run and step: it tests the tolerance and moves
        t, W, _ = state
        G = jax.vmap(grad)(W, S)
        done = jnp.all(jnp.linalg.norm(G, axis=1) / g_ref <= tol)
        W = jnp.where(done, W, W - lr * G)
        return t + (~done).astype(t.dtype), W, done

    W = jnp.asarray(w_start, jnp.float64)
    t, W, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), W, jnp.bool_(False)))
    return Stationary(W, t, ratios(W))


def gd_finetune(
    apply: Callable,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array | float,
    lam: jax.Array | float,
    checkpoints: jax.Array | Sequence[int],
    *,
    return_loss: bool = False,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""One fine-tuning run: full-batch GD on the L2-SP objective from ``w0``, with snapshots.

    .. math::
        w_{t+1} = w_t - \eta\, \nabla F_s(w_t), \qquad w_0 = \text{w0},

    snapshot ``c`` is ``w_{checkpoints[c]}`` (:func:`stabtheory.linear_heads.run_checkpoints`).
    ``lr``, ``lam`` and the mask are traced; so are the checkpoint values when given as an
    array: sweeping them never recompiles. (The traced loop bound makes it a ``while`` loop:
    forward-mode differentiation through ``gd_finetune`` works, reverse mode does not;
    :func:`gd_step` is differentiable either way.) Checkpoints given as a tuple of ints are
    static: fixed-length loops, which XLA optimises better on a GPU. Pure: no jit inside.

    Args:
      apply: ``apply(w, x) -> logit`` for one input (static).
      w0: start and anchor of the pull, (p,).
      X, y: inputs (n, d_in) and labels (n,) in {-1, +1}.
      sample_weights: (n,), non-negative with a positive sum; a leave-one-out set S\i is the
        mask with ``s_i = 0`` (so it averages over ``n - 1``).
      lr: step size.
      lam: pull strength, >= 0.
      checkpoints: non-decreasing step counts (C,), integer; 0 is ``w0``. A ``jax.Array``
        is traced; a tuple (or NumPy array) of ints is static.
      return_loss: also return the data term
        (:func:`~stabtheory.full_finetuning.data_term`: the weighted mean logistic loss,
        without the pull) at each snapshot.
      linear, scale: the per-sample linear terms (n, p) and the loss scale of a controlled
        design (:func:`~stabtheory.full_finetuning.l2sp_objective`); none and 1 by default.

    Returns:
      Snapshots (C, p), and with ``return_loss`` the losses (C,) too.

    Example:
      >>> apply = lambda w, x: w @ x
      >>> X, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([1.0, -1.0])
      >>> W = gd_finetune(apply, jnp.zeros(2), X, y, jnp.ones(2), 2.0, 0.0, jnp.array([0, 1]))
      >>> W[1].tolist()  # one step: lr * mean(y_i x_i) * sigmoid(0)
      [0.5, -0.5]
    """
    w0 = jnp.asarray(w0, jnp.float64)
    X, y = jnp.asarray(X, jnp.float64), jnp.asarray(y, jnp.float64)
    sample_weights = jnp.asarray(sample_weights, jnp.float64)
    lr, lam = jnp.asarray(lr, jnp.float64), jnp.asarray(lam, jnp.float64)
    kw = {"linear": linear, "scale": scale}

    def body(_, w):
        return gd_step(apply, w, w0, X, y, sample_weights, lr, lam, **kw)

    def snapshot(w):
        return (w, data_term(apply, w, w0, X, y, sample_weights, **kw)) if return_loss else w

    return run_checkpoints(body, w0, checkpoints, snapshot)[1]


def finetune_runs(
    apply: Callable,
    w0: jax.Array,
    X: jax.Array,
    y: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array,
    lam: jax.Array | float,
    checkpoints: jax.Array | Sequence[int],
    *,
    batch_size: int | None = None,
    return_loss: bool = False,
    linear: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r""":func:`gd_finetune` for many runs at once: ``jax.vmap`` over masks, step sizes, ``lam``.

    Run ``r`` minimises
    ``sum_i s_ri l(w; z_i) / sum_i s_ri + lam_r / 2 ||w - w0||^2`` by GD with step
    ``lr[r]`` from ``w0``. Masks make S and every S\i the same shape (rows of
    :func:`stabtheory.linear_heads.loo_weights`). Pure; :data:`jit_finetune_runs` is the jitted
    version (``apply``, ``batch_size``, ``return_loss`` static).

    Args:
      apply: ``apply(w, x) -> logit`` for one input (static).
      w0: shared start and anchor (p,), or one per run (runs, p).
      X, y: shared inputs (n, d_in) and labels (n,).
      sample_weights: one mask per run, (runs, n).
      lr: one step size per run, (runs,).
      lam: pull strength, a scalar or one per run (runs,).
      checkpoints: shared checkpoint steps (C,).
      batch_size: train the runs in chunks of this size (``jax.lax.map`` with
        ``batch_size``) to bound memory; ``None`` vmaps all runs. Results are the same.
      return_loss: also return the data loss at each snapshot, (runs, C).
      linear, scale: a controlled design shared by the runs
        (:func:`~stabtheory.full_finetuning.l2sp_objective`).

    Returns:
      Snapshots (runs, C, p), and with ``return_loss`` the losses (runs, C) too.

    Example:
      >>> from stabtheory.linear_heads import loo_weights
      >>> apply = lambda w, x: w @ x
      >>> X, y = jnp.eye(3), jnp.array([1.0, -1.0, 1.0])
      >>> W = finetune_runs(apply, jnp.zeros(3), X, y, loo_weights(3), jnp.full(4, 0.5), 0.1,
      ...                   jnp.array([0, 5, 10]))
      >>> W.shape, float(W[1, -1, 0])  # run 1 is S\0: w[0] only feels the pull to w0 = 0
      ((4, 3, 3), 0.0)
    """
    sample_weights = jnp.asarray(sample_weights, jnp.float64)
    runs = sample_weights.shape[0]
    lr = jnp.broadcast_to(jnp.asarray(lr, jnp.float64), (runs,))
    lam = jnp.broadcast_to(jnp.asarray(lam, jnp.float64), (runs,))
    w0 = jnp.asarray(w0, jnp.float64)
    if w0.ndim == 1:
        w0 = jnp.broadcast_to(w0, (runs, w0.size))

    def one(args):
        s, a, l2, w_start = args
        return gd_finetune(
            apply,
            w_start,
            X,
            y,
            s,
            a,
            l2,
            checkpoints,
            return_loss=return_loss,
            linear=linear,
            scale=scale,
        )

    args = (sample_weights, lr, lam, w0)
    if batch_size is None:
        return jax.vmap(one)(args)
    return jax.lax.map(one, args, batch_size=batch_size)


#: :func:`finetune_runs` under ``jax.jit`` (``apply``, ``batch_size`` and ``return_loss``
#: static). Testbeds of one architecture share ``apply``, so they share the compilation.
jit_finetune_runs = jax.jit(finetune_runs, static_argnames=("apply", "batch_size", "return_loss"))
