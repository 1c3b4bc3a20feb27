"""Validation of user features and labels: the leaf that every stage calls on its inputs.

:func:`validate` turns array-likes into float64 numpy arrays with labels in {-1, +1}, or raises
:class:`~stabtheory.errors.InvalidDataError` saying what is wrong. It imports only numpy and
:mod:`stabtheory.errors`, so the data generators, the max-margin solver and the trainers can
all use it without importing one another.
"""

from __future__ import annotations

import numpy as np

from stabtheory.errors import InvalidDataError

__all__ = ["validate"]


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
