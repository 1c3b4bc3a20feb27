"""Frozen features of a pre-trained digits encoder for a pair of digits (real-data head tuning).

:class:`DigitsEncoder` names the encoder (a frozen config); :func:`digits_pair_features` returns
the normalised features of one digit pair's task pool as a :class:`Dataset`, its separability
certified by the max-margin solver. The pre-training is cached per process.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory.data.dataset import Dataset
from stabtheory.errors import InvalidDataError, NotSeparableError
from stabtheory.svm import max_margin

__all__ = ["DigitsEncoder", "digits_pair_features"]


@dataclasses.dataclass(frozen=True)
class DigitsEncoder:
    """The pre-trained digits encoder whose frozen features :func:`digits_pair_features` returns.

    The defaults are those of the stabilizer study's testbed, so the two studies share one
    pre-training per process. The settings are those of
    :func:`stabtheory.full_finetuning.make_testbed` with ``task="digits"``.

    Attributes:
      hidden: widths of the encoder's hidden layers.
      features: the feature dimension (the encoder's output width).
      pretrain_steps: steps of denoising pre-training on the unlabeled source pool.
      init_seed: seed of the encoder's initialisation.
      source_seed: seed of the split into the source (pre-training) and task pools.
    """

    hidden: tuple[int, ...] = (32, 32)
    features: int = 8
    pretrain_steps: int = 1000
    init_seed: int = 0
    source_seed: int = 0


def digits_pair_features(
    pair: tuple[int, int],
    encoder: DigitsEncoder = DigitsEncoder(),
) -> Dataset:
    """Frozen features of the pre-trained digits encoder for the images of two digits.

    The encoder is the one of :func:`stabtheory.full_finetuning.make_testbed` ("digits", with the
    settings of ``encoder``): an MLP pre-trained by denoising on the unlabeled source pool
    (one third of scikit-learn's 1797 8x8 digits). Its features ``phi(x)`` (tanh, in
    ``[-1, 1]^features``) of every image of ``pair`` in the task pool (the images NOT used
    for pre-training; about 240 per pair) are returned, divided by their largest norm so that
    ``R = 1`` (a common scale: it changes neither separability nor the max-margin direction),
    with ``y = +1`` for ``pair[0]`` and ``-1`` for ``pair[1]``. Separability through the
    origin (no bias) is certified by :func:`stabtheory.svm.max_margin`, whose certified
    lower bound, direction and support fill ``margin``, ``direction`` and ``support``; every
    subset of a separable pool is separable with a margin at least as large. The pre-training
    is cached per process (the same encoder for every call with the same settings), so a
    caller that draws random subsets of the pool reuses ONE encoder for all its draws.

    Args:
      pair: two different digits in 0..9.
      encoder: the encoder's settings (:class:`DigitsEncoder`).

    Returns:
      A :class:`Dataset` of shape (pool size, ``encoder.features``), deterministic in its
      arguments.

    Raises:
      InvalidDataError: ``pair`` is not two different digits.
      NotSeparableError: the pair's features are not linearly separable through the origin
        (e.g. 3 vs 8 with the default encoder); choose another pair.

    Example:
      >>> ds = digits_pair_features((0, 7))  # doctest: +SKIP
      >>> ds.X.shape[1], ds.radius, ds.margin > 0  # doctest: +SKIP
      (8, 1.0, True)
    """
    try:
        a, b = (int(c) for c in pair)
    except (TypeError, ValueError) as err:
        raise InvalidDataError(f"pair must be two digits, e.g. (0, 7); got {pair!r}.") from err
    if a == b or not (0 <= a <= 9 and 0 <= b <= 9):
        raise InvalidDataError(f"pair must be two different digits in 0..9, got {pair!r}.")
    X, y = _digits_pair_pool(
        (a, b),
        int(encoder.pretrain_steps),
        tuple(int(h) for h in encoder.hidden),
        int(encoder.features),
        int(encoder.init_seed),
        int(encoder.source_seed),
    )
    try:
        sol = max_margin(X, y)
    except NotSeparableError as err:
        raise NotSeparableError(
            f"digits {a} vs {b}: the frozen features of the encoder (pretrain_steps="
            f"{encoder.pretrain_steps}, features={encoder.features}) are not linearly separable "
            f"through the origin, so no max margin exists. Choose another pair (e.g. (0, 7), "
            f"(5, 6), (1, 2) are separable with the default encoder). Solver: {err}"
        ) from err
    return Dataset(
        X.copy(),
        y.copy(),
        sol.direction,
        float(sol.margin),
        sol.support,
        name=f"digits{a}v{b}-features(pre{encoder.pretrain_steps})",
    )


@functools.lru_cache(maxsize=64)
def _digits_pair_pool(pair, pretrain_steps, hidden, features, init_seed, source_seed):
    # Imported here: the flax networks load only when digits features are asked for.
    from stabtheory import full_finetuning as ff

    tb = ff.make_testbed(
        ff.TestbedConfig(
            task="digits",
            classes=pair,
            n=2,
            pretrain_steps=pretrain_steps,
            hidden=hidden,
            features=features,
            init_seed=init_seed,
            source_seed=source_seed,
        )
    )
    images = np.concatenate([tb.X, tb.X_test])  # the whole task pool of the pair
    labels = np.concatenate([tb.y, tb.y_test])
    encoder = tb.pretrained().encoder
    F = np.asarray(jax.vmap(encoder)(jnp.asarray(images)), dtype=np.float64)
    F = F / np.max(np.linalg.norm(F, axis=1))
    F.setflags(write=False)
    labels.setflags(write=False)
    return F, labels
