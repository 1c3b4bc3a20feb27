"""The stabilizer study's part of the report: its JSON section, markdown and figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from stabtheory.report import fmt
from stabtheory.simulations.stabilizers import StabilizerStudy, to_report, write_figures

__all__ = ["figures", "markdown", "section"]


def section(study: StabilizerStudy) -> dict:
    """Verdicts, the study's entry and the ``stabilizers`` table of ``report.json``."""
    return {
        "checks": [],
        "claims": list(study.verdicts),
        "study": {"spec": dataclasses.asdict(study.spec)},
        "extra": {"stabilizers": to_report(study)},
    }


def markdown(report: dict) -> list[str]:
    """The stabilizers table."""
    lines: list[str] = []
    if "stabilizers" not in report:
        return lines
    lines += [
        "",
        "## Stabilizers across seeds (docs/theory.md section 4)",
        "",
        "Per testbed and method: test accuracy over seeds, the ratio of its std to plain "
        "fine-tuning's (95% bootstrap interval over seeds) with the Brown-Forsythe p-value, "
        "the prediction-disagreement ratio, and the mechanism measures: exact max margin "
        "gamma/R of the final training features, and the weight distance "
        "||theta_start - theta*|| that supervised fine-tuning moves the encoder "
        "(theta_start is the SURT encoder for SURT, the pre-trained one otherwise).",
        "",
        "| testbed | method | seeds | accuracy mean | accuracy std | std ratio [CI] | BF p | "
        "disagreement ratio [CI] | feature margin | weight distance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["stabilizers"]["rows"]:
        ci = r.get("std_ratio_ci") or [None, None]
        dci = r.get("disagreement_ratio_ci") or [None, None]
        lines.append(
            f"| {r['testbed']} | {r['method']} | {r['seeds']} | {fmt(r['acc_mean'])} | "
            f"{fmt(r['acc_std'])} | {fmt(r['std_ratio'])} [{fmt(ci[0])}, {fmt(ci[1])}] "
            f"| {fmt(r['bf_p'])} | {fmt(r['disagreement_ratio'])} [{fmt(dci[0])}, "
            f"{fmt(dci[1])}] | {fmt(r['feature_margin'])} | {fmt(r['weight_distance'])} |"
        )
    return lines


def figures(study: StabilizerStudy, out: Path) -> list[str]:
    return write_figures(study, out)
