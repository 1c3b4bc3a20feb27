"""The generalization check as a :class:`~stabtheory.simulations.protocol.StudyProtocol`
(:data:`GENERALIZATION_STUDY`), and :func:`run_generalization_study`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stabtheory.simulations import engine
from stabtheory.simulations.generalization import compute, report
from stabtheory.simulations.generalization.compute import GeneralizationStudy
from stabtheory.simulations.generalization.spec import GeneralizationSpec
from stabtheory.simulations.protocol import StudyProtocol

__all__ = ["GENERALIZATION_STUDY", "GeneralizationStudyProtocol", "run_generalization_study"]


class GeneralizationStudyProtocol(StudyProtocol):
    """The replace-one identity and the Bousquet-Elisseeff moment bound, measured on head
    tuning and full fine-tuning: no theorem check rows and no claims, a table of its own."""

    name = "generalization"
    description = "generalization gap beside replace-one stability (docs/theory.md section 7)"
    default = True
    reference_s = 13.0  # its default spec on the 2-core CPU, empty compilation cache
    spec_type = GeneralizationSpec

    def chunks(self, spec: GeneralizationSpec) -> list[engine.Chunk]:
        return compute.chunks(spec)

    def compute(self, spec: GeneralizationSpec, chunk: engine.Chunk) -> list:
        return compute.compute(spec, chunk)

    def assemble(self, spec: GeneralizationSpec, results: list) -> GeneralizationStudy:
        return compute.assemble(spec, results)

    def judge(self, study: GeneralizationStudy) -> list:
        return []  # a measurement beside the claims: an identity failure is a bug, not a verdict

    def section(self, study: GeneralizationStudy) -> dict:
        return report.section(study)

    def markdown(self, report_dict: dict) -> list[str]:
        return report.markdown(report_dict)

    def figures(self, study: GeneralizationStudy, out: Path) -> list[str]:
        return report.figures(study, out)

    def label(self, chunk: engine.Chunk) -> str:
        kind, what, n = chunk.group[:3]
        return f"generalization {kind} {what} n={n}: {len(chunk.items)} draws"


#: The generalization check (registered as ``"generalization"``).
GENERALIZATION_STUDY = GeneralizationStudyProtocol()


def run_generalization_study(
    spec: GeneralizationSpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: engine.Executor | None = None,
) -> GeneralizationStudy:
    """Run the generalization check: train every draw, estimate both sides of the identity and
    the moment bound (the table: ``study.table``).

    Args:
      spec: what to run; the default :class:`GeneralizationSpec` when ``None``.
      progress: called as ``progress(done, total, label)`` after each chunk (when no
        ``executor`` is given).
      executor: the :class:`~stabtheory.simulations.engine.Executor` (persistence, resume,
        processes); a fresh in-memory one by default.
    """
    return GENERALIZATION_STUDY.run(spec, executor=executor, progress=progress)
