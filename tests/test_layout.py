"""The package's layout rules: one concept a file (no file over 600 lines), a one-line summary
at the top of every module, no import cycle between modules (lazy imports included), and no
private name used across modules (tests included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "stabtheory"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
PACKAGES = {name for name, p in MODULES.items() if p.name == "__init__.py"}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if module not in PACKAGES:
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, tree: ast.AST) -> set[str]:
    """The stabtheory modules that importing ``module`` runs, at any depth of its code."""
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            src = _resolve(module, node)
            for a in node.names:
                sub = f"{src}.{a.name}"
                targets.add(sub if sub in MODULES else src)
    out = set()
    own = {module.rsplit(".", k)[0] for k in range(module.count(".") + 1)}
    for t in targets:
        if t not in MODULES:
            continue
        out.add(t)
        # importing a.b.c first runs a.b's __init__ (the root's re-exports aside)
        parts = t.split(".")
        for k in range(2, len(parts)):
            anc = ".".join(parts[:k])
            if anc not in own:
                out.add(anc)
    out.discard(module)
    out.discard("stabtheory")
    return out


def _graph() -> dict[str, set[str]]:
    return {m: _imports(m, ast.parse(p.read_text())) for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_no_import_cycle():
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_one_concept_with_a_summary(name):
    path = MODULES[name]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{path} has over {MAX_LINES} lines"
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.strip().splitlines()[0].strip(), f"{path} needs a one-line docstring"


def _private_uses(path: Path) -> list[str]:
    """``from stabtheory.x import _y`` and ``mod._y`` where ``mod`` is a stabtheory module."""
    tree = ast.parse(path.read_text())
    module = _module_name(path) if path.is_relative_to(PACKAGE) else "tests"
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("stabtheory"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom):
            src = _resolve(module, node) if module != "tests" or not node.level else ""
            if not src.startswith("stabtheory"):
                continue
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"from {src} import {a.name}")
                sub = f"{src}.{a.name}"
                if sub in MODULES:
                    aliases[a.asname or a.name] = sub
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize(
    "path",
    sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "tests").glob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_private_name_across_modules(path):
    assert _private_uses(path) == []
