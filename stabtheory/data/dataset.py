"""The :class:`Dataset` container (features, labels and the known truth) and :func:`add_bias`.

Head tuning (docs/theory.md section 3) is a linear classifier without bias on frozen features
``x_i`` with labels ``y_i`` in {-1, +1}; everything works on the signed points ``z_i = y_i x_i``.
A dataset holds plain numpy float64 arrays plus what is known about them exactly (a planted
max-margin direction and margin), so tests and reports can compare a solver with the truth.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stabtheory.errors import InvalidArgumentError, InvalidDataError
from stabtheory.validation import check_real

__all__ = ["Dataset", "add_bias"]


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


def add_bias(X, value: float = 1.0) -> np.ndarray:
    """Append a constant coordinate, so that a homogeneous classifier has a bias.

    Example:
      >>> add_bias(np.zeros((2, 1))).tolist()
      [[0.0, 1.0], [0.0, 1.0]]
    """
    check_real("value", value)
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"X must be a numeric 2-D array, got {X!r}.") from err
    if X.ndim != 2:
        raise InvalidArgumentError(f"X must be a 2-D array (n, d), got shape {X.shape}.")
    return np.concatenate([X, np.full((X.shape[0], 1), float(value))], axis=1)
