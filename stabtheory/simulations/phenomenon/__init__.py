"""The phenomenon study (docs/attention.md): plain fine-tuning of the attention testbed over
>= 50 seeds per setting, with the literature's recipes (Adam with and without bias correction,
warmup), at n in {64, 256, 1024}; the failure rate, accuracy spread and final training loss
per setting, classified from the distribution over seeds.

Modules: :mod:`.spec` (what to run), :mod:`.compute` (chunks, the program, the table),
:mod:`.report` (JSON, markdown, figure), :mod:`.study` (the registered protocol).
"""

from stabtheory.simulations.phenomenon.compute import PhenomenonStudy, assemble, chunks, row
from stabtheory.simulations.phenomenon.spec import PhenomenonSpec
from stabtheory.simulations.phenomenon.study import (
    PHENOMENON_STUDY,
    PhenomenonStudyProtocol,
    run_phenomenon_study,
)
from stabtheory.simulations.registry import register_study

__all__ = [
    "PHENOMENON_STUDY",
    "PhenomenonSpec",
    "PhenomenonStudy",
    "PhenomenonStudyProtocol",
    "assemble",
    "chunks",
    "row",
    "run_phenomenon_study",
]

register_study(PHENOMENON_STUDY)
