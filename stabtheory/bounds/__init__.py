"""The bounds registry: every theorem as a sympy expression with its assumption checks.

================  ====================================================================
id                theorem (THEORY.md)
================  ====================================================================
``head.svm_loo``  Lemma H-2, leave-one-out change of the max-margin direction
``head.H1``       Theorem H-1, a-posteriori direction stability at step t
``head.H2``       Theorem H-2, a-priori margin/direction rate (exponential loss)
``head.C1``       Theorem C-1, raw head weights under GD (Hardt, Recht & Singer 2016)
================  ====================================================================

Example:
  >>> from stabtheory.bounds import get
  >>> get("head.C1").latex()
  '\\\\frac{2 L \\\\eta t}{n}'
"""

from __future__ import annotations

import jax.numpy as jnp

from stabtheory.bounds import head
from stabtheory.bounds.base import Assumption, BoundCheck, Theorem, tolerance
from stabtheory.errors import UnknownTheoremError

__all__ = [
    "REGISTRY",
    "Assumption",
    "BoundCheck",
    "Theorem",
    "check_bound",
    "get",
    "tolerance",
]

REGISTRY: dict[str, Theorem] = {th.id: th for th in (head.SVM_LOO, head.H1, head.H2, head.C1)}


def get(theorem_id: str) -> Theorem:
    """The theorem with this id; raises :class:`UnknownTheoremError` listing the known ids."""
    try:
        return REGISTRY[theorem_id]
    except KeyError:
        raise UnknownTheoremError(
            f"unknown theorem id {theorem_id!r}; known ids: {sorted(REGISTRY)}."
        ) from None


def check_bound(
    theorem_id: str,
    X,
    y,
    *,
    loss: str = "exponential",
    lr: float = 1.0,
    steps=1000,
    notion: str | None = None,
    init=None,
    optimizer: str = "gd",
    heads_per_run: int = 1,
    dtype=jnp.float64,
) -> BoundCheck:
    """Check a head-tuning theorem against leave-one-out GD runs, per sample.

    Trains S and every S\\i with the given loss, step size and number of steps (one vmapped
    batch), measures every assumption, and compares the theorem's per-sample bound with the
    empirical stability: ``loo.direction`` for ``head.H1``/``head.H2``, ``loo.weights`` (or
    ``notion="loss"``) for ``head.C1``, and the exact max-margin change for ``head.svm_loo``.
    A theorem whose assumptions fail is reported as not applicable (``.applicable`` False,
    ``.holds`` None), never as violated or passed.

    Returns:
      :class:`BoundCheck` with ``.bound`` and ``.empirical`` of shape (C, n) (C checkpoints),
      ``.holds``, ``.applicable``, ``.violations`` and ``.assumptions``.

    Example:
      >>> from stabtheory.data import soudry_fig1
      >>> ds = soudry_fig1()
      >>> res = check_bound("head.H1", ds.X, ds.y, loss="exponential", lr=0.1, steps=100)
      >>> res.applicable, res.holds
      (True, True)
    """
    get(theorem_id)
    ev = head.head_evidence(
        X,
        y,
        loss=loss,
        lr=lr,
        steps=steps,
        init=init,
        optimizer=optimizer,
        heads_per_run=heads_per_run,
        dtype=dtype,
    )
    if theorem_id == "head.C1":
        return head.check_c1(ev, notion or "weights")
    if notion not in (None, "direction", "svm.direction"):
        raise ValueError(f"{theorem_id} bounds the direction notion, not {notion!r}.")
    return head.CHECKS[theorem_id](ev)
