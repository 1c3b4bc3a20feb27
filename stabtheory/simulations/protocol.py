"""The study protocol every study implements, and the results every study returns.

A study is a :class:`StudyProtocol` object registered by one call to
:func:`~stabtheory.simulations.registry.register_study` in its own package; the CLI and the
report loop over :data:`~stabtheory.simulations.STUDIES`. Its results subclass :class:`Study`.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stabtheory.bounds import BoundCheck, merge_draws
from stabtheory.simulations.engine import Chunk, Executor

__all__ = ["DrawResult", "Study", "StudyProtocol", "draws_by_config"]


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
      bounds: per config index, ``{(theorem, notion): per-sample bound}`` (C, draws, n), NaN
        where the theorem does not apply (the exponents the claims' elasticities predict).
      verdicts: the claims' :class:`~stabtheory.claims.Verdict` objects.
      runtime_s: wall time.
      items: the per-(configuration, draw) results, draw after draw for each configuration.
      by_config: per config index, its :class:`DrawResult` s in draw order.
    """

    spec: Any
    configs: list[dict] = dataclasses.field(default_factory=list)
    checks: list[tuple[int, BoundCheck]] = dataclasses.field(default_factory=list)
    stability: dict[int, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    bounds: dict[int, dict[tuple[str, str], np.ndarray]] = dataclasses.field(default_factory=dict)
    verdicts: list = dataclasses.field(default_factory=list)
    runtime_s: float = 0.0
    items: list = dataclasses.field(default_factory=list)
    by_config: dict[int, list] = dataclasses.field(default_factory=dict)

    def add_config(self, config: dict, members: Sequence[DrawResult]) -> None:
        """Append one configuration run on several draws.

        ``members`` are its :class:`DrawResult` s, in draw order: each check is merged over
        the draws (:func:`~stabtheory.bounds.merge_draws`), and each notion's stability and
        each check's bound are stacked to (C, draws, n).
        """
        k = len(self.configs)
        self.items += members
        self.by_config[k] = list(members)
        self.configs.append(config)
        for col in range(len(members[0].checks)):
            merged = merge_draws([it.checks[col] for it in members], config=config)
            self.checks.append((k, merged))
        self.bounds[k] = {
            (c.theorem, c.notion): np.stack(
                [np.atleast_2d(it.checks[col].bound) for it in members], axis=1
            )
            for col, c in enumerate(members[0].checks)
        }
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

    def per_draw(self, ks: Sequence[int], key: str) -> np.ndarray:
        """A measured quantity on every draw of each config of a sweep: (configs, draws)."""
        return np.array([[it.measured[key] for it in self.by_config[k]] for k in ks], float)

    def bound_sweep(
        self, ks: Sequence[int], rows: Sequence[int], candidates: Sequence[tuple[str, str]]
    ) -> tuple[list[np.ndarray] | None, str | None]:
        """A bound's per-sample values along a sweep, for the exponent it predicts.

        Args:
          ks, rows: the sweep's config indices and, for each, its checkpoint row.
          candidates: ``(theorem, notion)`` pairs, in order of preference.

        Returns:
          ``([(draws, n) per config], theorem)`` of the first candidate checked on every
          config of the sweep and applicable at its row in some draw; ``(None, None)`` if none.
        """
        for key in candidates:
            values = [self.bounds[k].get(key) for k in ks]
            if any(v is None for v in values):
                continue
            # a bound with one row (a minimiser's) serves every checkpoint
            values = [v[row if len(v) > 1 else 0] for v, row in zip(values, rows, strict=True)]
            if all(np.isfinite(v).any() for v in values):
                return values, key[0]
        return None, None

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


class StudyProtocol(abc.ABC):
    """A study: its spec type, how it splits into chunks and computes them, how it judges its
    claims, and its part of the report.

    Class attributes:
      name: the registry and ``--study`` name (also the chunk folder ``OUT/.chunks/NAME``).
      description: one line for ``stabtheory verify --help``.
      default: run by ``stabtheory verify`` without ``--study``.
      reference_s: its default spec's measured wall time (for :meth:`estimate_s`).
      spec_type: a frozen dataclass with a default constructor, a ``quick()`` classmethod
        (``verify --quick``), optionally a ``full()`` classmethod (``verify --full``: a design
        larger than the default, sized for an accelerator) and, when it runs data draws, a
        ``replicates`` field.

    :meth:`run` is the engine template: :meth:`chunks` -> :meth:`compute` on each chunk
    (through the :class:`~stabtheory.simulations.engine.Executor`: persisted, resumable) ->
    :meth:`assemble` -> :meth:`judge`. The report calls :meth:`section` (JSON), then
    :meth:`markdown` on the whole report, and :meth:`figures`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    default: ClassVar[bool] = False
    #: Wall seconds of its default spec on the 2-core CPU the project is measured on (empty
    #: compilation cache), for :meth:`estimate_s`; ``None``: no estimate.
    reference_s: ClassVar[float | None] = None

    def estimate_s(self, spec: Any) -> float | None:
        """A rough wall-time estimate of ``spec`` on that CPU: :attr:`reference_s` scaled by
        its number of (configuration, draw) items against the default spec's."""
        if self.reference_s is None:
            return None
        items = sum(len(c.items) for c in self.chunks(spec))
        default = sum(len(c.items) for c in self.chunks(self.spec()))
        return self.reference_s * items / max(default, 1)

    spec_type: ClassVar[type]

    def has_full(self) -> bool:
        """Whether the study has a full design (``spec_type.full()``)."""
        return callable(getattr(self.spec_type, "full", None))

    def spec(
        self, *, quick: bool = False, full: bool = False, replicates: int | None = None
    ) -> Any:
        """The default (or quick, or full) spec, with ``replicates`` overridden where the spec
        has it. ``full`` gives the default spec to a study without a full design."""
        if quick and full:
            raise ValueError("quick and full exclude each other.")
        if quick:
            spec = self.spec_type.quick()
        elif full and self.has_full():
            spec = self.spec_type.full()
        else:
            spec = self.spec_type()
        if replicates is not None and hasattr(spec, "replicates"):
            spec = dataclasses.replace(spec, replicates=replicates)
        return spec

    @abc.abstractmethod
    def chunks(self, spec: Any) -> list[Chunk]:
        """The chunks of ``spec``: items that run as one compiled program each."""

    @abc.abstractmethod
    def compute(self, spec: Any, chunk: Chunk) -> Any:
        """One chunk's results (what the executor persists): typically its
        :class:`DrawResult` s."""

    @abc.abstractmethod
    def assemble(self, spec: Any, results: list) -> Study:
        """The study's results from the results of every chunk, in chunk order."""

    @abc.abstractmethod
    def judge(self, study: Study) -> list:
        """The verdicts of the study's claims."""

    @abc.abstractmethod
    def section(self, study: Study) -> dict:
        """The study's part of ``report.json``: ``{"checks": [row dicts], "claims":
        [verdicts], "study": its entry under ``studies``, "extra": top-level tables}``."""

    @abc.abstractmethod
    def markdown(self, report: dict) -> list[str]:
        """The study's sections of ``report.md``, from the whole report dict."""

    def appendix(self, report: dict) -> list[str]:
        """Its ``report.md`` appendix lines (e.g. the full check tables); none by default."""
        return []

    @abc.abstractmethod
    def figures(self, study: Study, out: Path) -> list[str]:
        """Draw the study's figures into ``out`` (with
        :func:`~stabtheory.report.figures.save_figure`); return their file names."""

    def label(self, chunk: Chunk) -> str:
        """The progress-bar label of a chunk."""
        return f"{self.name} {chunk.group}"

    def run(
        self,
        spec: Any = None,
        *,
        executor: Executor | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> Study:
        """Run the study: chunks, compute (or load), assemble, judge.

        Args:
          spec: what to run; the default ``spec_type()`` when ``None``.
          executor: the :class:`~stabtheory.simulations.engine.Executor` (persistence,
            resume, processes); a fresh in-memory one by default.
          progress: ``progress(done, total, label)`` after each chunk (without ``executor``).
        """
        spec = self.spec_type() if spec is None else spec
        executor = executor or Executor(progress=progress)
        start = time.perf_counter()
        results = executor.run(
            self.chunks(spec), functools.partial(self.compute, spec), label=self.label
        )
        study = self.assemble(spec, results)
        study.verdicts = self.judge(study)
        study.runtime_s = time.perf_counter() - start
        return study
