"""The phenomenon study's part of the report: its JSON section, markdown table and text, figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from stabtheory.report.figures import save_figure
from stabtheory.simulations.phenomenon.compute import PhenomenonStudy

__all__ = ["figures", "markdown", "section", "summary"]

LITERATURE = (
    "Dodge et al. (2020) fine-tune BERT on small GLUE tasks over many seeds and find that a "
    "share of runs fail (accuracy at the majority class), more often on the smaller data sets; "
    "Mosbach et al. (2021) trace these failures to optimization: Adam without bias correction "
    "(BERTAdam) with too few iterations; with bias correction and more iterations (the same "
    "number of steps for smaller data) the failures vanish, and they argue the dataset size "
    "matters through the number of iterations, not by itself."
)


def _find(table, **match):
    return [r for r in table if all(r[k] == v for k, v in match.items())]


def _rates(rows) -> str:
    return ", ".join(
        f"n={r['n']} T={r['steps']}: {r['failure_rate']:.2f} ({r['classification']})" for r in rows
    )


def summary(study: PhenomenonStudy) -> str:
    """The measured answers, in words: how the failure rate moves with n (fixed steps and fixed
    epochs), lr, steps and bias correction, and acceptance."""
    t = study.table
    nobc = "adam-no-bias-correction"
    parts = []
    fixed = _find(t, sweep="n at fixed steps", optimizer=nobc)
    if fixed:
        parts.append(f"Adam without bias correction at fixed steps: {_rates(fixed)}.")
    bc = _find(t, sweep="n at fixed steps", optimizer="adam")
    if bc:
        parts.append(f"With bias correction (same steps and lr): {_rates(bc)}.")
    epochs = _find(t, sweep="n at fixed epochs")
    if epochs:
        parts.append(
            f"Without bias correction at fixed epochs ({epochs[0]['epochs']:g}; steps grow with "
            f"n): {_rates(epochs)}."
        )
    lr = _find(t, sweep="lr")
    if lr:
        parts.append(
            "Smaller lr: "
            + ", ".join(
                f"n={r['n']} lr={r['lr']:g} T={r['steps']}: {r['failure_rate']:.2f} "
                f"({r['classification']})"
                for r in lr
            )
            + "."
        )
    counted = [r for r in t if r["counts"]]
    hi = max((r["failure_rate"] for r in counted), default=float("nan"))
    lo = min((r["failure_rate"] for r in counted), default=float("nan"))
    parts.append(
        f"Counted settings span failure rates {lo:.2f} to {hi:.2f}: the testbed is "
        f"{'accepted' if study.accepted else 'NOT accepted'} (needs one >= 0.10 and one <= 0.02)."
    )
    return " ".join(parts)


def section(study: PhenomenonStudy) -> dict:
    """No check rows and no claims; the study's entry (spec, run time) and the top-level
    ``phenomenon`` section of ``report.json``."""
    spec = study.spec
    return {
        "checks": [],
        "claims": [],
        "study": {"spec": dataclasses.asdict(spec), "settings": len(study.table)},
        "extra": {
            "phenomenon": {
                "task": spec.task,
                "shift": spec.shift,
                "n_test": spec.n_test,
                "settings": study.table,
                "accepted": bool(study.accepted),
                "summary": summary(study),
                "runtime_s": study.runtime_s,
            }
        },
    }


def markdown(report: dict) -> list[str]:
    """The section "The phenomenon on the attention testbed": the table and the text."""
    ph = report.get("phenomenon")
    if not ph:
        return []
    lines = [
        "",
        "## The phenomenon on the attention testbed (docs/attention.md)",
        "",
        f"Plain fine-tuning of the shipped post-LN encoder on the `{ph['task']}` task (shift "
        f"{ph['shift']:g}, balanced {ph['n_test']}-sequence test set: majority class 0.5), "
        "BERT's recipe (AdamW, weight decay 0.01, clip 1, linear warmup over 10% then linear "
        "decay, batch 16). A seed fails when its test accuracy is within 1 point of the "
        "majority class; a rate counts only where other seeds succeed (classification), with "
        "its Clopper-Pearson interval.",
        "",
        "| sweep | n | optimizer | lr | steps | epochs | seeds | failure rate [CI] | acc. "
        "mean | acc. std | success acc. | train loss median [q10, q90] | class |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ph["settings"]:
        lo, hi = r["failure_ci"]
        q = r["final_train_loss"]
        lines.append(
            f"| {r['sweep']} | {r['n']} | {r['optimizer']} | {r['lr']:g} | {r['steps']} | "
            f"{r['epochs']:g} | {r['seeds']} | {r['failure_rate']:.2f} [{lo:.2f}, {hi:.2f}] | "
            f"{r['accuracy_mean']:.3f} | {r['accuracy_std']:.3f} | "
            f"{r['success_accuracy']:.3f} | {q['median']:.3f} [{q['q10']:.3f}, {q['q90']:.3f}] "
            f"| {r['classification']} |"
        )
    lines += ["", f"**Measured.** {ph['summary']}", "", f"**Literature.** {LITERATURE}"]
    return lines


def figures(study: PhenomenonStudy, out: Path) -> list[str]:
    """One strip plot: per setting, every seed's test accuracy, the majority-class line."""
    if not study.runs:
        return []
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(study.runs)), 4.0))
    rng = np.random.default_rng(0)
    for k, run in enumerate(study.runs):
        acc = run["test_accuracy"]
        failed = acc <= run["majority"] + 0.01
        x = k + 0.15 * rng.uniform(-1, 1, acc.size)
        ax.scatter(x[~failed], acc[~failed], s=8, color="C0")
        ax.scatter(x[failed], acc[failed], s=8, color="C3")
    ax.axhline(study.runs[0]["majority"], color="k", lw=0.8, ls="--", label="majority class")
    ax.set_xticks(range(len(study.runs)))
    ax.set_xticklabels([r["setting"].label.replace(" ", "\n", 2) for r in study.runs], fontsize=6)
    ax.set_ylabel("test accuracy (one dot a seed; red: failed)")
    ax.set_title("Fine-tuning the attention testbed over seeds")
    ax.legend(fontsize=7)
    return [save_figure(fig, out, "phenomenon.png")]
