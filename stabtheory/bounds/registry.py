"""The theorem registry: register a :class:`Theorem` once, and studies ask which ones apply.

Registration order is check order: :func:`check_all` returns the checks of every applicable
theorem, notion after notion, in the order the theorems were registered.

Example:
  >>> from stabtheory.bounds import REGISTRY
  >>> list(REGISTRY)[:3]
  ['head.svm_loo', 'head.H1', 'head.H2']
"""

from __future__ import annotations

from stabtheory.bounds.theorem import BoundCheck, Theorem
from stabtheory.errors import UnknownTheoremError

__all__ = ["REGISTRY", "check_all", "get", "register", "theorems_for", "unregister"]

#: Every registered theorem by id, in registration order.
REGISTRY: dict[str, Theorem] = {}


def register(theorem: Theorem) -> Theorem:
    """Add ``theorem`` to :data:`REGISTRY` (after the ones registered before) and return it.

    Raises:
      ValueError: a theorem with the same id is registered already.
    """
    if theorem.id in REGISTRY:
        raise ValueError(f"a theorem with id {theorem.id!r} is registered already.")
    REGISTRY[theorem.id] = theorem
    return theorem


def unregister(theorem_id: str) -> Theorem:
    """Remove the theorem with this id from :data:`REGISTRY` and return it."""
    theorem = get(theorem_id)
    del REGISTRY[theorem_id]
    return theorem


def get(theorem_id: str) -> Theorem:
    """The theorem with this id; raises :class:`UnknownTheoremError` listing the known ids."""
    try:
        return REGISTRY[theorem_id]
    except KeyError:
        raise UnknownTheoremError(
            f"unknown theorem id {theorem_id!r}; known ids: {sorted(REGISTRY)}."
        ) from None


def theorems_for(evidence, *, trained_only: bool = False) -> tuple[Theorem, ...]:
    """The registered theorems that apply to ``evidence`` (:meth:`Theorem.applies_to`), in
    registration order.

    ``trained_only``: leave out the theorems that depend on the data alone
    (``depends_on_training`` false), e.g. when they were checked on another run of the same
    data."""
    return tuple(
        th
        for th in REGISTRY.values()
        if th.applies_to(evidence) and (th.depends_on_training or not trained_only)
    )


def check_all(evidence, *, trained_only: bool = False) -> list[BoundCheck]:
    """Every applicable theorem checked on ``evidence``, one check per notion that the
    evidence measures (:meth:`Theorem.notions_for`), in registration order (``trained_only``
    as in :func:`theorems_for`)."""
    return [
        th.check(evidence, notion)
        for th in theorems_for(evidence, trained_only=trained_only)
        for notion in th.notions_for(evidence)
    ]
