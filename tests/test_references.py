"""Every dotted ``stabtheory.x.y`` name that the README, docs/, the notebooks and the benchmarks
mention exists: a renamed module or function cannot leave a stale reference behind."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOTTED = re.compile(r"\bstabtheory(?:\.[A-Za-z_][A-Za-z_0-9]*)+")


def _texts() -> dict[str, str]:
    out = {"README.md": (ROOT / "README.md").read_text(encoding="utf-8")}
    for path in sorted((ROOT / "docs").rglob("*.md")) + sorted((ROOT / "benchmarks").glob("*")):
        if path.is_file() and path.suffix in (".md", ".py", ".sh"):
            out[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        out[str(path.relative_to(ROOT))] = "\n".join("".join(c["source"]) for c in cells)
    return out


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for attr in parts[k:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


REFERENCES = sorted({(name, m) for name, text in _texts().items() for m in DOTTED.findall(text)})


@pytest.mark.parametrize("where,dotted", REFERENCES, ids=[f"{w}:{d}" for w, d in REFERENCES])
def test_dotted_reference_exists(where, dotted):
    assert _resolves(dotted.rstrip(".")), f"{where} mentions {dotted}, which does not exist"
