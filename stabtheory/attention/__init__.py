"""The attention testbed: a post-LN transformer encoder pre-trained on a seeded HMM corpus, its
downstream tasks, and seed-vmapped fine-tuning with the literature's recipes (docs/attention.md).

Modules: :mod:`.corpus` (the HMM with a genre per sequence, the shift knob), :mod:`.encoder`
(flax nnx encoder with ``[CLS]``, flat-weight functions), :mod:`.pretraining` (masked tokens +
genre), :mod:`.checkpoint` (the shipped msgpack file and its bit-for-bit rebuild),
:mod:`.tasks` (binary tasks on latent variables), :mod:`.finetune` (Adam with and without
bias correction, warmup, many seeds as one program), :mod:`.phenomenon` (the settings grid and
the failure classification), :mod:`.arms` (paired stabilizer arms as one program, with a
training-loss target) and :mod:`.surt` (masked-token re-training on a task's inputs).
Float32 throughout: a testbed, not a theory check.
"""

from stabtheory.attention.arms import ArmRuns, Network, Runs, body_mask, finetune_arms, network
from stabtheory.attention.checkpoint import (
    CHECKPOINT,
    DEFAULT,
    DEFAULT_CORPUS,
    load_classifier,
    load_pretrained,
    rebuild_bytes,
    sha256,
    to_bytes,
)
from stabtheory.attention.corpus import HMM, HMMConfig, Sample, make_hmm, sample
from stabtheory.attention.encoder import (
    Classifier,
    Encoder,
    EncoderConfig,
    PretrainModel,
    as_function,
    classifier_functions,
)
from stabtheory.attention.finetune import (
    FinetuneResult,
    Recipe,
    finetune_seeds,
    head_mask,
    lr_at,
    scale_by_adam,
)
from stabtheory.attention.phenomenon import (
    CLASSES,
    Classification,
    Setting,
    accepted,
    classify,
    default_grid,
)
from stabtheory.attention.pretraining import PretrainConfig, encoder_config, pretrain
from stabtheory.attention.surt import masked_retraining
from stabtheory.attention.tasks import TASKS, TaskConfig, TaskData, make_task

__all__ = [
    "CHECKPOINT",
    "CLASSES",
    "DEFAULT",
    "DEFAULT_CORPUS",
    "HMM",
    "TASKS",
    "ArmRuns",
    "Classification",
    "Classifier",
    "Encoder",
    "EncoderConfig",
    "FinetuneResult",
    "HMMConfig",
    "Network",
    "PretrainConfig",
    "PretrainModel",
    "Recipe",
    "Runs",
    "Sample",
    "Setting",
    "TaskConfig",
    "TaskData",
    "accepted",
    "as_function",
    "body_mask",
    "classifier_functions",
    "classify",
    "default_grid",
    "encoder_config",
    "finetune_arms",
    "finetune_seeds",
    "head_mask",
    "load_classifier",
    "load_pretrained",
    "lr_at",
    "make_hmm",
    "make_task",
    "masked_retraining",
    "network",
    "pretrain",
    "rebuild_bytes",
    "sample",
    "scale_by_adam",
    "sha256",
    "to_bytes",
]
