"""The phenomenon study as a :class:`~stabtheory.simulations.protocol.StudyProtocol`
(:data:`PHENOMENON_STUDY`), and :func:`run_phenomenon_study`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stabtheory.simulations import engine
from stabtheory.simulations.phenomenon import compute, report
from stabtheory.simulations.phenomenon.compute import PhenomenonStudy
from stabtheory.simulations.phenomenon.spec import PhenomenonSpec
from stabtheory.simulations.protocol import StudyProtocol

__all__ = ["PHENOMENON_STUDY", "PhenomenonStudyProtocol", "run_phenomenon_study"]


class PhenomenonStudyProtocol(StudyProtocol):
    """Failed fine-tuning runs on the attention testbed over seeds (docs/attention.md): no
    theorem checks and no claims, the top-level ``phenomenon`` section."""

    name = "phenomenon"
    description = "failed fine-tuning runs over seeds on the attention testbed (docs/attention.md)"
    default = False
    reference_s = 140.0  # its default spec on the 2-core CPU, empty compilation cache
    spec_type = PhenomenonSpec

    def chunks(self, spec: PhenomenonSpec) -> list[engine.Chunk]:
        return compute.chunks(spec)

    def compute(self, spec: PhenomenonSpec, chunk: engine.Chunk) -> dict:
        return compute.compute(spec, chunk)

    def assemble(self, spec: PhenomenonSpec, results: list) -> PhenomenonStudy:
        return compute.assemble(spec, results)

    def judge(self, study: PhenomenonStudy) -> list:
        return []  # acceptance of the testbed, not a claim of the paper

    def section(self, study: PhenomenonStudy) -> dict:
        return report.section(study)

    def markdown(self, report_dict: dict) -> list[str]:
        return report.markdown(report_dict)

    def figures(self, study: PhenomenonStudy, out: Path) -> list[str]:
        return report.figures(study, out)

    def label(self, chunk: engine.Chunk) -> str:
        return f"phenomenon {chunk.group[2]}"


#: The phenomenon study (registered as ``"phenomenon"``; not run by default).
PHENOMENON_STUDY = PhenomenonStudyProtocol()


def run_phenomenon_study(
    spec: PhenomenonSpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: engine.Executor | None = None,
) -> PhenomenonStudy:
    """Run the phenomenon study: every setting's seeds, classified (``study.table``)."""
    return PHENOMENON_STUDY.run(spec, executor=executor, progress=progress)
