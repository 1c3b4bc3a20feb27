r"""Theorem FT-2, ``ft.FT2``: leave-one-out stability after t GD steps on the Taylor model.

Per sample i and checkpoint t (docs/theory.md section 2):
``||w_t(S) - w_t(S\i)|| <= FT1_i + eta t beta (1 - eta Lam_i)^(t-1) ||w0 - w_S\i|| / n``,
``beta = max_i ||H_i||`` (exact for the rank-one Gauss-Newton matrices). The notion
``loo.weights (gd)`` is GD on the Taylor model (the theorem); ``loo.weights (real)`` sets the
bound beside the real network's GD, outside the theorem (not applicable, with the measured
faithfulness of the Taylor model and the true Hessian's PSD check at w0).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from stabtheory.bounds.finetune.assumptions import common_assumptions, ft_result
from stabtheory.bounds.finetune.evidence import FTEvidence
from stabtheory.bounds.finetune.faithfulness import faithfulness, true_hessian_psd
from stabtheory.bounds.finetune.ft1 import FT1, Lam, dist, lam, n, rho
from stabtheory.bounds.theorem import Assumption, BoundCheck, Theorem

__all__ = ["FT2", "check_ft2"]

dist_i = sp.Symbol("d_i", nonnegative=True)  # ||w0 - w_S\i||
eta = sp.Symbol("eta", positive=True)
t = sp.Symbol("t", nonnegative=True)
beta = sp.Symbol("beta", nonnegative=True)

#: The runs each notion compares: GD on the Taylor model, or on the real network.
_RUNS = {"loo.weights (gd)": "gd.weights", "loo.weights (real)": "real.weights"}


def check_ft2(ev: FTEvidence, notion: str = "loo.weights (gd)") -> BoundCheck:
    """FT-2 against GD on the Taylor model (``"loo.weights (gd)"``), or, outside the theorem,
    beside the real network's leave-one-out stability (``"loo.weights (real)"``)."""
    kind = _RUNS[notion]
    if not ev.measures(notion):
        raise ValueError(f"{notion} needs the real network's runs: ft_evidence(..., real=True).")
    lr = ev.config["lr"]
    steps = ev.steps.astype(np.float64)
    bound = np.asarray(
        FT2.evaluate(
            ev.rho[None],
            ev.config["lam"],
            ev.distance,
            float(ev.n),
            ev.Lam[None],
            lr,
            steps[:, None],
            float(ev.beta_i.max()),
            ev.distance_loo[None],
        )
    )
    assumptions = [
        *common_assumptions(ev),
        Assumption.measure(
            "eta <= 1/lambda_max",
            "eta * max over S and every S\\i of lambda_max(A_s) (exact)",
            lr * float(ev.lam_max.max()),
            "<=",
            1.0,
        ),
    ]
    if kind == "real.weights":
        assumptions += [faithfulness(ev), true_hessian_psd(ev)]
    return ft_result(FT2, notion, ev, bound, kind, assumptions, ev.steps)


FT2 = Theorem(
    id="ft.FT2",
    title="Theorem FT-2: leave-one-out stability after t GD steps on the Taylor model",
    expression=FT1.expression + eta * t * beta * (1 - eta * Lam) ** (t - 1) * dist_i / n,
    symbols=(rho, lam, dist, n, Lam, eta, t, beta, dist_i),
    notions=tuple(_RUNS),
    assumptions=(
        *FT1.assumptions[:2],
        "eta <= 1 / lambda_max(A_S) and <= 1 / lambda_max(A_S\\i)",
        "GD from w0",
    ),
    reference="docs/theory.md section 2, Theorem FT-2",
    evidence=FTEvidence,
    checker=check_ft2,
    optimizers=("gd",),
)
