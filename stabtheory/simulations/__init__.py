"""Studies: sweep specifications, their runners, and the registry the CLI and report use.

A study is a spec (a frozen dataclass with ``.quick()`` and, where it runs data draws, a
``replicates`` field), a plan of typed configurations, a runner that executes its chunks
through :class:`~stabtheory.simulations.engine.Executor` and returns a results object
(:class:`~stabtheory.simulations.base.Study`) with checks, stability and verdicts, and a
report module (its JSON section, markdown and figures). The CLI and
:mod:`stabtheory.report` loop over :data:`STUDIES`: adding a study is its two modules and one
entry here.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from stabtheory.simulations.engine import Executor
from stabtheory.simulations.head import HeadStudy, HeadStudySpec, run_head_study

__all__ = [
    "STUDIES",
    "HeadStudy",
    "HeadStudySpec",
    "StudyEntry",
    "run_head_study",
]


@dataclasses.dataclass(frozen=True)
class StudyEntry:
    """A registered study: where its spec and runner live, and whether ``verify`` runs it by
    default.

    Attributes:
      name: the ``--study`` name.
      module: the module holding the spec class and the runner.
      spec_class, runner: their names in ``module``; the runner is called as
        ``runner(spec, executor=executor)``.
      default: run by ``stabtheory verify`` without ``--study``.
      description: one line for ``--help``.
      report: the module of its report hooks: ``section(study) -> dict`` (keys ``checks``,
        ``claims``, ``study``, ``extra``), ``markdown(report) -> list[str]`` and
        ``figures(study, out) -> list[str]``.
    """

    name: str
    module: str
    spec_class: str
    runner: str
    default: bool
    description: str
    report: str

    def spec(self, *, quick: bool = False, replicates: int | None = None) -> Any:
        """The default (or quick) spec, with ``replicates`` overridden where the study has it."""
        cls = getattr(importlib.import_module(self.module), self.spec_class)
        spec = cls.quick() if quick else cls()
        if replicates is not None and hasattr(spec, "replicates"):
            spec = dataclasses.replace(spec, replicates=replicates)
        return spec

    def reporter(self) -> ModuleType:
        """The module of the study's report hooks."""
        return importlib.import_module(self.report)

    def run(self, spec: Any, executor: Executor) -> Any:
        run: Callable = getattr(importlib.import_module(self.module), self.runner)
        return run(spec, executor=executor)


STUDIES: dict[str, StudyEntry] = {
    e.name: e
    for e in (
        StudyEntry(
            "head",
            "stabtheory.simulations.head",
            "HeadStudySpec",
            "run_head_study",
            True,
            "head tuning on separable data (docs/theory.md section 3)",
            "stabtheory.simulations.head_report",
        ),
        StudyEntry(
            "finetune",
            "stabtheory.simulations.finetune",
            "FineTuneStudySpec",
            "run_finetune_study",
            True,
            "full fine-tuning through the Taylor model (docs/theory.md section 2)",
            "stabtheory.simulations.finetune_report",
        ),
        StudyEntry(
            "stabilizers",
            "stabtheory.simulations.stabilizers",
            "StabilizerStudySpec",
            "run_stabilizer_study",
            False,
            "MMR, MHLoss and SURT against the baselines over seeds (docs/theory.md section 4)",
            "stabtheory.simulations.stabilizers_report",
        ),
    )
}
