"""How far the real network is from its Taylor model: the faithfulness measures (assumption d).

The theorems cover the Taylor model only; these numbers are reported beside the real
network's leave-one-out stability.
"""

from __future__ import annotations

import numpy as np

from stabtheory.bounds.finetune.evidence import FTEvidence
from stabtheory.bounds.theorem import Assumption

__all__ = ["DEPARTURE_THRESHOLD", "faithfulness", "loss_gap", "real_departure"]


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
