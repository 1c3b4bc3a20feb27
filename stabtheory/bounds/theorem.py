"""The theorem type, an assumption as measured, and the result of checking a bound.

A :class:`Theorem` holds its bound as a sympy expression (the single source of its LaTeX, its
JAX function and its derivative signs) with the evidence it is checked on and its check;
:class:`BoundCheck` is the per-sample, per-checkpoint result.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from stabtheory.errors import InvalidArgumentError

__all__ = [
    "Assumption",
    "BoundCheck",
    "Theorem",
    "all_hold",
    "merge_assumptions",
    "merge_draws",
    "tolerance",
]

# Absolute + relative tolerance with which "empirical <= bound" is judged, by dtype. Float64
# GD trajectories carry rounding errors far below 1e-9; float32 ones need 1e-4.
_TOLERANCE = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}


def tolerance(dtype) -> float:
    """The numerical tolerance for ``empirical <= bound`` checks in ``dtype``.

    Example:
      >>> tolerance(np.float64)
      1e-09
    """
    return _TOLERANCE[np.dtype(dtype)]


@dataclasses.dataclass(frozen=True)
class Assumption:
    """One assumption of a theorem, as measured on the data and the run.

    Attributes:
      name: short id, e.g. ``"eta R^2 <= 1"``.
      description: what the assumption says and why the theorem needs it.
      value: the measured quantity (the worst case over samples and checkpoints).
      threshold: the threshold it is compared with.
      relation: ``"<="``, ``"<"``, ``">="``, ``">"`` or ``"=="`` (value relation threshold).
      holds: whether it holds.
      pointwise: ``True`` when it is a condition per checkpoint (e.g. on t); a pointwise
        assumption that fails at some checkpoints only restricts the checkpoints at which the
        theorem applies.
    """

    name: str
    description: str
    value: float
    threshold: float
    relation: str
    holds: bool
    pointwise: bool = False

    @classmethod
    def measure(
        cls, name: str, description: str, value, relation: str, threshold, *, pointwise=False
    ) -> Assumption:
        value, threshold = float(value), float(threshold)
        ops: dict[str, Callable[[float, float], bool]] = {
            "<=": lambda a, b: a <= b,
            "<": lambda a, b: a < b,
            ">=": lambda a, b: a >= b,
            ">": lambda a, b: a > b,
            "==": lambda a, b: a == b,
        }
        return cls(
            name,
            description,
            value,
            threshold,
            relation,
            ops[relation](value, threshold),
            pointwise,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Theorem:
    """A bound as a sympy expression, with what it is checked on and how.

    Attributes:
      id: registry id, e.g. ``"head.H1"``.
      title: one line.
      expression: the bound, a sympy expression in ``symbols``.
      symbols: the free symbols, in the order :meth:`evaluate` takes them.
      notions: the stability notions it bounds, spelled as :attr:`BoundCheck.notion` (e.g.
        ``("loo.direction",)``); the first is the default of :meth:`check`.
      assumptions: the assumptions in words (the checks are made by ``checker``).
      reference: where it comes from (docs/theory.md section, paper and theorem number).
      evidence: the evidence class it is checked on (e.g.
        :class:`~stabtheory.bounds.head.HeadEvidence`). An evidence class has an
        ``optimizer`` attribute (the runs' training algorithm), ``measures(notion) -> bool``
        (whether it holds that notion's empirical values) and a classmethod
        ``for_check(X, y, **arguments)`` that builds it from
        :func:`~stabtheory.bounds.check_bound`'s arguments.
      checker: ``checker(evidence, notion) -> BoundCheck``, the check of one notion.
      optimizers: the training algorithms it is stated for (``None``: any); the first is the
        one :func:`~stabtheory.bounds.check_bound` trains by default.
      converged: a statement about converged or exact solutions (one point, no checkpoints).
      needs_separable: ``True`` when it is stated for data separable through the origin; it
        does not apply to evidence whose ``separable`` attribute is false (e.g. a
        :class:`~stabtheory.bounds.head.HeadEvidence` built with
        ``require_separable=False`` on non-separable data).
      depends_on_training: ``False`` when the check does not use the runs (only the data), so a
        study checks it once per data set.
      facts: ``facts() -> dict``, symbolic facts the report prints (e.g. derivative signs).
      rigorous: whether exceeding it is a violation (all bounds here are).
      definitions: auxiliary symbols and their definitions, rendered by :meth:`latex`.
    """

    id: str
    title: str
    expression: sp.Expr
    symbols: tuple[sp.Symbol, ...]
    notions: tuple[str, ...]
    assumptions: tuple[str, ...]
    reference: str
    evidence: type
    checker: Callable[[Any, str], BoundCheck]
    optimizers: tuple[str, ...] | None = None
    converged: bool = False
    depends_on_training: bool = True
    needs_separable: bool = False
    facts: Callable[[], dict] = dict
    rigorous: bool = True
    definitions: tuple[tuple[sp.Symbol, sp.Expr], ...] = ()

    def latex(self) -> str:
        """LaTeX of the bound (and of the auxiliary definitions it uses)."""
        main = sp.latex(self.expression)
        defs = ", ".join(f"{sp.latex(s)} = {sp.latex(e)}" for s, e in self.definitions)
        return f"{main} \\quad\\text{{where }} {defs}" if defs else main

    @functools.cached_property
    def _jax_fn(self) -> Callable:
        # jitted: one compiled program per argument shape, not one per operation
        return jax.jit(sp.lambdify(self.symbols, self.expression, modules="jax"))

    def evaluate(self, *args, **kwargs):
        """Evaluate the bound with JAX (broadcasting); arguments by position or symbol name.

        Example:
          >>> from stabtheory.bounds import get
          >>> float(get("head.C1").evaluate(eta=0.5, t=10, L=1.0, n=100))
          0.1
        """
        if kwargs:
            names = [s.name for s in self.symbols]
            unknown = set(kwargs) - set(names)
            if unknown:
                raise TypeError(
                    f"{self.id}.evaluate got unknown arguments {sorted(unknown)}; it takes {names}."
                )
            args = tuple(args) + tuple(kwargs[n] for n in names[len(args) :])
        if len(args) != len(self.symbols):
            raise TypeError(f"{self.id}.evaluate takes {[s.name for s in self.symbols]}.")
        return self._jax_fn(*(jnp.asarray(a, dtype=jnp.float64) for a in args))

    def notion(self, notion: str | None = None) -> str:
        """``notion`` if the theorem bounds it, the default notion for ``None``; raises
        :class:`~stabtheory.errors.InvalidArgumentError` (a ``ValueError``) naming the notions
        it bounds otherwise."""
        if notion is None:
            return self.notions[0]
        if notion not in self.notions:
            raise InvalidArgumentError(
                f"notion: {self.id} bounds the {' and '.join(self.notions)} notion"
                f"{'s' if len(self.notions) > 1 else ''}, not {notion!r}."
            )
        return notion

    def check(self, evidence, notion: str | None = None) -> BoundCheck:
        """The check of one notion (default: the first) on ``evidence``."""
        return self.checker(evidence, self.notion(notion))

    def notions_for(self, evidence) -> tuple[str, ...]:
        """The notions it bounds that ``evidence`` measures (its ``measures(notion)``)."""
        return tuple(n for n in self.notions if evidence.measures(n))

    def applies_to(self, evidence) -> bool:
        """Whether ``evidence`` is of the theorem's kind, from an optimizer it is stated for
        (the evidence's ``optimizer`` attribute) and, for a theorem that
        :attr:`needs_separable`, on separable data (the evidence's ``separable``)."""
        if not isinstance(evidence, self.evidence):
            return False
        if self.needs_separable and not getattr(evidence, "separable", True):
            return False
        return self.optimizers is None or evidence.optimizer in self.optimizers

    def derivative_sign(self, symbol: str | sp.Symbol, via: dict | None = None) -> int | None:
        """The sign of d(bound)/d(symbol) that follows from the symbols' assumptions.

        Returns +1, -1, or ``None`` when sympy cannot decide it from the assumptions alone.
        ``via`` optionally maps a symbol of the expression to an expression of new symbols
        (e.g. ``Psi`` to its definition in ``t``), applying the chain rule.
        """
        sym = next(s for s in self.expression.free_symbols | _free(via) if s.name == str(symbol))
        expr = self.expression
        if via:
            expr = expr.subs(via)
        derivative = sp.simplify(sp.diff(expr, sym))
        if derivative.is_positive:
            return 1
        if derivative.is_negative:
            return -1
        return None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "latex": self.latex(),
            "notions": list(self.notions),
            "assumptions": list(self.assumptions),
            "reference": self.reference,
        }


def _free(via: dict | None) -> set:
    if not via:
        return set()
    return set().union(*(sp.sympify(e).free_symbols for e in via.values()))


@dataclasses.dataclass(frozen=True)
class BoundCheck:
    """The result of checking a theorem against simulations, per sample and checkpoint.

    Attributes:
      theorem: the theorem id.
      notion: the stability notion compared (e.g. ``"loo.direction"``).
      steps: checkpoint steps, (C,).
      bound: per-sample bound, (C, n); NaN where the theorem does not apply. When the check
        was asked for one step count (an int), the checkpoint axis is dropped: (n,).
      empirical: per-sample empirical stability, same shape as ``bound``.
      applicable_at: (C,) whether every assumption holds at that checkpoint.
      applicable: the theorem applies at one checkpoint at least.
      assumptions: the :class:`Assumption` checks.
      tol: tolerance of the comparison.
      config: the configuration (loss, lr, n, ...).
      entries: optional (C, n) mask of the entries the check covers within its applicable
        checkpoints (set by :func:`merge_draws`, where each draw's samples have their own
        applicable checkpoints); ``None``: every entry of an applicable checkpoint.
      trivial: the trivial bound of the notion, which holds whatever the algorithm does
        (docs/theory.md section 6): 2 for a distance between unit vectors, gamma + R for a
        margin gap; a scalar or an array broadcastable to ``bound``; ``None`` where the notion
        has no trivial bound (raw weights, unbounded losses).
    """

    theorem: str
    notion: str
    steps: np.ndarray
    bound: np.ndarray
    empirical: np.ndarray
    applicable_at: np.ndarray
    assumptions: tuple[Assumption, ...]
    tol: float
    config: dict
    entries: np.ndarray | None = None
    trivial: float | np.ndarray | None = None

    @property
    def applicable(self) -> bool:
        return bool(np.any(self.applicable_at))

    def __repr__(self) -> str:
        """One line in words: whether it applies, holds, how vacuous, bound against measured.

        Example:
          >>> chk = BoundCheck("x", "loo.weights", np.array([1]), np.array([[2.0, 4.0]]),
          ...                  np.array([[1.0, 1.0]]), np.array([True]), (), 1e-9, {},
          ...                  trivial=3.0)
          >>> r = repr(chk)
          >>> r.startswith("BoundCheck(x on loo.weights: holds (0 violations)"), r[-18:]
          (True, 'vacuous share 0.5)')
        """
        if not self.applicable:
            failed = [a.name for a in self.assumptions if not a.holds]
            why = f"; failed assumptions: {', '.join(failed)}" if failed else ""
            return f"BoundCheck({self.theorem} on {self.notion}: not applicable{why})"
        bound, empirical = self.as_2d()
        mask = self.entry_mask
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = float(np.mean(bound[mask]) / np.mean(empirical[mask]))
        word = "holds" if self.holds else "VIOLATED"
        share = self.vacuous_share
        vacuous = "no trivial bound" if share is None else f"vacuous share {share:.3g}"
        return (
            f"BoundCheck({self.theorem} on {self.notion}: {word} ({self.violations} "
            f"violations), bound/empirical mean {ratio:.3g}, {vacuous})"
        )

    @property
    def entry_mask(self) -> np.ndarray:
        """(C, n): the entries at which the theorem applies and is compared."""
        bound = self.as_2d()[0]
        mask = np.broadcast_to(np.asarray(self.applicable_at, bool)[:, None], bound.shape)
        return mask if self.entries is None else mask & np.asarray(self.entries, bool)

    @property
    def violation_mask(self) -> np.ndarray:
        """(C, n): applicable entries where empirical > bound + tol * max(1, bound)."""
        bound, empirical = self.as_2d()
        slack = self.tol * np.maximum(1.0, np.abs(np.nan_to_num(bound)))
        over = ~(empirical <= bound + slack)  # NaN counts as a violation
        return (over & self.entry_mask).reshape(np.shape(self.bound))

    def as_2d(self) -> tuple[np.ndarray, np.ndarray]:
        """``(bound, empirical)`` with the checkpoint axis, (C, n)."""
        return np.atleast_2d(self.bound), np.atleast_2d(self.empirical)

    @property
    def violations(self) -> int:
        return int(self.violation_mask.sum())

    @property
    def holds(self) -> bool | None:
        """``True``/``False`` when applicable; ``None`` when the theorem does not apply."""
        return (self.violations == 0) if self.applicable else None

    @property
    def vacuous_mask(self) -> np.ndarray | None:
        """(C, n): compared entries whose bound is at least the trivial bound (a pass there
        says nothing); ``None`` when the notion has no trivial bound."""
        if self.trivial is None:
            return None
        bound = self.as_2d()[0]
        trivial = np.broadcast_to(np.atleast_2d(self.trivial), bound.shape)
        with np.errstate(invalid="ignore"):
            return (bound >= trivial) & self.entry_mask

    @property
    def vacuous_share(self) -> float | None:
        """Share of the compared entries whose bound is at least the trivial bound; ``None``
        when the notion has no trivial bound or the theorem applies nowhere."""
        mask = self.vacuous_mask
        if mask is None or not self.entry_mask.any():
            return None
        return float(mask.sum() / self.entry_mask.sum())

    def assumption_table(self) -> str:
        """The assumptions as a Markdown table: each one's measured value, relation,
        threshold, whether it holds and whether it is a per-checkpoint condition.

        Example:
          >>> a = Assumption.measure("eta R^2 <= 1", "step size", 0.5, "<=", 1.0)
          >>> chk = BoundCheck("head.H2", "loo.direction", np.array([1]), np.ones((1, 2)),
          ...                  np.zeros((1, 2)), np.array([True]), (a,), 1e-9, {})
          >>> print(chk.assumption_table().splitlines()[-1])
          | eta R^2 <= 1 | 0.5 | <= | 1 | yes |  |
        """
        lines = [
            f"**{self.theorem}** on {self.notion}: applicable {self.applicable}, "
            f"holds {self.holds}",
            "",
            "| assumption | measured value | relation | threshold | holds | per checkpoint |",
            "|---|---|---|---|---|---|",
        ]
        for a in self.assumptions:
            name = a.name.replace("|", r"\|")  # a bare | would end the Markdown cell
            lines.append(
                f"| {name} | {a.value:.4g} | {a.relation} | {a.threshold:g} | "
                f"{'yes' if a.holds else '**no**'} | {'yes' if a.pointwise else ''} |"
            )
        return "\n".join(lines)

    def summary(self) -> dict:
        """One row of ``report.json``'s ``checks``."""
        mask = self.applicable_at
        bound, empirical = self.as_2d()
        b, e = bound[self.entry_mask], empirical[self.entry_mask]

        def stat(f, a):
            return float(f(a)) if a.size else None

        return {
            "theorem": self.theorem,
            "config": self.config,
            "notion": self.notion,
            "applicable": self.applicable,
            "steps": [int(s) for s in self.steps],
            "steps_applicable": [int(s) for s in self.steps[mask]],
            "empirical_mean": stat(np.mean, e),
            "bound_mean": stat(np.mean, b),
            "empirical_max": stat(np.max, e),
            "bound_max": stat(np.max, b),
            "ratio_mean": stat(np.mean, b) / stat(np.mean, e)
            if e.size and np.mean(e) > 0
            else None,
            "violations": self.violations,
            "trivial_bound": _trivial_summary(self.trivial),
            "vacuous_share": self.vacuous_share,
            "holds": self.holds,
            "assumptions": [a.to_dict() for a in self.assumptions],
        }


def _trivial_summary(trivial) -> float | None:
    """The trivial bound for the report: the scalar, or the largest entry of an array."""
    if trivial is None:
        return None
    return float(np.max(trivial))


def all_hold(assumptions: Sequence[Assumption]) -> bool:
    return all(a.holds for a in assumptions if not a.pointwise)


def _slack(a: Assumption) -> float:
    """How far a measured assumption is from failing (negative: it fails)."""
    if a.relation in ("<=", "<"):
        return a.threshold - a.value
    if a.relation in (">=", ">"):
        return a.value - a.threshold
    return 0.0 if a.holds else -1.0


def merge_assumptions(per_draw: Sequence[Sequence[Assumption]]) -> tuple[Assumption, ...]:
    """One assumption per name over several draws: the draw where it is closest to failing
    (a failing one first), with ``holds`` true only when it holds in every draw."""
    names: dict[str, list[Assumption]] = {}
    for assumptions in per_draw:
        for a in assumptions:
            names.setdefault(a.name, []).append(a)
    merged = []
    for group in names.values():
        failing = [a for a in group if not a.holds]
        worst = min(failing or group, key=_slack)
        merged.append(dataclasses.replace(worst, holds=not failing))
    return tuple(merged)


def merge_draws(checks: Sequence[BoundCheck], config: dict | None = None) -> BoundCheck:
    """One check over several data draws of the same configuration.

    The per-sample axes are concatenated (draw after draw), so ``bound`` and ``empirical``
    are (C, n * draws); a checkpoint applies when it applies in some draw, and ``entries``
    keeps which (checkpoint, sample) entries belong to a draw where it applies. Assumptions are
    merged by :func:`merge_assumptions`.
    """
    if not checks:
        raise ValueError("merge_draws needs at least one check.")
    first = checks[0]
    if any(c.theorem != first.theorem or c.notion != first.notion for c in checks):
        raise ValueError("merge_draws merges draws of one theorem and notion only.")
    if len(checks) == 1 and config is None:
        return first
    bounds = [c.as_2d()[0] for c in checks]
    emps = [c.as_2d()[1] for c in checks]
    entries = np.concatenate([c.entry_mask for c in checks], axis=1)
    trivials = [c.trivial for c in checks]
    if any(t is None for t in trivials):
        trivial = None
    elif all(np.ndim(t) == 0 for t in trivials) and len({float(t) for t in trivials}) == 1:
        trivial = trivials[0]
    else:
        trivial = np.concatenate(
            [
                np.broadcast_to(np.atleast_2d(t), b.shape)
                for t, b in zip(trivials, bounds, strict=True)
            ],
            axis=1,
        )
    return dataclasses.replace(
        first,
        bound=np.concatenate(bounds, axis=1),
        empirical=np.concatenate(emps, axis=1),
        applicable_at=np.any([c.applicable_at for c in checks], axis=0),
        assumptions=merge_assumptions([c.assumptions for c in checks]),
        entries=entries,
        trivial=trivial,
        config=first.config if config is None else config,
    )
