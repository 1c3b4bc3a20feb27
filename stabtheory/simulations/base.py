"""What every theorem-checking study returns: configurations, checks, stability, verdicts."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from stabtheory.bounds.base import BoundCheck

__all__ = ["Study"]


@dataclasses.dataclass
class Study:
    """Results of a study.

    Attributes:
      spec: the study's specification.
      configs: one dict per trained configuration.
      checks: every :class:`~stabtheory.bounds.BoundCheck`, tagged with its config index.
      stability: per config index, ``{notion: per-sample instability}``.
      verdicts: the claims' :class:`~stabtheory.claims.Verdict` objects.
      runtime_s: wall time.
    """

    spec: Any
    configs: list[dict] = dataclasses.field(default_factory=list)
    checks: list[tuple[int, BoundCheck]] = dataclasses.field(default_factory=list)
    stability: dict[int, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    verdicts: list = dataclasses.field(default_factory=list)
    runtime_s: float = 0.0

    def find(self, **match) -> list[int]:
        """Indices of the configs whose fields equal ``match`` (floats up to rounding)."""
        return [
            k
            for k, c in enumerate(self.configs)
            if all(
                np.isclose(c[key], v) if isinstance(v, float) else c[key] == v
                for key, v in match.items()
            )
        ]

    @property
    def violations(self) -> list[BoundCheck]:
        """The applicable checks with at least one violation."""
        return [c for _, c in self.checks if c.applicable and c.violations]
