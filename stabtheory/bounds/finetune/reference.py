"""The plain problem's optimum and fine-tuned weights, the unit of the controlled designs.

:func:`ft_reference` gives what :func:`~stabtheory.bounds.finetune.ft_evidence` of the plain
problem gives on the full set S alone, at a fraction of the cost.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory import full_finetuning as ff
from stabtheory.bounds.finetune.step import PILOT_PASSES, path_lr
from stabtheory.linear_heads import loo_weights

__all__ = ["FTReference", "ft_reference"]


@dataclasses.dataclass(frozen=True, eq=False)
class FTReference:
    """The plain problem's optimum and fine-tuned weights, the reference of the controlled
    designs that are set in units of a base problem (:func:`ft_reference`).

    Attributes:
      w0: (p,) the pre-trained weights.
      w_min: (p,) the Taylor-model minimiser ``w_S``.
      rho: (n,) ``||grad lhat_i(w_S)||``.
      w_real: (p,) the real network after GD on S to the last checkpoint, with the step
        :func:`ft_evidence` takes (:func:`~stabtheory.bounds.finetune.step.path_lr`,
        with the same ``passes``).
    """

    w0: np.ndarray
    w_min: np.ndarray
    rho: np.ndarray
    w_real: np.ndarray

    @property
    def distance(self) -> float:
        """``||w_S - w0||``."""
        return float(np.linalg.norm(self.w_min - self.w0))

    @property
    def direction(self) -> np.ndarray:
        """``(w_S - w0) / ||w_S - w0||``."""
        d = self.w_min - self.w0
        return d / np.linalg.norm(d)


@functools.partial(jax.jit, static_argnames=("apply", "cg_tol", "maxiter", "passes"))
def _reference_program(apply, w0, X, y, lam, lr_fraction, checkpoints, *, cg_tol, maxiter, passes):

    tm = ff.taylor_expand(apply, w0, X, y)
    weights = loo_weights(X.shape[0])
    gn_max = jnp.max(ff.extreme_eigenvalues(tm, weights, lam)[1])
    top0 = ff.path_curvature(apply, w0[None], w0, X, y, weights[0], lam).lam_max[0]
    lr = path_lr(
        apply,
        w0,
        X,
        y,
        weights[0],
        lam,
        gn_max,
        top0,
        lr_fraction,
        checkpoints,
        passes=passes,
    )
    last = checkpoints[-1]
    w_S = ff.minimizers(tm, weights[:1], lam, tol=cg_tol, maxiter=maxiter)[0]
    rho = jnp.linalg.norm(ff.quadratic_grads(tm, w_S[None])[0], axis=1)
    w_real = ff.finetune_runs(apply, w0, X, y, weights[:1], lr[None], lam, last[None])
    return w_S, rho, w_real[0, 0]


def ft_reference(
    apply,
    params,
    X,
    y,
    *,
    lam: float = 0.05,
    lr_fraction: float = 0.9,
    steps=(1, 10, 100, 1000),
    cg_tol: float = 1e-12,
    passes: int = PILOT_PASSES,
) -> FTReference:
    """What :func:`ft_evidence` of the plain problem gives on the full set S alone (up to
    rounding): the Taylor minimiser ``w_S``, every ``rho_i`` and the real network after
    ``steps[-1]`` GD steps (one compiled program per (n, p, number of checkpoints): the
    step's pilot passes run to the checkpoints). A design set relative to a base problem (a
    tilt in units of the median ``rho_i``, a shift in units of ``||w_S - w0||`` along
    ``w_S - w0``, a start ``w0 + alpha (w_real - w0)``) needs only these, at a fraction of the
    cost.

    Example:
      >>> from stabtheory.full_finetuning import TestbedConfig, make_testbed
      >>> bed = make_testbed(TestbedConfig(n=8, pretrain_steps=0))
      >>> ref = ft_reference(bed.apply, bed.w0, bed.X, bed.y, steps=(1, 10))
      >>> ref.rho.shape, ref.distance > 0
      ((8,), True)
    """
    from stabtheory.data import validate

    X, y = validate(X, y)
    if len(steps) == 0:
        raise ValueError("steps must name at least one checkpoint.")
    w0 = np.asarray(params, np.float64)
    w_S, rho, w_real = jax.device_get(
        _reference_program(
            apply,
            jnp.asarray(w0),
            jnp.asarray(X, jnp.float64),
            jnp.asarray(y, jnp.float64),
            jnp.asarray(lam, jnp.float64),
            jnp.asarray(lr_fraction, jnp.float64),
            jnp.asarray(np.asarray(steps, dtype=np.int64)),
            cg_tol=float(cg_tol),
            maxiter=10 * w0.shape[0],
            passes=int(passes),
        )
    )
    return FTReference(w0, np.asarray(w_S), np.asarray(rho), np.asarray(w_real))
