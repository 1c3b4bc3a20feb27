"""Bad arguments thrown at every public function: each must give a stabtheory error that
names the argument, or a correct (finite, never a violation) result. Never a traceback from
deep inside JAX or NumPy, never a silent NaN.

``BAD`` is a deterministic catalogue (its counts are printed with ``-s``); the hypothesis test
draws arbitrary floats, integers and junk for the numeric arguments."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stabtheory
from stabtheory import data
from stabtheory.audit import audit
from stabtheory.bounds.theorem import BoundCheck
from stabtheory.errors import DivergenceWarning, StabtheoryError

NAN, INF = math.nan, math.inf
DS = data.planted_margin(8, 3, 0.3, seed=0)
OTHER = data.planted_margin(8, 3, 0.4, seed=1)
TEST = data.planted_margin(6, 3, 0.3, seed=2)

FLOAT = [NAN, INF, -INF, -1.0, 0.0, "0.1", None, True, [0.1]]
INT = [-1, 0, 2.5, "3", NAN, None, True]
STEPS = [-1, 2.5, "10", [5, 1], [], [[1, 2]], None, True, NAN]
DTYPE = [np.float16, np.int32, "float16", "nonsense", None]
STRING = ["nonsense", None, 3, ""]
INIT = [np.full(3, NAN), np.ones(5), "zero", np.full(3, INF)]


def FT_MODEL(w, x):
    """A one-logit model of flat weights for the fine-tuning theorems."""
    import jax.numpy as jnp

    return jnp.tanh(w @ x)


FT_W0 = np.full(3, 0.1)

#: function name -> (callable, valid keyword arguments, {argument: bad values}).
CASES = {
    "loo_stability": (
        stabtheory.loo_stability,
        {"X": DS.X, "y": DS.y, "lr": 0.5, "steps": 5},
        {
            "lr": FLOAT,
            "steps": STEPS,
            "heads_per_run": INT,
            "batch_size": INT[:-2],
            "dtype": DTYPE,
            "init": INIT,
            "notion": STRING,
            "loss": STRING,
            "optimizer": STRING,
        },
    ),
    "replace_one_stability": (
        stabtheory.replace_one_stability,
        {"X": DS.X, "y": DS.y, "replacements": (OTHER.X, OTHER.y), "lr": 0.5, "steps": 5},
        {
            "lr": FLOAT,
            "steps": STEPS,
            "notion": STRING,
            "replacements": [None, (OTHER.X[:3], OTHER.y[:3]), "x"],
        },
    ),
    "seed_stability": (
        stabtheory.seed_stability,
        {"X": DS.X, "y": DS.y, "X_test": TEST.X, "y_test": TEST.y, "seeds": 3, "steps": 5},
        {
            "seeds": INT,
            "init_scale": [NAN, INF, -1.0, "1", None],
            "lr": FLOAT,
            "steps": INT,
            "heads_per_run": INT,
            "dtype": DTYPE,
            "loss": STRING,
        },
    ),
    "check_bound": (
        lambda **k: stabtheory.check_bound("head.C1", **k),
        {"X": DS.X, "y": DS.y, "lr": 0.1, "steps": 5},
        {
            "lr": FLOAT,
            "steps": STEPS,
            "heads_per_run": INT,
            "dtype": DTYPE,
            "init": INIT,
            "loss": STRING,
            "notion": ["nonsense", 3],
            "optimizer": STRING[:1],
        },
    ),
    "check_bound_ft": (
        lambda **k: stabtheory.check_bound("ft.FT2", **k),
        {"X": DS.X, "y": DS.y, "model": FT_MODEL, "params": FT_W0, "steps": [1, 5]},
        {
            "lr": [NAN, -1.0, 0.0, "0.1"],
            "steps": [-1, [5, 1], 2.5, "10"],
            "lam": [NAN, -1.0, "0.1"],
            "model": [lambda w, x: (w @ x)[None], lambda w, x: w[:2] @ x[:2] + w @ x[:1]],
        },
    ),
    "max_margin": (
        stabtheory.max_margin,
        {"X": DS.X, "y": DS.y},
        {"tol": FLOAT, "max_iter": INT[:-2], "active_tol": FLOAT[:-2]},
    ),
    "loo_max_margin": (
        stabtheory.loo_max_margin,
        {"X": DS.X, "y": DS.y},
        {"tol": FLOAT, "result": [stabtheory.max_margin(OTHER.X, OTHER.y), "x"]},
    ),
    "planted_margin": (
        data.planted_margin,
        {"n": 8, "d": 3, "margin": 0.3},
        {
            "n": INT,
            "d": INT,
            "margin": [*FLOAT, 1.5],
            "radius": FLOAT,
            "n_support": [*INT[:-2], 50],
            "gap": FLOAT[:-3],
            "seed": [-1, 2.5, "3", None],
        },
    ),
    "separable_band": (
        data.separable_band,
        {"n": 8, "d": 3, "margin": 0.2},
        {"n": INT, "d": INT, "margin": [*FLOAT, 1.5], "radius": FLOAT, "seed": [-1, 2.5]},
    ),
    "separable_gaussian": (
        data.separable_gaussian,
        {"n": 8, "d": 3},
        {"n": INT, "d": INT, "separation": FLOAT, "radius": FLOAT[:-2], "seed": [-1, 2.5]},
    ),
    "add_bias": (
        data.add_bias,
        {"X": DS.X},
        {"value": [NAN, INF, "1", None], "X": [np.ones(3), "x"]},
    ),
    "validate": (
        data.validate,
        {"X": DS.X, "y": DS.y},
        {"X": [np.full((8, 3), NAN), np.ones(8), "x", None], "y": [np.ones(7), np.arange(8), None]},
    ),
    "audit": (
        audit,
        {"X": DS.X, "y": DS.y, "steps": 5},
        {"lr": FLOAT, "steps": INT, "loss": STRING, "bias": ["yes", None]},
    ),
}


def _finite(x) -> bool:
    a = np.asarray(x, dtype=float)
    return bool(np.all(np.isfinite(a)))


def _correct(result) -> bool:
    """A result that may stand: finite numbers where it reports values; a bound check never
    reports a violation for an input that was outside the theorem's range."""
    if isinstance(result, BoundCheck):  # a diverged run: not applicable, and it says why
        diverged = any(a.name == "finite weights" and not a.holds for a in result.assumptions)
        return result.violations == 0 and (_finite(result.empirical) or diverged)
    for name in ("per_sample", "accuracy", "margin", "w", "X"):
        value = getattr(result, name, None)
        if value is not None and not _finite(value):
            return False
    if isinstance(result, tuple):
        return all(_finite(r) for r in result if isinstance(r, np.ndarray))
    return True


