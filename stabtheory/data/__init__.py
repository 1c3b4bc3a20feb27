"""Data for head tuning: the :class:`Dataset` container, separable generators, frozen features.

The data are separable through the origin with max margin
``gamma = max_{||u||=1} min_i u . y_i x_i > 0`` (docs/theory.md section 3). Start with
:func:`planted_margin` (exact truth), :func:`separable_band` (generic), or
:func:`digits_pair_features` (real images); :func:`validate` checks user arrays.
"""

from stabtheory.data.dataset import Dataset as Dataset
from stabtheory.data.dataset import add_bias as add_bias
from stabtheory.data.features import DigitsEncoder as DigitsEncoder
from stabtheory.data.features import digits_pair_features as digits_pair_features
from stabtheory.data.generators import planted_margin as planted_margin
from stabtheory.data.generators import replacement_draws as replacement_draws
from stabtheory.data.generators import separable_band as separable_band
from stabtheory.data.generators import separable_gaussian as separable_gaussian
from stabtheory.data.generators import soudry_fig1 as soudry_fig1
from stabtheory.validation import validate as validate

__all__ = [
    "Dataset",
    "DigitsEncoder",
    "add_bias",
    "digits_pair_features",
    "planted_margin",
    "replacement_draws",
    "separable_band",
    "separable_gaussian",
    "soudry_fig1",
    "validate",
]
