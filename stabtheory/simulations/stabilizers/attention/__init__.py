"""The stabilizer study's attention part (docs/attention.md, "Stabilizers on the attention
testbed"): :mod:`.spec` (draws, paired seeds, arms and doses, regimes), :mod:`.compute` (one
chunk per draw), :mod:`.claims` (the primary endpoint, mechanisms and regimes) and
:mod:`.report` (JSON, markdown, figure)."""

from stabtheory.simulations.stabilizers.attention.claims import (
    ENDPOINTS,
    MIN_DRAWS,
    REGIMES,
    AttentionRegime,
    arm_table,
    attention_regimes,
    conditional_ratio_interval,
    hard_margin,
    log_std_ratio,
    mechanism,
    paired_failures,
)
from stabtheory.simulations.stabilizers.attention.compute import (
    assemble,
    chunks,
    compute_draw,
    loo_points,
)
from stabtheory.simulations.stabilizers.attention.report import (
    attention_figure,
    attention_markdown,
    attention_report,
)
from stabtheory.simulations.stabilizers.attention.spec import Arm, AttentionSpec

__all__ = [
    "ENDPOINTS",
    "MIN_DRAWS",
    "REGIMES",
    "Arm",
    "AttentionRegime",
    "AttentionSpec",
    "arm_table",
    "assemble",
    "attention_figure",
    "attention_markdown",
    "attention_regimes",
    "attention_report",
    "chunks",
    "compute_draw",
    "conditional_ratio_interval",
    "hard_margin",
    "log_std_ratio",
    "loo_points",
    "mechanism",
    "paired_failures",
]
