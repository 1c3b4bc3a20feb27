"""How far the real network is from its Taylor model: the faithfulness measures (assumption d),
and the real network's regime (the true Hessian's curvature and how stationary GD ends).

The theorems cover the Taylor model only; these numbers are reported beside the real
network's leave-one-out stability.
"""

from __future__ import annotations

import numpy as np

from stabtheory.bounds.finetune.evidence import FTEvidence
from stabtheory.bounds.theorem import Assumption

__all__ = [
    "DEPARTURE_THRESHOLD",
    "curvature_ratio",
    "faithfulness",
    "hessian_min_eig",
    "loss_gap",
    "real_departure",
    "stationarity",
    "true_hessian_psd",
]


#: Assumption (d)'s threshold on :func:`real_departure`: an exactly quadratic loss has 0, so a
#: nonlinear network never passes it and stays outside FT-1/FT-2 (reported, never assumed).
DEPARTURE_THRESHOLD = 0.0


def faithfulness(ev: FTEvidence) -> Assumption:
    """Assumption (d), measured: the largest relative gap between the real network's and the
    Taylor model's fine-tuned weights along the GD path (0 means a faithful Taylor model).

    It never holds exactly for a nonlinear network: the threshold 0 makes a check on the real
    network *not applicable* (the theorem does not cover it) while the numbers are reported.
    """
    return Assumption.measure(
        "Taylor faithful",
        "max over runs and checkpoints of ||w_real - w_quad|| / "
        "||w_quad - w0|| (0 for an exactly quadratic loss)",
        real_departure(ev),
        "<=",
        DEPARTURE_THRESHOLD,
    )


def real_departure(ev: FTEvidence) -> float:
    """Largest relative gap ``||w_real - w_quad|| / ||w_quad - w0||`` over runs and checkpoints."""
    w0 = np.asarray(ev.tm.w0)
    num = np.linalg.norm(ev.w_real - ev.w_gd, axis=-1)
    den = np.linalg.norm(ev.w_gd - w0, axis=-1)
    ok = den > 0
    return float((num[ok] / den[ok]).max()) if ok.any() else 0.0


def loss_gap(ev: FTEvidence) -> float:
    """Largest relative gap, over the checkpoints, between the true and the quadratic mean loss
    ``F`` of the run on S along the real fine-tuning path: ``|F_real - F_quad| / |F_real|``
    (a design's linear terms can make ``F_real`` negative)."""
    real, quad = ev.real_losses[0].mean(axis=-1), ev.quad_losses[0].mean(axis=-1)
    return float(np.max(np.abs(real - quad) / np.abs(real)))


def hessian_min_eig(ev: FTEvidence) -> float:
    """The smallest eigenvalue of the true Hessian of the (designed) mean loss on S at w0,
    ``lambda_min(hess F_S(w0)) - lam`` (the pull removed; a Lanczos Ritz value, which does not
    under-estimate it). Negative: the true curvature is not PSD there."""
    return float(ev.hessian_min[0] - ev.config["lam"])


def curvature_ratio(ev: FTEvidence) -> np.ndarray:
    """``lambda_min / lambda_max`` of the true Hessian of the mean loss on S (the pull
    removed), at w0, at every checkpoint of the real run and at its stationary end: (2 + C,),
    or (1,) without the real network. 0 or above where it is PSD; the Gauss-Newton
    curvature's is >= 0."""
    lam = ev.config["lam"]
    return (ev.hessian_min - lam) / (ev.hessian_max - lam)


def true_hessian_psd(ev: FTEvidence) -> Assumption:
    """Assumption (a) for the true Hessian, a necessary condition measured at w0 on S: every
    ``H_i`` PSD needs ``mean_i H_i`` PSD. The Taylor model of the checks uses the Gauss-Newton
    curvature (PSD by construction); this reports how far the true curvature, which a Taylor
    model of the real network would have, is from PSD. The threshold is the rounding level
    ``10 p eps lambda_max`` of the Lanczos estimate."""
    lam_max = float(ev.hessian_max[0] - ev.config["lam"])
    return Assumption.measure(
        "true Hessian PSD",
        "lambda_min of the true Hessian of the mean loss on S at w0 (Lanczos; necessary for "
        "every true H_i PSD)",
        hessian_min_eig(ev),
        ">=",
        -10 * ev.tm.w0.shape[0] * np.finfo(np.float64).eps * abs(lam_max),
    )


def stationarity(ev: FTEvidence) -> float:
    """``||grad F_S(w)|| / ||grad F_S(w0)||``: the real objective's gradient norm on S where
    its run stopped (the stationarity tolerance or the step cap after the last checkpoint,
    ``FTEvidence.w_stat``) relative to w0 (0 at a stationary point)."""
    if ev.w_real is None:
        raise ValueError("stationarity needs the real network's run: ft_evidence(..., real=True).")
    return float(ev.grad_norm[-1] / ev.grad_norm[0])
