"""``report.json``, ``report.md`` and the figures of ``stabtheory verify``."""

from __future__ import annotations

import contextlib
import contextvars
import json
import multiprocessing
import os
import pickle
import platform
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
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


#: Where :func:`save_figure` sends figures while :func:`write_report` renders them in worker
#: processes: ``(pool, futures)``; ``None`` renders in this process.
_RENDERING: contextvars.ContextVar = contextvars.ContextVar("stabtheory_rendering", default=None)

_DPI = 110


def _write(fig, path) -> None:
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def _render(payload: bytes, path: str) -> str:
    """Lay out and write a pickled figure (in a worker process)."""
    _write(pickle.loads(payload), path)
    return path


def _init_worker() -> None:
    import matplotlib

    matplotlib.use("Agg")


@contextlib.contextmanager
def _figure_workers(workers: int) -> Iterator[None]:
    """Render the figures saved inside the block in ``workers`` spawned processes (laying out
    and rasterising a figure is most of the report's time); wait for all of them on exit."""
    if workers <= 1:
        yield
        return
    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs JAX threads
    futures: list[Future] = []
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        token = _RENDERING.set((pool, futures))
        try:
            yield
        finally:
            _RENDERING.reset(token)
        for f in futures:
            f.result()  # re-raises a worker's error


def save_figure(fig, out: Path, name: str) -> str:
    """Lay out, write and close a figure; return its file name.

    Inside :func:`write_report` with several workers, the figure is pickled and handed to a
    worker process, which lays it out and writes it; the file exists once the report does.
    """
    rendering = _RENDERING.get()
    if rendering is None:
        _write(fig, out / name)
        return name
    pool, futures = rendering
    payload = pickle.dumps(fig)
    plt.close(fig)
    futures.append(pool.submit(_render, payload, str(out / name)))
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


def _interval_text(value, ci, sign: str = "") -> str:
    lo, hi = ci if ci else (None, None)
    if value is None:
        return "n/a"
    if sign:
        return f"{value:+.2f} [{_signed(lo)}, {_signed(hi)}]"
    return f"x{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


def _signed(x) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def _regime_text(v: dict, r: dict) -> str:
    """One regime of a claim in the markdown table: name, design, tau [CI], effect, verdict.

    A regime of design ``control`` is marked as not counted (unless every regime is one).
    """
    st, eff = r["statistic"], r["effect"]
    unit = "seeds" if "mechanism" in r else "draws"  # the stabilizers replicate seeds
    parts = [f"{r['name']} ({r['design']}, {r['replicates']} {unit})"]
    if st.get("tau") is not None:
        sign = f", sign p={fmt(st['sign_p'])}" if st.get("sign_p") is not None else ""
        parts.append(f"tau {_interval_text(st['tau'], st['ci'], '+')}{sign}")
    if st.get("p_value") is not None:  # stabilizers: Brown-Forsythe p of the spread ratio
        parts.append(f"BF p={fmt(st['p_value'])}")
    parts.append(f"effect {_interval_text(eff['ratio'], eff['ci'])}")
    if "mechanism" in r:
        parts.append(f"mechanism {r['mechanism']['verdict']}")
    counted = r["design"] != "control" or all(x["design"] == "control" for x in v["regimes"])
    word = r["verdict"] if counted else f"{r['verdict']}, not counted"
    return f"{'; '.join(parts)}: {word}"


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
        "| claim | notion | verdict | effect ratio [95% CI] | draws | regimes (name (design, "
        "draws); tau [95% CI]; effect: verdict) | figure |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in report["claims"]:
        regs = "<br>".join(_regime_text(v, r) for r in v["regimes"])
        effect = _interval_text(v["effect"]["ratio"], v["effect"]["ci"])
        lines.append(
            f"| {v['id']} | {v['notion']} | **{v['verdict']}** | {effect} | {v['replicates']} "
            f"| {regs} | {v['figure']} |"
        )
    names = dict.fromkeys(v["statistic"]["name"] for v in report["claims"])
    lines += [
        "",
        "Statistics: " + "; ".join(f"({k + 1}) {n}" for k, n in enumerate(names)) + ". "
        "Tau intervals and effect intervals resample the independent data draws of each "
        "configuration, then the samples within each draw (docs/theory.md section 6). The "
        "effect is the mean instability at the largest parameter value over that at the "
        "smallest (a spread ratio method / plain for the stabilizers); 'draws' is the smallest "
        "number of independent draws (seeds for the stabilizers) behind a counted regime. "
        "Regimes of design 'control' hold by construction and are not counted. "
        "'regime-dependent' means some regimes support and others refute the claim.",
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write_report(
    studies: Mapping[str, Any],
    out: Path,
    *,
    environment: dict | None = None,
    workers: int = 1,
) -> dict:
    """Write ``report.json``, ``report.md`` and the figures into ``out``; return the report.

    The report files are written last, each atomically (temporary file, then rename), so a
    ``report.json`` exists only when the whole report was written. ``workers > 1`` renders
    the figures in that many spawned processes (the same files, faster on several cores).
    """
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(studies, environment=environment)
    figures = []
    with _figure_workers(workers):
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
