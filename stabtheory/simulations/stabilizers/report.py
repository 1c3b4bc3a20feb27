"""The stabilizer study's part of the report: its JSON section, markdown table and figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from stabtheory.report import fmt, jsonable, save_figure
from stabtheory.simulations.stabilizers import attention as att
from stabtheory.simulations.stabilizers.claims import MEASURES, claim_of, comparison
from stabtheory.simulations.stabilizers.results import StabilizerStudy
from stabtheory.simulations.stabilizers.spec import REFERENCE
from stabtheory.stabilizers import strip_plot

__all__ = ["figures", "markdown", "section", "to_report"]


def to_report(study: StabilizerStudy) -> dict:
    """The study as a JSON-able dict: ``spec``, ``rows``, ``mechanisms`` (per testbed and
    method), ``verdicts`` (``v.to_dict()``) and, with the attention part, ``attention``
    (:func:`~stabtheory.simulations.stabilizers.attention.attention_report`); NaN becomes
    None."""
    out = {
        "spec": dataclasses.asdict(study.spec),
        "rows": study.configs,
        "mechanisms": study.mechanisms,
        "verdicts": [v.to_dict() for v in study.verdicts],
    }
    if study.attention:
        out["attention"] = att.attention_report(
            study.spec.attention, study.attention, study.attention_table
        )
    return jsonable(out)


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
    plain = [r for r in report["stabilizers"]["rows"] if r["method"] == REFERENCE]
    if plain:
        lines += [
            "",
            "Plain fine-tuning's failure rate on the MLP testbeds: "
            + ", ".join(
                f"{r['testbed']} {fmt(r.get('failure_rate'))} ({r.get('classification')})"
                for r in plain
            )
            + ". A testbed whose plain runs never fail cannot show the phenomenon the claims "
            "are about: its regimes are shown, not counted.",
        ]
    if "attention" in report["stabilizers"]:
        lines += att.attention_markdown(report["stabilizers"]["attention"])
    return lines


def figures(study: StabilizerStudy, out: Path | str) -> list[str]:
    """Draw the study's figures (PNG) into ``out``; return their file names.

    * ``stabilizers_accuracy.png``: test accuracy across seeds for every method (box and
      strip plots), one panel per testbed, with the std ratio to plain in the labels;
    * ``stabilizers_std_ratio.png``: the accuracy std ratio and the prediction disagreement
      ratio to plain, with their bootstrap intervals;
    * ``stabilizers_<method>.png`` for every method with a claim: per testbed, the method's
      mechanism panel (:meth:`stabtheory.stabilizers.Method.draw`) beside plain's and the
      method's test accuracy across seeds.
    """
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    spec = study.spec
    tasks = list(spec.testbeds)
    methods = [m.name for m in spec.methods]
    names = []

    if tasks:  # the MLP testbeds
        fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 4.2), squeeze=False)
        for ax, task in zip(axes[0], tasks, strict=True):
            labels = [f"{m}\n(x{study.row(task, m)['std_ratio']:.2f})" for m in methods]
            strip_plot(ax, [study.accuracy[task][m] for m in methods], labels, "test accuracy", rng)
            ax.set_title(f"{task}: test accuracy over {spec.seeds} seeds", fontsize=9)
        fig.suptitle("Stabilizers and baselines: test accuracy across seeds (std ratio to plain)")
        names.append(save_figure(fig, out, "stabilizers_accuracy.png"))

        fig, axes = plt.subplots(1, 2, figsize=(13, 3.9))
        width = 0.8 / len(tasks)
        panels = (
            ("std_ratio", "std(test accuracy) / std(plain)"),
            ("disagreement_ratio", "prediction disagreement / plain's"),
        )
        for ax, (key, ylabel) in zip(axes, panels, strict=True):
            for t, task in enumerate(tasks):
                rows = [study.row(task, m) for m in methods]
                x = np.arange(len(methods)) + (t - (len(tasks) - 1) / 2) * width
                r = np.array([row[key] for row in rows], float)
                ci = np.array([row[f"{key}_ci"] for row in rows], float)
                ax.errorbar(
                    x,
                    r,
                    yerr=np.abs(np.stack([r - ci[:, 0], ci[:, 1] - r])),
                    fmt="o",
                    capsize=3,
                    label=task,
                )
            ax.axhline(1.0, color="0.4", lw=1, ls="--")
            ax.set_yscale("log")
            ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=8)
        fig.suptitle(
            f"Seed instability relative to plain fine-tuning ({spec.seeds} seeds, 95% "
            "bootstrap CI; below 1 = more stable)",
            fontsize=10,
        )
        names.append(save_figure(fig, out, "stabilizers_std_ratio.png"))

        verdict = {v.claim: v for v in study.verdicts}
        for method in spec.methods:
            if not method.claim:
                continue
            name = method.name
            fig, axes = plt.subplots(len(tasks), 2, figsize=(11.5, 3.6 * len(tasks)), squeeze=False)
            for (ax_m, ax_a), task in zip(axes, tasks, strict=True):
                method.draw(ax_m, comparison(study, method, task), rng)
                strip_plot(
                    ax_a,
                    [study.accuracy[task][REFERENCE], study.accuracy[task][name]],
                    [REFERENCE, name],
                    "test accuracy",
                    rng,
                )
                acc, pred = (
                    next(r for r in verdict[name].regimes if r.regime.startswith(f"{task}, {m}"))
                    for m in MEASURES
                )
                ax_a.set_title(
                    f"{task}: accuracy std ratio {acc.effect:.2f} "
                    f"[{acc.effect_ci[0]:.2f}, {acc.effect_ci[1]:.2f}], BF p={acc.p_value:.2g} -> "
                    f"{acc.verdict}\nprediction disagreement ratio {pred.effect:.2f} "
                    f"[{pred.effect_ci[0]:.2f}, {pred.effect_ci[1]:.2f}] -> {pred.verdict}",
                    fontsize=9,
                )
            fig.suptitle(
                f"{name}: {claim_of(method).text} -- verdict {verdict[name].verdict}", fontsize=10
            )
            names.append(save_figure(fig, out, f"stabilizers_{name}.png"))
    if study.attention:
        names.append(
            att.attention_figure(spec.attention, study.attention, study.attention_table, out)
        )
    return names
