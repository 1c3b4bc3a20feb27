r"""The :class:`Method` interface of a stabilizing method or baseline, and the registry of methods.

A method is an object: its settings of the shared fine-tuning loop
(:meth:`Method.settings`), and for a stabilizer the claim it is tested on, its mechanism measure
(:meth:`Method.seed_measures`, :meth:`Method.measure`, :meth:`Method.mechanism`) and the panel
of its figure (:meth:`Method.draw`). :data:`METHODS` holds the registered methods in order; the
stabilizer study runs them and loops over their hooks, so adding a method is one file (a
subclass) and one :func:`register_method` call.

Example:
  >>> import dataclasses
  >>> @dataclasses.dataclass(frozen=True)
  ... class Dropout0(Method):
  ...     name: str = "dropout0"
  ...
  ...     def settings(self, base):
  ...         return dataclasses.replace(base, name=self.name, dropout=0.0)
  >>> register_method(Dropout0()).name in METHODS
  True
  >>> unregister_method("dropout0").name
  'dropout0'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "METHODS",
    "Comparison",
    "Mechanism",
    "Method",
    "get_method",
    "register_method",
    "unregister_method",
]


@dataclasses.dataclass(frozen=True)
class Mechanism:
    """What a method's mechanism measure says on one testbed: the method against the reference.

    Attributes:
      estimate: the statistic (e.g. a difference or a ratio of means, method vs reference).
      ci: its interval.
      null: the statistic's value when the method changes nothing (0 for a difference, 1 for
        a ratio).
      predicted: the side the claim predicts, +1 (above ``null``) or -1 (below).
      text: the statistic, its interval and the measured values, in words.
      values: ``[reference, method]``: the measure's values that the figure and the regime's
        ``parameter_values`` show.
    """

    estimate: float
    ci: tuple[float, float]
    null: float
    predicted: int
    text: str
    values: list[float]

    @property
    def verdict(self) -> str:
        """``"as predicted"`` or ``"opposite"`` when the interval excludes ``null`` on that
        side, ``"no detectable change"`` otherwise (or when the interval is not finite)."""
        lo, hi = self.ci
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return "no detectable change"
        if lo > self.null:
            return "as predicted" if self.predicted > 0 else "opposite"
        if hi < self.null:
            return "as predicted" if self.predicted < 0 else "opposite"
        return "no detectable change"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What a method's :meth:`~Method.mechanism` and :meth:`~Method.draw` see of one testbed.

    Attributes:
      per_seed: method name -> per-seed measure name -> (S,) values (the built-in measures
        and every :meth:`Method.seed_measures`).
      measured: the method's own :meth:`Method.measure` on the testbed (empty if none).
      reference: the name of the method every other one is compared with.
      methods: the names of the methods the study ran, in order.
      testbed: the testbed's name.
      n_boot, level: bootstrap resamples and interval level.
    """

    per_seed: Mapping[str, Mapping[str, np.ndarray]]
    measured: Mapping
    reference: str
    methods: tuple[str, ...]
    testbed: str
    n_boot: int
    level: float

    def values(self, method: str, measure: str) -> np.ndarray:
        """The per-seed ``measure`` of ``method``."""
        return self.per_seed[method][measure]

    def against_reference(
        self, method: str, measure: str, statistic: Callable, *, seed: int
    ) -> tuple[np.ndarray, np.ndarray, float, tuple]:
        """``(a, b, estimate, ci)``: the per-seed ``measure`` of ``method`` (a) and of the
        reference (b), and ``statistic(a, b)`` (e.g.
        :func:`~stabtheory.statistics.mean_difference`) with its bootstrap interval, drawn
        with ``seed`` and this comparison's ``n_boot`` and ``level``."""
        a = self.values(method, measure)
        b = self.values(self.reference, measure)
        est, ci = statistic(a, b, seed=seed, n_boot=self.n_boot, level=self.level)
        return a, b, est, ci


@dataclasses.dataclass(frozen=True)
class Method:
    r"""A fine-tuning method: its settings of the shared loop and, for a stabilizer, its claim,
    mechanism measure and figure panel.

    The base class changes nothing (plain fine-tuning); a subclass is a frozen dataclass whose
    fields are the method's own parameters and overrides the hooks it needs. Only the loop
    settings matter to :func:`stabtheory.stabilizers.finetune_seeds`; a method with a
    ``claim`` also implements :meth:`mechanism` and :meth:`draw` (the stabilizer study judges
    the claim and draws the figure ``stabilizers_<name>.png``).

    Attributes:
      name: the method's label: its key in :data:`METHODS`, the name of its settings, rows,
        claim and figure.
      claim: the claim "X raises <mechanism> and stability" the study tests it on; empty for
        a baseline.
    """

    name: str
    claim: ClassVar[str] = ""

    def settings(self, base: Any) -> Any:
        """The loop settings of this method from the plain ones
        (:class:`stabtheory.stabilizers.Settings` in, :class:`~stabtheory.stabilizers.Settings`
        out; the result is named after the method)."""
        return dataclasses.replace(base, name=self.name)

    def quick(self) -> Method:
        """A smaller version for quick runs (the method itself unless it has costly parts)."""
        return self

    def seed_measures(self, runs: Any, testbed: Any) -> dict[str, np.ndarray]:
        """Extra per-seed measures (name -> (S,) values) of the runs of *any* method.

        The study measures every method's :class:`~stabtheory.stabilizers.SeedRuns` with the
        hooks of every method it runs, so :meth:`mechanism` and :meth:`draw` can compare them;
        the built-in measures (``feature_margin``, ``weight_distance``,
        ``head_direction_error``) are always there.
        """
        return {}

    def measure(
        self, testbed: Any, reference: Any, *, seed: int, n_boot: int, level: float
    ) -> dict:
        """Testbed-level mechanism data (a JSON-able dict), from the reference (plain) runs.

        Args:
          testbed: the :class:`stabtheory.full_finetuning.Testbed`.
          reference: the reference method's :class:`~stabtheory.stabilizers.SeedRuns`.
          seed: the study's first seed; n_boot, level: its bootstrap settings.
        """
        return {}

    def mechanism(self, c: Comparison) -> Mechanism:
        """The mechanism statistic of this method against ``c.reference`` on one testbed."""
        raise NotImplementedError(f"method {self.name!r} has a claim but no mechanism.")

    def draw(self, ax: Any, c: Comparison, rng: np.random.Generator) -> None:
        """Draw the mechanism's panel of one testbed on the matplotlib axes ``ax`` (``rng``:
        the figure's generator, for the jitter of strip plots)."""
        raise NotImplementedError(f"method {self.name!r} has a claim but no figure panel.")


#: The registered methods, by name, in registration order.
METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` under ``method.name``; return it.

    Raises:
      TypeError: ``method`` is not a :class:`Method`.
      ValueError: a method of that name is registered already.
    """
    if not isinstance(method, Method):
        raise TypeError(f"register_method takes a Method instance, got {type(method).__name__}.")
    if method.name in METHODS:
        raise ValueError(f"a method named {method.name!r} is registered already.")
    METHODS[method.name] = method
    return method


def unregister_method(name: str) -> Method:
    """Remove the method ``name`` from :data:`METHODS`; return it."""
    return METHODS.pop(get_method(name).name)


def get_method(name: str) -> Method:
    """The registered method ``name``.

    Raises:
      ValueError: no method of that name is registered.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; registered: {list(METHODS)}.") from None
