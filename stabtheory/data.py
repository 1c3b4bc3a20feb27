"""Separable datasets with known max margin, and validation of user arrays.

Head tuning (docs/theory.md section 3) is a linear classifier without bias on frozen features
``x_i`` with labels ``y_i`` in {-1, +1}. Everything in stabtheory works on the signed points
``z_i = y_i x_i``: the data are separable through the origin with max margin
``gamma = max_{||u||=1} min_i u . z_i > 0``.

Datasets here are plain numpy float64 arrays (theory checks run in float64); a
:class:`Dataset` also carries what is known about it exactly (a planted max-margin
direction and margin), so tests and reports can compare a solver with the truth.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from stabtheory.errors import InvalidDataError

__all__ = [
    "Dataset",
    "add_bias",
    "digits_pair_features",
    "planted_margin",
    "replacement_draws",
    "separable_band",
    "separable_gaussian",
    "soudry_fig1",
    "validate",
]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Features ``X`` (n, d), labels ``y`` (n,) in {-1, +1}, and what is known about them.

    Attributes:
      X: float64 features, shape (n, d).
      y: float64 labels in {-1, +1}, shape (n,).
      direction: the exact unit max-margin direction when it was planted, else ``None``.
      margin: the exact max margin when it was planted, else ``None``.
      support: boolean mask of the planted support vectors (active constraints), or ``None``.
      name: a short description used in reports.
      planted: ``True`` when the data come from :func:`planted_margin`'s construction (so that
        :func:`replacement_draws` can draw more points from it).
    """

    X: np.ndarray
    y: np.ndarray
    direction: np.ndarray | None = None
    margin: float | None = None
    support: np.ndarray | None = None
    name: str = "data"
    planted: bool = False

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def radius(self) -> float:
        """R = max_i ||x_i||."""
        return float(np.max(np.linalg.norm(self.X, axis=1)))

    def subset(self, n: int) -> Dataset:
        """The first ``n`` samples. Planted sets put their support vectors first, so every
        subset that keeps them keeps the planted direction and margin."""
        if not 1 <= n <= self.n:
            raise InvalidDataError(f"subset size must be in [1, {self.n}], got {n}.")
        keeps = self.support is not None and bool(np.all(self.support[n:] == 0))
        return Dataset(
            X=self.X[:n],
            y=self.y[:n],
            direction=self.direction if keeps else None,
            margin=self.margin if keeps else None,
            support=self.support[:n] if keeps else None,
            name=f"{self.name}[:{n}]",
            planted=self.planted and keeps,
        )


