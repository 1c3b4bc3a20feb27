r"""Linear-head training by full-batch gradient descent, one implementation vmapped over runs.

A *run* is one training of ``K`` linear heads (no bias) on the signed points
``z_i = y_i x_i`` with its own sample weights ``s`` (a mask), learning rate and start. It
minimises the weighted mean loss (docs/theory.md section 3)

.. math::
    F_s(w) = \frac{\sum_i s_i\, \ell(w \cdot z_i)}{\sum_i s_i},

so that a leave-one-out set S\i (``s_i = 0``) averages over ``n - 1`` samples, and a
replace-one set S^(i) is a mask over the data stacked with its replacement draws. With
``K > 1`` heads (Multi-Head Loss) the objective is the mean of the K heads' losses.

One run is :func:`init` + :func:`step` over an explicit :class:`HeadState`; :func:`train`
runs it to a list of checkpoint steps, and :func:`train_runs` is ``jax.vmap`` of
:func:`train` over runs. The learning rate, masks and starts are traced, so sweeping them
never recompiles; the loss, optimizer and number of checkpoints are static. The checkpoint
*values* are either

* traced (a ``jax.Array``): one compiled program for any checkpoint values, a ``while`` loop
  with a traced trip count between consecutive checkpoints; or
* static (a tuple, list or NumPy array of Python/NumPy integers, e.g. ``(1, 10, 100)``;
  under ``jax.jit`` mark the argument static and pass a tuple): every segment between
  checkpoints is a loop of fixed length, which XLA can optimise (and reverse-mode
  differentiate) as such, compiled once per distinct checkpoint tuple. :func:`jit_train_runs`
  is the jitted :func:`train_runs` that does this for any concrete checkpoints.

Both give the same trajectories.

Optimizers: ``"gd"``, ``"momentum"`` and ``"adam"`` turn the gradient into a direction with
an optax transformation (:func:`optimizer_transform`); ``"ngd"`` is normalized GD,
``w <- w - lr grad F / F`` (:func:`normalized_weights`), computed in the log domain.

Numerics: the per-sample ``|l'(m)|`` is ``exp(-m)`` (exponential) or ``sigmoid(-m)`` =
``1 / (1 + e^m)`` (logistic), one transcendental per sample and step (:func:`dloss_abs`); for
large margins it underflows to exactly zero, never NaN, so margins of 1e3 and more give exact
gradients. Losses are reported as ``log F`` through log-sum-exp; margins are never clamped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "LOSSES",
    "NORMALIZED_OPTIMIZERS",
    "OPTIMIZERS",
    "HeadState",
    "Trajectory",
    "dloss_abs",
    "init",
    "jit_train_runs",
    "log_dloss",
    "log_loss",
    "log_mean_loss",
    "loo_weights",
    "normalized_weights",
    "optimizer_transform",
    "replace_one_weights",
    "run_checkpoints",
    "static_checkpoints",
    "step",
    "train",
    "train_runs",
]

LOSSES = ("exponential", "logistic")
#: Every optimizer of the head trainer.
OPTIMIZERS = ("gd", "momentum", "adam", "ngd")
#: Optimizers whose step is normalized by the loss (computed in the log domain by :func:`step`);
#: the others turn the gradient into a direction with an optax transformation.
NORMALIZED_OPTIMIZERS = ("ngd",)


def _check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")


def log_loss(margins: jax.Array, loss: str) -> jax.Array:
    r"""``log l(m)`` per margin, exact for large margins of either sign.

    Exponential: ``l(m) = exp(-m)``, so ``log l = -m``. Logistic: ``l(m) = log(1 + e^{-m})``;
    for ``m > 20``, ``log l = -m + log1p(-e^{-m}/2)`` to float64 precision (the next term is
    below 1e-18 relative), else ``log(softplus(-m))``.

    Example:
      >>> float(log_loss(jnp.array(1000.0), "logistic"))
      -1000.0
    """
    _check_loss(loss)
    if loss == "exponential":
        return -margins
    big = margins > 20.0
    safe_small = jnp.where(big, 0.0, margins)
    safe_big = jnp.where(big, margins, 30.0)
    return jnp.where(
        big,
        -safe_big + jnp.log1p(-0.5 * jnp.exp(-safe_big)),
        jnp.log(jax.nn.softplus(-safe_small)),
    )


def log_dloss(margins: jax.Array, loss: str) -> jax.Array:
    """``log |l'(m)|``: ``-m`` (exponential) or ``-softplus(m)`` (logistic, log sigmoid(-m))."""
    _check_loss(loss)
    if loss == "exponential":
        return -margins
    return -jax.nn.softplus(margins)


