"""The bounds registry: every theorem as a sympy expression with its assumption checks.

================  ====================================================================
id                theorem (docs/theory.md)
================  ====================================================================
``head.svm_loo``  Lemma H-2, leave-one-out change of the max-margin direction
``head.H1``       Theorem H-1, a-posteriori direction stability at step t
``head.H2``       Theorem H-2, a-priori direction rate (exponential loss), composed per sample
``head.H2m``      Theorem H-2, its margin statement delta(t) <= R C / Psi(t), per run
``head.H3``       Theorem H-3, a-priori direction rate of normalized GD, composed per sample
``head.H3m``      Theorem H-3, its margin statement delta(t) <= (log n + eta R^2/2)/(eta gamma t)
``head.C1``       Theorem C-1, raw head weights under GD (Hardt, Recht & Singer 2016)
``ft.FT1``        Theorem FT-1, converged full fine-tuning (Taylor model)
``ft.FT1c``       Theorem FT-1c, FT-1 with the exact leave-one-out numerator (Taylor model)
``ft.FT1L``       Corollary FT-1L, pointwise hypothesis stability (with FT-1)
``ft.FT2``        Theorem FT-2, full fine-tuning after t GD steps (Taylor model)
================  ====================================================================

Example:
  >>> from stabtheory.bounds import get
  >>> get("head.C1").latex()
  '\\\\frac{2 L \\\\eta t}{n}'
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from stabtheory.bounds import finetune, head
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

REGISTRY: dict[str, Theorem] = {
    th.id: th
    for th in (
        head.SVM_LOO,
        head.H1,
        head.H2,
        head.H2M,
        head.H3,
        head.H3M,
        head.C1,
        finetune.FT1,
        finetune.FT1c,
        finetune.FT1L,
        finetune.FT2,
    )
}


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

    Head tuning (``head.*``): trains S and every S\\i (one vmapped batch) with the given loss,
    step size ``lr`` (default 1.0) and number of steps; compares the per-sample bound with
    ``loo.direction`` (``head.H1``/``head.H2``/``head.H3``), ``loo.weights`` (or
    ``notion="loss"``, ``head.C1``), the exact max-margin change (``head.svm_loo``) or the
    margin gap of every run (``head.H2m``/``head.H3m``). ``optimizer`` defaults to the
    theorem's algorithm: ``"ngd"`` (normalized GD) for ``head.H3``/``head.H3m``, ``"gd"``
    otherwise; another optimizer given explicitly is trained as asked, and a theorem stated
    for a different algorithm is then reported not applicable.

    Full fine-tuning (``ft.*``): pass ``model`` (a flax ``nnx.Module`` with one logit, or a
    function ``apply(w, x)`` of flat weights) and ``params`` (the pre-trained flat weights w0;
    taken from the module when omitted), ``lam`` (pull toward w0, > 0 for Lam > 0), ``lr``
    (default ``0.9 / lambda_max``) and ``steps`` (GD checkpoints of ``ft.FT2``). The Taylor model
    uses the logistic loss and the Gauss-Newton curvature.

    A theorem whose assumptions fail is reported as not applicable (``.applicable`` False,
    ``.holds`` None), never as violated or passed.

    Returns:
      :class:`BoundCheck` with per-sample ``.bound`` and ``.empirical``: shape (n,) when
      ``steps`` is an int (and for ``head.svm_loo``, ``ft.FT1``, ``ft.FT1L``), (C, n) for C
      checkpoints; ``.holds``, ``.applicable``, ``.violations`` and ``.assumptions``.

    Example:
      >>> from stabtheory.data import soudry_fig1
      >>> ds = soudry_fig1()
      >>> res = check_bound("head.H1", ds.X, ds.y, loss="exponential", lr=0.1, steps=100)
      >>> res.applicable, res.holds
      (True, True)
    """
    get(theorem_id)
    if optimizer is None:
        optimizer = "ngd" if theorem_id.startswith("head.H3") else "gd"
    result = _check(
        theorem_id,
        X,
        y,
        loss=loss,
        lr=lr,
        steps=steps,
        notion=notion,
        init=init,
        optimizer=optimizer,
        heads_per_run=heads_per_run,
        dtype=dtype,
        model=model,
        params=params,
        lam=lam,
    )
    if np.ndim(steps) == 0 or (result.bound.shape[0] == 1 and theorem_id in _ONE_POINT):
        # one step count, or a theorem about converged/exact solutions: per-sample (n,)
        result = dataclasses.replace(result, bound=result.bound[0], empirical=result.empirical[0])
    return result


_ONE_POINT = ("head.svm_loo", "ft.FT1", "ft.FT1c", "ft.FT1L")


def _check(
    theorem_id,
    X,
    y,
    *,
    loss,
    lr,
    steps,
    notion,
    init,
    optimizer,
    heads_per_run,
    dtype,
    model,
    params,
    lam,
) -> BoundCheck:
    if theorem_id.startswith("ft."):
        if model is None:
            raise ValueError(f"{theorem_id} needs model= (an nnx.Module or apply(w, x)).")
        from flax import nnx

        apply = model
        if isinstance(model, nnx.Module):
            from stabtheory.finetune import as_function

            apply, w_module, _ = as_function(model)
            params = w_module if params is None else params
        if params is None:
            raise ValueError(f"{theorem_id} needs params= (the pre-trained flat weights w0).")
        ev = finetune.ft_evidence(
            apply, params, X, y, lam=lam, lr=lr, steps=np.atleast_1d(steps), real=False
        )
        return {
            "ft.FT1": finetune.check_ft1,
            "ft.FT1c": finetune.check_ft1c,
            "ft.FT1L": finetune.check_ft1l,
            "ft.FT2": finetune.check_ft2,
        }[theorem_id](ev)
    ev = head.head_evidence(
        X,
        y,
        loss=loss,
        lr=1.0 if lr is None else lr,
        steps=steps,
        init=init,
        optimizer=optimizer,
        heads_per_run=heads_per_run,
        dtype=dtype,
    )
    if theorem_id == "head.C1":
        return head.check_c1(ev, notion or "weights")
    expected = {
        "head.svm_loo": "svm.direction",
        "head.H2m": "margin.gap",
        "head.H3m": "margin.gap",
    }.get(theorem_id, "direction")
    if notion not in (None, expected):
        raise ValueError(f"{theorem_id} bounds the {expected} notion, not {notion!r}.")
    return head.CHECKS[theorem_id](ev)
