"""Linear heads on frozen features: losses, optimizer steps, the vmapped trainer, stability.

One run is :func:`init` + :func:`step` over a :class:`HeadState`; :func:`train` runs it to a
list of checkpoints (:func:`run_checkpoints`) and :func:`train_runs` is ``jax.vmap`` of
:func:`train` over runs. :func:`loo_stability`, :func:`replace_one_stability` and
:func:`seed_stability` estimate the stability of the trained heads.
"""

from stabtheory.linear_heads.checkpoints import is_static as is_static
from stabtheory.linear_heads.checkpoints import run_checkpoints as run_checkpoints
from stabtheory.linear_heads.checkpoints import static_checkpoints as static_checkpoints
from stabtheory.linear_heads.losses import LOSSES as LOSSES
from stabtheory.linear_heads.losses import check_loss as check_loss
from stabtheory.linear_heads.losses import dloss_abs as dloss_abs
from stabtheory.linear_heads.losses import log_dloss as log_dloss
from stabtheory.linear_heads.losses import log_loss as log_loss
from stabtheory.linear_heads.losses import log_mean_loss as log_mean_loss
from stabtheory.linear_heads.optimizers import NORMALIZED_OPTIMIZERS as NORMALIZED_OPTIMIZERS
from stabtheory.linear_heads.optimizers import OPTIMIZERS as OPTIMIZERS
from stabtheory.linear_heads.optimizers import HeadState as HeadState
from stabtheory.linear_heads.optimizers import init as init
from stabtheory.linear_heads.optimizers import normalized_weights as normalized_weights
from stabtheory.linear_heads.optimizers import optimizer_transform as optimizer_transform
from stabtheory.linear_heads.optimizers import step as step
from stabtheory.linear_heads.stability import NOTIONS as NOTIONS
from stabtheory.linear_heads.stability import HeadRuns as HeadRuns
from stabtheory.linear_heads.stability import SeedStability as SeedStability
from stabtheory.linear_heads.stability import StabilityEstimate as StabilityEstimate
from stabtheory.linear_heads.stability import held_out_margins as held_out_margins
from stabtheory.linear_heads.stability import loo_stability as loo_stability
from stabtheory.linear_heads.stability import per_sample_stability as per_sample_stability
from stabtheory.linear_heads.stability import replace_one_stability as replace_one_stability
from stabtheory.linear_heads.stability import seed_stability as seed_stability
from stabtheory.linear_heads.stability import train_head_runs as train_head_runs
from stabtheory.linear_heads.stability import trivial_stability as trivial_stability
from stabtheory.linear_heads.trainer import Trajectory as Trajectory
from stabtheory.linear_heads.trainer import jit_train_runs as jit_train_runs
from stabtheory.linear_heads.trainer import loo_weights as loo_weights
from stabtheory.linear_heads.trainer import replace_one_weights as replace_one_weights
from stabtheory.linear_heads.trainer import train as train
from stabtheory.linear_heads.trainer import train_runs as train_runs

__all__ = [
    "LOSSES",
    "NORMALIZED_OPTIMIZERS",
    "NOTIONS",
    "OPTIMIZERS",
    "HeadRuns",
    "HeadState",
    "SeedStability",
    "StabilityEstimate",
    "Trajectory",
    "check_loss",
    "dloss_abs",
    "held_out_margins",
    "init",
    "is_static",
    "jit_train_runs",
    "log_dloss",
    "log_loss",
    "log_mean_loss",
    "loo_stability",
    "loo_weights",
    "normalized_weights",
    "optimizer_transform",
    "per_sample_stability",
    "replace_one_stability",
    "replace_one_weights",
    "run_checkpoints",
    "seed_stability",
    "static_checkpoints",
    "step",
    "train",
    "train_head_runs",
    "train_runs",
    "trivial_stability",
]
