"""Tests of stabtheory.data.features: frozen digits-encoder features of a digit pair."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tol

from stabtheory import data
from stabtheory.errors import InvalidDataError, NotSeparableError
from stabtheory.svm import max_margin

TOL = tol(np.float64)


def signed(ds: data.Dataset) -> np.ndarray:
    return ds.y[:, None] * ds.X


# --- the digits family: frozen encoder features -----------------------------------------------


def test_digits_pair_features_are_separable_and_deterministic():

    ds = data.digits_pair_features((0, 7))
    assert ds.X.shape[1] == data.DigitsEncoder().features and ds.X.shape[0] > 200
    np.testing.assert_allclose(ds.radius, 1.0, rtol=TOL)
    assert set(np.unique(ds.y)) == {-1.0, 1.0}
    assert ds.margin > 0 and np.min(signed(ds) @ ds.direction) >= ds.margin * (1 - 1e-9)
    again = data.digits_pair_features((0, 7))
    np.testing.assert_array_equal(ds.X, again.X)
    np.testing.assert_array_equal(ds.y, again.y)
    assert max_margin(ds.X[:32], ds.y[:32]).margin >= ds.margin * (1 - 1e-9)


def test_digits_pair_features_refuse_bad_and_inseparable_pairs():

    with pytest.raises(InvalidDataError, match="two different digits"):
        data.digits_pair_features((3, 3))
    with pytest.raises(NotSeparableError, match="Choose another pair"):
        data.digits_pair_features((3, 8))
