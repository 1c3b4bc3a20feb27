"""The attention-theory study (docs/attention.md, "The theorems on the transformer"): the full
fine-tuning theorems (FT-1, FT-1c, FT-1L, FT-2) on the Taylor model of the attention testbed's
transformer at a few n, with the Taylor-faithfulness check, and the head-tuning theorems (H-1,
H-3, C-1, ...) on its frozen pooled [CLS] features across pre-training lengths.

Modules: :mod:`.spec` (what to run), :mod:`.compute` (chunks and their evidence),
:mod:`.report` (JSON, markdown, figures), :mod:`.study` (the registered protocol).
"""

from stabtheory.simulations.attention_theory.compute import (
    AttentionTheoryStudy,
    assemble,
    chunks,
)
from stabtheory.simulations.attention_theory.spec import AttentionTheorySpec
from stabtheory.simulations.attention_theory.study import (
    ATTENTION_THEORY_STUDY,
    AttentionTheoryStudyProtocol,
    run_attention_theory_study,
)
from stabtheory.simulations.registry import register_study

__all__ = [
    "ATTENTION_THEORY_STUDY",
    "AttentionTheorySpec",
    "AttentionTheoryStudy",
    "AttentionTheoryStudyProtocol",
    "assemble",
    "chunks",
    "run_attention_theory_study",
]

register_study(ATTENTION_THEORY_STUDY)
