"""Validation of user features and labels: the leaf that every stage calls on its inputs.

:func:`validate` turns array-likes into float64 numpy arrays with labels in {-1, +1}, or raises
:class:`~stabtheory.errors.InvalidDataError` saying what is wrong. It imports only numpy and
:mod:`stabtheory.errors`, so the data generators, the max-margin solver and the trainers can
all use it without importing one another.
"""

from __future__ import annotations

import numpy as np

from stabtheory.errors import InvalidArgumentError, InvalidDataError

__all__ = [
    "check_choice",
    "check_finite_array",
    "check_float_dtype",
    "check_integer",
    "check_real",
    "check_seed",
    "check_steps",
    "validate",
]


def _is_number(value) -> bool:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        return False
    try:
        float(value)
    except OverflowError:  # an int too large for a float
        return False
    return True


def check_real(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = True,
    high_open: bool = True,
    allow_none: bool = False,
) -> float | None:
    """A finite real number within ``(low, high)`` (or ``[low, high]`` where not open), or
    :class:`~stabtheory.errors.InvalidArgumentError` naming ``name`` and the accepted range.
    Booleans, strings, sequences, NaN and infinities are refused.

    Example:
      >>> check_real("lr", 0.5, low=0.0)
      0.5
      >>> check_real("lr", float("nan"), low=0.0)
      Traceback (most recent call last):
      ...
      stabtheory.errors.InvalidArgumentError: lr must be a finite number > 0, got nan.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()  # a 0-d array is its number
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    wanted = "a finite number" + (" " + " and ".join(parts) if parts else "")
    wanted += " (or None)" if allow_none else ""
    if not _is_number(value) or not np.isfinite(value):
        raise InvalidArgumentError(f"{name} must be {wanted}, got {value!r:.80}.")
    v = float(value)
    if low is not None and (v <= low if low_open else v < low):
        raise InvalidArgumentError(f"{name} must be {wanted}, got {value!r:.80}.")
    if high is not None and (v >= high if high_open else v > high):
        raise InvalidArgumentError(f"{name} must be {wanted}, got {value!r:.80}.")
    return v


def check_integer(
    name: str, value, *, low: int | None = None, high: int | None = None, allow_none=False
) -> int | None:
    """An integer (not a bool, not a float) in ``[low, high]``, or
    :class:`~stabtheory.errors.InvalidArgumentError` naming ``name`` and the range.

    Example:
      >>> check_integer("seeds", 3, low=1)
      3
    """
    if value is None and allow_none:
        return None
    parts = [f">= {low}"] if low is not None else []
    parts += [f"<= {high}"] if high is not None else []
    wanted = "an integer" + (" " + " and ".join(parts) if parts else "")
    wanted += " (or None)" if allow_none else ""
    if not isinstance(value, int | np.integer) or isinstance(value, bool | np.bool_):
        raise InvalidArgumentError(f"{name} must be {wanted}, got {value!r:.80}.")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidArgumentError(f"{name} must be {wanted}, got {value!r:.80}.")
    return int(value)


def check_seed(name: str, value) -> int | None:
    """A numpy seed: a non-negative integer, or ``None`` (fresh entropy)."""
    return check_integer(name, value, low=0, allow_none=True)


def check_steps(name: str, steps) -> np.ndarray:
    """Checkpoint steps: a non-negative integer or a non-empty 1-D sequence of non-negative,
    non-decreasing integers, as an int array; else
    :class:`~stabtheory.errors.InvalidArgumentError` naming ``name``.

    Example:
      >>> check_steps("steps", [1, 10, 100]).tolist()
      [1, 10, 100]
    """
    if isinstance(steps, bool | np.bool_):
        raise InvalidArgumentError(f"{name} must be integers >= 0, got {steps!r}.")
    try:
        c = np.atleast_1d(np.asarray(steps))
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"{name} must be integers >= 0, got {steps!r}.") from err
    if c.ndim != 1 or c.size == 0 or not np.issubdtype(c.dtype, np.integer) or (c < 0).any():
        raise InvalidArgumentError(
            f"{name} must be an integer >= 0 or a 1-D sequence of them, got {steps!r}."
        )
    if (np.diff(c) < 0).any():
        raise InvalidArgumentError(f"{name} must be non-decreasing, got {steps!r}.")
    return c.astype(np.int64)


def check_choice(name: str, value, options) -> str:
    """One of ``options`` (strings), or :class:`~stabtheory.errors.InvalidArgumentError`.

    Example:
      >>> check_choice("loss", "logistic", ("exponential", "logistic"))
      'logistic'
    """
    if not isinstance(value, str) or value not in options:
        raise InvalidArgumentError(f"{name} must be one of {tuple(options)}, got {value!r:.80}.")
    return value


def check_float_dtype(name: str, dtype) -> np.dtype:
    """float64 (theory checks) or float32; anything else (float16, integers, unknown names)
    is refused with :class:`~stabtheory.errors.InvalidArgumentError`."""
    try:
        dt = np.dtype(dtype) if dtype is not None else None
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise InvalidArgumentError(
            f"{name} must be float64 (the theory checks) or float32, got {dtype!r}."
        )
    return dt


def check_finite_array(name: str, value, shapes=None) -> np.ndarray:
    """A finite float array (of one of ``shapes`` when given), or
    :class:`~stabtheory.errors.InvalidArgumentError` naming ``name``."""
    if np.iscomplexobj(value):
        raise InvalidArgumentError(f"{name} must be real, got complex entries.")
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"{name} must be a numeric array, got {value!r:.80}.") from err
    if shapes is not None and a.shape not in shapes:
        raise InvalidArgumentError(
            f"{name} must have shape {' or '.join(map(str, shapes))}, got {a.shape}."
        )
    if not np.all(np.isfinite(a)):
        raise InvalidArgumentError(f"{name} has NaN or infinite entries.")
    return a


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
        raise InvalidDataError(
            f"y: labels must be numbers in {{-1, +1}} or {{0, 1}}: {err}"
        ) from err
    labels = set(np.unique(y_num).tolist())
    if labels <= {-1.0, 1.0}:
        y_pm = y_num
    elif labels <= {0.0, 1.0}:
        y_pm = 2.0 * y_num - 1.0
    else:
        shown = sorted(labels)[:6]
        raise InvalidDataError(
            f"y: labels must be in {{-1, +1}} or {{0, 1}}; found {shown}"
            f"{'...' if len(labels) > 6 else ''}. Map a multi-class problem to one-vs-rest first."
        )
    return X, y_pm
