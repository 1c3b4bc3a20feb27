"""The stabilizer study as a :class:`~stabtheory.simulations.protocol.StudyProtocol` object."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stabtheory.simulations.engine import Chunk, Executor
from stabtheory.simulations.protocol import StudyProtocol
from stabtheory.simulations.stabilizers.claims import StabilizerVerdict, judge_claims
from stabtheory.simulations.stabilizers.compute import MethodResult, assemble, chunks, compute
from stabtheory.simulations.stabilizers.report import figures, markdown, section
from stabtheory.simulations.stabilizers.results import StabilizerStudy
from stabtheory.simulations.stabilizers.spec import StabilizerStudySpec

__all__ = ["STUDY", "StabilizerStudyProtocol", "run_stabilizer_study"]


class StabilizerStudyProtocol(StudyProtocol):
    """Every registered method (MMR, MHLoss, SURT and the baselines) against plain fine-tuning
    over seeds (docs/theory.md section 4): one chunk per (MLP testbed, method), and one chunk
    per draw of the attention testbed's paired design (docs/attention.md)."""

    name = "stabilizers"
    description = (
        "MMR, MHLoss and SURT against the baselines over seeds, and on the attention testbed "
        "over paired seeds and draws (docs/theory.md section 4, docs/attention.md)"
    )
    default = False
    reference_s = 260.0  # its default spec on the 2-core CPU, empty compilation cache
    spec_type = StabilizerStudySpec

    #: The MLP testbeds' share of :attr:`reference_s` (measured: about 47 of 224 s).
    mlp_reference_s = 50.0

    def estimate_s(self, spec: StabilizerStudySpec) -> float:
        """The MLP part scaled by its chunks' items, the attention part by its FLOP count
        (:meth:`AttentionSpec.flops`, pre-training included) against the default spec's."""
        default = self.spec()

        def mlp_items(s):
            return sum(len(c.items) for c in self.chunks(s) if c.group[0] != "attention")

        mlp = self.mlp_reference_s * mlp_items(spec) / max(mlp_items(default), 1)
        if spec.attention is None:
            return mlp
        ratio = spec.attention.flops()["total"] / default.attention.flops()["total"]
        return mlp + (self.reference_s - self.mlp_reference_s) * ratio

    def chunks(self, spec: StabilizerStudySpec) -> list[Chunk]:
        return chunks(spec)

    def compute(self, spec: StabilizerStudySpec, chunk: Chunk) -> MethodResult:
        return compute(spec, chunk)

    def assemble(self, spec: StabilizerStudySpec, results: list) -> StabilizerStudy:
        return assemble(spec, results)

    def judge(self, study: StabilizerStudy) -> list[StabilizerVerdict]:
        return judge_claims(study)

    def section(self, study: StabilizerStudy) -> dict:
        return section(study)

    def markdown(self, report: dict) -> list[str]:
        return markdown(report)

    def figures(self, study: StabilizerStudy, out: Path) -> list[str]:
        return figures(study, out)

    def label(self, chunk: Chunk) -> str:
        task, item = chunk.group
        return f"stabilizers {task} {'draw ' if task == 'attention' else ''}{item}"


#: The stabilizer study.
STUDY = StabilizerStudyProtocol()


def run_stabilizer_study(
    spec: StabilizerStudySpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: Executor | None = None,
) -> StabilizerStudy:
    """Run the stabilizer study (:meth:`StabilizerStudyProtocol.run`: chunks through the
    sweep engine, persisted and resumable; assembled; judged).

    Args:
      spec: the :class:`StabilizerStudySpec` (default: the default spec).
      progress: called as ``progress(done, total, label)`` after each (testbed, method).
      executor: the :class:`~stabtheory.simulations.engine.Executor` (default: in memory).
    """
    return STUDY.run(spec, executor=executor, progress=progress)
