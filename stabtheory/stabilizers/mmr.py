r"""MMR, the Maximal Margin Regularizer: its penalty, its loss term and its :class:`Method`.

The loop adds ``alpha R(phi)`` (:class:`MMRTerm`, :func:`mmr_penalty`) to every method's
objective with a traced ``alpha`` (0 except for MMR), so MMR shares the baselines' compilation.
Its mechanism is the exact max margin ``gamma / R`` of the final training features, raised
against plain fine-tuning (docs/theory.md section 4).

References:
  H. Fu, A. M.-C. So, N. Collier (2023), "A Stability Analysis of Fine-Tuning a Pre-Trained
  Model", arXiv 2301.09820.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory.stabilizers.method import Comparison, Mechanism, Method
from stabtheory.stabilizers.panels import strip_plot
from stabtheory.statistics import mean_difference

__all__ = ["MMR", "MMR_KINDS", "MMRTerm", "mmr_penalty"]

MMR_KINDS = ("centroid", "smoothmin")


def _safe_norm(v: jax.Array, axis: int = -1) -> jax.Array:
    """Euclidean norm whose gradient at 0 is 0 (not NaN)."""
    sq = jnp.sum(v * v, axis=axis)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def _tiny(x: jax.Array) -> float:
    """The smallest normal number of ``x``'s dtype: a divisor floor that does not underflow to 0
    in float32 (1e-300 does, and 0/0 would turn a batch without one class into NaN)."""
    return float(jnp.finfo(x.dtype).tiny)


def _centroids(u: jax.Array, y: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    pos = weights * (y > 0)
    neg = weights * (y < 0)
    tiny = _tiny(u)
    mu_pos = pos @ u / jnp.maximum(jnp.sum(pos), tiny)
    mu_neg = neg @ u / jnp.maximum(jnp.sum(neg), tiny)
    return mu_pos, mu_neg


def mmr_penalty(
    features: jax.Array,
    y: jax.Array,
    kind: str = "centroid",
    temperature: jax.Array | float = 0.1,
    weights: jax.Array | None = None,
) -> jax.Array:
    r"""The Maximal Margin Regularizer ``R(phi)`` (to be *added*, times ``alpha``, to the loss).

    With L2-normalised features ``u_i = phi_i / ||phi_i||`` and the class centroids
    ``mu_± = mean_{i: y_i = ±1} u_i`` of the batch:

    * ``"centroid"`` (default): ``R = -||mu_+ - mu_-||``, minus the distance between the class
      centroids (for two classes, the mean pairwise centroid distance);
    * ``"smoothmin"``: with the unit direction ``e = (mu_+ - mu_-)/||mu_+ - mu_-||`` and the
      midpoint ``c = (mu_+ + mu_-)/2``, the signed normalised margins are
      ``m_i = y_i e . (u_i - c)`` and

      .. math::
          R = -\operatorname{softmin}_T(m) = T \log \sum_i w_i e^{-m_i/T}
              \ \ge\ -\min_i m_i ,

      a log-sum-exp (log domain, never clamped) that tends to ``-min_i m_i`` as ``T -> 0``.

    Minimising ``R`` pushes the classes apart on the unit sphere, which raises the margin of the
    features (docs/theory.md section 4).

    Args:
      features: (B, k) encoder features of a batch.
      y: (B,) labels in {-1, +1}.
      kind: ``"centroid"`` or ``"smoothmin"`` (static).
      temperature: ``T > 0`` of the smooth min (traced).
      weights: optional (B,) sample weights (a mask); default all ones. A batch with no sample
        of a class has that centroid at 0.

    Returns:
      The scalar penalty.

    Example:
      >>> f = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
      >>> float(mmr_penalty(f, jnp.array([1.0, 1.0, -1.0])))  # -||(1,0) - (0,1)||
      -1.4142135623730951
    """
    if kind not in MMR_KINDS:
        raise ValueError(f"kind must be one of {MMR_KINDS}, got {kind!r}.")
    features = jnp.asarray(features)
    y = jnp.asarray(y, features.dtype)
    w = jnp.ones_like(y) if weights is None else jnp.asarray(weights, features.dtype)
    u = features / jnp.maximum(_safe_norm(features)[:, None], _tiny(features))
    mu_pos, mu_neg = _centroids(u, y, w)
    diff = mu_pos - mu_neg
    dist = _safe_norm(diff)
    if kind == "centroid":
        return -dist
    e = diff / jnp.maximum(dist, _tiny(diff))
    m = y * ((u - 0.5 * (mu_pos + mu_neg)) @ e)
    return temperature * jax.nn.logsumexp(-m / temperature, b=w)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MMRTerm:
    r"""The loss term ``alpha R(phi)`` of the loop (:func:`mmr_penalty` on the batch features).

    A loss term of the loop is a pytree called as ``term(features, y) -> scalar`` on the
    minibatch's features (before dropout) and labels; its array fields are traced, its
    ``static`` fields part of the compiled program.

    Attributes:
      alpha: the weight (traced).
      temperature: ``T`` of the smooth-min variant (traced).
      kind: ``"centroid"`` or ``"smoothmin"`` (static).

    Example:
      >>> f = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
      >>> float(MMRTerm(2.0, 0.1)(f, jnp.array([1.0, 1.0, -1.0])))
      -2.8284271247461903
    """

    alpha: jax.Array | float
    temperature: jax.Array | float
    kind: str = dataclasses.field(default="centroid", metadata={"static": True})

    def __call__(self, features: jax.Array, y: jax.Array) -> jax.Array:
        return self.alpha * mmr_penalty(features, y, self.kind, self.temperature)


@dataclasses.dataclass(frozen=True)
class MMR(Method):
    """The MMR method: the loop with ``alpha > 0``; mechanism: the feature max margin.

    Attributes:
      alpha: the penalty's weight.
      kind: the penalty's kind (:data:`MMR_KINDS`).
    """

    name: str = "mmr"
    alpha: float = 0.3
    kind: str = "centroid"
    claim: ClassVar[str] = "MMR raises the feature margin and stability"

    def settings(self, base: Any) -> Any:
        return dataclasses.replace(base, name=self.name, mmr_alpha=self.alpha, mmr_kind=self.kind)

    def mechanism(self, c: Comparison) -> Mechanism:
        """The difference of mean feature margins ``gamma / R`` (non-separable as 0), method -
        reference, predicted positive."""
        a, b, est, ci = c.against_reference(self.name, "feature_margin", mean_difference, seed=5)
        text = (
            f"feature max margin gamma/R: {c.reference} {b.mean():.4f}, {self.name} "
            f"{a.mean():.4f}, difference {est:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"
        )
        return Mechanism(est, ci, 0.0, +1, text, [float(b.mean()), float(a.mean())])

    def draw(self, ax: Any, c: Comparison, rng: np.random.Generator) -> None:
        """The feature margin of every method's seeds."""
        margins = [c.values(m, "feature_margin") for m in c.methods]
        strip_plot(ax, margins, c.methods, "max margin gamma/R of final features", rng)
        ax.set_title(f"{c.testbed}: feature margin per method (non-separable = 0)", fontsize=9)
