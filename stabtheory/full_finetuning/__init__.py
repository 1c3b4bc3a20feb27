"""Full fine-tuning: smooth backbones, tasks, pre-training, testbeds, GD and the Taylor model.

The pipeline, one way: a :class:`TestbedConfig` names a task (:data:`TASKS`), an
:class:`Architecture` and a pre-training length; :func:`make_testbed` pre-trains the backbone
(:func:`pretrain`, cached) and returns a :class:`Testbed` (``apply(w, x)``, ``w0``, data);
:func:`gd_finetune` / :func:`finetune_runs` fine-tune it by full-batch GD on the L2-SP
objective; :func:`taylor_expand` and the functions of :mod:`.taylor` give its second-order
Taylor model, :class:`FTDesign` its controlled designs, and :func:`path_curvature` the true
Hessian's extreme eigenvalues along a run. Everything is float64.
"""

from stabtheory.full_finetuning.curvature import LANCZOS_STEPS as LANCZOS_STEPS
from stabtheory.full_finetuning.curvature import Curvature as Curvature
from stabtheory.full_finetuning.curvature import objective_hvp as objective_hvp
from stabtheory.full_finetuning.curvature import path_curvature as path_curvature
from stabtheory.full_finetuning.designs import FTDesign as FTDesign
from stabtheory.full_finetuning.designs import apply_design as apply_design
from stabtheory.full_finetuning.digits import digits_task as digits_task
from stabtheory.full_finetuning.digits import load_digits as load_digits
from stabtheory.full_finetuning.linalg import cg_solve as cg_solve
from stabtheory.full_finetuning.linalg import lanczos_extremes as lanczos_extremes
from stabtheory.full_finetuning.linalg import power_iteration as power_iteration
from stabtheory.full_finetuning.losses import data_term as data_term
from stabtheory.full_finetuning.losses import l2sp_grad as l2sp_grad
from stabtheory.full_finetuning.losses import l2sp_objective as l2sp_objective
from stabtheory.full_finetuning.losses import logistic_loss as logistic_loss
from stabtheory.full_finetuning.losses import weighted_loss as weighted_loss
from stabtheory.full_finetuning.networks import ACTIVATIONS as ACTIVATIONS
from stabtheory.full_finetuning.networks import Architecture as Architecture
from stabtheory.full_finetuning.networks import Classifier as Classifier
from stabtheory.full_finetuning.networks import DenoisingAutoencoder as DenoisingAutoencoder
from stabtheory.full_finetuning.networks import MLPDecoder as MLPDecoder
from stabtheory.full_finetuning.networks import MLPEncoder as MLPEncoder
from stabtheory.full_finetuning.networks import as_function as as_function
from stabtheory.full_finetuning.networks import check_model as check_model
from stabtheory.full_finetuning.networks import classifier_functions as classifier_functions
from stabtheory.full_finetuning.pretraining import PretrainConfig as PretrainConfig
from stabtheory.full_finetuning.pretraining import PretrainResult as PretrainResult
from stabtheory.full_finetuning.pretraining import pretrain as pretrain
from stabtheory.full_finetuning.pretraining import (
    pretrained_autoencoders as pretrained_autoencoders,
)
from stabtheory.full_finetuning.synthetic import synthetic_source as synthetic_source
from stabtheory.full_finetuning.synthetic import synthetic_task as synthetic_task
from stabtheory.full_finetuning.tasks import TASKS as TASKS
from stabtheory.full_finetuning.tasks import Task as Task
from stabtheory.full_finetuning.tasks import TaskKind as TaskKind
from stabtheory.full_finetuning.tasks import register_task as register_task
from stabtheory.full_finetuning.taylor import TaylorModel as TaylorModel
from stabtheory.full_finetuning.taylor import dense_curvatures as dense_curvatures
from stabtheory.full_finetuning.taylor import dense_operator as dense_operator
from stabtheory.full_finetuning.taylor import extreme_eigenvalues as extreme_eigenvalues
from stabtheory.full_finetuning.taylor import gd_path as gd_path
from stabtheory.full_finetuning.taylor import minimizers as minimizers
from stabtheory.full_finetuning.taylor import operator as operator
from stabtheory.full_finetuning.taylor import per_sample_norms as per_sample_norms
from stabtheory.full_finetuning.taylor import (
    per_sample_power_iteration as per_sample_power_iteration,
)
from stabtheory.full_finetuning.taylor import quadratic_grads as quadratic_grads
from stabtheory.full_finetuning.taylor import quadratic_losses as quadratic_losses
from stabtheory.full_finetuning.taylor import sample_hvp as sample_hvp
from stabtheory.full_finetuning.taylor import taylor_expand as taylor_expand
from stabtheory.full_finetuning.taylor import true_losses as true_losses
from stabtheory.full_finetuning.testbed import Testbed as Testbed
from stabtheory.full_finetuning.testbed import TestbedConfig as TestbedConfig
from stabtheory.full_finetuning.testbed import make_testbed as make_testbed
from stabtheory.full_finetuning.testbed import pretrained_family as pretrained_family
from stabtheory.full_finetuning.training import Stationary as Stationary
from stabtheory.full_finetuning.training import finetune_runs as finetune_runs
from stabtheory.full_finetuning.training import gd_finetune as gd_finetune
from stabtheory.full_finetuning.training import gd_step as gd_step
from stabtheory.full_finetuning.training import gd_to_tolerance as gd_to_tolerance
from stabtheory.full_finetuning.training import jit_finetune_runs as jit_finetune_runs

__all__ = [
    "ACTIVATIONS",
    "LANCZOS_STEPS",
    "TASKS",
    "Architecture",
    "Classifier",
    "Curvature",
    "DenoisingAutoencoder",
    "FTDesign",
    "MLPDecoder",
    "MLPEncoder",
    "PretrainConfig",
    "PretrainResult",
    "Stationary",
    "Task",
    "TaskKind",
    "TaylorModel",
    "Testbed",
    "TestbedConfig",
    "apply_design",
    "as_function",
    "cg_solve",
    "check_model",
    "classifier_functions",
    "data_term",
    "dense_curvatures",
    "dense_operator",
    "digits_task",
    "extreme_eigenvalues",
    "finetune_runs",
    "gd_finetune",
    "gd_path",
    "gd_step",
    "gd_to_tolerance",
    "jit_finetune_runs",
    "l2sp_grad",
    "l2sp_objective",
    "lanczos_extremes",
    "load_digits",
    "logistic_loss",
    "make_testbed",
    "minimizers",
    "objective_hvp",
    "operator",
    "path_curvature",
    "per_sample_norms",
    "per_sample_power_iteration",
    "power_iteration",
    "pretrain",
    "pretrained_autoencoders",
    "pretrained_family",
    "quadratic_grads",
    "quadratic_losses",
    "register_task",
    "sample_hvp",
    "synthetic_source",
    "synthetic_task",
    "taylor_expand",
    "true_losses",
    "weighted_loss",
]
