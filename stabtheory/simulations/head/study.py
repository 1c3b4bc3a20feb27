"""The head study as a :class:`~stabtheory.simulations.protocol.StudyProtocol`
(:data:`HEAD_STUDY`), and :func:`run_head_study`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stabtheory.simulations import engine
from stabtheory.simulations.head import claims, compute, report
from stabtheory.simulations.head.compute import HeadStudy
from stabtheory.simulations.head.spec import HeadStudySpec
from stabtheory.simulations.protocol import StudyProtocol

__all__ = ["HEAD_STUDY", "HeadStudyProtocol", "run_head_study"]


class HeadStudyProtocol(StudyProtocol):
    """Head tuning on separable data: every data family swept in t, learning rate, margin
    and n; every head theorem checked per sample; the head claims judged."""

    name = "head"
    description = "head tuning on separable data (docs/theory.md section 3)"
    default = True
    reference_s = 105.0  # its default spec on the 2-core CPU, empty compilation cache
    spec_type = HeadStudySpec

    def chunks(self, spec: HeadStudySpec) -> list[engine.Chunk]:
        return compute.chunks(spec)

    def compute(self, spec: HeadStudySpec, chunk: engine.Chunk) -> list:
        return compute.compute(spec, chunk)

    def assemble(self, spec: HeadStudySpec, results: list) -> HeadStudy:
        return compute.assemble(spec, results)

    def judge(self, study: HeadStudy) -> list:
        return claims.judge_claims(study)

    def section(self, study: HeadStudy) -> dict:
        return report.section(study)

    def markdown(self, report_dict: dict) -> list[str]:
        return report.markdown(report_dict)

    def appendix(self, report_dict: dict) -> list[str]:
        return report.appendix(report_dict)

    def figures(self, study: HeadStudy, out: Path) -> list[str]:
        return report.figures(study, out)

    def label(self, chunk: engine.Chunk) -> str:
        loss, optimizer, m, _ = chunk.group
        return f"head {loss} {optimizer} n<={m}: {len(chunk.items)} config x draws"


#: The head study (registered as ``"head"``).
HEAD_STUDY = HeadStudyProtocol()


def run_head_study(
    spec: HeadStudySpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: engine.Executor | None = None,
) -> HeadStudy:
    """Run the head study: train, check every theorem, and judge the claims.

    Args:
      spec: what to sweep; the default :class:`HeadStudySpec` when ``None``.
      progress: called as ``progress(done, total, label)`` after each chunk (when no
        ``executor`` is given).
      executor: the :class:`~stabtheory.simulations.engine.Executor` (persistence, resume,
        processes); a fresh in-memory one by default.
    """
    return HEAD_STUDY.run(spec, executor=executor, progress=progress)
