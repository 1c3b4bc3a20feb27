"""What every theorem-checking study returns: configurations, checks, stability, verdicts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from stabtheory.bounds.base import BoundCheck, merge_draws

__all__ = ["DrawResult", "Study", "draws_by_config"]


@dataclasses.dataclass(frozen=True)
class DrawResult:
    """The result of one (configuration, draw) of a study.

    Attributes:
      config: the typed configuration.
      draw: the draw index.
      measured: quantities measured on this draw (e.g. the max margin, rho).
      checks: the :class:`~stabtheory.bounds.BoundCheck` s of this draw, in a fixed order.
      stability: ``{notion or kind: per-sample values (C, n)}``.
    """

    config: Any
    draw: int
    measured: dict
    checks: tuple
    stability: dict


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
      items: the per-(configuration, draw) results, draw after draw for each configuration.
    """

    spec: Any
    configs: list[dict] = dataclasses.field(default_factory=list)
    checks: list[tuple[int, BoundCheck]] = dataclasses.field(default_factory=list)
    stability: dict[int, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    verdicts: list = dataclasses.field(default_factory=list)
    runtime_s: float = 0.0
    items: list = dataclasses.field(default_factory=list)

    def add_config(self, config: dict, members: Sequence) -> None:
        """Append one configuration run on several draws.

        ``members`` are its :class:`DrawResult` s, in draw order: each check is merged over
        the draws (:func:`merge_draws`) and each notion's stability is stacked to
        (C, draws, n).
        """
        k = len(self.configs)
        self.items += members
        self.configs.append(config)
        for col in range(len(members[0].checks)):
            merged = merge_draws([it.checks[col] for it in members], config=config)
            self.checks.append((k, merged))
        self.stability[k] = {
            kind: np.stack([np.atleast_2d(it.stability[kind]) for it in members], axis=1)
            for kind in members[0].stability
        }

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


def draws_by_config(chunk_results: Iterable[Iterable]) -> dict[Any, list]:
    """The per-(configuration, draw) results of every chunk, grouped by configuration and
    sorted by draw."""
    groups: dict[Any, list] = {}
    for part in chunk_results:
        for item in part:
            groups.setdefault(item.config, []).append(item)
    return {cfg: sorted(members, key=lambda it: it.draw) for cfg, members in groups.items()}
