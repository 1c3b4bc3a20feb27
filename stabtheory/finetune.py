"""Temporary shim (issue 15, phase 1): the old ``stabtheory.finetune`` names, from full_finetuning.

``make_testbed`` and ``pretrained_family`` keep their old keyword signatures here and build a
:class:`~stabtheory.full_finetuning.TestbedConfig`. To be removed in phase 2.
"""

from __future__ import annotations

from collections.abc import Sequence

from stabtheory import full_finetuning as _ff
from stabtheory.full_finetuning import (
    ACTIVATIONS,
    Classifier,
    DenoisingAutoencoder,
    MLPDecoder,
    MLPEncoder,
    PretrainConfig,
    PretrainResult,
    Task,
    Testbed,
    TestbedConfig,
    as_function,
    data_term,
    digits_task,
    finetune_runs,
    gd_step,
    logistic_loss,
    pretrain,
    synthetic_source,
    synthetic_task,
    weighted_loss,
)

__all__ = [
    "ACTIVATIONS",
    "Classifier",
    "DenoisingAutoencoder",
    "MLPDecoder",
    "MLPEncoder",
    "PretrainConfig",
    "PretrainResult",
    "Task",
    "Testbed",
    "as_function",
    "data_term",
    "digits_task",
    "finetune",
    "finetune_runs",
    "finetune_runs_jit",
    "gd_step",
    "logistic_loss",
    "make_testbed",
    "objective",
    "pretrain",
    "pretrained_family",
    "synthetic_source",
    "synthetic_task",
    "weighted_loss",
]

finetune = _ff.gd_finetune
finetune_runs_jit = _ff.jit_finetune_runs
objective = _ff.l2sp_objective


def make_testbed(task: str = "synthetic", **kwargs) -> Testbed:
    """``full_finetuning.make_testbed(TestbedConfig(task=task, **kwargs))``."""
    return _ff.make_testbed(TestbedConfig(task=task, **kwargs))


def pretrained_family(
    task: str = "synthetic", pretrain_steps: Sequence[int] = (0, 100, 1000, 5000), **kwargs
) -> list[Testbed]:
    """``full_finetuning.pretrained_family(TestbedConfig(task=task, **kwargs), pretrain_steps)``."""
    return _ff.pretrained_family(TestbedConfig(task=task, **kwargs), pretrain_steps)
