r"""Generalization from stability (docs/theory.md section 7): the replace-one identity and the
Bousquet-Elisseeff moment bound, estimated from the per-sample losses of batched runs.

One draw is ``S`` (n samples), ``S'`` (n replacement samples) and a test set ``T`` from the
same distribution. The runs on the pool ``[S; S']`` are masks (:func:`identity_weights`): the
run on S, every replace-one set ``S^(i)`` and every leave-one-out set ``S\i``;
:func:`split_runs` reads ``l(A(S); z_i)``, ``l(A(S^(i)); z_i)`` and ``l(A(S\i); z_i)`` off the
losses of every run on every pool sample. Then, over M draws:

* :func:`replace_one_identity`: the gap ``R_T(A(S)) - R_S(A(S))`` beside the signed replace-one
  change ``(1/n) sum_i [l(A(S^(i)); z_i) - l(A(S); z_i)]``; their expectations are equal for
  any algorithm and loss (Shalev-Shwartz et al. 2010, Lemma 11), so the paired per-draw
  difference has mean 0 (:attr:`IdentityEstimate.holds`).
* :func:`be_moment_check`: ``E[(R - R_emp)^2] <= M^2 / (2n) + 3 M beta``
  (:func:`be_moment_bound`; Bousquet & Elisseeff 2002, Lemma 9, used in Theorem 11), with
  ``beta`` the pointwise hypothesis stability (:func:`pointwise_hypothesis_stability`).

Intervals are Student-t intervals of a mean over the independent draws (:func:`mean_interval`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory.elasticities import t_interval
from stabtheory.errors import InvalidArgumentError
from stabtheory.linear_heads import log_loss, loo_weights, replace_one_weights
from stabtheory.validation import check_integer, check_real

__all__ = [
    "LOSSES",
    "IdentityEstimate",
    "MomentCheck",
    "be_moment_bound",
    "be_moment_check",
    "identity_weights",
    "margin_losses",
    "mean_interval",
    "pointwise_hypothesis_stability",
    "replace_one_identity",
    "split_runs",
    "zero_one_loss",
]

#: The losses the identity is estimated for: the margin losses of training and the 0-1 loss.
LOSSES = ("exponential", "logistic", "0-1")


def zero_one_loss(margins: jax.Array) -> jax.Array:
    """The 0-1 loss of margins ``y f(x)``: 1 where the margin is ``<= 0``, else 0.

    A zero margin counts as an error (``sign(0)`` predicts neither label), so a head that has
    not moved (``w = 0``) misclassifies every point.

    Example:
      >>> zero_one_loss(jnp.array([-1.0, 0.0, 2.0])).tolist()
      [1.0, 1.0, 0.0]
    """
    margins = jnp.asarray(margins)
    return jnp.where(margins <= 0, 1.0, 0.0).astype(margins.dtype)


def margin_losses(margins: jax.Array, loss: str) -> jax.Array:
    """Per-sample values of ``loss`` (one of :data:`LOSSES`) at the margins ``y f(x)``.

    The margin losses come from the log domain (``exp`` of
    :func:`~stabtheory.linear_heads.log_loss`: exact for margins of any size, never clamped);
    ``"0-1"`` is :func:`zero_one_loss`. The logistic loss of a margin is also the network's
    loss ``softplus(-y f(w, x))`` of full fine-tuning.

    Example:
      >>> margin_losses(jnp.array([0.0, 1000.0]), "exponential").tolist()
      [1.0, 0.0]
      >>> margin_losses(jnp.array([0.0, 1000.0]), "0-1").tolist()
      [1.0, 0.0]
    """
    if loss == "0-1":
        return zero_one_loss(margins)
    if loss not in LOSSES:
        raise InvalidArgumentError(f"loss must be one of {LOSSES}, got {loss!r}.")
    return jnp.exp(log_loss(jnp.asarray(margins), loss))


def identity_weights(n: int, dtype=jnp.float64) -> jax.Array:
    """Masks over the pool ``[S; S']`` (2n samples) for every run the checks need, (2n + 1, 2n).

    Row 0 is S, row ``1 + i`` is ``S^(i)`` (``z_i`` replaced by ``z'_i``,
    :func:`~stabtheory.linear_heads.replace_one_weights`), row ``1 + n + i`` is ``S\\i`` (no
    replacement drawn in). Every run has the same shape, so they train as one batch.

    Example:
      >>> identity_weights(1).tolist()
      [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    """
    if n < 1:
        raise InvalidArgumentError(f"n must be at least 1, got {n}.")
    loo = jnp.concatenate([loo_weights(n, dtype)[1:], jnp.zeros((n, n), dtype)], axis=1)
    return jnp.concatenate([replace_one_weights(n, dtype), loo])


def split_runs(values, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``l(A(S); z_i)``, ``l(A(S^(i)); z_i)`` and ``l(A(S\\i); z_i)`` from per-run values.

    Args:
      values: a per-sample quantity of every run of :func:`identity_weights` on every pool
        sample, (..., 2n + 1, 2n) (e.g. losses, or margins).
      n: the size of S.

    Returns:
      ``(train, replaced, loo)``, each (..., n).

    Example:
      >>> v = np.arange(20.0).reshape(5, 4)  # n = 2: five runs on four pool samples
      >>> train, replaced, loo = split_runs(v, 2)
      >>> train.tolist(), replaced.tolist(), loo.tolist()
      ([0.0, 1.0], [4.0, 9.0], [12.0, 17.0])
    """
    values = np.asarray(values)
    if values.shape[-2:] != (2 * n + 1, 2 * n):
        raise InvalidArgumentError(
            f"values must have shape (..., {2 * n + 1}, {2 * n}) for n={n} (runs of "
            f"identity_weights({n}) on the pool [S; S']), got {values.shape}."
        )
    i = np.arange(n)
    return values[..., 0, :n], values[..., 1 + i, i], values[..., 1 + n + i, i]


def mean_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of independent draws (1-D ``values``, at least 2).

    ``mean +- t_{M-1, (1 + level)/2} s / sqrt(M)`` with ``s`` the sample standard deviation;
    a sample without spread gives the point interval at its mean.

    Example:
      >>> lo, hi = mean_interval([1.0, 2.0, 3.0])
      >>> round(lo, 3), round(hi, 3)
      (-0.484, 4.484)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2:
        raise InvalidArgumentError(f"an interval of a mean needs at least 2 draws, got {x.size}.")
    if not 0.0 < level < 1.0:
        raise InvalidArgumentError(f"level must be in (0, 1), got {level}.")
    if np.isnan(x).any():  # an undefined draw leaves the interval undefined
        return math.nan, math.nan
    lo, hi, _ = t_interval(x, level)
    return lo, hi


@dataclasses.dataclass(frozen=True)
class IdentityEstimate:
    """Both sides of the replace-one identity on M draws (:func:`replace_one_identity`).

    Attributes:
      gap: per draw, test risk minus training risk of A(S), (M,).
      stability: per draw, the signed replace-one change
        ``(1/n) sum_i [l(A(S^(i)); z_i) - l(A(S); z_i)]``, (M,).
      level: the level of the intervals.
    """

    gap: np.ndarray
    stability: np.ndarray
    level: float = 0.95

    @property
    def difference(self) -> np.ndarray:
        """The paired per-draw difference gap - stability, (M,): mean 0 in expectation."""
        return self.gap - self.stability

    @property
    def gap_ci(self) -> tuple[float, float]:
        return mean_interval(self.gap, self.level)

    @property
    def stability_ci(self) -> tuple[float, float]:
        return mean_interval(self.stability, self.level)

    @property
    def difference_ci(self) -> tuple[float, float]:
        return mean_interval(self.difference, self.level)

    @property
    def holds(self) -> bool:
        """The interval of the mean difference covers 0."""
        lo, hi = self.difference_ci
        return bool(lo <= 0.0 <= hi)


def replace_one_identity(train, replaced, test_risk, *, level: float = 0.95) -> IdentityEstimate:
    r"""Both sides of the replace-one identity from M independent draws.

    .. math::
        E_S[R(A(S)) - R_S(A(S))] = E_{S, S'}\Big[\frac1n \sum_i
            \big(l(A(S^{(i)}); z_i) - l(A(S); z_i)\big)\Big]

    for any algorithm and loss on i.i.d. (or exchangeable) samples (Shalev-Shwartz, Shamir,
    Srebro & Sridharan 2010, Lemma 11). ``R`` is estimated by the mean loss on a test set of
    the same draw, which adds its own noise to the per-draw gap (inside the interval).

    Args:
      train: ``l(A(S); z_i)``, (M, n).
      replaced: ``l(A(S^(i)); z_i)``, (M, n) (:func:`split_runs`).
      test_risk: the mean loss of A(S) on each draw's test set, (M,).
      level: the level of the intervals.

    Returns:
      An :class:`IdentityEstimate`.

    Example:
      >>> est = replace_one_identity([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 1.0]],
      ...                            [0.5, 0.5])
      >>> est.gap.tolist(), est.stability.tolist(), est.difference.tolist()
      ([0.0, 0.5], [0.5, 0.5], [-0.5, 0.0])
    """
    train, replaced = np.asarray(train, np.float64), np.asarray(replaced, np.float64)
    test_risk = np.asarray(test_risk, np.float64)
    if train.ndim != 2 or replaced.shape != train.shape or test_risk.shape != train.shape[:1]:
        raise InvalidArgumentError(
            "need train and replaced of shape (M, n) and test_risk of shape (M,); got "
            f"{train.shape}, {replaced.shape} and {test_risk.shape}."
        )
    gap = test_risk - train.mean(axis=1)
    stability = (replaced - train).mean(axis=1)
    return IdentityEstimate(gap, stability, level)


def be_moment_bound(n: int, beta: float, M: float = 1.0) -> float:
    r"""Bousquet & Elisseeff's bound on the second moment of the generalization gap.

    .. math::
        E\big[(R - R_{emp})^2\big] \le \frac{M^2}{2n} + 3 M \beta

    for a loss in ``[0, M]`` and pointwise hypothesis stability ``beta`` with respect to
    leave-one-out: ``E |l(A(S); z_i) - l(A(S\i); z_i)| <= beta`` (Bousquet & Elisseeff 2002,
    Lemma 9, the step of Theorem 11). With the 0-1 loss, ``M = 1`` and ``beta`` is the rate at
    which leaving ``z_i`` out flips its prediction.

    Example:
      >>> be_moment_bound(10, 0.01)
      0.08
    """
    check_integer("n", n, low=1)
    check_real("beta", beta, low=0.0, low_open=False)
    check_real("M", M, low=0.0)
    return float(M**2 / (2.0 * n) + 3.0 * M * beta)


def pointwise_hypothesis_stability(train, loo) -> float:
    """The estimate of beta: the mean over draws and samples of ``|l(A(S); z_i) -
    l(A(S\\i); z_i)|`` (with the 0-1 loss: the leave-one-out prediction-flip rate).

    Example:
      >>> pointwise_hypothesis_stability([[0.0, 1.0]], [[0.0, 0.0]])
      0.5
    """
    train, loo = np.asarray(train, np.float64), np.asarray(loo, np.float64)
    if train.shape != loo.shape:
        raise InvalidArgumentError(
            f"train and loo must have one shape, got {train.shape}, {loo.shape}."
        )
    return float(np.mean(np.abs(train - loo)))


@dataclasses.dataclass(frozen=True)
class MomentCheck:
    """The moment bound beside its estimated left-hand side (:func:`be_moment_check`).

    Attributes:
      lhs: the mean over draws of the squared gap.
      lhs_ci: its Student-t interval.
      bound: :func:`be_moment_bound` at the estimated beta.
      beta: the estimated pointwise hypothesis stability.
      holds: ``lhs <= bound``.
      exceeds: the lower end of ``lhs_ci`` is above the bound (a significant violation).
    """

    lhs: float
    lhs_ci: tuple[float, float]
    bound: float
    beta: float
    holds: bool
    exceeds: bool


def be_moment_check(gap, train, loo, *, M: float = 1.0, level: float = 0.95) -> MomentCheck:
    """Check ``E[(R - R_emp)^2] <= M^2/(2n) + 3 M beta`` on M draws.

    The left side is the mean of the squared per-draw gaps; with R estimated on a finite test
    set it is biased upward by the test set's variance (conservative for the check).

    Args:
      gap: the per-draw gaps (:attr:`IdentityEstimate.gap`), (M,).
      train, loo: ``l(A(S); z_i)`` and ``l(A(S\\i); z_i)``, (M, n), of a loss in [0, M].
      M: the bound of the loss.
      level: the level of the interval of the left side.

    Example:
      >>> chk = be_moment_check([0.1, -0.1], [[0.0, 1.0]] * 2, [[0.0, 1.0]] * 2)
      >>> round(chk.lhs, 12), chk.bound, chk.holds
      (0.01, 0.25, True)
    """
    gap = np.asarray(gap, np.float64)
    n = np.asarray(train).shape[-1]
    beta = pointwise_hypothesis_stability(train, loo)
    bound = be_moment_bound(n, beta, M)
    sq = gap**2
    lo, hi = mean_interval(sq, level)
    lhs = float(sq.mean())
    return MomentCheck(lhs, (lo, hi), bound, beta, bool(lhs <= bound), bool(lo > bound))
