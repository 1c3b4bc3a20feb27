"""The generalization check's part of the report: its JSON section, markdown table and figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from stabtheory.report.figures import save_figure
from stabtheory.report.format import fmt
from stabtheory.simulations.generalization.compute import GeneralizationStudy

__all__ = ["config_label", "figures", "markdown", "section"]


def section(study: GeneralizationStudy) -> dict:
    """No check rows and no claims; the study's entry (spec, levels) and the top-level
    ``generalization`` table of ``report.json``, one row per (configuration, loss)."""
    spec = study.spec
    return {
        "checks": [],
        "claims": list(study.verdicts),
        "study": {
            "spec": dataclasses.asdict(spec),
            "rows": len(study.table),
            "alpha": spec.alpha,
            "level": spec.level,
        },
        "extra": {"generalization": study.table},
    }


def config_label(row: dict) -> str:
    """A row's configuration in words (head: family, data, training loss, n, t; fine-tuning:
    task, lam, n)."""
    c = row["config"]
    if row["study"] == "head":
        data = f"{c['pair'][0]}v{c['pair'][1]}" if c.get("pair") else f"gamma={c['gamma']:g}"
        return f"head {c['family']} {data}, {c['loss']}, n={c['n']}, t={c['t']}"
    return f"FT {c['task']} Taylor min., lam={c['lam']:g}, n={c['n']}"


def _signed(x) -> str:
    return "n/a" if x is None else f"{x:+.3g}"


def _with_ci(part: dict | None, signed: bool = True) -> str:
    if part is None:
        return "n/a"
    f = _signed if signed else fmt
    lo, hi = part["ci"]
    return f"{f(part['mean'])} [{f(lo)}, {f(hi)}]"


def markdown(report: dict) -> list[str]:
    """The section "Generalization (docs/theory.md section 7)": one table, a row per
    (configuration, loss)."""
    table = report.get("generalization")
    if not table:
        return []
    entry = report.get("studies", {}).get("generalization", {})
    alpha, level = entry.get("alpha"), entry.get("level")
    lines = [
        "",
        "## Generalization (docs/theory.md section 7)",
        "",
        "Per configuration, over independent draws of (S, S', a test set): the generalization "
        "gap (test loss minus training loss of A(S)) beside the replace-one stability "
        "(1/n) sum_i [l(A(S^(i)); z_i) - l(A(S); z_i)]. For any algorithm and loss their "
        "expectations are equal (Shalev-Shwartz et al. 2010, Lemma 11), so the paired "
        "per-draw difference must have an interval that covers 0: a row where it does not is "
        "an estimator bug, never a finding. Every interval is a Student-t interval over the "
        f"draws at level {fmt(level, 4)} (Bonferroni over the {len(table)} rows: family-wise "
        f"{fmt(alpha)}). The 0-1 loss counts a zero margin as an error. BE: Bousquet & "
        "Elisseeff's E[(R - R_emp)^2] <= 1/(2n) + 3 beta (0-1 loss, beta the leave-one-out "
        "prediction-flip rate); its left side is the mean squared gap, which the finite test "
        "set biases upward (by `test noise` on average). Head rows: GD from zero for t steps; "
        "FT rows: the Taylor-model minimiser around w0, evaluated with the true network.",
        "",
        "| config | loss | draws | n_test | gap [CI] | replace-one stability [CI] | "
        "difference [CI] | identity holds | BE: E[gap^2] [CI] vs bound (beta) | BE holds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        if r["be_bound"] is None:
            be, holds = "n/a (unbounded loss)", "n/a"
        else:
            be = (
                f"{_with_ci(r['lhs'], signed=False)} vs {fmt(r['be_bound'])} "
                f"(beta {fmt(r['beta'])}; test noise {fmt(r['test_noise'])})"
            )
            holds = "yes" if r["be_holds"] else "**no**"
            if r["be_exceeds"]:
                holds += " (interval above the bound)"
        lines.append(
            f"| {config_label(r)} | {r['loss']} | {r['replicates']} | {r['n_test']} | "
            f"{_with_ci(r['gap'])} | {_with_ci(r['stability'])} | {_with_ci(r['difference'])} | "
            f"{'yes' if r['identity_holds'] else '**no**'} | {be} | {holds} |"
        )
    return lines


def figures(study: GeneralizationStudy, out: Path) -> list[str]:
    """``generalization.png``: the gap against the replace-one stability per row, with their
    intervals and the line y = x (training losses left, the 0-1 loss right)."""
    table = study.table
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), squeeze=False)
    labels = list(dict.fromkeys(config_label(r) for r in table))
    colors = {lab: plt.cm.tab10(k % 10) for k, lab in enumerate(labels)}
    panels = (
        ("training loss", lambda r: r["loss"] != "0-1"),
        ("0-1 loss", lambda r: r["loss"] == "0-1"),
    )
    for ax, (title, keep) in zip(axes.flat, panels, strict=True):
        chosen = [r for r in table if keep(r)]
        ends = [0.0]
        for r in chosen:
            x, y = r["stability"], r["gap"]
            xerr = np.abs(np.array([[x["ci"][0]], [x["ci"][1]]]) - x["mean"])
            yerr = np.abs(np.array([[y["ci"][0]], [y["ci"][1]]]) - y["mean"])
            marker = "o" if r["study"] == "head" else "s"
            name = config_label(r)
            ax.errorbar(
                x["mean"],
                y["mean"],
                xerr=xerr,
                yerr=yerr,
                fmt=marker,
                capsize=3,
                color=colors[name],
                label=f"{name} ({r['loss']})",
            )
            ends += [*x["ci"], *y["ci"]]
        lo, hi = min(ends), max(ends)
        pad = 0.05 * (hi - lo or 1.0)
        line = np.array([lo - pad, hi + pad])
        ax.plot(line, line, "k--", lw=0.8, label="y = x (the identity)")
        ax.set_xlabel("replace-one stability (1/n) sum_i [l(A(S^(i)); z_i) - l(A(S); z_i)]")
        ax.set_ylabel("generalization gap R_test(A(S)) - R_S(A(S))")
        ax.set_title(f"{title}: gap vs replace-one stability", fontsize=10)
        ax.legend(fontsize=7)
    level = study.spec.level
    fig.suptitle(
        f"Generalization gap vs replace-one stability, mean over draws with Student-t "
        f"intervals at level {level:.4g} (Bonferroni over {len(table)} rows)",
        fontsize=10,
    )
    return [save_figure(fig, out, "generalization.png")]
