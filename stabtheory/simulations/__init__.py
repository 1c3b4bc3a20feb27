"""Studies: the study protocol, the sweep engine, the study registry and the built-in studies.

A study implements :class:`StudyProtocol` (a spec type with ``quick()``, chunks, compute,
assemble, judge, and its part of the report: JSON section, markdown, figures) and registers
an instance with one :func:`register_study` call in its own package. The CLI and the report
loop over :data:`STUDIES`. Every study's results subclass :class:`Study`.

Built-in studies: :mod:`.head` (head tuning), :mod:`.finetune` (full fine-tuning),
:mod:`.stabilizers` (the stabilizers over seeds) and :mod:`.generalization` (the
generalization gap beside replace-one stability) and :mod:`.phenomenon` (failed fine-tuning
runs on the attention testbed; not run by default) and :mod:`.attention_theory` (the
theorems on the attention testbed's transformer; not run by default). The engine
(:mod:`.engine`) runs every study's chunks (persistence, resume, devices, processes).
"""

from stabtheory.simulations import engine
from stabtheory.simulations.protocol import DrawResult, Study, StudyProtocol, draws_by_config
from stabtheory.simulations.registry import STUDIES, register_study

# The built-in studies register themselves on import, in this order (the order of --help,
# of the default run and of the report).
# isort: split
from stabtheory.simulations import head

# isort: split
from stabtheory.simulations import finetune

# isort: split
from stabtheory.simulations import stabilizers

# isort: split
from stabtheory.simulations import generalization

# isort: split
from stabtheory.simulations import phenomenon

# isort: split
from stabtheory.simulations import attention_theory

__all__ = [
    "STUDIES",
    "DrawResult",
    "Study",
    "StudyProtocol",
    "attention_theory",
    "draws_by_config",
    "engine",
    "finetune",
    "generalization",
    "head",
    "phenomenon",
    "register_study",
    "stabilizers",
]
