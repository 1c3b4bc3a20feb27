"""The attention-theory study as a :class:`~stabtheory.simulations.protocol.StudyProtocol`
(:data:`ATTENTION_THEORY_STUDY`), and :func:`run_attention_theory_study`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stabtheory.simulations import engine
from stabtheory.simulations.attention_theory import compute, report
from stabtheory.simulations.attention_theory.compute import STUDY, AttentionTheoryStudy
from stabtheory.simulations.attention_theory.spec import AttentionTheorySpec
from stabtheory.simulations.protocol import StudyProtocol

__all__ = ["ATTENTION_THEORY_STUDY", "AttentionTheoryStudyProtocol", "run_attention_theory_study"]


class AttentionTheoryStudyProtocol(StudyProtocol):
    """The theorems on the attention testbed's transformer (docs/attention.md): full
    fine-tuning through its Taylor model, head tuning on its frozen [CLS] features across
    pre-training lengths; check rows (a violated bound counts), no claims."""

    name = STUDY
    description = (
        "the FT theorems on the attention transformer's Taylor model and the head theorems on "
        "its [CLS] features across pre-training lengths (docs/attention.md)"
    )
    default = False
    reference_s = 180.0  # its default spec on the 2-core CPU, empty compilation cache
    spec_type = AttentionTheorySpec

    def chunks(self, spec: AttentionTheorySpec) -> list[engine.Chunk]:
        return compute.chunks(spec)

    def compute(self, spec: AttentionTheorySpec, chunk: engine.Chunk) -> list[dict]:
        return compute.compute(spec, chunk)

    def assemble(self, spec: AttentionTheorySpec, results: list) -> AttentionTheoryStudy:
        return compute.assemble(spec, results)

    def judge(self, study: AttentionTheoryStudy) -> list:
        return []  # bound checks only: the claims are judged by the MLP studies

    def section(self, study: AttentionTheoryStudy) -> dict:
        return report.section(study)

    def markdown(self, report_dict: dict) -> list[str]:
        return report.markdown(report_dict)

    def appendix(self, report_dict: dict) -> list[str]:
        return report.appendix(report_dict)

    def figures(self, study: AttentionTheoryStudy, out: Path) -> list[str]:
        return report.figures(study, out)

    def label(self, chunk: engine.Chunk) -> str:
        kind, value = chunk.group
        return f"{STUDY} n={value}" if kind == "ft" else f"{STUDY} pre-train {value}"


#: The attention-theory study (registered as ``"attention-theory"``; not run by default).
ATTENTION_THEORY_STUDY = AttentionTheoryStudyProtocol()


def run_attention_theory_study(
    spec: AttentionTheorySpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: engine.Executor | None = None,
) -> AttentionTheoryStudy:
    """Run the attention-theory study: the FT checks per n and the head checks per length."""
    return ATTENTION_THEORY_STUDY.run(spec, executor=executor, progress=progress)
