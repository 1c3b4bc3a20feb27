"""The study registry: :data:`STUDIES` and :func:`register_study` (one call per study).

Each study registers itself in its own package; :mod:`stabtheory.simulations` imports the
built-in study packages, so importing it fills the registry. The CLI and the report loop over
:data:`STUDIES` and import no study by name.
"""

from __future__ import annotations

from stabtheory.simulations.protocol import StudyProtocol

__all__ = ["STUDIES", "register_study"]

#: name -> study, in registration order (the order of ``--help``, the report and its sections).
STUDIES: dict[str, StudyProtocol] = {}


def register_study(study: StudyProtocol) -> StudyProtocol:
    """Add ``study`` to :data:`STUDIES` under ``study.name``; return it.

    Raises:
      TypeError: ``study`` is not a :class:`~stabtheory.simulations.protocol.StudyProtocol`
        with a ``name``, a ``description`` and a ``spec_type`` that has ``quick()``.
      ValueError: a study of that name is already registered.
    """
    if not isinstance(study, StudyProtocol):
        raise TypeError(
            f"register_study takes a StudyProtocol instance, got {type(study).__name__}; "
            "subclass stabtheory.simulations.StudyProtocol and register an instance."
        )
    missing = [a for a in ("name", "description", "spec_type") if not getattr(study, a, None)]
    if missing or not callable(getattr(study.spec_type, "quick", None)):
        raise TypeError(
            f"{type(study).__name__} needs the class attributes name, description and "
            f"spec_type (a spec class with a quick() classmethod); missing: {missing or 'quick'}."
        )
    if study.name in STUDIES:
        raise ValueError(
            f"a study named {study.name!r} is already registered ({type(STUDIES[study.name])})."
        )
    STUDIES[study.name] = study
    return study
