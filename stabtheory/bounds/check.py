"""``check_bound``: build a theorem's evidence from data and check it, per sample."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from stabtheory.bounds.registry import get
from stabtheory.bounds.theorem import BoundCheck

__all__ = ["check_bound"]


def check_bound(
    theorem_id: str,
    X,
    y,
    *,
    loss: str = "exponential",
    lr: float | None = None,
    steps=1000,
    notion: str | None = None,
    init=None,
    optimizer: str | None = None,
    heads_per_run: int = 1,
    dtype=jnp.float64,
    model=None,
    params=None,
    lam: float = 0.05,
) -> BoundCheck:
    """Check a theorem against leave-one-out simulations, per sample.

    The theorem's evidence class builds what it needs from these arguments (its
    ``for_check``) and the theorem's check compares the bound with the empirical value of
    ``notion`` (default: the theorem's first notion, :attr:`Theorem.notions`).

    Head tuning (``head.*``): trains S and every S\\i (one vmapped batch) with the given loss,
    step size ``lr`` (default 1.0) and number of steps. ``optimizer`` defaults to the
    theorem's algorithm (the first of :attr:`Theorem.optimizers`: ``"ngd"``, normalized GD,
    for ``head.H3``/``head.H3m``, ``"gd"`` otherwise); another optimizer given explicitly is
    trained as asked, and a theorem stated for a different algorithm is then reported not
    applicable.

    Full fine-tuning (``ft.*``): pass ``model`` (a flax ``nnx.Module`` with one logit, or a
    function ``apply(w, x)`` of flat weights) and ``params`` (the pre-trained flat weights w0;
    taken from the module when omitted), ``lam`` (pull toward w0, > 0 for Lam > 0), ``lr``
    (default ``0.9 / lambda_max``, the largest top eigenvalue of the Gauss-Newton and of the
    true Hessian at w0 and along pilot runs: ``path_lr``) and ``steps`` (GD checkpoints of
    ``ft.FT2``). The Taylor model uses the logistic loss and the Gauss-Newton curvature.

    A theorem whose assumptions fail is reported as not applicable (``.applicable`` False,
    ``.holds`` None), never as violated or passed.

    Returns:
      :class:`BoundCheck` with per-sample ``.bound`` and ``.empirical``: shape (n,) when
      ``steps`` is an int (and for a theorem about converged solutions,
      :attr:`Theorem.converged`), (C, n) for C checkpoints; ``.holds``, ``.applicable``,
      ``.violations`` and ``.assumptions``.

    Raises:
      UnknownTheoremError: no theorem has this id.
      ValueError: the theorem does not bound ``notion``.

    Example:
      >>> from stabtheory.data import soudry_fig1
      >>> ds = soudry_fig1()
      >>> res = check_bound("head.H1", ds.X, ds.y, loss="exponential", lr=0.1, steps=100)
      >>> res.applicable, res.holds
      (True, True)
    """
    theorem = get(theorem_id)
    notion = theorem.notion(notion)
    if optimizer is None and theorem.optimizers:
        optimizer = theorem.optimizers[0]
    evidence = theorem.evidence.for_check(
        X,
        y,
        optimizer=optimizer,
        loss=loss,
        lr=lr,
        steps=steps,
        init=init,
        heads_per_run=heads_per_run,
        dtype=dtype,
        model=model,
        params=params,
        lam=lam,
        require_separable=theorem.needs_separable,
    )
    result = theorem.check(evidence, notion)
    if np.ndim(steps) == 0 or (result.bound.shape[0] == 1 and theorem.converged):
        # one step count, or a theorem about converged/exact solutions: per-sample (n,)
        result = dataclasses.replace(result, bound=result.bound[0], empirical=result.empirical[0])
    return result
