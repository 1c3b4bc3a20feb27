"""The head-tuning study of ``stabtheory verify``: sweeps of t, learning rate, margin and n.

Every configuration (a :class:`HeadConfig`) runs on ``replicates`` independent data draws:
S and all n sets S\\i are trained to log-spaced checkpoints, every leave-one-out max margin
is solved, every applicable head theorem is checked per sample and checkpoint, and the
per-sample stability of every notion is kept for the claims. The sweeps are one-at-a-time
around a base configuration in every data family (:mod:`stabtheory.data.families`).

Modules: :mod:`.spec` (what to sweep), :mod:`.compute` (chunks, the batched trainer, the
checks), :mod:`.claims` (the verdicts), :mod:`.report` (JSON, markdown, figures),
:mod:`.study` (the registered :class:`~stabtheory.simulations.protocol.StudyProtocol`).
"""

from stabtheory.simulations.head.claims import (
    judge_claims,
    margin_parameter,
    regime_label,
    sweep,
)
from stabtheory.simulations.head.compute import HeadStudy, chunks, train_items
from stabtheory.simulations.head.spec import NOTIONS, HeadConfig, HeadStudySpec
from stabtheory.simulations.head.study import HEAD_STUDY, HeadStudyProtocol, run_head_study
from stabtheory.simulations.registry import register_study

__all__ = [
    "HEAD_STUDY",
    "NOTIONS",
    "HeadConfig",
    "HeadStudy",
    "HeadStudyProtocol",
    "HeadStudySpec",
    "chunks",
    "judge_claims",
    "margin_parameter",
    "regime_label",
    "run_head_study",
    "sweep",
    "train_items",
]

register_study(HEAD_STUDY)
