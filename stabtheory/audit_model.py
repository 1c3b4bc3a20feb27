"""The user's own model through the full fine-tuning theorems: :func:`audit_model`.

The twin of :func:`stabtheory.audit.audit` for a pre-trained network: the Taylor model of the
user's flax ``nnx.Module`` (one logit) or ``apply(w, x)`` around its weights is built once
(per-sample gradients, Gauss-Newton curvature, every leave-one-out minimiser and GD path), and
every registered fine-tuning theorem (FT-1, FT-1c, FT-1L, FT-2) is checked on it, in words:
applicable or the failed assumption with its value, threshold and fix, bound against measured,
vacuous share (docs/theory.md sections 2 and 6). The model's input width and output shape are
checked before any work.

>>> import jax.numpy as jnp, numpy as np
>>> X = np.random.default_rng(0).standard_normal((12, 3)); y = np.sign(X[:, 0])
>>> a = audit_model(lambda w, x: jnp.tanh(w @ x), X, y, params=jnp.full(3, 0.1))
>>> sorted({r["theorem"] for r in a.rows() if r["applicable"]})
['ft.FT1', 'ft.FT1L', 'ft.FT1c', 'ft.FT2']
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stabtheory.audit import check_row, describe
from stabtheory.bounds import check_all
from stabtheory.bounds.finetune import FTEvidence
from stabtheory.bounds.theorem import Assumption, BoundCheck
from stabtheory.data import validate

__all__ = ["ModelAudit", "audit_model", "model_fix_for"]


def model_fix_for(a: Assumption, *, lr: float | None) -> str:
    """What to change so that a failing assumption of a fine-tuning theorem holds."""
    if a.name.startswith("Lam"):
        return (
            "a pull toward the pre-trained weights: lam > 0 (plain fine-tuning, lam = 0, is "
            "outside FT-1/FT-2)"
        )
    if a.name.startswith("eta"):
        return (
            "a smaller step: lr <= 1/lambda_max (the default, 0.9/lambda_max with the "
            "largest lambda_max along the path, satisfies it)"
        )
    if a.name == "CG residual":
        return "a better-conditioned problem (larger lam)"
    if a.name == "Taylor faithful":
        return "the theorems cover the Taylor model; the real network departs from it here"
    return "see the assumption's description"


@dataclasses.dataclass(frozen=True)
class ModelAudit:
    """The result of :func:`audit_model`.

    Attributes:
      n, d, p: the data's size and width, the model's number of weights.
      lam, lr, steps: the L2-SP pull, the GD step (``None``: the default
        ``0.9 / lambda_max``, lambda_max the largest along pilot runs,
        :func:`~stabtheory.bounds.finetune.path_lr`), the GD checkpoints of FT-2.
      checks: every fine-tuning theorem's :class:`~stabtheory.bounds.BoundCheck`.
    """

    n: int
    d: int
    p: int
    lam: float
    lr: float | None
    steps: tuple[int, ...]
    checks: tuple[BoundCheck, ...]

    @property
    def violations(self) -> int:
        """Violated entries over every applicable check."""
        return sum(c.violations for c in self.checks if c.applicable)

    def rows(self) -> list[dict]:
        """One row per (theorem, notion), as :func:`stabtheory.audit.check_row`."""
        return [check_row(c, lambda a: model_fix_for(a, lr=self.lr)) for c in self.checks]

    def to_json(self) -> dict:
        """The machine-readable document: ``data``, ``settings``, ``violations``, ``checks``."""
        return {
            "data": {"n": self.n, "d": self.d, "p": self.p},
            "settings": {"lam": self.lam, "lr": self.lr, "steps": list(self.steps)},
            "violations": self.violations,
            "checks": self.rows(),
        }

    def summary(self) -> str:
        """The audit in words."""
        lr = "0.9 / lambda_max along the path (default)" if self.lr is None else f"{self.lr:.4g}"
        lines = [
            f"model: p = {self.p} weights; data: n = {self.n}, d = {self.d}; lam = {self.lam}, "
            f"lr = {lr}, GD checkpoints {list(self.steps)}; the theorems are checked on the "
            "Taylor model around the given weights (docs/theory.md section 2).",
            "",
        ]
        return "\n".join(lines + describe(self.rows()))


def audit_model(
    model, X, y, *, params=None, lam: float = 0.05, lr: float | None = None, steps=(1, 10, 100)
) -> ModelAudit:
    """Check every full fine-tuning theorem on the user's pre-trained model and data.

    Args:
      model: a flax ``nnx.Module`` with one logit, or ``apply(w, x)`` of flat weights.
      X, y: features (n, d) and labels in {-1, +1} or {0, 1}.
      params: the pre-trained flat weights (taken from the module when omitted).
      lam: the L2-SP pull (> 0 for the theorems to apply).
      lr: the GD step; default ``0.9 / lambda_max`` (the largest Gauss-Newton and true-Hessian
        top eigenvalue at w0 and along pilot runs, :func:`~stabtheory.bounds.finetune.path_lr`).
      steps: the GD checkpoints of FT-2.

    Raises:
      InvalidArgumentError: a model that cannot take a row of ``X`` or does not return a
        scalar, a bad ``lam``, ``lr`` or ``steps`` (named).
    """
    X, y = validate(X, y)
    ev = FTEvidence.for_check(X, y, model=model, params=params, lam=lam, lr=lr, steps=steps)
    checks = tuple(check_all(ev))
    return ModelAudit(
        n=X.shape[0],
        d=X.shape[1],
        p=int(np.asarray(ev.tm.w0).size),
        lam=float(lam),
        lr=lr,
        steps=tuple(int(s) for s in np.atleast_1d(steps)),
        checks=checks,
    )