def dloss_abs(margins: jax.Array, loss: str) -> jax.Array:
    r"""``|l'(m)|`` per margin with one transcendental: ``exp(-m)`` or ``sigmoid(-m)``.

    Exponential: ``|l'(m)| = e^{-m}``. Logistic: ``|l'(m)| = 1 / (1 + e^{m})``, computed as
    ``jax.nn.sigmoid(-m)`` (a single ``logistic`` op, one exponential). Both equal
    ``exp(log_dloss(m))`` to a few ulps where the result is a normal float, and decrease in
    ``m``. For large positive margins they underflow to exactly ``0`` (never NaN, no
    clamping); for ``m -> -inf`` the logistic one tends to exactly ``1`` and the exponential
    one overflows to ``inf`` like ``e^{-m}`` itself.

    Example:
      >>> dloss_abs(jnp.array([0.0, 1e3, -1e3]), "logistic").tolist()
      [0.5, 0.0, 1.0]
      >>> dloss_abs(jnp.array([0.0, 1e3]), "exponential").tolist()
      [1.0, 0.0]
    """
    _check_loss(loss)
    if loss == "exponential":
        return jnp.exp(-margins)
    return jax.nn.sigmoid(-margins)


def log_mean_loss(margins: jax.Array, sample_weights: jax.Array, loss: str) -> jax.Array:
    """``log F_s(w)`` from margins ``(..., n)`` by log-sum-exp; weights need not sum to one."""
    log_s = jnp.log(sample_weights)
    return jax.nn.logsumexp(log_loss(margins, loss) + log_s, axis=-1) - jnp.log(
        jnp.sum(sample_weights, axis=-1)
    )


