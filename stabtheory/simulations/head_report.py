"""The head study's part of the report: its JSON section, markdown and figures (the hooks
:mod:`stabtheory.report` calls through :data:`stabtheory.simulations.STUDIES`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from stabtheory import plotting
from stabtheory.report import failures, fmt, save_figure
from stabtheory.simulations.head import NOTIONS, HeadStudy

__all__ = ["figures", "markdown", "section"]


def section(study: HeadStudy) -> dict:
    """Check rows, verdicts and the study's entry of ``report.json``."""
    return {
        "checks": [chk.summary() for _, chk in study.checks],
        "claims": list(study.verdicts),
        "study": {"spec": study.spec.__dict__, "steps": study.steps.tolist()},
        "extra": {},
    }


def markdown(report: dict) -> list[str]:
    """The head-tuning checks table."""
    head_rows = [c for c in report["checks"] if c["theorem"].startswith("head.")]
    lines: list[str] = []
    if not head_rows:
        return lines
    lines += [
        "## Head tuning: checks (bound vs empirical, per sample, over the checkpoints where "
        "the theorem applies)",
        "",
        "`vacuous` is the share of compared entries whose bound is at least the trivial "
        "bound (2 for a distance between unit vectors, gamma + R for a margin gap; `-` where "
        "the notion has none): a pass there says nothing (docs/theory.md section 6). "
        "Each row pools the samples of every data draw of its configuration; `draws` is "
        "their number and `gamma` the mean measured max margin over them.",
        "",
        "| theorem | notion | loss | lr | gamma | n | draws | applicable | empirical mean | "
        "bound mean | bound/empirical | vacuous | violations | failed assumptions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in head_rows:
        cfg = c["config"]
        lines.append(
            f"| {c['theorem']} | {c['notion']} | {cfg['loss']} | {cfg['lr']} | "
            f"{fmt(cfg['gamma'])} | {cfg['n']} | {cfg['replicates']} | {c['applicable']} | "
            f"{fmt(c['empirical_mean'])} | {fmt(c['bound_mean'])} | "
            f"{fmt(c['ratio_mean'])} | {fmt(c['vacuous_share'], 2)} | "
            f"{c['violations']} | {failures(c)} |"
        )
    return lines


def figures(study: HeadStudy, out: Path) -> list[str]:
    spec, steps = study.spec, study.steps
    names = []
    base = {"lr": spec.lr, "gamma_planted": spec.gamma, "n": spec.n}
    for loss in spec.losses:
        (k,) = study.find(loss=loss, **base)
        chosen = [c for i, c in study.checks if i == k]
        cols = 3
        rows = -(-len(chosen) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
        for ax in axes.flat[len(chosen) :]:
            ax.set_visible(False)
        for ax, chk in zip(axes.flat, chosen, strict=False):
            if chk.theorem == "head.svm_loo":
                _svm_panel(ax, chk)
            else:
                plotting.plot_bound_vs_empirical(chk, ax=ax)
                ax.set_title(f"{chk.theorem} ({chk.notion})", fontsize=9)
        fig.suptitle(
            f"Bound vs empirical leave-one-out stability, {loss} loss, lr={spec.lr}, "
            f"gamma={spec.gamma}, n={spec.n}, d={spec.d}",
            fontsize=10,
        )
        names.append(save_figure(fig, out, f"bounds_{loss}.png"))
    sweeps = {
        "head.lr": ("lr", "lr"),
        "head.margin": ("gamma_planted", "margin gamma"),
        "head.n": ("n", "sample size n"),
    }
    late = len(steps) - 1
    early = int(np.argmin(np.abs(steps - spec.early_t)))
    for notion in NOTIONS:
        fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
        curves = {}
        for loss in spec.losses:
            (k,) = study.find(loss=loss, **base)
            v = study.stability[k][notion]
            curves[loss] = (steps, list(v))
        plotting.plot_claim("GD step t", curves, ax=axes[0], title="head.iterations")
        for ax, (claim_id, (field, label)) in zip(axes[1:], sweeps.items(), strict=True):
            curves = {}
            for loss in spec.losses:
                others = {key: v for key, v in base.items() if key != field}
                ks = sorted(study.find(loss=loss, **others), key=lambda j: study.configs[j][field])
                xs = [study.configs[j][field] for j in ks]
                for tname, ti in (("early", early), ("late", late)):
                    curves[f"{loss}, t={steps[ti]} ({tname})"] = (
                        xs,
                        [study.stability[j][notion][ti] for j in ks],
                    )
            plotting.plot_claim(label, curves, ax=ax, title=claim_id)
        fig.suptitle(
            f"Instability loo.{notion} against the swept parameters (mean over i, 95% "
            "bootstrap interval)",
            fontsize=10,
        )
        names.append(save_figure(fig, out, f"claims_{notion}.png"))
    return names


def _svm_panel(ax, chk):
    emp, bound = chk.empirical[0], chk.bound[0]
    order = np.argsort(-bound)
    ax.bar(np.arange(len(order)), bound[order], color="0.8", label="Lemma H-2 bound D_i")
    ax.plot(np.arange(len(order)), emp[order], "o", ms=3, label="exact ||u_S - u_S\\i||")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_xlabel("sample (sorted by bound)")
    ax.set_title("head.svm_loo (max-margin direction)", fontsize=9)
    ax.legend(fontsize=7)
