"""The documentation site (mkdocs.yml: docs/, the API reference from the docstrings, the
notebooks rendered with their stored outputs) builds with every warning an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for page in ("index.html", "theory/index.html", "api/audit/index.html"):
        assert (tmp_path / page).is_file(), page
    notebook = tmp_path / "notebooks" / "02_head_tuning_stability" / "index.html"
    assert notebook.is_file() and "<img" in notebook.read_text()
    assert "stabtheory.audit.audit" in (tmp_path / "api" / "audit" / "index.html").read_text()
