"""The generalization check of ``stabtheory verify`` (docs/theory.md section 7): the measured
generalization gap beside the replace-one stability that equals it in expectation, and the
Bousquet-Elisseeff moment bound from leave-one-out stability.

Every configuration (head tuning on a data family and training loss, a :class:`HeadGenConfig`;
full fine-tuning's Taylor minimiser on a task, a :class:`FineTuneGenConfig`) runs on
``replicates`` independent draws of (S, S', test set); A(S), every A(S^(i)) and every A(S\\i)
train as one batch of masks. The estimators are :mod:`stabtheory.generalization`.

Modules: :mod:`.spec` (what to run), :mod:`.compute` (chunks, the batched programs, the table),
:mod:`.report` (JSON, markdown, figure), :mod:`.study` (the registered
:class:`~stabtheory.simulations.protocol.StudyProtocol`).
"""

from stabtheory.simulations.generalization.compute import (
    GeneralizationStudy,
    chunks,
    head_draw,
    rows,
    taylor_margins,
)
from stabtheory.simulations.generalization.spec import (
    FineTuneGenConfig,
    GeneralizationSpec,
    HeadGenConfig,
)
from stabtheory.simulations.generalization.study import (
    GENERALIZATION_STUDY,
    GeneralizationStudyProtocol,
    run_generalization_study,
)
from stabtheory.simulations.registry import register_study

__all__ = [
    "GENERALIZATION_STUDY",
    "FineTuneGenConfig",
    "GeneralizationSpec",
    "GeneralizationStudy",
    "GeneralizationStudyProtocol",
    "HeadGenConfig",
    "chunks",
    "head_draw",
    "rows",
    "run_generalization_study",
    "taylor_margins",
]

register_study(GENERALIZATION_STUDY)
