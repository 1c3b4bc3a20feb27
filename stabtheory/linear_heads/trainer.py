r"""The head trainer: :func:`train` one run to its checkpoints, :func:`train_runs` over many runs.

A *run* trains ``K`` linear heads (no bias) on the signed points ``z_i = y_i x_i`` with its own
sample weights ``s`` (a mask), learning rate and start, minimising the weighted mean loss
``F_s(w) = sum_i s_i l(w . z_i) / sum_i s_i`` (docs/theory.md section 3). Leave-one-out and
replace-one sets are masks (:func:`loo_weights`, :func:`replace_one_weights`), so every run of a
batch has the same shape. Learning rates, masks and starts are traced (a sweep never
recompiles); the loss, optimizer and number of checkpoints are static.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory.linear_heads.checkpoints import is_static, run_checkpoints, static_checkpoints
from stabtheory.linear_heads.losses import check_loss, log_mean_loss
from stabtheory.linear_heads.optimizers import init, step

__all__ = [
    "Trajectory",
    "jit_train_runs",
    "loo_weights",
    "replace_one_weights",
    "train",
    "train_runs",
]


class Trajectory(NamedTuple):
    """Snapshots of one run (or, from :func:`train_runs`, of every run: a leading runs axis).

    Attributes:
      steps: the checkpoint steps, shape (C,).
      w: head weights at each checkpoint, shape (C, K, d).
      log_loss: ``log F_s(w)`` at each checkpoint, mean over heads in the log domain, (C,).
      dloss_max: running max of ``|l'|`` over the steps before each checkpoint, (C,).
    """

    steps: jax.Array
    w: jax.Array
    log_loss: jax.Array
    dloss_max: jax.Array


def train(
    Z: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array,
    w0: jax.Array,
    checkpoints: jax.Array | Sequence[int] | np.ndarray,
    *,
    loss: str,
    optimizer: str = "gd",
) -> Trajectory:
    """Train one run and return snapshots after ``checkpoints[c]`` steps, for every c.

    Only the snapshots are stored, never every step: memory is ``O(C K d)``. Two paths give
    the same trajectory:

    * **traced** checkpoints (a ``jax.Array``, or any value traced by ``jax.jit``): a
      ``while`` loop with a traced trip count runs between consecutive checkpoints, so any
      set of ``C`` increasing steps reuses the same compiled program. Reverse-mode
      differentiation through ``train`` is then not available (JAX does not transpose a
      ``while`` loop); forward mode (``jax.jvp``/``jax.jacfwd``) works.
    * **static** checkpoints (a tuple, list or NumPy array of integers; under ``jax.jit``,
      mark the argument static and pass a tuple, e.g. from :func:`static_checkpoints`): each
      segment is a loop of fixed length (``lax.scan``), which XLA can optimise as such (a
      traced ``while`` bound blocks its loop optimisations, notably on GPU) and which
      reverse mode can differentiate. A run of equal consecutive increments is one loop
      nested in a scan, so the program grows with the number of such runs, and it is
      compiled once per distinct checkpoint tuple.

    Args:
      Z: signed points ``y_i x_i``, shape (n, d).
      sample_weights: shape (n,), non-negative with a positive sum.
      lr: step size (scalar).
      w0: start, shape (K, d).
      checkpoints: non-decreasing step counts, shape (C,), integer; 0 is the start.
      loss, optimizer: static, see :func:`~stabtheory.linear_heads.step`.

    Returns:
      A :class:`Trajectory`.

    Raises:
      ValueError: static checkpoints that are not non-decreasing non-negative integers.

    Example:
      >>> Z = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> traj = train(Z, jnp.ones(2), 0.5, jnp.zeros((1, 2)), jnp.array([0, 1]),
      ...              loss="exponential")
      >>> np.asarray(traj.w[1, 0]).tolist()  # one step: 0.5 * mean(z_i)
      [0.25, 0.25]
      >>> static = train(Z, jnp.ones(2), 0.5, jnp.zeros((1, 2)), (0, 1), loss="exponential")
      >>> bool((static.w == traj.w).all())
      True
    """
    check_loss(loss)
    sample_weights = jnp.asarray(sample_weights, Z.dtype)
    lr = jnp.asarray(lr, Z.dtype)

    def body(_, state):
        return step(state, Z, sample_weights, lr, loss=loss, optimizer=optimizer)

    def snapshot(state):
        log_f = jax.nn.logsumexp(log_mean_loss(state.w @ Z.T, sample_weights, loss)) - jnp.log(
            state.w.shape[0]
        )
        return state.w, log_f, state.dloss_max

    state = init(w0, optimizer=optimizer)
    if is_static(checkpoints):
        cps = jnp.asarray(static_checkpoints(checkpoints), dtype=int)
    else:
        cps = jnp.asarray(checkpoints)
    _, (ws, log_f, dmax) = run_checkpoints(body, state, checkpoints, snapshot)
    return Trajectory(cps, ws, log_f, dmax)


def train_runs(
    Z: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array,
    w0: jax.Array,
    checkpoints: jax.Array | Sequence[int] | np.ndarray,
    *,
    loss: str,
    optimizer: str = "gd",
    batch_size: int | None = None,
) -> Trajectory:
    """:func:`train` for many runs at once: ``jax.vmap`` over the leading axis.

    Args:
      Z: shared signed points, shape (n, d).
      sample_weights: one mask per run, shape (runs, n).
      lr: one step size per run, shape (runs,).
      w0: one start per run, shape (runs, K, d).
      checkpoints: shared checkpoint steps, shape (C,); traced (a ``jax.Array``) or static
        (a tuple, list or NumPy array of ints), see :func:`train`. :func:`jit_train_runs` is
        the jitted version with static checkpoints.
      batch_size: train the runs in chunks of this size (``lax.map`` with ``batch_size``) to
        bound memory; ``None`` vmaps all runs at once. Results are identical.

    Returns:
      A :class:`Trajectory` whose arrays have a leading runs axis (``steps`` too).
    """

    def one(args):
        s, a, w = args
        return train(Z, s, a, w, checkpoints, loss=loss, optimizer=optimizer)

    if batch_size is None:
        return jax.vmap(one)((sample_weights, lr, w0))
    return jax.lax.map(one, (sample_weights, lr, w0), batch_size=batch_size)


_jit_train_runs_static = jax.jit(
    train_runs, static_argnames=("checkpoints", "loss", "optimizer", "batch_size")
)


def jit_train_runs(
    Z: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array,
    w0: jax.Array,
    checkpoints: jax.Array | Sequence[int] | np.ndarray,
    *,
    loss: str,
    optimizer: str = "gd",
    batch_size: int | None = None,
) -> Trajectory:
    """Jitted :func:`train_runs` with static checkpoints (fixed-length loops).

    Same arguments and result as :func:`train_runs`; ``checkpoints`` must be concrete (any
    integer sequence or array, converted by :func:`static_checkpoints`). Compiled once per
    distinct (checkpoint tuple, loss, optimizer, batch size) and argument shapes; the
    learning rates, masks and starts stay traced. For one program for all checkpoint values,
    use ``jax.jit(train_runs)`` with traced checkpoints instead.

    Example:
      >>> Z = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> traj = jit_train_runs(Z, loo_weights(2), jnp.full(3, 0.5), jnp.zeros((3, 1, 2)),
      ...                       [0, 1], loss="exponential")
      >>> np.asarray(traj.w[0, 1, 0]).tolist()
      [0.25, 0.25]
    """
    return _jit_train_runs_static(
        Z,
        sample_weights,
        lr,
        w0,
        static_checkpoints(checkpoints),
        loss=loss,
        optimizer=optimizer,
        batch_size=batch_size,
    )


def loo_weights(n: int, dtype=jnp.float64) -> jax.Array:
    """Masks for S and every S\\i: row 0 is all ones, row ``i + 1`` drops sample ``i``.

    Example:
      >>> loo_weights(2).tolist()
      [[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]
    """
    return jnp.concatenate([jnp.ones((1, n), dtype), 1.0 - jnp.eye(n, dtype=dtype)])


def replace_one_weights(n: int, dtype=jnp.float64) -> jax.Array:
    """Masks over ``[S; S']`` (S' the n replacement draws) for S and every S^(i).

    Row 0 selects S; row ``i + 1`` selects S with ``z_i`` replaced by ``z'_i``.

    Example:
      >>> replace_one_weights(2).tolist()
      [[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]]
    """
    eye = jnp.eye(n, dtype=dtype)
    first = jnp.concatenate([jnp.ones((1, n), dtype), jnp.zeros((1, n), dtype)], axis=1)
    rest = jnp.concatenate([1.0 - eye, eye], axis=1)
    return jnp.concatenate([first, rest])
