"""Stabilizers (docs/theory.md section 4) and their baselines as methods of one fine-tuning loop.

One file a method (:mod:`~stabtheory.stabilizers.mmr`, :mod:`~stabtheory.stabilizers.mhloss`,
:mod:`~stabtheory.stabilizers.surt`, :mod:`~stabtheory.stabilizers.baselines`), the shared loop
(:mod:`~stabtheory.stabilizers.loop`), the mechanism measures
(:mod:`~stabtheory.stabilizers.mechanisms`) and the :class:`Method` interface with its registry
:data:`METHODS` (:mod:`~stabtheory.stabilizers.method`). The built-in methods are registered
below in the stabilizer study's order (its seed blocks follow it); a new one is a
:class:`Method` subclass and one :func:`register_method` call.

Example:
  >>> list(METHODS)
  ['plain', 'small_lr', 'long', 'l2sp', 'head_only', 'mmr', 'mhloss', 'surt']
  >>> METHODS["mhloss"].settings(Settings()).heads
  5
"""

from stabtheory.stabilizers.baselines import L2SP, HeadOnly, Long, SmallLR
from stabtheory.stabilizers.encoder import (
    AutoencoderFunctions,
    EncoderFunctions,
    decoder_functions,
    encoder_function,
    pretrained_autoencoder,
    split_weights,
)
from stabtheory.stabilizers.loop import (
    DROPOUT_ON,
    OPTIMIZERS,
    Hyper,
    SeedRuns,
    Settings,
    finetune_one,
    finetune_seeds,
    objective,
)
from stabtheory.stabilizers.mechanisms import (
    FeatureMargin,
    HeadConvergence,
    feature_margin,
    features_margin,
    head_convergence,
    head_direction_error,
    weight_distance,
)
from stabtheory.stabilizers.method import (
    METHODS,
    Comparison,
    Mechanism,
    Method,
    get_method,
    register_method,
    unregister_method,
)
from stabtheory.stabilizers.mhloss import (
    MHLoss,
    init_heads,
    multihead_logits,
    multihead_loss,
    multihead_predict,
)
from stabtheory.stabilizers.mmr import MMR, MMR_KINDS, MMRTerm, mmr_penalty
from stabtheory.stabilizers.panels import strip_plot
from stabtheory.stabilizers.seeds import KeyUse, seed_keys
from stabtheory.stabilizers.surt import SURT, surt, surt_encoders, surt_run

__all__ = [
    "DROPOUT_ON",
    "L2SP",
    "METHODS",
    "MMR",
    "MMR_KINDS",
    "OPTIMIZERS",
    "SURT",
    "AutoencoderFunctions",
    "Comparison",
    "EncoderFunctions",
    "FeatureMargin",
    "HeadConvergence",
    "HeadOnly",
    "Hyper",
    "KeyUse",
    "Long",
    "MHLoss",
    "MMRTerm",
    "Mechanism",
    "Method",
    "SeedRuns",
    "Settings",
    "SmallLR",
    "decoder_functions",
    "encoder_function",
    "feature_margin",
    "features_margin",
    "finetune_one",
    "finetune_seeds",
    "get_method",
    "head_convergence",
    "head_direction_error",
    "init_heads",
    "mmr_penalty",
    "multihead_logits",
    "multihead_loss",
    "multihead_predict",
    "objective",
    "pretrained_autoencoder",
    "register_method",
    "seed_keys",
    "split_weights",
    "strip_plot",
    "surt",
    "surt_encoders",
    "surt_run",
    "unregister_method",
    "weight_distance",
]

for _method in (
    Method("plain"),
    SmallLR(),
    Long(),
    L2SP(),
    HeadOnly(),
    MMR(),
    MHLoss(),
    SURT(),
):
    register_method(_method)
del _method
