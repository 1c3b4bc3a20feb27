"""The report document: ``report.json`` (:func:`build_report`), ``report.md`` and the figures
(:func:`write_report`), assembled from every registered study's report hooks."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stabtheory.bounds import REGISTRY
from stabtheory.report.figures import figure_workers
from stabtheory.report.format import fmt, jsonable
from stabtheory.report.html import to_html
from stabtheory.simulations import STUDIES, engine

__all__ = ["SCHEMA", "build_report", "caption", "headline", "markdown", "write_report"]

SCHEMA = "stabtheory.report/1"


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
        part = STUDIES[name].section(study)
        checks += part["checks"]
        verdicts += part["claims"]
        entries[name] = part["study"]
        extra.update(part["extra"])
    report = {
        "schema": SCHEMA,
        "checks": checks,
        "claims": [v.to_dict() for v in verdicts],
        "theorems": [th.to_dict() for th in REGISTRY.values()],
        "derived": {th.id: facts for th in REGISTRY.values() if (facts := th.facts())},
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
    return jsonable(report)


def headline(checks: list[dict]) -> dict:
    """The count of applicable check rows by outcome (docs/theory.md section 6).

    ``violations``: rows with at least one violation; ``vacuous``: passing rows whose every
    compared entry has a bound at least the trivial bound (they say nothing);
    ``informative``: the other passing rows with a trivial bound (some entry below it);
    ``no_trivial_bound``: passing rows without one, never counted as informative;
    ``not_applicable``: rows whose theorem applies nowhere.
    """
    rows = [c for c in checks if c["applicable"]]
    passing = [c for c in rows if not c["violations"]]
    vacuous = [c for c in passing if c["vacuous_share"] == 1.0]
    unjudged = [c for c in passing if c["vacuous_share"] is None]
    return {
        "violations": sum(1 for c in rows if c["violations"]),
        "informative": len(passing) - len(vacuous) - len(unjudged),
        "vacuous": len(vacuous),
        "no_trivial_bound": len(unjudged),
        "not_applicable": len(checks) - len(rows),
    }


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
    if "seeds_per_draw" in r:  # the attention testbed: draws of paired seeds
        pre = {"shared": "one pre-training", "own per draw": "a pre-training each"}
        size = (
            f"{r['replicates']} draws ({pre[r['pretraining']]}) x "
            f"{r['seeds_per_draw']} paired seeds"
        )
    else:  # the MLP stabilizer regimes replicate seeds, every other regime data draws
        size = f"{r['replicates']} {'seeds' if 'mechanism' in r else 'draws'}"
    parts = [f"{r['name']} ({r['design']}, {size})"]
    if st.get("tau") is not None:
        sign = f", sign p={fmt(st['sign_p'])}" if st.get("sign_p") is not None else ""
        parts.append(f"tau {_interval_text(st['tau'], st['ci'], '+')}{sign}")
    if st.get("p_value") is not None:  # stabilizers: the named test's p (and Holm's)
        holm = f", Holm p={fmt(st['p_holm'])}" if st.get("p_holm") is not None else ""
        parts.append(f"{st.get('test') or 'test'} p={fmt(st['p_value'])}{holm}")
    parts.append(f"effect {_interval_text(eff['ratio'], eff['ci'])}")
    sl = r.get("slope")
    if sl and sl["estimate"] is not None:
        pred = "" if sl["predicted"] is None else f", bound {sl['predicted']:+.2f}"
        holm = "" if sl["p_holm"] is None else f", Holm p={fmt(sl['p_holm'])}"
        parts.append(f"elasticity {_interval_text(sl['estimate'], sl['ci'], '+')}{pred}{holm}")
    if "mechanism" in r:
        parts.append(f"mechanism {r['mechanism']['verdict']}")
    word = r["verdict"] if r["counted"] else f"{r['verdict']}, not counted"
    return f"{'; '.join(parts)}: {word}"


def _fact_text(value) -> str:
    """A derived fact in words: LaTeX strings in ``$...$``, dicts as ``key = value`` lists."""
    if isinstance(value, dict):
        return ", ".join(f"{k} = {_fact_text(v)}" for k, v in value.items())
    if isinstance(value, str):
        return f"${value}$"
    return str(value)


_MEANING = {
    "supported": "the measurements agree with the claim",
    "refuted": "the measurements go against the claim under this notion",
    "regime-dependent": "the claim holds in some counted regimes and fails in others",
    "inconclusive": "no decision either way",
}


def _meaning(v: dict) -> str:
    """What a claim's verdict means, in one sentence: the verdict in words and why (its
    explanation up to the regimes that were shown but not counted)."""
    why = v["explanation"].split("; shown, not counted")[0]
    return f"{_MEANING.get(v['verdict'], v['verdict'])}: {why}"


def _first_page(report: dict) -> list[str]:
    """What was verified, in words: the checks, every claim as a sentence with its verdict and
    what it means, the placebo and the generalization check, and what to do next."""
    h, env = report["headline"], report["environment"]
    reps = ", ".join(f"{k} {v}" for k, v in env["replicates"].items()) or "none"
    studies = ", ".join(report["studies"])
    lines = [
        "## What was verified",
        "",
        f"stabtheory {env['stabtheory']} ran the studies {studies} (jax {env['jax']} on "
        f"{env['backend']}, {env['devices']} x {env['device_kind']}; independent data draws "
        f"per configuration: {reps}). It checked {len(report['theorems'])} stability theorems "
        "(docs/theory.md sections 2 and 3) per sample against leave-one-out simulations "
        f"in {len(report['checks'])} check rows: **{report['violations']} violations** of a "
        f"rigorous bound ({h['violations']} rows), {h['informative']} informative passes, "
        f"{h['vacuous']} vacuous passes (the bound at or above the trivial bound everywhere: "
        f"they say nothing), {h['no_trivial_bound']} passes without a trivial bound and "
        f"{h['not_applicable']} rows where an assumption of the theorem fails. It judged "
        "the paper's claims from sweeps: a verdict counts only natural variation of the "
        "algorithm's inputs inside the theory, with at least the effect, the Kendall tau and "
        "the elasticity decisive, Holm-corrected (docs/theory.md sections 5 and 6).",
        "",
    ]
    if report["claims"]:
        lines += [
            "| the paper's claim | measured as | verdict | what it means |",
            "|---|---|---|---|",
        ]
        for v in report["claims"]:
            text = v.get("text") or v["id"]
            lines.append(
                f"| {text} (`{v['id']}`) | {v['notion']} | **{v['verdict']}** | {_meaning(v)} |"
            )
        lines.append("")
    placebo = report.get("placebo")
    if placebo and placebo.get("claims"):
        lo, hi = placebo["ci"]
        lines.append(
            f"**False decisions:** {placebo['decisive']} of {placebo['claims']} placebo claims "
            f"(re-seeded copies of one configuration) were judged decisive: rate "
            f"{fmt(placebo['rate'])} [{fmt(lo)}, {fmt(hi)}] (target at most 0.05)."
        )
        lines.append("")
    gen = report.get("generalization")
    if gen:
        held = sum(bool(g["identity_holds"]) for g in gen)
        be = [g for g in gen if g.get("be_holds") is not None]
        lines.append(
            f"**Generalization:** the generalization gap equals the replace-one stability in "
            f"expectation (an identity): it held in {held} of {len(gen)} rows; the "
            f"Bousquet-Elisseeff moment bound held in {sum(bool(g['be_holds']) for g in be)} "
            f"of {len(be)} rows (docs/theory.md section 7)."
        )
        lines.append("")

    def seeds_design(v):  # the stabilizer claims replicate seeds in a design of their own
        return any("mechanism" in r for r in v["regimes"])

    undecided = sum(
        v["verdict"] == "inconclusive" and not seeds_design(v) for v in report["claims"]
    )
    undecided_seeds = sum(
        v["verdict"] == "inconclusive" and seeds_design(v) for v in report["claims"]
    )
    lines += ["**What to do next:**", ""]
    if report["violations"]:
        lines.append(
            "- A violated rigorous bound is a bug or an assumption that does not hold: see "
            "the rows with violations in the appendix and report them."
        )
    if undecided:
        lines.append(
            f"- {undecided} claim verdicts are inconclusive: more draws (`--replicates 20`) "
            "narrow the intervals; a claim with no counted regime needs a natural knob inside "
            "the theory (its explanation lists the regimes shown but not counted)."
        )
    if undecided_seeds:
        att = ((report.get("stabilizers") or {}).get("attention") or {}).get("design", {})
        larger = (
            "a larger `AttentionSpec` (more draws or seeds; docs/attention.md)"
            if att.get("full", {}).get("is_this_run")
            else "`--study stabilizers --full` (the attention testbed's draws each with their "
            "own pre-training, 64 paired seeds)"
        )
        lines.append(
            f"- {undecided_seeds} stabilizer verdicts are inconclusive: their designs are "
            f"fixed in the study's spec (`--replicates` does not change them); {larger} "
            "narrows the intervals."
        )
    if h["vacuous"]:
        lines.append(
            f"- {h['vacuous']} passing rows are vacuous: the bound says nothing there (see the "
            "`vacuous` column of the check tables)."
        )
    lines += [
        "- Check the theorems on your own data: `stabtheory check FILE` (README).",
        "",
    ]
    return lines


def caption(name: str) -> str:
    """A figure's caption from its file name (the studies' naming conventions)."""
    stem = name.removesuffix(".png")
    if stem.startswith("bounds_"):
        return (
            f"Bound against the measured leave-one-out change over the steps t "
            f"({stem.removeprefix('bounds_').replace('_', ' ')}), with the notion's trivial "
            "bound: a bound above it says nothing."
        )
    if stem.startswith("claims_"):
        return (
            f"The claims' sweeps ({stem.removeprefix('claims_').replace('_', ' ')}): mean "
            "instability against the swept parameter, one panel per regime."
        )
    return stem.replace("_", " ") + "."


def markdown(report: dict, figures: list[str]) -> str:
    """``report.md``: a first page in words (what was verified, each claim as a sentence with
    its verdict and meaning, what to do next), every study's section, the captioned figures,
    then the appendices (the claims in detail, the check tables, the theorem statements)."""
    lines = ["# stabtheory verify report", ""]
    env = report["environment"]
    lines.append(
        f"Schema `{report['schema']}`; stabtheory {env['stabtheory']}; "
        f"**{report['violations']} violations** of rigorous bounds."
    )
    lines += ["", *_first_page(report)]
    for name in report["studies"]:
        lines += STUDIES[name].markdown(report)
    lines += ["", "## Figures", ""]
    for k, f in enumerate(figures, 1):
        lines += [f"![{caption(f)}]({f})", "", f"*Figure {k}: {caption(f)}*", ""]
    lines += [
        "",
        "## Appendix A: the claims in detail",
        "",
        "| claim | notion | verdict | effect ratio [95% CI] | draws | regimes (name (design, "
        "draws); tau [95% CI]; effect; elasticity [95% CI], the bound's: verdict) | figure |",
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
        "The elasticity is the mean over draws of the per-draw log-log slope of instability "
        "against the swept quantity, with its t-interval, beside the same slope of the "
        "theorem's bound along the same sweep (the exponent the bound predicts there). "
        "Only natural regimes inside the theory are counted; controls, confounded regimes and "
        "the real network outside the Taylor regime are shown, not counted. "
        "'regime-dependent' means some regimes support and others refute the claim.",
        "",
        "## Appendix B: the check tables",
        "",
    ]
    for name in report["studies"]:
        lines += STUDIES[name].appendix(report)
    lines += ["", "## Appendix C: the theorems", ""]
    for th in report["theorems"]:
        lines.append(f"- `{th['id']}`: {th['title']}. {th['reference']}.")
        lines.append(f"  $${th['latex']}$$")
    lines += ["", "Derived with sympy from the statements and their positivity assumptions:", ""]
    lines += [
        f"- `{theorem}`, {name}: {_fact_text(value)}"
        for theorem, facts in report["derived"].items()
        for name, value in facts.items()
    ]
    return "\n".join(lines) + "\n"


def write_report(
    studies: Mapping[str, Any],
    out: Path,
    *,
    environment: dict | None = None,
    workers: int = 1,
) -> dict:
    """Write ``report.json``, ``report.md``, ``report.html`` (self-contained: the figures
    inlined, long tables folded; :func:`~stabtheory.report.html.to_html`) and the figures into
    ``out``; return the report.

    The report files are written last, each atomically (temporary file, then rename), so a
    ``report.json`` exists only when the whole report was written. ``workers > 1`` renders
    the figures in that many spawned processes (the same files, faster on several cores).
    """
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(studies, environment=environment)
    figures = []
    with figure_workers(workers):
        for name, study in studies.items():
            figures += STUDIES[name].figures(study, out)
    report["figures"] = figures
    text = markdown(report, figures)
    _atomic_write(out / "report.md", text)
    _atomic_write(out / "report.html", to_html(text, out))
    _atomic_write(out / "report.json", json.dumps(report, indent=1, allow_nan=False))
    return report


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
