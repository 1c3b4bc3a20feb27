r"""The measures of the stabilizers' mechanisms: feature margin, head convergence, weight distance.

* :func:`feature_margin` / :func:`features_margin`: the exact max margin ``gamma / R`` of the
  encoder's features (MMR's mechanism);
* :func:`head_convergence`: how fast the mean of ``K`` heads approaches the max-margin
  direction ``u_S`` on frozen features (MHLoss's), and :func:`head_direction_error` of final
  heads;
* :func:`weight_distance`: ``||theta_start - theta*||`` (SURT's).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory import full_finetuning as ff
from stabtheory import linear_heads
from stabtheory.errors import NotSeparableError
from stabtheory.stabilizers.encoder import encoder_function
from stabtheory.stabilizers.seeds import seed_keys
from stabtheory.svm import max_margin

__all__ = [
    "FeatureMargin",
    "HeadConvergence",
    "feature_margin",
    "features_margin",
    "head_convergence",
    "head_direction_error",
    "weight_distance",
]


def weight_distance(w_enc: np.ndarray | jax.Array, w0_enc: np.ndarray | jax.Array) -> np.ndarray:
    r"""``||w_enc - w0_enc||`` over the last axis (batched over leading axes).

    Example:
      >>> weight_distance(np.array([[3.0, 4.0], [0.0, 0.0]]), np.zeros(2)).tolist()
      [5.0, 0.0]
    """
    d = np.asarray(w_enc, np.float64) - np.asarray(w0_enc, np.float64)
    return np.sqrt(np.sum(d * d, axis=-1))


def _with_bias(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float64)
    return np.concatenate([features, np.ones((*features.shape[:-1], 1))], axis=-1)


class FeatureMargin(NamedTuple):
    """The exact max margin of features with a bias coordinate.

    Attributes:
      margin: ``gamma / R`` (scale free), NaN when not separable.
      separable: whether ``[phi(x_i), 1]`` are linearly separable through the origin.
      gamma: the max margin (certified lower bound; NaN when not separable).
      R: ``max_i ||[phi(x_i), 1]||``.
      direction: the max-margin direction ``u_S`` (k + 1,), NaN when not separable.
    """

    margin: float
    separable: bool
    gamma: float
    R: float
    direction: np.ndarray


def features_margin(features: np.ndarray, y: np.ndarray) -> FeatureMargin:
    r""":class:`FeatureMargin` of given features (n, k) and labels (see :func:`feature_margin`)."""
    Xb = _with_bias(features)
    R = float(np.sqrt(np.max(np.sum(Xb * Xb, axis=1))))
    try:
        res = max_margin(Xb, y)
    except NotSeparableError:
        return FeatureMargin(math.nan, False, math.nan, R, np.full(Xb.shape[1], np.nan))
    return FeatureMargin(res.margin / R, True, res.margin, R, res.direction)


def feature_margin(
    encoder_w: np.ndarray, testbed: ff.Testbed, *, X: np.ndarray | None = None
) -> FeatureMargin:
    r"""The true max margin of the encoder's features of the training set, scale free.

    .. math::
        \gamma = \max_{\|u\| = 1} \min_i y_i\, u \cdot [\phi(x_i), 1], \qquad
        \text{margin} = \gamma / R, \quad R = \max_i \|[\phi(x_i), 1]\| ,

    by the exact solver :func:`stabtheory.svm.max_margin` (a bias coordinate appended, so the
    separating hyperplane may have an intercept). ``gamma / R`` in (0, 1] does not change when
    the features are rescaled together with the bias coordinate. Not separable: NaN and
    ``separable=False`` (never an exception).

    Args:
      encoder_w: flat encoder weights (p_encoder,).
      testbed: the testbed (its encoder architecture and ``X``, ``y``).
      X: inputs (default ``testbed.X``; labels are ``testbed.y``).

    Returns:
      :class:`FeatureMargin`.
    """
    enc = encoder_function(testbed)
    F = np.asarray(
        enc.phi(jnp.asarray(encoder_w, jnp.float64), jnp.asarray(testbed.X if X is None else X))
    )
    return features_margin(F, testbed.y)


def head_direction_error(heads: np.ndarray, margins: Sequence[FeatureMargin]) -> np.ndarray:
    """Per seed: ``||v / ||v|| - u_S||`` of the mean head ``v`` against its features' max-margin
    direction (NaN where the features are not separable).

    Args:
      heads: final heads (S, K, k + 1), column 0 the biases.
      margins: the :class:`FeatureMargin` of each seed's features.
    """
    out = np.full(len(margins), np.nan)
    for s, fm in enumerate(margins):
        if fm.separable:
            H = heads[s].mean(axis=0)  # [c, v]
            v = np.concatenate([H[1:], H[:1]])  # the order of [phi, 1]
            out[s] = np.linalg.norm(v / np.linalg.norm(v) - fm.direction)
    return out


class HeadConvergence(NamedTuple):
    """Direction error of the mean head against the max-margin direction.

    Attributes:
      steps: the GD steps ``t`` (T,).
      error_single: ``||v(t)/||v(t)|| - u_S||`` with one head, per seed (seeds, T).
      error_multi: the same for the mean of ``K`` heads, per seed (seeds, T).
      K: number of heads of ``error_multi``.
      margin: ``gamma / R`` of the features (with bias coordinate).
      lr: the GD step size used (per head, see :func:`head_convergence`).
    """

    steps: np.ndarray
    error_single: np.ndarray
    error_multi: np.ndarray
    K: int
    margin: float
    lr: float


def head_convergence(
    features: np.ndarray,
    y: np.ndarray,
    K: int = 5,
    steps: int | Sequence[int] = 10_000,
    seeds: int = 20,
    *,
    seed: int = 0,
    lr: float | None = None,
    head_scale: float = 1.0,
) -> HeadConvergence:
    r"""How fast the mean-head direction approaches ``u_S`` on frozen features, K = 1 vs K.

    On the signed points ``z_i = y_i [phi(x_i), 1]`` (separable), ``K`` linear heads with
    independent inits ``N(0, head_scale^2/k)`` are trained by full-batch GD on the MHLoss
    (:func:`stabtheory.linear_heads.train_runs`, logistic loss), and the mean head
    ``v(t) = mean_k w_k(t)`` (whose logit is the MHLoss prediction) is compared with the
    max-margin direction:

    .. math::
        e(t) = \big\| v(t)/\|v(t)\| - u_S \big\| .

    Each head converges in direction to ``u_S`` (Soudry et al. 2018) but keeps a memory of its
    init that fades like ``1/||w(t)||``; averaging ``K`` independent inits shrinks that memory
    by about ``sqrt(K)``, which is the speed-up MHLoss is meant to give. The MHLoss gradient of
    each head is ``1/K`` of its single-head gradient; since the fine-tuning loop uses Adam,
    which removes that factor, the step here is ``lr * K`` for the ``K``-head runs so that every
    head takes the same step as a single head. Seed ``s`` of the single-head run starts from
    head 0 of seed ``s``'s ``K`` heads.

    Args:
      features: frozen features (n, k) (a bias coordinate is appended).
      y: labels (n,) in {-1, +1}.
      K: number of heads to compare with one head.
      steps: the largest ``t`` (12 log-spaced checkpoints from 1) or the checkpoints.
      seeds: number of random inits per setting.
      seed: first seed.
      lr: GD step (default ``1 / b`` with ``b = R^2 / 4`` the smoothness of the logistic loss).
      head_scale: init scale of the heads.

    Returns:
      :class:`HeadConvergence`.

    Raises:
      NotSeparableError: the features (with bias) are not separable.
    """
    Xb = _with_bias(features)
    y = np.asarray(y, np.float64)
    res = max_margin(Xb, y)
    R = float(np.sqrt(np.max(np.sum(Xb * Xb, axis=1))))
    lr = 4.0 / R**2 if lr is None else float(lr)
    if np.ndim(steps) == 0:
        ts = np.unique(np.round(np.logspace(0, math.log10(int(steps)), 12)).astype(np.int64))
    else:
        ts = np.asarray(steps, np.int64)
    Z = jnp.asarray(y[:, None] * Xb)
    k = features.shape[1]
    keys = seed_keys(seeds, seed)
    W0 = jax.vmap(lambda key: jax.random.normal(key, (K, k + 1), jnp.float64))(keys)
    W0 = W0.at[..., -1].set(0.0) * (head_scale / math.sqrt(k))
    u = res.direction
    out = {}
    for name, w0, step in (("single", W0[:, :1], lr), ("multi", W0, lr * K)):
        traj = _train_runs_jit(
            Z, jnp.ones((seeds, Z.shape[0])), jnp.full(seeds, step), w0, jnp.asarray(ts)
        )
        v = np.asarray(traj.w).mean(axis=2)  # (seeds, T, d): the mean head
        v = v / np.linalg.norm(v, axis=-1, keepdims=True)
        out[name] = np.linalg.norm(v - u, axis=-1)
    return HeadConvergence(ts, out["single"], out["multi"], int(K), res.margin / R, lr)


_train_runs_jit = jax.jit(
    functools.partial(linear_heads.train_runs, loss="logistic", optimizer="gd"),
)
