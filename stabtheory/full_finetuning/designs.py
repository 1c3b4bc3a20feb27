r"""Controlled designs of the fine-tuning objective: tilt, curvature-matched shift, loss scale.

:class:`FTDesign` holds a design (docs/theory.md section 6) and draws its directions;
:func:`apply_design` turns a :class:`~stabtheory.full_finetuning.TaylorModel` into the
designed one. The real network gets the same design through the ``linear`` and ``scale``
arguments of :func:`~stabtheory.full_finetuning.gd_finetune`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory.full_finetuning.taylor import TaylorModel, sample_hvp

__all__ = ["FTDesign", "apply_design"]

_TAG_TILT, _TAG_SHIFT = 0x711, 0x5F1


@dataclasses.dataclass(frozen=True, eq=False)
class FTDesign:
    r"""A controlled change of the fine-tuning objective (docs/theory.md section 6).

    Sample i's loss becomes ``c (l_i(w) + a_i . (w - w0))`` and the pull ``lam -> c lam``
    (the step ``eta -> eta / c``), with the per-sample linear term

    .. math::
        a_i = \kappa\, \xi_i - s\, (H_i + \lambda I)\, v .

    * **zero-sum tilt** (``tilt = kappa``): ``xi_i = u_i - mean_j u_j``, ``u_i`` independent
      uniform unit vectors in R^p drawn with numpy from ``seed`` (so ``sum_i xi_i = 0``
      over S exactly and ``||xi_i||`` is about ``sqrt(1 - 1/n)``); S\i keeps the same
      ``xi_j``, so ``F_S`` is unchanged while every ``F_S\i`` moves by
      ``-kappa xi_i . (w - w0) / (n - 1)``.
    * **curvature-matched shift** (``shift = s``): ``H_i`` is the Gauss-Newton matrix at
      ``w0`` and ``lam`` the *unscaled* pull; on the Taylor model ``w_S - w0`` and every
      ``w_S\i - w0`` move by exactly ``s v`` while ``r_i - mean r`` and ``A`` do not change.
      ``v`` is the given unit vector, or a uniform unit vector from ``seed``.
    * **software control** (``scale = c``): every trajectory is unchanged; ``rho``, ``Lam``,
      ``beta`` and the losses scale by ``c``.

    Attributes:
      tilt, shift, scale: ``kappa``, ``s``, ``c`` (the default is the plain problem).
      v: (p,) unit direction of the shift, or ``None`` (seeded random).
      seed: the tilt directions (and ``v`` when not given).

    Example:
      >>> FTDesign().plain, FTDesign(tilt=1.0).plain
      (True, False)
    """

    tilt: float = 0.0
    shift: float = 0.0
    scale: float = 1.0
    v: np.ndarray | None = None
    seed: int = 0

    @property
    def plain(self) -> bool:
        """Whether the design leaves the objective unchanged."""
        return self.tilt == 0 and self.shift == 0 and self.scale == 1

    def directions(self, n: int, p: int) -> tuple[np.ndarray, np.ndarray]:
        """``(xi, v)``: the tilt directions (n, p), zero-sum, and the unit shift direction.

        Drawn with numpy from ``default_rng([seed, tag])`` (no compilation); zeros for a
        design that does not use them (``tilt = 0``; ``shift = 0`` with no ``v``)."""
        xi = np.zeros((n, p))
        if self.tilt != 0:
            u = np.random.default_rng([self.seed, _TAG_TILT]).standard_normal((n, p))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            xi = u - u.mean(axis=0)
        if self.v is not None:
            v = np.asarray(self.v, np.float64)
        elif self.shift != 0:
            v = np.random.default_rng([self.seed, _TAG_SHIFT]).standard_normal(p)
        else:
            return xi, np.zeros(p)
        return xi, v / np.linalg.norm(v)


def apply_design(
    tm: TaylorModel, lam, tilt, shift, scale, xi: jax.Array, v: jax.Array
) -> tuple[TaylorModel, jax.Array, jax.Array]:
    """The Taylor model of the designed objective (see :class:`FTDesign`); all traced.

    Returns ``(tm_c, lam_c, a)``: the model with ``loss0``, ``grads + a`` and ``curv``
    multiplied by ``scale`` (Gauss-Newton curvature), the pull ``scale * lam`` and the
    per-sample linear terms ``a = tilt xi - shift (H_i v + lam v)`` (n, p), unscaled.
    """
    hv = sample_hvp(tm, jnp.broadcast_to(v, tm.grads.shape))
    a = tilt * xi - shift * (hv + lam * v)
    tm_c = tm._replace(loss0=scale * tm.loss0, grads=scale * (tm.grads + a), curv=scale * tm.curv)
    return tm_c, scale * lam, a
