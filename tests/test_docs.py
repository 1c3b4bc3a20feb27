"""docs/theory.md is the user's copy of the theory: its numbered sections are the ones the code,
the README, the notebooks and the tests cite, and nothing points users to a file they lack."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THEORY = ROOT / "docs" / "theory.md"

#: The top-level sections of docs/theory.md, in order (the code cites them by number).
SECTIONS = {
    1: "Stability notions",
    2: "Full fine-tuning (second-order Taylor model)",
    3: "Head tuning (linear head on frozen features, separable data)",
    4: "Stabilizers",
    5: "The paper's claims",
    6: "How a verdict is earned (statistics and designs)",
    7: "Generalization from stability",
}

#: The shared specification outside the repository (built so that this file does not mention it).
SHARED_SPEC = "THEORY" + ".md"

#: A citation such as "docs/theory.md section 3" or "docs/theory.md, sections 2 and 3"; the words
#: may be split over lines, also inside ``#`` comments.
CITATION = re.compile(
    r"docs/theory\.md,?(?:\s|#)+sections?(?:\s|#)+"
    r"(\d+(?:(?:\s*,\s*|\s*-\s*|\s+and\s+|\s+or\s+)\d+)*)"
)
HEADING = re.compile(r"^## (\d+)\. (.+?)\s*$", re.MULTILINE)


def _texts(*roots: str, pattern: str = "*") -> dict[str, str]:
    """Relative path -> text of the text files named or under ``roots`` (no compiled files)."""
    paths = []
    for name in roots:
        root = ROOT / name
        if root.is_file():
            paths.append(root)
        elif root.is_dir():
            paths.extend(p for p in sorted(root.rglob(pattern)) if p.is_file())
    out = {}
    for path in paths:
        if "__pycache__" in path.parts:
            continue
        try:
            out[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return out


def _cited_sections(text: str) -> list[int]:
    return [int(n) for m in CITATION.finditer(text) for n in re.findall(r"\d+", m.group(1))]


def _headings() -> dict[int, str]:
    found = [(int(n), title) for n, title in HEADING.findall(THEORY.read_text(encoding="utf-8"))]
    numbers = [n for n, _ in found]
    assert len(numbers) == len(set(numbers)), f"duplicate section numbers in {THEORY}: {numbers}"
    return dict(found)


def test_citation_pattern():
    page = "docs/theory" + ".md"
    assert _cited_sections(f"see {page} section 3.") == [3]
    assert _cited_sections(f"({page},\n    section 12)") == [12]
    assert _cited_sections(f"{page}\n# section 4") == [4]
    assert _cited_sections(f"{page} sections 2 and 5") == [2, 5]
    assert _cited_sections(f"{page} sections 1, 4") == [1, 4]
    assert _cited_sections(f"{page} (the bounds table)") == []


def test_theory_has_the_numbered_sections():
    assert _headings() == SECTIONS
    text = THEORY.read_text(encoding="utf-8")
    tops = re.findall(r"^## (.+?)\s*$", text, re.MULTILINE)
    numbered = [t for t in tops if re.match(r"\d+\. ", t)]
    assert numbered == [f"{n}. {title}" for n, title in SECTIONS.items()], "sections out of order"
    assert tops[-1] == "References"


def _citing_texts() -> dict[str, str]:
    return {
        **_texts("stabtheory", pattern="*.py"),
        **_texts("README.md", "notebooks"),
        **_texts("tests", pattern="*.py"),
    }


def test_cited_sections_exist():
    texts = _citing_texts()
    cited = {path: _cited_sections(text) for path, text in texts.items()}
    assert any(cited.values()), "no docs/theory.md section citation found at all"
    sections = set(_headings())
    missing = {path: sorted(set(ns) - sections) for path, ns in cited.items() if set(ns) - sections}
    assert not missing, f"citations of docs/theory.md sections without a '## N.' heading: {missing}"


def test_no_reference_to_the_shared_spec():
    offenders = {
        path: [i + 1 for i, line in enumerate(text.splitlines()) if SHARED_SPEC in line]
        for path, text in _texts("stabtheory", "notebooks", "README.md", "docs").items()
        if SHARED_SPEC in text
    }
    assert not offenders, (
        f"files mentioning {SHARED_SPEC} (path: lines): {offenders}; cite docs/theory.md "
        "section N instead, users do not have the shared file"
    )
