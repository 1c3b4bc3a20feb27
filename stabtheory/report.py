"""``report.json``, ``report.md`` and the figures of ``stabtheory verify``."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from stabtheory.bounds import REGISTRY
from stabtheory.bounds.finetune import ft1_signs
from stabtheory.bounds.head import h2_time_monotonicity
from stabtheory.simulations import STUDIES, engine

__all__ = ["SCHEMA", "build_report", "failures", "fmt", "save_figure", "write_report"]

SCHEMA = "stabtheory.report/1"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def build_report(studies: Mapping[str, Any], *, environment: dict | None = None) -> dict:
    """The report as a JSON-able dict (schema ``stabtheory.report/1``).

    ``studies`` maps registry names (:data:`stabtheory.simulations.STUDIES`) to the results of
    the studies that ran; each study's report hooks give its check rows, verdicts, its entry
    under ``studies`` and any table of its own (``taylor``, ``stabilizers``). The report holds
    no wall times (they go to ``timings.json``), so a resumed run and an uninterrupted one
    write the same report.
    """
    checks, verdicts, entries, extra = [], [], {}, {}
    for name, study in studies.items():
        part = STUDIES[name].reporter().section(study)
        checks += part["checks"]
        verdicts += part["claims"]
        entries[name] = part["study"]
        extra.update(part["extra"])
    report = {
        "schema": SCHEMA,
        "checks": checks,
        "claims": [v.to_dict() for v in verdicts],
        "theorems": [th.to_dict() for th in REGISTRY.values()],
        "derived": {
            "head.H2": {"d bound / d t": h2_time_monotonicity()},
            "ft.FT1": {"signs": ft1_signs()},
        },
        "violations": sum(c["violations"] for c in checks if c["applicable"]),
        "headline": headline(checks),
        "studies": entries,
        "environment": {
            **(environment or engine.environment({})),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        **extra,
    }
    return _jsonable(report)


def headline(checks: list[dict]) -> dict:
    """The count of applicable check rows by outcome (docs/theory.md section 6).

    ``violations``: rows with at least one violation; ``vacuous``: passing rows whose every
    compared entry has a bound at least the trivial bound (they say nothing);
    ``informative``: the other passing rows (some entry below the trivial bound, or a notion
    without a trivial bound); ``not_applicable``: rows whose theorem applies nowhere.
    """
    rows = [c for c in checks if c["applicable"]]
    passing = [c for c in rows if not c["violations"]]
    vacuous = [c for c in passing if c["vacuous_share"] == 1.0]
    return {
        "violations": sum(1 for c in rows if c["violations"]),
        "informative": len(passing) - len(vacuous),
        "vacuous": len(vacuous),
        "not_applicable": len(checks) - len(rows),
    }


def save_figure(fig, out: Path, name: str) -> str:
    """Lay out, write and close a figure; return its file name."""
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def fmt(x, digits=3):
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


def _regime_text(v: dict, r: dict) -> str:
    if "p_value" in r:  # stabilizers: a spread ratio method / plain
        p = f", p={fmt(r['p_value'])}" if r["p_value"] is not None else ""
        lo, hi = r["ci"]
        return (
            f"{r['regime']}: ratio {fmt(r['tau'])} [{fmt(lo)}, {fmt(hi)}]{p}; "
            f"mechanism {r['mechanism_verdict']}: {r['verdict']}"
        )
    return f"{r['regime']}: {r['tau']:+.2f} [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}] {r['verdict']}"


def failures(c: dict) -> str:
    return "; ".join(_failed(a, c) for a in c["assumptions"] if not a["holds"]) or "none"


def _markdown(report: dict, figures: list[str]) -> str:
    lines = ["# stabtheory verify report", ""]
    env = report["environment"]
    reps = ", ".join(f"{k} {v}" for k, v in env["replicates"].items()) or "none"
    lines.append(
        f"Schema `{report['schema']}`; stabtheory {env['stabtheory']}, jax {env['jax']} on "
        f"{env['backend']} ({env['devices']} x {env['device_kind']}); data draws per "
        f"configuration: {reps}; **{report['violations']} violations** of rigorous bounds."
    )
    h = report["headline"]
    lines += [
        "",
        f"**Headline:** of {len(report['checks'])} check rows, {h['violations']} with a "
        f"violation, {h['informative']} informative passes, {h['vacuous']} vacuous passes "
        f"(every compared bound at least the trivial bound, so the pass says nothing), "
        f"{h['not_applicable']} where the theorem does not apply (docs/theory.md section 6).",
    ]
    lines += ["", "## Theorems", ""]
    for th in report["theorems"]:
        lines.append(f"- `{th['id']}`: {th['title']}. {th['reference']}.")
        lines.append(f"  $${th['latex']}$$")
    d = report["derived"]["head.H2"]["d bound / d t"]
    lines += [
        "",
        f"sympy: dH2/dt has sign {d['sign']} (d h/d Psi = ${d['dh_dPsi']}$, "
        f"d Psi/d t = ${d['dPsi_dt']}$); signs of dFT1 from positivity: "
        f"{report['derived']['ft.FT1']['signs']}.",
        "",
    ]
    for name in report["studies"]:
        lines += STUDIES[name].reporter().markdown(report)
    lines += [
        "",
        "## Claims",
        "",
        "| claim | notion | verdict | regimes (tau [95% CI]: verdict) | figure |",
        "|---|---|---|---|---|",
    ]
    for v in report["claims"]:
        regs = "<br>".join(_regime_text(v, r) for r in v["statistic"]["regimes"])
        lines.append(f"| {v['id']} | {v['notion']} | **{v['verdict']}** | {regs} | {v['figure']} |")
    lines += [
        "",
        "Statistic: "
        + (report["claims"][0]["statistic"]["name"] if report["claims"] else "")
        + ". The intervals resample the independent data draws of each configuration, then "
        "the samples within each draw (docs/theory.md section 5); an effect below 1e-9 "
        "relative is never decisive; "
        "'regime-dependent' means some regimes support and others refute the claim.",
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write_report(studies: Mapping[str, Any], out: Path, *, environment: dict | None = None) -> dict:
    """Write ``report.json``, ``report.md`` and the figures into ``out``; return the report.

    The report files are written last, each atomically (temporary file, then rename), so a
    ``report.json`` exists only when the whole report was written.
    """
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(studies, environment=environment)
    figures = []
    for name, study in studies.items():
        figures += STUDIES[name].reporter().figures(study, out)
    report["figures"] = figures
    _atomic_write(out / "report.md", _markdown(report, figures))
    _atomic_write(out / "report.json", json.dumps(report, indent=1, allow_nan=False))
    return report


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
