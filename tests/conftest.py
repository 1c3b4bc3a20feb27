"""Test configuration: float64 JAX, a PRNG-key fixture and the hypothesis profiles.

Importing stabtheory enables ``jax_enable_x64``. Hypothesis runs a modest number of
examples by default so that the whole suite stays fast on two cores; set
``HYPOTHESIS_PROFILE=thorough`` for a longer search.
"""

from __future__ import annotations

import gc
import os
import sys

import jax
import pytest
from hypothesis import HealthCheck, settings

import stabtheory  # noqa: F401  (enables float64 in JAX)

# Make ``import helpers`` work however pytest imports the test modules.
sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "default",
    deadline=None,
    max_examples=15,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def key() -> jax.Array:
    """A fixed JAX PRNG key (new-style typed key)."""
    return jax.random.key(0)


@pytest.fixture(autouse=True, scope="session")
def _float64_enabled():
    """Every test runs with float64 enabled in JAX (theory checks are float64)."""
    assert jax.config.jax_enable_x64, "stabtheory must enable jax_enable_x64 on import"
    yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free each test module's compiled programs when it ends. Every XLA CPU executable holds
    memory mappings, and one pytest process over the whole suite otherwise passes the kernel's
    ``vm.max_map_count`` (65530 here): compilation then crashes (a segfault, seen in CI at
    about 60% of the suite; one bad-input test alone adds about 1,000 mappings)."""
    yield
    jax.clear_caches()
    gc.collect()
