"""The stabilizer study's results: :class:`StabilizerStudy`, a study results object."""

from __future__ import annotations

import dataclasses

import numpy as np

from stabtheory.simulations.protocol import Study

__all__ = ["StabilizerStudy"]


@dataclasses.dataclass
class StabilizerStudy(Study):
    """Results of :func:`~stabtheory.simulations.stabilizers.run_stabilizer_study`.

    Attributes:
      spec: the :class:`~stabtheory.simulations.stabilizers.StabilizerStudySpec`.
      configs: one row (a dict) per (testbed, method), testbed after testbed in the spec's
        method order (see :func:`~stabtheory.simulations.stabilizers.compute`).
      verdicts: a :class:`~stabtheory.simulations.stabilizers.StabilizerVerdict` per method
        with a claim.
      runtime_s: wall time.
      accuracy: per testbed and method, the test accuracy of every seed (for figures).
      per_seed: per testbed and method, per-seed measures (``feature_margin``,
        ``weight_distance``, ``head_direction_error``, ``logits`` and the methods' own).
      mechanisms: per testbed and method, the testbed-level mechanism data the method measured
        (:meth:`stabtheory.stabilizers.Method.measure`; e.g. MHLoss's head convergence).
      attention: the attention part's draws stacked
        (:func:`stabtheory.simulations.stabilizers.attention.assemble`); empty without it.
      attention_table: its per-(arm, regime) rows
        (:func:`stabtheory.simulations.stabilizers.attention.arm_table`).
    """

    accuracy: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    per_seed: dict[str, dict[str, dict[str, np.ndarray]]] = dataclasses.field(default_factory=dict)
    mechanisms: dict[str, dict[str, dict]] = dataclasses.field(default_factory=dict)
    attention: dict = dataclasses.field(default_factory=dict)
    attention_table: list[dict] = dataclasses.field(default_factory=list)

    def row(self, testbed: str, method: str) -> dict:
        """The row of one (testbed, method)."""
        (r,) = [r for r in self.configs if r["testbed"] == testbed and r["method"] == method]
        return r
