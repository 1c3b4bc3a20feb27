r"""The GD step of the fine-tuning evidence: :func:`default_lr` (set at w0) and :func:`path_lr`
(set along pilot runs), and the real runs' stationarity tolerance (docs/theory.md section 2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from stabtheory import full_finetuning as ff

__all__ = ["MAX_STEPS", "PILOT_PASSES", "STATIONARY_TOL", "default_lr", "path_lr"]


def default_lr(lam_max: jax.Array, hessian_max: jax.Array, lr_fraction) -> jax.Array:
    """The default GD step ``lr_fraction / max(lambda_max(A_s), lambda_max(hess F_S(w0)))``:
    the largest Gauss-Newton ``lambda_max`` over S and every S\\i (assumption (c) of the Taylor
    GD for ``lr_fraction <= 1``) and the true Hessian's on S at w0 (so the real GD starts
    inside its stability region, ``eta lambda_max / 2 <= lr_fraction / 2 < 1``)."""
    return lr_fraction / jnp.maximum(jnp.max(lam_max), hessian_max)


#: Pilot passes of :func:`path_lr`.
PILOT_PASSES = 2
#: The real runs' stationarity tolerance: GD goes on after the last checkpoint until
#: ``||grad F_s(w)|| <= STATIONARY_TOL ||grad F_s(w0)||`` on every mask ...
STATIONARY_TOL = 1e-3
#: ... or this many more steps: by default none (the real runs stop at the last checkpoint;
#: the stationarity phase is opt-in, ``max_steps > 0``, as the fine-tuning study asks for its
#: base configurations), since it can multiply the cost of the real runs.
MAX_STEPS = 0


def path_lr(
    apply,
    w0,
    X,
    y,
    sample_weights,
    lam,
    gn_max,
    top0,
    lr_fraction,
    checkpoints,
    *,
    passes: int = PILOT_PASSES,
    linear=None,
    scale=1.0,
) -> jax.Array:
    r"""The default GD step, set along the path: ``lr_fraction / max(gn_max, lambda_max)``
    with ``lambda_max`` the true Hessian's top eigenvalue of ``F_S`` at w0 (``top0``, which
    the caller has measured already) and along pilot runs on S.

    Pass 0 takes :func:`default_lr` (the curvature at w0); each of ``passes`` pilot passes
    runs GD on S with the current step to the checkpoints, measures the true ``lambda_max``
    at every checkpoint (:func:`~stabtheory.full_finetuning.path_curvature`) and lowers the
    step to ``lr_fraction`` over the largest value met so far. The curvature usually grows
    along the path (progressive sharpening), so a step set at w0 alone can leave the
    stability region ``eta lambda_max / 2 < 1`` later on; the edge along the final run is
    measured and reported (:attr:`FTEvidence.edge_of_stability`), never assumed. The step is
    a hyperparameter set once from S and shared by every S\\i run. Pure and traceable.

    Example:
      >>> apply = lambda w, x: jnp.tanh(w @ x)
      >>> X = jnp.array([[1.0, 0.5], [0.2, -1.0], [-0.7, 0.3]]); y = jnp.array([1.0, -1.0, 1.0])
      >>> w0, s = jnp.zeros(2), jnp.ones(3)
      >>> top0 = ff.path_curvature(apply, w0[None], w0, X, y, s, 0.1).lam_max[0]
      >>> lr = path_lr(apply, w0, X, y, s, 0.1, 1.0, top0, 0.9, jnp.array([1, 10]))
      >>> bool(0 < lr <= 0.9 / top0)
      True
    """

    def top(W):
        c = ff.path_curvature(apply, W, w0, X, y, sample_weights, lam, linear=linear, scale=scale)
        return jnp.max(c.lam_max)

    worst = top0
    lr = default_lr(gn_max, worst, lr_fraction)
    for _ in range(passes):
        W = ff.gd_finetune(
            apply, w0, X, y, sample_weights, lr, lam, checkpoints, linear=linear, scale=scale
        )
        worst = jnp.maximum(worst, top(W))
        lr = jnp.minimum(lr, default_lr(gn_max, worst, lr_fraction))
    return lr
