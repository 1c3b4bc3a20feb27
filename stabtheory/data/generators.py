"""Separable datasets through the origin: planted (exact truth), generic, Gaussian, reference.

:func:`planted_margin` plants the max-margin direction and margin exactly; :func:`separable_band`
draws generic separable data whose support set moves with ``n``; :func:`separable_gaussian`
solves its margin; :func:`soudry_fig1` is Soudry et al. (2018), Fig. 1; and
:func:`replacement_draws` gives the independent draws of replace-one stability. All are numpy
float64 and deterministic in their seed.
"""

from __future__ import annotations

import numpy as np

from stabtheory.data.dataset import Dataset
from stabtheory.errors import InvalidArgumentError, InvalidDataError
from stabtheory.svm import max_margin
from stabtheory.validation import check_integer, check_real, check_seed

__all__ = [
    "planted_margin",
    "replacement_draws",
    "separable_band",
    "separable_gaussian",
    "soudry_fig1",
]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _orthonormal_complement(u: np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    """k orthonormal vectors (rows) orthogonal to the unit vector u."""
    d = u.shape[0]
    A = rng.standard_normal((d, k + 1))
    A[:, 0] = u
    Q, _ = np.linalg.qr(A)
    Q = Q[:, 1 : k + 1].T
    # QR may flip the sign of the first column; orthogonality to u is what matters.
    return Q - np.outer(Q @ u, u)


def _points_along(
    u: np.ndarray, s_min: float, radius: float, m: int, rng: np.random.Generator
) -> np.ndarray:
    """``m`` points of norm ``radius`` with component along the unit ``u`` uniform in
    ``[s_min, radius]`` and a uniformly random direction orthogonal to ``u`` (inactive points)."""
    d = u.shape[0]
    s = rng.uniform(s_min, radius, size=m)
    w = rng.standard_normal((m, d))
    w -= np.outer(w @ u, u)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return s[:, None] * u + np.sqrt(np.maximum(radius**2 - s**2, 0.0))[:, None] * w


def planted_margin(
    n: int,
    d: int,
    margin: float,
    *,
    radius: float = 1.0,
    n_support: int | None = None,
    gap: float = 0.1,
    seed: int = 0,
) -> Dataset:
    """A separable dataset whose max-margin direction and margin are known exactly.

    Construction: a random unit ``u``; ``k = n_support`` support points with signed points
    ``z_j = margin * u + v_j`` where the ``v_j`` are orthogonal to ``u``, have equal norm
    and sum to zero (a centred simplex), so ``u`` lies in the relative interior of their
    convex hull. For every unit ``w``, ``min_j w . z_j <= mean_j w . z_j = margin * w . u <=
    margin``: ``u`` is the max-margin direction and ``margin`` the max margin, exactly. All
    other points have ``u . z_i >= margin + gap * (radius - margin)``, so they are inactive.
    Every point has norm ``radius`` exactly (so ``R = radius``) and labels alternate in sign.
    The support points come first, so :meth:`Dataset.subset` keeps the truth.

    Args:
      n: number of samples (>= n_support).
      d: dimension (>= 2).
      margin: the planted max margin, 0 < margin < radius.
      radius: R, the norm of every point.
      n_support: number of support vectors, 2 <= k <= min(d, n); default min(d, 4, n).
      gap: relative slack of the inactive points, in (0, 1].
      seed: numpy seed.

    Example:
      >>> ds = planted_margin(20, 3, 0.2, seed=1)
      >>> round(ds.margin, 12), ds.X.shape, int(ds.support.sum())
      (0.2, (20, 3), 3)
    """
    check_integer("n", n, low=2)
    check_integer("d", d)
    check_real("radius", radius)
    check_real("margin", margin)
    check_real("gap", gap)
    check_integer("n_support", n_support, allow_none=True)
    check_seed("seed", seed)
    if d < 2:
        raise InvalidArgumentError(f"planted_margin needs d >= 2, got d={d}.")
    if not 0.0 < margin < radius:
        raise InvalidDataError(f"need 0 < margin < radius; got margin={margin}, radius={radius}.")
    if not 0.0 < gap <= 1.0:
        raise InvalidDataError(f"gap must be in (0, 1], got {gap}.")
    k = min(d, 4, n) if n_support is None else int(n_support)
    if not 2 <= k <= min(d, n):
        raise InvalidDataError(f"n_support must be in [2, min(d, n)] = [2, {min(d, n)}], got {k}.")
    rng = np.random.default_rng(seed)
    u = _unit(rng.standard_normal(d))
    basis = _orthonormal_complement(u, rng, d - 1)  # (d-1, d)
    # A centred simplex of k unit vectors in a random (k-1)-dim subspace of u's complement.
    centred = np.eye(k) - 1.0 / k  # rows sum to zero, equal norms
    ones_perp = np.linalg.qr(np.c_[np.ones(k), rng.standard_normal((k, k - 1))])[0][:, 1:]
    coords = centred @ ones_perp  # (k, k-1): isometric image of the centred rows
    coords /= np.linalg.norm(coords, axis=1, keepdims=True)
    v = coords @ basis[: k - 1]  # (k, d): orthogonal to u, unit norm, summing to zero
    orth = np.sqrt(radius**2 - margin**2)
    z_sup = margin * u + orth * v
    # Inactive points: u-component s in [margin + gap (R - margin), R], the rest orthogonal.
    z_rest = _points_along(u, margin + gap * (radius - margin), radius, n - k, rng)
    Z = np.concatenate([z_sup, z_rest])
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    X = y[:, None] * Z
    support = np.zeros(n, dtype=bool)
    support[:k] = True
    return Dataset(
        X, y, u, float(margin), support, name=f"planted(n={n}, d={d}, gamma={margin})", planted=True
    )


def separable_gaussian(
    n: int, d: int, *, separation: float = 2.0, radius: float | None = None, seed: int = 0
) -> Dataset:
    """Two Gaussian classes through the origin, kept separable; the margin is computed.

    Points ``x = y * separation * e + noise`` with a random unit ``e``; points on the wrong
    side of ``e`` are redrawn, so the data are separable through the origin. The true max
    margin is then solved for (:func:`stabtheory.svm.max_margin`) and stored.
    ``radius`` rescales so that ``max_i ||x_i|| = radius``.

    Example:
      >>> ds = separable_gaussian(30, 4, seed=0)
      >>> ds.margin > 0
      True
    """
    check_integer("n", n, low=2)
    check_integer("d", d, low=1)
    check_real("separation", separation, low=0.0)
    check_real("radius", radius, low=0.0, allow_none=True)
    check_seed("seed", seed)
    rng = np.random.default_rng(seed)
    e = _unit(rng.standard_normal(d))
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    y[:2] = [1.0, -1.0]
    Z = np.empty((n, d))
    for i in range(n):
        while True:
            z = separation * e + rng.standard_normal(d)
            if z @ e > 0:
                Z[i] = z
                break
    X = y[:, None] * Z
    if radius is not None:
        X *= radius / np.max(np.linalg.norm(X, axis=1))
    sol = max_margin(X, y)
    return Dataset(X, y, sol.direction, sol.margin, sol.support, name=f"gaussian(n={n}, d={d})")


def separable_band(n: int, d: int, margin: float, *, radius: float = 1.0, seed: int = 0) -> Dataset:
    """Generic separable data: uniform points in a ball, outside a band around a hyperplane.

    Construction: a random unit ``u``; points ``x`` uniform in the ball of radius ``radius``,
    redrawn while ``|u . x| < margin``; labels ``y = sign(u . x)``. So every signed point has
    ``u . z >= margin``: the max margin is at least ``margin`` (attained by ``u`` only in the
    limit of many samples). Unlike :func:`planted_margin`, nothing is planted: which samples
    are support vectors, and the max margin itself, depend on the sample, so a new sample can
    become a support vector and the support set changes as ``n`` grows (the first ``n``
    samples of a larger draw are a draw of size ``n``). ``margin``, ``direction`` and
    ``support`` are left ``None``: solve them with
    :func:`stabtheory.svm.max_margin`.

    Args:
      n: number of samples (>= 2).
      d: dimension (>= 2).
      margin: the half-width of the rejected band, 0 < margin < radius.
      radius: the radius of the ball (so ``R <= radius``).
      seed: numpy seed; the result is a deterministic function of the arguments.

    Raises:
      InvalidDataError: ``n < 2``, ``d < 2`` or ``margin`` not in (0, radius).

    Example:
      >>> ds = separable_band(40, 5, 0.2, seed=0)
      >>> ds.X.shape, sorted(set(ds.y.tolist())), bool(ds.radius <= 1.0)
      ((40, 5), [-1.0, 1.0], True)
      >>> from stabtheory.svm import max_margin
      >>> max_margin(ds.X, ds.y).margin >= 0.2
      True
    """
    check_integer("n", n)
    check_integer("d", d)
    check_real("radius", radius)
    check_real("margin", margin)
    check_seed("seed", seed)
    if n < 2:
        raise InvalidArgumentError(f"separable_band needs n >= 2 samples, got n={n}.")
    if d < 2:
        raise InvalidArgumentError(f"separable_band needs d >= 2, got d={d}.")
    if not 0.0 < radius or not 0.0 < margin < radius:
        raise InvalidDataError(
            f"need 0 < margin < radius; got margin={margin}, radius={radius}. The band "
            "|u . x| < margin must leave part of the ball."
        )
    rng = np.random.default_rng(seed)
    u = _unit(rng.standard_normal(d))
    kept: list[np.ndarray] = []
    count, batches = 0, 0
    while count < n:  # vectorised rejection sampling, batch by batch
        batches += 1
        if batches > 1000:
            raise InvalidArgumentError(
                f"margin={margin} leaves too little of the ball of radius {radius} in d={d} "
                f"(fewer than {n} of {2000 * n} uniform points fall outside the band): "
                "use a smaller margin."
            )
        g = rng.standard_normal((2 * n, d))
        r = radius * rng.random(2 * n) ** (1.0 / d)
        x = g / np.linalg.norm(g, axis=1, keepdims=True) * r[:, None]
        x = x[np.abs(x @ u) >= margin]
        kept.append(x)
        count += x.shape[0]
    X = np.concatenate(kept)[:n]
    y = np.where(X @ u > 0, 1.0, -1.0)
    return Dataset(X, y, name=f"band(n={n}, d={d}, gamma>={margin:g})")


def soudry_fig1() -> Dataset:
    """The four support vectors of Soudry et al. (2018), Fig. 1.

    x1 = (0.5, 1.5), x2 = (1.5, 0.5) with y = +1, x3 = -x1, x4 = -x2 with y = -1. The unit
    max-margin direction is (1, 1)/sqrt(2) and the max margin is sqrt(2).

    Example:
      >>> ds = soudry_fig1()
      >>> round(ds.margin ** 2, 12)
      2.0
    """
    X = np.array([[0.5, 1.5], [1.5, 0.5], [-0.5, -1.5], [-1.5, -0.5]])
    y = np.array([1.0, 1.0, -1.0, -1.0])
    return Dataset(
        X,
        y,
        np.array([1.0, 1.0]) / np.sqrt(2.0),
        float(np.sqrt(2.0)),
        np.ones(4, dtype=bool),
        name="soudry-fig1",
    )


def replacement_draws(ds: Dataset, *, seed: int = 1, noise: float = 0.05) -> Dataset:
    """Independent replacement samples for replace-one stability (docs/theory.md section 1).

    For a planted dataset (``ds.planted``) these are fresh inactive points from the same
    construction (norm R, ``u . z >= margin + 0.1 (R - margin)``), so every replace-one set
    S^(i) keeps the data separable with the same max margin. For other data the distribution
    is unknown: the draws are a smoothed bootstrap, data points resampled with replacement
    plus Gaussian noise of scale ``noise * R / sqrt(d)``; the caller must check that S^(i)
    is still separable (:func:`stabtheory.svm.max_margin` raises if not).

    Example:
      >>> ds = planted_margin(10, 3, 0.2)
      >>> replacement_draws(ds).X.shape
      (10, 3)
    """
    rng = np.random.default_rng(seed)
    n, d = ds.X.shape
    if ds.planted and ds.direction is not None and ds.margin is not None:
        u, R = ds.direction, ds.radius
        Z = _points_along(u, ds.margin + 0.1 * (R - ds.margin), R, n, rng)
        y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
        return Dataset(y[:, None] * Z, y, name=f"{ds.name}:replacements")
    pick = rng.integers(0, n, size=n)
    X = ds.X[pick] + noise * ds.radius / np.sqrt(d) * rng.standard_normal((n, d))
    return Dataset(X, ds.y[pick].copy(), name=f"{ds.name}:replacements")
