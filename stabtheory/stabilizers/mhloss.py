r"""MHLoss, the Multi-Head Loss: ``K`` linear heads on one encoder, and its :class:`Method`.

The loop's data term is :func:`multihead_loss` (``K = 1``: the plain logistic loss) and its
prediction :func:`multihead_predict`, the mean of the heads' logits. The mechanism: on frozen
features, the mean of ``K`` heads approaches the max-margin direction ``u_S`` faster than one
head (:func:`stabtheory.stabilizers.head_convergence`; docs/theory.md section 4).

References:
  H. Fu, A. M.-C. So, N. Collier (2023), "A Stability Analysis of Fine-Tuning a Pre-Trained
  Model", arXiv 2301.09820.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory.stabilizers.mechanisms import features_margin, head_convergence
from stabtheory.stabilizers.method import Comparison, Mechanism, Method
from stabtheory.statistics import bootstrap_ratio, percentile_interval

__all__ = ["MHLoss", "init_heads", "multihead_logits", "multihead_loss", "multihead_predict"]


def init_heads(key: jax.Array, K: int, k: int, scale: jax.Array | float = 1.0) -> jax.Array:
    r"""``K`` independent heads ``[c_k, v_k]``, shape (K, k + 1), column 0 the biases.

    ``v_k ~ N(0, scale^2 / k)`` entrywise and ``c_k = 0``: the law of
    :class:`stabtheory.full_finetuning.Classifier`'s head.

    Example:
      >>> init_heads(jax.random.key(0), 3, 4).shape
      (3, 5)
    """
    v = jax.random.normal(key, (K, k), jnp.float64) * (scale / math.sqrt(k))
    return jnp.concatenate([jnp.zeros((K, 1), jnp.float64), v], axis=1)


def multihead_logits(heads: jax.Array, features: jax.Array) -> jax.Array:
    r"""Logits of every head: ``f_k(x_i) = c_k + v_k . phi_i``, shape (B, K).

    Args:
      heads: (K, k + 1), column 0 the biases.
      features: (B, k).
    """
    return heads[:, 0] + features @ heads[:, 1:].T


def multihead_predict(heads: jax.Array, features: jax.Array) -> jax.Array:
    r"""The MHLoss prediction: the mean of the heads' logits ``(1/K) sum_k f_k(x)``, (B,).

    It equals the logit of the mean head ``mean_k [c_k, v_k]`` (the logits are linear in the
    head).

    Example:
      >>> H = jnp.array([[0.0, 1.0], [2.0, -3.0]])
      >>> multihead_predict(H, jnp.array([[1.0], [0.0]])).tolist()
      [0.0, 1.0]
    """
    return jnp.mean(multihead_logits(heads, features), axis=1)


def multihead_loss(
    heads: jax.Array, features: jax.Array, y: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    r"""The Multi-Head Loss: the mean over heads of each head's mean logistic loss.

    .. math::
        L(V) = \frac1K \sum_{k=1}^K \frac{\sum_i w_i\,\operatorname{softplus}(-y_i f_k(x_i))}
                                          {\sum_i w_i},

    in the log domain (``jax.nn.softplus``, exact for margins of either sign and any size).
    With ``K = 1`` it is the plain logistic loss. The heads do not interact: the gradient for
    head ``k`` is ``1/K`` times its single-head gradient (a factor that Adam removes).

    Args:
      heads: (K, k + 1).
      features: (B, k).
      y: (B,) labels in {-1, +1}.
      weights: optional (B,) sample weights.

    Example:
      >>> H, f, y = jnp.array([[0.0, 1000.0], [0.0, -1000.0]]), jnp.ones((1, 1)), jnp.ones(1)
      >>> float(multihead_loss(H, f, y))  # (softplus(-1000) + softplus(1000)) / 2
      500.0
    """
    z = jnp.asarray(y)[:, None] * multihead_logits(heads, features)  # (B, K)
    losses = jax.nn.softplus(-z)
    w = jnp.ones(z.shape[0], z.dtype) if weights is None else jnp.asarray(weights, z.dtype)
    return jnp.mean(w @ losses) / jnp.sum(w)


def _area_ratio(e_multi, e_single, *, n_boot, level, seed) -> tuple[float, tuple[float, float]]:
    """Ratio of the areas under the mean error curves (paired: seed s shares head 0)."""

    def area(batch):  # (resamples, seeds, t) -> (resamples,)
        return batch.mean(axis=-2).sum(axis=-1)

    return bootstrap_ratio(
        area, e_multi, e_single, n_boot=n_boot, level=level, seed=seed, paired=True
    )


@dataclasses.dataclass(frozen=True)
class MHLoss(Method):
    """The MHLoss method: ``K > 1`` heads; mechanism: the mean head's convergence to ``u_S``.

    Attributes:
      heads: ``K`` of the fine-tuning loop.
      convergence_K, convergence_steps, convergence_seeds: the head-convergence measure
        (:func:`~stabtheory.stabilizers.head_convergence`: ``K`` heads against one, up to this
        many GD steps, this many inits), on the final features of the first reference seed
        whose features are separable.
    """

    name: str = "mhloss"
    heads: int = 5
    convergence_K: int = 5
    convergence_steps: int = 10_000
    convergence_seeds: int = 100
    claim: ClassVar[str] = "MHLoss speeds convergence and raises stability"

    def settings(self, base: Any) -> Any:
        return dataclasses.replace(base, name=self.name, heads=self.heads)

    def quick(self) -> MHLoss:
        return dataclasses.replace(self, convergence_steps=1000, convergence_seeds=20)

    def measure(
        self, testbed: Any, reference: Any, *, seed: int, n_boot: int, level: float
    ) -> dict:
        """The head-direction error curves on frozen features and the ratio of their areas
        (``< 1``: the ``K`` heads approach ``u_S`` faster), with a paired bootstrap interval."""
        for s, F in enumerate(reference.train_features):
            if features_margin(F, testbed.y).separable:
                hc = head_convergence(
                    F,
                    testbed.y,
                    K=self.convergence_K,
                    steps=self.convergence_steps,
                    seeds=self.convergence_seeds,
                    seed=seed,
                )
                ratio, ci = _area_ratio(
                    hc.error_multi, hc.error_single, seed=4, n_boot=n_boot, level=level
                )
                return {
                    "features": f"final features of {reference.settings.name} seed "
                    f"{int(reference.seeds[s])}",
                    "K": hc.K,
                    "margin": hc.margin,
                    "lr": hc.lr,
                    "steps": hc.steps.tolist(),
                    "error_single": hc.error_single.mean(0).tolist(),
                    "error_multi": hc.error_multi.mean(0).tolist(),
                    "error_single_band": [list(percentile_interval(c)) for c in hc.error_single.T],
                    "error_multi_band": [list(percentile_interval(c)) for c in hc.error_multi.T],
                    "area_ratio": ratio,
                    "area_ratio_ci": list(ci),
                }
        return {
            "features": "none separable",
            "area_ratio": math.nan,
            "area_ratio_ci": [math.nan] * 2,
        }

    def mechanism(self, c: Comparison) -> Mechanism:
        """The area ratio of :meth:`measure`, predicted below 1."""
        m = c.measured
        est, ci = m["area_ratio"], tuple(m["area_ratio_ci"])
        text = (
            f"head-direction error area ratio (K={m.get('K')} heads / 1 head, GD on "
            f"{m['features']}, t <= {self.convergence_steps}): {est:.3f} "
            f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        )
        e1 = float(np.sum(m.get("error_single", [math.nan])))
        eK = float(np.sum(m.get("error_multi", [math.nan])))
        return Mechanism(est, ci, 1.0, -1, text, [e1, eK])

    def draw(self, ax: Any, c: Comparison, rng: np.random.Generator) -> None:
        """The head-direction error against the GD step, one head and the mean of ``K``."""
        m = c.measured
        if "steps" in m:
            ts = np.asarray(m["steps"], float)
            for key, label in (("single", "1 head"), ("multi", f"mean of {m['K']} heads")):
                mean = np.asarray(m[f"error_{key}"])
                band = np.asarray(m[f"error_{key}_band"])
                line = ax.plot(ts, mean, "-o", ms=3, label=label)[0]
                ax.fill_between(ts, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.2, lw=0)
            ax.set_xscale("log")
            ax.set_xlabel("GD step t (frozen features)")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no separable features", ha="center", va="center")
        ax.set_ylabel("||v(t)/||v(t)|| - u_S||")
        ax.set_title(
            f"{c.testbed}: head direction error (area ratio {m['area_ratio']:.3f})", fontsize=9
        )
