"""The full fine-tuning study as a :class:`~stabtheory.simulations.protocol.StudyProtocol`
(:data:`FINETUNE_STUDY`), and :func:`run_finetune_study`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stabtheory.simulations import engine
from stabtheory.simulations.finetune import claims, compute, report
from stabtheory.simulations.finetune.compute import FineTuneStudy
from stabtheory.simulations.finetune.spec import FineTuneStudySpec
from stabtheory.simulations.protocol import StudyProtocol

__all__ = ["FINETUNE_STUDY", "FineTuneStudyProtocol", "run_finetune_study"]


class FineTuneStudyProtocol(StudyProtocol):
    """Full fine-tuning through the Taylor model: Theorems FT-1, FT-1c, FT-1L, FT-2 on every
    (configuration, draw) and the ``ft.*`` claims."""

    name = "finetune"
    description = "full fine-tuning through the Taylor model (docs/theory.md section 2)"
    default = True
    reference_s = 150.0  # its default spec on the 2-core CPU, empty compilation cache
    spec_type = FineTuneStudySpec

    def chunks(self, spec: FineTuneStudySpec) -> list[engine.Chunk]:
        return compute.chunks(spec)

    def compute(self, spec: FineTuneStudySpec, chunk: engine.Chunk) -> list:
        return compute.compute(spec, chunk)

    def assemble(self, spec: FineTuneStudySpec, results: list) -> FineTuneStudy:
        return compute.assemble(spec, results)

    def judge(self, study: FineTuneStudy) -> list:
        return claims.judge_claims(study)

    def section(self, study: FineTuneStudy) -> dict:
        return report.section(study)

    def markdown(self, report_dict: dict) -> list[str]:
        return report.markdown(report_dict)

    def appendix(self, report_dict: dict) -> list[str]:
        return report.appendix(report_dict)

    def figures(self, study: FineTuneStudy, out: Path) -> list[str]:
        return report.figures(study, out)

    def label(self, chunk: engine.Chunk) -> str:
        task, size, _ = chunk.group
        return f"FT {task} n<={size}: {len(chunk.items)} config x draws"


#: The full fine-tuning study (registered as ``"finetune"``).
FINETUNE_STUDY = FineTuneStudyProtocol()


def run_finetune_study(
    spec: FineTuneStudySpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: engine.Executor | None = None,
) -> FineTuneStudy:
    """Run the full fine-tuning study: expand, solve, train, check every FT theorem, judge.

    Args:
      spec: what to sweep; the default :class:`FineTuneStudySpec` when ``None``.
      progress: called as ``progress(done, total, label)`` after each chunk (when no
        ``executor`` is given).
      executor: the :class:`~stabtheory.simulations.engine.Executor`; in-memory by default.
    """
    return FINETUNE_STUDY.run(spec, executor=executor, progress=progress)