def outcome(function: str, argument: str, value) -> str:
    """``clear`` (a stabtheory error naming the argument), ``correct`` (a correct result) or
    ``bad: ...`` (anything else)."""
    fn, kwargs, _ = CASES[function]
    kwargs = {**kwargs, argument: value}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)  # said; the result is judged
            result = fn(**kwargs)
    except StabtheoryError as err:
        text = str(err)
        if argument in text and "\n" not in text.strip():
            return "clear"
        return f"bad: error does not name {argument!r} in one line: {text!r}"
    except Exception as err:
        return f"bad: {type(err).__name__}: {str(err)[:160]}"
    return "correct" if _correct(result) else f"bad: wrong result {result!r}"[:200]


CATALOGUE = [
    (function, argument, value)
    for function, (_, _, bad) in CASES.items()
    for argument, values in bad.items()
    for value in values
]


def test_every_bad_argument_gives_a_clear_error_or_a_correct_result(capsys):
    results = {(f, a, repr(v)[:40]): outcome(f, a, v) for f, a, v in CATALOGUE}
    counts = Counter(r.split(":")[0] for r in results.values())
    with capsys.disabled():
        print(
            f"\nbad inputs tried: {len(results)}; clear error: {counts['clear']}; "
            f"correct result: {counts['correct']}; other: {counts['bad']}"
        )
    failures = {k: r for k, r in results.items() if r.startswith("bad")}
    assert not failures, "\n".join(f"{k}: {r}" for k, r in failures.items())


NUMERIC = [
    (function, argument)
    for function, (_, kwargs, bad) in CASES.items()
    for argument in bad
    if argument not in ("X", "y", "init", "dtype", "result", "replacements", "bias")
    and not any(isinstance(v, str) and v == "nonsense" for v in bad[argument])
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(NUMERIC),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**6), 10**6),
        st.text(max_size=3),
        st.none(),
    ),
)
def test_random_bad_numbers(case, value):
    function, argument = case
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > 50:
        value = math.copysign(50, value) if argument in ("n", "d", "seeds", "steps") else value
    result = outcome(function, argument, value)
    assert not result.startswith("bad"), (function, argument, value, result)


@pytest.mark.parametrize("function", sorted(CASES))
def test_the_valid_call_works(function):
    fn, kwargs, _ = CASES[function]
    assert _correct(fn(**kwargs))
