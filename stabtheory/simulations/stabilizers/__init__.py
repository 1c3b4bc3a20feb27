"""The stabilizer study: every registered method (MMR, MHLoss, SURT, the baselines) across seeds.

docs/theory.md section 4 defines the three stabilizers and the effect each is meant to have;
section 5 lists the claims ``mmr``, ``mhloss`` and ``surt``. :mod:`.spec` says what runs,
:mod:`.compute` runs it (one chunk per testbed and method), :mod:`.claims` judges every method
that has a claim through its mechanism hook, :mod:`.report` writes its JSON section, markdown
and figures, and :mod:`.study` ties them into the study protocol. The study loops over
:data:`stabtheory.stabilizers.METHODS`: it names no method but its reference, ``plain``.
:mod:`.attention` is the part on the attention testbed (paired seeds over draws, the failure
rate and log std ratio, a fixed budget and a loss target), which decides the claims.
"""

from stabtheory.simulations.registry import register_study
from stabtheory.simulations.stabilizers.attention import AttentionSpec
from stabtheory.simulations.stabilizers.claims import (
    MEASURES,
    STATISTIC,
    StabilizerRegime,
    StabilizerVerdict,
    claim_of,
    comparison,
    judge_claims,
)
from stabtheory.simulations.stabilizers.compute import (
    MethodResult,
    assemble,
    chunks,
    compute,
    disagreement,
    seed_measures,
)
from stabtheory.simulations.stabilizers.report import figures, markdown, section, to_report
from stabtheory.simulations.stabilizers.results import StabilizerStudy
from stabtheory.simulations.stabilizers.spec import REFERENCE, StabilizerStudySpec
from stabtheory.simulations.stabilizers.study import (
    STUDY,
    StabilizerStudyProtocol,
    run_stabilizer_study,
)

__all__ = [
    "MEASURES",
    "REFERENCE",
    "STATISTIC",
    "STUDY",
    "AttentionSpec",
    "MethodResult",
    "StabilizerRegime",
    "StabilizerStudy",
    "StabilizerStudyProtocol",
    "StabilizerStudySpec",
    "StabilizerVerdict",
    "assemble",
    "chunks",
    "claim_of",
    "comparison",
    "compute",
    "disagreement",
    "figures",
    "judge_claims",
    "markdown",
    "run_stabilizer_study",
    "section",
    "seed_measures",
    "to_report",
]

register_study(STUDY)