def optimizer_transform(
    optimizer: str, *, momentum: float = 0.9, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """The optax transformation that turns a gradient into a direction (without the step size).

    The learning rate is applied by :func:`step` as a traced per-run scalar, so a learning-rate
    sweep never recompiles: ``w <- w - lr * direction``. For ``"gd"`` this is plain gradient
    descent, the algorithm of Theorems H-1, H-2 and C-1. ``"ngd"`` (normalized GD, Theorem
    H-3) divides the gradient by the loss, which :func:`step` does in the log domain from the
    margins (:func:`normalized_weights`); its transformation is the identity (no state).
    """
    if optimizer in ("gd", "ngd"):
        return optax.identity()
    if optimizer == "momentum":
        return optax.trace(decay=momentum)
    if optimizer == "adam":
        return optax.scale_by_adam(b1=b1, b2=b2, eps=eps)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")


class HeadState(NamedTuple):
    """State of one run.

    Attributes:
      w: head weights, shape (K, d).
      opt_state: optax state of :func:`optimizer_transform`.
      dloss_max: running max over the steps taken so far of ``max_{i: s_i > 0} |l'(w . z_i)|``
        over all heads; the measured Lipschitz/smoothness scale used by Theorem C-1 for the
        exponential loss (which is not globally Lipschitz). It is the same quantity for every
        optimizer (a property of the visited weights, not of the step): under ``"ngd"`` it
        still records ``|l'|``, which underflows to 0 at large margins while the normalized
        step itself does not.
    """

    w: jax.Array
    opt_state: optax.OptState
    dloss_max: jax.Array


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


def init(w0: jax.Array, *, optimizer: str = "gd") -> HeadState:
    """Initial state from the starting weights ``w0`` of shape (K, d)."""
    tx = optimizer_transform(optimizer)
    return HeadState(w0, tx.init(w0), jnp.zeros((), w0.dtype))


def normalized_weights(margins: jax.Array, sample_weights: jax.Array, loss: str) -> jax.Array:
    r"""Per-sample weights ``q`` of the normalized GD step, from margins (K, n), in the log domain.

    Normalized GD on the run's objective ``F(W) = (1/K) sum_k F_s(w_k)`` steps
    ``w_k <- w_k - lr * grad_{w_k} F / F = w_k + lr * sum_i q_{ki} z_i`` with

    .. math::
        q_{ki} = \frac{s_i\, |\ell'(w_k\cdot z_i)|}{\sum_{k', j} s_j\, \ell(w_{k'}\cdot z_j)}
        = \exp\Big(\log s_i + \log|\ell'(m_{ki})| - \operatorname{logsumexp}_{k', j}
        \big(\log s_j + \log \ell(m_{k'j})\big)\Big)

    (the factors ``1/K`` and ``1/sum s`` cancel, so the mean and the sum loss give the same
    step). A zero weight is ``log s_i = -inf``: that sample gets ``q = 0`` exactly. For the
    exponential loss ``|l'| = l``, so ``q`` is ``softmax(-m + log s)`` over heads and samples
    (Theorem H-3, one head: ``q(s) = softmax(-Z w(s))``); for the logistic loss ``|l'| < l``
    and ``q`` sums to less than 1 (the same normalized step, ``grad F / F``). No margin is
    exponentiated raw: every ``q`` is at most 1, finite at margins of any size and sign.

    Example:
      >>> normalized_weights(jnp.array([[1e4, 1e4 + 1.0]]), jnp.array([1.0, 1.0]),
      ...                    "exponential").round(6).tolist()
      [[0.731059, 0.268941]]
    """
    log_s = jnp.log(sample_weights)
    log_norm = jax.nn.logsumexp(log_loss(margins, loss) + log_s)
    return jnp.exp(log_dloss(margins, loss) + log_s - log_norm)


def step(
    state: HeadState,
    Z: jax.Array,
    sample_weights: jax.Array,
    lr: jax.Array,
    *,
    loss: str,
    optimizer: str = "gd",
) -> HeadState:
    r"""One optimizer step on the weighted mean loss of ``K`` heads.

    .. math::
        \nabla_{w_k} \tfrac1K \sum_k F_s(w_k) = -\frac{1}{K \sum_i s_i}\sum_i s_i
        |\ell'(w_k\cdot z_i)|\, z_i ,

    with ``|l'|`` from :func:`dloss_abs` (one transcendental per sample). ``"ngd"`` steps
    ``w <- w - lr grad F / F`` with ``F`` the objective of all ``K`` heads, from
    :func:`normalized_weights` (log domain).

    Args:
      state: the run's :class:`HeadState`.
      Z: signed points ``y_i x_i``, shape (n, d).
      sample_weights: non-negative weights, shape (n,).
      lr: step size (a traced scalar).
      loss: ``"exponential"`` or ``"logistic"`` (static).
      optimizer: ``"gd"``, ``"momentum"``, ``"adam"`` or ``"ngd"`` (static).

    Returns:
      The next state.
    """
    w = state.w
    K = w.shape[0]
    margins = w @ Z.T  # (K, n)
    # |l'| decreases in the margin for both losses, so its max over the samples in the set is
    # |l'| at the smallest margin: one masked min and one scalar transcendental per step.
    m_min = jnp.min(jnp.where(sample_weights > 0, margins, jnp.inf))
    dloss_max = jnp.maximum(state.dloss_max, dloss_abs(m_min, loss))
    if optimizer in NORMALIZED_OPTIMIZERS:
        q = normalized_weights(margins, sample_weights, loss)  # (K, n)
        return HeadState(w + lr * (q @ Z), state.opt_state, dloss_max)
    g = dloss_abs(margins, loss) * sample_weights  # s_i |l'(m_i)|, (K, n)
    grad = -(g @ Z) / (K * jnp.sum(sample_weights))  # (K, d)
    tx = optimizer_transform(optimizer)
    direction, opt_state = tx.update(grad, state.opt_state, w)
    return HeadState(w - lr * direction, opt_state, dloss_max)


# Unroll factor of the fixed-length loops of the static-checkpoint path. On a 2-core CPU
# (float64, n=256, d=64, 257 runs) unroll 2, 4 and 8 were 5-16% slower than 1; see
# benchmarks/README.md.
_STATIC_UNROLL = 1


def static_checkpoints(checkpoints) -> tuple[int, ...]:
    """Validated checkpoint steps as a hashable tuple of Python ints (the static form).

    Accepts a tuple, list, NumPy array or concrete ``jax.Array`` of non-negative,
    non-decreasing integers, shape (C,). Pass the result as ``checkpoints`` to :func:`train`
    or :func:`train_runs` (under ``jax.jit``, with ``checkpoints`` marked static) to get
    fixed-length loops between checkpoints.

    Raises:
      ValueError: not 1-D, not integers, negative or decreasing.

    Example:
      >>> static_checkpoints(np.array([0, 10, 100]))
      (0, 10, 100)
    """
    c = np.asarray(checkpoints)
    if c.ndim != 1 or (c.size and not np.issubdtype(c.dtype, np.integer)):
        raise ValueError(f"checkpoints must be a 1-D sequence of integers, got {checkpoints!r}.")
    if (c < 0).any() or (np.diff(c) < 0).any():
        raise ValueError(f"checkpoints must be non-negative and non-decreasing, got {c.tolist()}.")
    return tuple(int(v) for v in c)


def _is_static(checkpoints) -> bool:
    """True unless the checkpoints hold a ``jax.Array`` (concrete or traced) anywhere."""
    return not any(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(checkpoints))


def _increment_runs(checkpoints: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(increment, count)`` for each run of equal consecutive checkpoint increments."""
    runs: list[list[int]] = []
    previous = 0
    for c in checkpoints:
        inc, previous = c - previous, c
        if runs and runs[-1][0] == inc:
            runs[-1][1] += 1
        else:
            runs.append([inc, 1])
    return [(inc, count) for inc, count in runs]


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
      loss, optimizer: static, see :func:`step`.

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
    _check_loss(loss)
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
    if _is_static(checkpoints):
        cps = jnp.asarray(static_checkpoints(checkpoints), dtype=int)
    else:
        cps = jnp.asarray(checkpoints)
    _, (ws, log_f, dmax) = run_checkpoints(body, state, checkpoints, snapshot)
    return Trajectory(cps, ws, log_f, dmax)


def run_checkpoints(body, state, checkpoints, snapshot):
    """Run ``state = body(t, state)`` up to every checkpoint; the snapshots stacked.

    ``t`` counts the steps within a segment between two checkpoints (from 0 each time), not
    the absolute step. ``checkpoints`` static (a tuple, list or NumPy array of Python ints,
    :func:`_is_static`; under ``jax.jit`` only when marked static):
    fixed-length loops between checkpoints (scans of fixed length, which XLA optimises on
    GPU); a ``jax.Array``: a ``lax.scan`` over the increments with a ``fori_loop`` inside
    (a traced trip count, a ``while`` loop), so that the checkpoint values are traced.
    Both give the same states.

    Returns:
      ``(final state, snapshots)``, every leaf of ``snapshot(state)`` with a leading (C,)
      axis.

    Example:
      >>> body = lambda t, x: x + 1.0
      >>> run_checkpoints(body, 0.0, (0, 2, 5), lambda x: x)[1].tolist()
      [0.0, 2.0, 5.0]
      >>> run_checkpoints(body, 0.0, jnp.array([0, 2, 5]), lambda x: x)[1].tolist()
      [0.0, 2.0, 5.0]
    """
    if not _is_static(checkpoints):
        checkpoints = jnp.asarray(checkpoints)
        increments = jnp.diff(checkpoints, prepend=jnp.zeros((1,), checkpoints.dtype))

        def segment(state, inc):
            state = jax.lax.fori_loop(0, inc, body, state)  # traced trip count: a while loop
            return state, snapshot(state)

        return jax.lax.scan(segment, state, increments)

    parts = []
    for inc, count in _increment_runs(static_checkpoints(checkpoints)):

        def fixed_segment(state, _, inc=inc):
            # Python-int bounds: a scan of fixed length ``inc``.
            state = jax.lax.fori_loop(0, inc, body, state, unroll=min(_STATIC_UNROLL, inc) or 1)
            return state, snapshot(state)

        state, part = jax.lax.scan(fixed_segment, state, None, length=count)
        parts.append(part)
    if not parts:  # no checkpoints
        empty = jax.eval_shape(snapshot, state)
        return state, jax.tree.map(lambda a: jnp.zeros((0, *a.shape), a.dtype), empty)
    return state, jax.tree.map(lambda *p: jnp.concatenate(p), *parts)


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
