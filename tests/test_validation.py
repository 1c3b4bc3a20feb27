"""Tests of stabtheory.validation: user features and labels checked, copied and converted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stabtheory.errors import InvalidDataError
from stabtheory.validation import validate

# --------------------------------------------------------------------------------------------
# validate


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        ([[1.0, np.nan], [0.0, 1.0]], [1, -1], r"1 NaN or infinite entries \(rows \[0\]\)"),
        ([[1.0, 0.0], [np.inf, 1.0]], [1, -1], r"NaN or infinite entries \(rows \[1\]\)"),
        ([[1.0, 0.0], [-np.inf, np.nan]], [1, -1], r"2 NaN or infinite entries"),
        ([[1.0, 0.0], [0.0, 1.0]], [1, 2], r"labels must be in .*found \[1\.0, 2\.0\]"),
        ([[1.0, 0.0], [0.0, 1.0]], [-1, 0], r"labels must be in .*found \[-1\.0, 0\.0\]"),
        ([[1.0], [0.0], [2.0]], [0, 1, 2], "one-vs-rest"),
        ([[1.0, 0.0], [0.0, 1.0]], [[1], [-1]], r"y must be a 1-D array .*\(2, 1\).*ravel"),
        ([[1.0, 0.0], [0.0, 1.0]], 1, r"y must be a 1-D array"),
        ([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1, -1], r"X has 3 samples but y has 2 labels"),
        ([1.0, 2.0, 3.0], [1, -1, 1], r"X must be a 2-D array .*\(3,\).*reshape"),
        ([[[1.0]], [[2.0]]], [1, -1], r"X must be a 2-D array"),
        ([[1.0, 0.0]], [1], r"at least 2 samples"),
        (np.zeros((3, 0)), [1, -1, 1], r"no features"),
        ([["a", "b"], ["c", "d"]], [1, -1], r"X could not be read as a float array"),
        ([[1.0, 0.0], [0.0, 1.0]], ["yes", "no"], r"labels must be numbers"),
    ],
)
def test_validate_errors(X, y, match):
    with pytest.raises(InvalidDataError, match=match):
        validate(X, y)


def test_invalid_data_error_is_value_error():
    with pytest.raises(ValueError):
        validate([[np.nan, 1.0], [1.0, 1.0]], [1, -1])


def test_validate_many_bad_rows_truncated():
    X = np.full((10, 2), np.nan)
    with pytest.raises(InvalidDataError, match=r"rows \[0, 1, 2, 3, 4\]\.\.\."):
        validate(X, np.ones(10))


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        ([0, 1, 1, 0], [-1.0, 1.0, 1.0, -1.0]),
        ([0.0, 0.0, 0.0, 0.0], [-1.0, -1.0, -1.0, -1.0]),
        ([True, False, True, True], [1.0, -1.0, 1.0, 1.0]),
        ([-1, 1, 1, -1], [-1.0, 1.0, 1.0, -1.0]),
        ([1, 1, 1, 1], [1.0, 1.0, 1.0, 1.0]),
        (np.array([1.0, -1.0, -1.0, 1.0], dtype=np.float32), [1.0, -1.0, -1.0, 1.0]),
    ],
)
def test_validate_labels(y, expected):
    X_in = np.arange(8, dtype=np.int32).reshape(4, 2)
    X, y_out = validate(X_in, y)
    assert X.dtype == np.float64 and y_out.dtype == np.float64
    np.testing.assert_array_equal(X, X_in.astype(np.float64))
    np.testing.assert_array_equal(y_out, expected)


@given(
    n=st.integers(2, 12),
    d=st.integers(1, 5),
    labels01=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_validate_roundtrip_property(n, d, labels01, seed):
    rng = np.random.default_rng(seed)
    X_in = rng.standard_normal((n, d)) * 10.0 ** rng.integers(-5, 6)
    b = rng.integers(0, 2, n)
    y_in = b if labels01 else 2 * b - 1
    X, y = validate(X_in.tolist(), y_in.tolist())
    np.testing.assert_array_equal(X, X_in)
    np.testing.assert_array_equal(y, 2.0 * b - 1.0)
    assert X.dtype == y.dtype == np.float64


def test_validate_returns_copies():
    X_in = np.ones((3, 2))
    X, _ = validate(X_in, [1, -1, 1])
    X[0, 0] = 5.0
    assert X_in[0, 0] == 1.0
