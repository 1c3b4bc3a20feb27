"""The checkpoint loop: run ``state = body(t, state)`` and snapshot it at every checkpoint.

:func:`run_checkpoints` is the one loop of every trainer (linear heads, full fine-tuning, the
Taylor model). Checkpoints are either static (Python/NumPy integers, :func:`static_checkpoints`):
fixed-length loops that XLA optimises and reverse mode differentiates, compiled once per
checkpoint tuple; or traced (a ``jax.Array``): one program for every checkpoint value. Both give
the same states.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["is_static", "run_checkpoints", "static_checkpoints"]


# Unroll factor of the fixed-length loops of the static-checkpoint path. On a 2-core CPU
# (float64, n=256, d=64, 257 runs) unroll 2, 4 and 8 were 5-16% slower than 1; see
# benchmarks/README.md.
_STATIC_UNROLL = 1


def static_checkpoints(checkpoints) -> tuple[int, ...]:
    """Validated checkpoint steps as a hashable tuple of Python ints (the static form).

    Accepts a tuple, list, NumPy array or concrete ``jax.Array`` of non-negative,
    non-decreasing integers, shape (C,). Pass the result as ``checkpoints`` to
    :func:`run_checkpoints` or a trainer (:func:`stabtheory.linear_heads.train`; under
    ``jax.jit``, with ``checkpoints`` marked static) to get fixed-length loops between
    checkpoints.

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


def is_static(checkpoints) -> bool:
    """True unless the checkpoints hold a ``jax.Array`` (concrete or traced) anywhere.

    Static checkpoints (Python or NumPy integers) give fixed-length loops; a ``jax.Array``
    gives traced loop bounds (one program for every checkpoint value).

    Example:
      >>> is_static((0, 10)), is_static(jnp.array([0, 10]))
      (True, False)
    """
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


def run_checkpoints(body, state, checkpoints, snapshot):
    """Run ``state = body(t, state)`` up to every checkpoint; the snapshots stacked.

    ``t`` counts the steps within a segment between two checkpoints (from 0 each time), not
    the absolute step. ``checkpoints`` static (a tuple, list or NumPy array of Python ints,
    :func:`is_static`; under ``jax.jit`` only when marked static):
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
    if not is_static(checkpoints):
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
