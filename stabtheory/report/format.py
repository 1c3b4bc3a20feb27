"""Number formatting and JSON conversion shared by the report and the studies' report hooks."""

from __future__ import annotations

import math

import numpy as np

from stabtheory.bounds import REGISTRY

__all__ = ["check_rows", "failures", "fmt", "jsonable"]


def jsonable(x):
    """``x`` with every value JSON can hold: dict keys as strings, tuples and arrays as lists,
    numpy scalars as Python numbers, and non-finite floats as ``None``.

    Example:
      >>> jsonable({1: (np.float64(0.5), float("nan"), np.arange(2), np.bool_(True))})
      {'1': [0.5, None, [0, 1], True]}
    """
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def fmt(x, digits: int = 3) -> str:
    """A number for a markdown table: floats with ``digits`` significant digits, ``None`` as
    ``n/a``.

    Example:
      >>> fmt(0.123456), fmt(None), fmt(7)
      ('0.123', 'n/a', '7')
    """
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _failed(a: dict, check: dict) -> str:
    text = f"{a['name']} (worst {fmt(a['value'])} {a['relation']} {fmt(a['threshold'])} fails"
    if a["pointwise"]:
        at = check["steps_applicable"]
        text += f"; applies at t in {at}" if at else "; at every checkpoint"
    return text + ")"


def failures(check: dict) -> str:
    """The failed assumptions of a check row of ``report.json``, in words (``none``)."""
    return "; ".join(_failed(a, check) for a in check["assumptions"] if not a["holds"]) or "none"


def check_rows(report: dict, evidence: type, *, study: str | None = None) -> list[dict]:
    """The check rows of ``report.json`` whose theorem takes evidence of class ``evidence``
    (e.g. :class:`~stabtheory.bounds.HeadEvidence`) and whose configuration's ``"study"`` tag
    is ``study`` (``None``: rows without a tag, the head and fine-tuning studies'; a study
    that checks the same theorems elsewhere, such as ``attention-theory``, tags its rows), in
    report order."""
    ours = {th.id for th in REGISTRY.values() if issubclass(th.evidence, evidence)}
    return [
        c
        for c in report["checks"]
        if c["theorem"] in ours and c.get("config", {}).get("study") == study
    ]
