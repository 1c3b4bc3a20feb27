"""Exceptions raised by stabtheory.

Every exception says what was wrong with the input and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "DivergenceError",
    "DivergenceWarning",
    "InvalidArgumentError",
    "InvalidDataError",
    "MaxMarginConvergenceError",
    "NotSeparableError",
    "StabtheoryError",
    "UnknownTheoremError",
]


class StabtheoryError(Exception):
    """Base class of every error raised on purpose by stabtheory."""


class InvalidDataError(StabtheoryError, ValueError):
    """Features or labels that stabtheory cannot use (shape, NaN/inf, label values)."""


class InvalidArgumentError(InvalidDataError):
    """A parameter outside its accepted range; the message names the argument and the range
    (an :class:`InvalidDataError`, so code that catches bad input catches it too)."""


class DivergenceError(StabtheoryError, FloatingPointError):
    """A training run produced non-finite values; the message names the step to try."""


class DivergenceWarning(UserWarning):
    """A training run produced non-finite values where the result still stands (a check then
    reports the ``finite weights`` assumption failed, never a violation); the message names
    the step to try."""


class NotSeparableError(StabtheoryError, ValueError):
    """The data are not linearly separable through the origin (max margin <= 0)."""


class MaxMarginConvergenceError(StabtheoryError, RuntimeError):
    """Wolfe's algorithm hit its iteration cap (it should not on sane float64 data)."""


class UnknownTheoremError(StabtheoryError, KeyError):
    """A theorem id that is not in the bounds registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""