def validate(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Check user features and labels and return them as float64 numpy arrays.

    Labels in {0, 1} are mapped to {-1, +1}; any other label set is refused.

    Args:
      X: array-like of shape (n, d) with finite entries.
      y: array-like of shape (n,) with labels in {-1, +1} or {0, 1}.

    Returns:
      ``(X, y)`` as float64 arrays, ``y`` in {-1, +1}.

    Raises:
      InvalidDataError: wrong shapes, non-finite features, or labels outside {-1, +1}/{0, 1}.

    Example:
      >>> X, y = validate([[1.0, 0.0], [0.0, 1.0]], [0, 1])
      >>> y.tolist()
      [-1.0, 1.0]
    """
    try:
        X = np.array(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidDataError(f"X could not be read as a float array: {err}") from err
    y_raw = np.asarray(y)
    if X.ndim != 2:
        raise InvalidDataError(
            f"X must be a 2-D array of shape (n_samples, n_features); got shape {X.shape}. "
            "Reshape a single feature with X.reshape(-1, 1)."
        )
    if y_raw.ndim != 1:
        raise InvalidDataError(
            f"y must be a 1-D array of labels; got shape {y_raw.shape}. Use y.ravel()."
        )
    if X.shape[0] != y_raw.shape[0]:
        raise InvalidDataError(
            f"X has {X.shape[0]} samples but y has {y_raw.shape[0]} labels; they must match."
        )
    if X.shape[0] < 2:
        raise InvalidDataError(f"need at least 2 samples, got {X.shape[0]}.")
    if X.shape[1] < 1:
        raise InvalidDataError("X has no features (shape[1] == 0).")
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise InvalidDataError(
            f"X has {int(bad.sum())} NaN or infinite entries (rows {rows[:5].tolist()}"
            f"{'...' if rows.size > 5 else ''}); remove or impute them first."
        )
    try:
        y_num = np.array(y_raw, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidDataError(f"labels must be numbers in {{-1, +1}} or {{0, 1}}: {err}") from err
    labels = set(np.unique(y_num).tolist())
    if labels <= {-1.0, 1.0}:
        y_pm = y_num
    elif labels <= {0.0, 1.0}:
        y_pm = 2.0 * y_num - 1.0
    else:
        shown = sorted(labels)[:6]
        raise InvalidDataError(
            f"labels must be in {{-1, +1}} or {{0, 1}}; found {shown}"
            f"{'...' if len(labels) > 6 else ''}. Map a multi-class problem to one-vs-rest first."
        )
    return X, y_pm


def add_bias(X, value: float = 1.0) -> np.ndarray:
    """Append a constant coordinate, so that a homogeneous classifier has a bias.

    Example:
      >>> add_bias(np.zeros((2, 1))).tolist()
      [[0.0, 1.0], [0.0, 1.0]]
    """
    X = np.asarray(X, dtype=np.float64)
    return np.concatenate([X, np.full((X.shape[0], 1), float(value))], axis=1)


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
    if d < 2:
        raise InvalidDataError(f"planted_margin needs d >= 2, got d={d}.")
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
    m = n - k
    s_min = margin + gap * (radius - margin)
    s = rng.uniform(s_min, radius, size=m)
    w = rng.standard_normal((m, d))
    w -= np.outer(w @ u, u)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    z_rest = s[:, None] * u + np.sqrt(np.maximum(radius**2 - s**2, 0.0))[:, None] * w
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
    margin is then solved for (:func:`stabtheory.max_margin`) and stored. ``radius`` rescales
    so that ``max_i ||x_i|| = radius``.

    Example:
      >>> ds = separable_gaussian(30, 4, seed=0)
      >>> ds.margin > 0
      True
    """
    from stabtheory.margin import max_margin

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
    ``support`` are left ``None``: solve them with :func:`stabtheory.max_margin`.

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
      >>> from stabtheory.margin import max_margin
      >>> max_margin(ds.X, ds.y).margin >= 0.2
      True
    """
    n, d = int(n), int(d)
    if n < 2:
        raise InvalidDataError(f"separable_band needs n >= 2 samples, got n={n}.")
    if d < 2:
        raise InvalidDataError(f"separable_band needs d >= 2, got d={d}.")
    if not 0.0 < radius or not 0.0 < margin < radius:
        raise InvalidDataError(
            f"need 0 < margin < radius; got margin={margin}, radius={radius}. The band "
            "|u . x| < margin must leave part of the ball."
        )
    rng = np.random.default_rng(seed)
    u = _unit(rng.standard_normal(d))
    kept: list[np.ndarray] = []
    count = 0
    while count < n:  # vectorised rejection sampling, batch by batch
        g = rng.standard_normal((2 * n, d))
        r = radius * rng.random(2 * n) ** (1.0 / d)
        x = g / np.linalg.norm(g, axis=1, keepdims=True) * r[:, None]
        x = x[np.abs(x @ u) >= margin]
        kept.append(x)
        count += x.shape[0]
    X = np.concatenate(kept)[:n]
    y = np.where(X @ u > 0, 1.0, -1.0)
    return Dataset(X, y, name=f"band(n={n}, d={d}, gamma>={margin:g})")


#: The hyperparameters of the digits encoder (those of the stabilizer study's testbed, so the
#: two studies share one pre-training per process).
DIGITS_ENCODER = {"hidden": (32, 32), "features": 8, "pretrain_steps": 1000}


def digits_pair_features(
    pair: tuple[int, int],
    *,
    pretrain_steps: int = DIGITS_ENCODER["pretrain_steps"],
    hidden: tuple[int, ...] = DIGITS_ENCODER["hidden"],
    features: int = DIGITS_ENCODER["features"],
    init_seed: int = 0,
    source_seed: int = 0,
) -> Dataset:
    """Frozen features of the pre-trained digits encoder for the images of two digits.

    The encoder is the one of :func:`stabtheory.finetune.make_testbed` ("digits", same
    ``hidden``, ``features``, ``pretrain_steps``, ``init_seed``, ``source_seed``): an MLP
    pre-trained by denoising on the unlabeled source pool (one third of scikit-learn's 1797
    8x8 digits). Its features ``phi(x)`` (tanh, in ``[-1, 1]^features``) of every image of
    ``pair`` in the task pool (the images NOT used for pre-training; about 240 per pair)
    are returned, divided by their largest norm so that ``R = 1`` (a common scale: it
    changes neither separability nor the max-margin direction), with ``y = +1`` for
    ``pair[0]`` and ``-1`` for ``pair[1]``. Separability through the origin (no bias) is
    certified by :func:`stabtheory.max_margin`, whose certified lower bound, direction and
    support fill ``margin``, ``direction`` and ``support``; every subset of a separable pool
    is separable with a margin at least as large. The pre-training is cached per process
    (the same encoder for every call with the same settings), so a caller that draws random
    subsets of the pool reuses ONE encoder for all its draws.

    Args:
      pair: two different digits in 0..9.
      pretrain_steps, hidden, features, init_seed, source_seed: the encoder (as in
        :func:`stabtheory.finetune.make_testbed`).

    Returns:
      A :class:`Dataset` of shape (pool size, ``features``), deterministic in its arguments.

    Raises:
      InvalidDataError: ``pair`` is not two different digits.
      NotSeparableError: the pair's features are not linearly separable through the origin
        (e.g. 3 vs 8 with the default encoder); choose another pair.

    Example:
      >>> ds = digits_pair_features((0, 7))  # doctest: +SKIP
      >>> ds.X.shape[1], ds.radius, ds.margin > 0  # doctest: +SKIP
      (8, 1.0, True)
    """
    from stabtheory.errors import NotSeparableError
    from stabtheory.margin import max_margin

    try:
        a, b = (int(c) for c in pair)
    except (TypeError, ValueError) as err:
        raise InvalidDataError(f"pair must be two digits, e.g. (0, 7); got {pair!r}.") from err
    if a == b or not (0 <= a <= 9 and 0 <= b <= 9):
        raise InvalidDataError(f"pair must be two different digits in 0..9, got {pair!r}.")
    X, y = _digits_pair_pool(
        (a, b),
        int(pretrain_steps),
        tuple(int(h) for h in hidden),
        int(features),
        int(init_seed),
        int(source_seed),
    )
    try:
        sol = max_margin(X, y)
    except NotSeparableError as err:
        raise NotSeparableError(
            f"digits {a} vs {b}: the frozen features of the encoder (pretrain_steps="
            f"{pretrain_steps}, features={features}) are not linearly separable through the "
            f"origin, so no max margin exists. Choose another pair (e.g. (0, 7), (5, 6), "
            f"(1, 2) are separable with the default encoder). Solver: {err}"
        ) from err
    return Dataset(
        X.copy(),
        y.copy(),
        sol.direction,
        float(sol.margin),
        sol.support,
        name=f"digits{a}v{b}-features(pre{pretrain_steps})",
    )


@functools.lru_cache(maxsize=64)
def _digits_pair_pool(pair, pretrain_steps, hidden, features, init_seed, source_seed):
    import jax
    import jax.numpy as jnp

    from stabtheory import finetune

    tb = finetune.make_testbed(
        "digits",
        classes=pair,
        n=2,
        pretrain_steps=pretrain_steps,
        hidden=hidden,
        features=features,
        init_seed=init_seed,
        source_seed=source_seed,
    )
    images = np.concatenate([tb.X, tb.X_test])  # the whole task pool of the pair
    labels = np.concatenate([tb.y, tb.y_test])
    encoder = tb.pretrained().encoder
    F = np.asarray(jax.vmap(encoder)(jnp.asarray(images)), dtype=np.float64)
    F = F / np.max(np.linalg.norm(F, axis=1))
    F.setflags(write=False)
    labels.setflags(write=False)
    return F, labels


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
    is still separable (:func:`stabtheory.max_margin` raises if not).

    Example:
      >>> ds = planted_margin(10, 3, 0.2)
      >>> replacement_draws(ds).X.shape
      (10, 3)
    """
    rng = np.random.default_rng(seed)
    n, d = ds.X.shape
    if ds.planted and ds.direction is not None and ds.margin is not None:
        u, R = ds.direction, ds.radius
        s = rng.uniform(ds.margin + 0.1 * (R - ds.margin), R, size=n)
        w = rng.standard_normal((n, d))
        w -= np.outer(w @ u, u)
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        Z = s[:, None] * u + np.sqrt(np.maximum(R**2 - s**2, 0.0))[:, None] * w
        y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
        return Dataset(y[:, None] * Z, y, name=f"{ds.name}:replacements")
    pick = rng.integers(0, n, size=n)
    X = ds.X[pick] + noise * ds.radius / np.sqrt(d) * rng.standard_normal((n, d))
    return Dataset(X, ds.y[pick].copy(), name=f"{ds.name}:replacements")
