"""The full fine-tuning study of ``stabtheory verify``: Theorems FT-1, FT-1c, FT-1L, FT-2 and
the ``ft.*`` claims, on the Taylor model and on the real network.

For every configuration and draw, S and all n sets S\\i are solved (CG, vmapped over masks)
and trained (GD on the quadratic and on the real network) from the pre-trained weights.
Sweeps, one at a time around a base configuration on each testbed: natural knobs (``n``,
``input_scale``, ``pretrain_steps``, the interpolation ``alpha``, ``lam``, ``lr_fraction``),
positive controls (the zero-sum tilt and the curvature-matched shift of
:class:`~stabtheory.full_finetuning.FTDesign`) and the loss-scaling software control.

Modules: :mod:`.spec` (what to sweep), :mod:`.compute` (chunks, the evidence program, the
checks), :mod:`.claims` (the verdicts), :mod:`.report` (JSON, markdown, figures),
:mod:`.study` (the registered :class:`~stabtheory.simulations.protocol.StudyProtocol`).
"""

from stabtheory.simulations.finetune.claims import (
    COVARIATES,
    FT_CLAIMS,
    KNOBS,
    MIN_SPREAD,
    judge_claims,
    sweeps,
)
from stabtheory.simulations.finetune.compute import REAL, FineTuneStudy, chunks
from stabtheory.simulations.finetune.spec import (
    MEASURES,
    FineTuneStudySpec,
    FTConfig,
    padded_size,
)
from stabtheory.simulations.finetune.study import (
    FINETUNE_STUDY,
    FineTuneStudyProtocol,
    run_finetune_study,
)
from stabtheory.simulations.registry import register_study

__all__ = [
    "COVARIATES",
    "FINETUNE_STUDY",
    "FT_CLAIMS",
    "KNOBS",
    "MEASURES",
    "MIN_SPREAD",
    "REAL",
    "FTConfig",
    "FineTuneStudy",
    "FineTuneStudyProtocol",
    "FineTuneStudySpec",
    "chunks",
    "judge_claims",
    "padded_size",
    "run_finetune_study",
    "sweeps",
]

register_study(FINETUNE_STUDY)
