"""The head study's part of the report: its JSON section, markdown and figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from stabtheory.bounds import HeadEvidence, get
from stabtheory.data.families import FAMILIES
from stabtheory.report.figures import (
    plot_bound_vs_empirical,
    plot_claim,
    plot_per_sample,
    save_figure,
)
from stabtheory.report.format import check_rows, failures, fmt
from stabtheory.simulations.head.claims import design, judge_placebo, margin_parameter, sweep
from stabtheory.simulations.head.compute import HeadStudy
from stabtheory.simulations.head.spec import NOTIONS, HeadConfig

__all__ = ["appendix", "figures", "markdown", "section"]


def section(study: HeadStudy) -> dict:
    """Check rows, verdicts and the study's entry of ``report.json``."""
    return {
        "checks": [chk.summary() for _, chk in study.checks],
        "claims": list(study.verdicts),
        "study": {
            "spec": study.spec.__dict__,
            "steps": study.steps.tolist(),
            "families": _families(study),
            "t_ref": study.spec.t_ref,
            "matched_eta_t": study.spec.lr * study.spec.t_ref,
            "matched_steps": {str(k): v for k, v in study.spec.matched_steps.items()},
        },
        "extra": {"placebo": judge_placebo(study)},
    }


def _families(study: HeadStudy) -> list[dict]:
    """One row per data family: its data, losses, sweeps and measured margins."""
    spec, rows = study.spec, []
    for family in spec.families:
        fam = FAMILIES[family]
        loss = spec.losses_of(family)[0]
        base = spec.base(loss, family)
        margin_sweep = sweep(study, family, loss, "head.margin")
        measured = [c["gamma"] for c in study.configs if c["family"] == family]
        rows.append(
            {
                "family": family,
                "data": fam.description.format(d=spec.d, radius=spec.radius),
                "losses": list(spec.losses_of(family)),
                "base": {"lr": base.lr, "gamma": base.gamma, "n": base.n, "pair": base.pair},
                "lrs": [study.plan[k].lr for k in sweep(study, family, loss, "head.lr")],
                "margins": [round(margin_parameter(study.configs[k]), 4) for k in margin_sweep],
                "pairs": [list(study.plan[k].pair) for k in margin_sweep]
                if fam.sweeps == "pair"
                else None,
                "ns": [study.plan[k].n for k in sweep(study, family, loss, "head.n")],
                "gamma_measured": [float(min(measured)), float(max(measured))],
                "head.n design": design(family, "head.n"),
                "configs": sum(c["family"] == family for c in study.configs),
            }
        )
    return rows


def markdown(report: dict) -> list[str]:
    """The data-families table and the placebo (the checks table is in :func:`appendix`)."""
    lines: list[str] = []
    if not check_rows(report, HeadEvidence):
        return lines
    study = report.get("studies", {}).get("head", {})
    families = study.get("families") or []
    if families:
        matched = ", ".join(f"eta={k}: t={v}" for k, v in study["matched_steps"].items())
        lines += [
            "## Head tuning: data families (every head claim has one regime per family)",
            "",
            f"`head.lr` is judged at fixed t = {study.get('t_ref')} and at matched eta * t = "
            f"{fmt(study.get('matched_eta_t'))} (the run of step eta read at t = eta_base t_ref / "
            f"eta: {matched}). The digits margin sweep runs across pairs "
            "(natural, though the pairs differ in more than their margin); the margin column "
            "lists the swept values (digits: mean measured max margin per pair at the base n).",
            "",
            "| family | data | losses | base (lr, gamma, n) | lr sweep | margin sweep | n sweep "
            "| measured gamma | head.n design | configs |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for f in families:
            b = f["base"]
            base_gamma = f"pair {b['pair'][0]}v{b['pair'][1]}" if b["pair"] else b["gamma"]
            margins = ", ".join(fmt(m) for m in f["margins"])
            if f["pairs"]:
                margins += " (pairs " + ", ".join(f"{a}v{c}" for a, c in f["pairs"]) + ")"
            lo, hi = f["gamma_measured"]
            lines.append(
                f"| {f['family']} | {f['data']} | {', '.join(f['losses'])} | "
                f"{b['lr']}, {base_gamma}, {b['n']} | {', '.join(map(str, f['lrs']))} | "
                f"{margins} | {', '.join(map(str, f['ns']))} | {fmt(lo)} to {fmt(hi)} | "
                f"{f['head.n design']} | {f['configs']} |"
            )
        lines.append("")
    placebo = report.get("placebo")
    if placebo and placebo["claims"]:
        lo, hi = placebo["ci"]
        lines += [
            f"**Placebo:** {placebo['claims']} null claims (each family's base configuration "
            f"and {placebo['copies'] - 1} re-seeded copies, swept over the copy index and "
            "judged by the claims' statistics under every notion, early and late): "
            f"{placebo['decisive']} decisive, a false-decision rate of {fmt(placebo['rate'])} "
            f"[{fmt(lo)}, {fmt(hi)}] (exact 95% interval; the target is at most 0.05; "
            "docs/theory.md section 6).",
            "",
        ]
    return lines


def appendix(report: dict) -> list[str]:
    """The head-tuning checks table (report.md's appendix)."""
    head_rows = check_rows(report, HeadEvidence)
    if not head_rows:
        return []
    return [
        "## Head tuning: checks (bound vs empirical, per sample, over the checkpoints where "
        "the theorem applies)",
        "",
        "`vacuous` is the share of compared entries whose bound is at least the trivial "
        "bound (2 for a distance between unit vectors, gamma + R for a margin gap, "
        "||w(S) - w0|| + ||w(S\\i) - w0|| for weights, l(w(S); z_i) + l(w(S\\i); z_i) for "
        "losses): a pass there says nothing (docs/theory.md section 6). "
        "Each row pools the samples of every data draw of its configuration; `draws` is "
        "their number and `gamma` the mean measured max margin over them.",
        "",
        "| theorem | notion | family | loss | lr | gamma | n | draws | applicable | "
        "empirical mean | bound mean | bound/empirical | vacuous | violations | "
        "failed assumptions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ] + [_check_row(c) for c in head_rows]


def _check_row(c: dict) -> str:
    """One row of the checks table."""
    cfg = c["config"]
    family = cfg.get("family", "planted")
    if cfg.get("pair"):
        family += f" {cfg['pair'][0]}v{cfg['pair'][1]}"
    return (
        f"| {c['theorem']} | {c['notion']} | {family} | {cfg['loss']} | {cfg['lr']} | "
        f"{fmt(cfg['gamma'])} | {cfg['n']} | {cfg['replicates']} | {c['applicable']} | "
        f"{fmt(c['empirical_mean'])} | {fmt(c['bound_mean'])} | "
        f"{fmt(c['ratio_mean'])} | {fmt(c['vacuous_share'], 2)} | "
        f"{c['violations']} | {failures(c)} |"
    )


def figures(study: HeadStudy, out: Path) -> list[str]:
    """``bounds_{loss}.png`` (planted base), ``claims_{notion}.png`` (one row per family: the
    four claims) and ``stability_vs_n.png`` (every family's n sweep, direction notion)."""
    spec, steps = study.spec, study.steps
    names = []
    for loss in spec.losses_of(spec.families[0]):
        k = study.plan.index(spec.base(loss, spec.families[0]))
        chosen = [c for i, c in study.checks if i == k]
        cols = 3
        rows = -(-len(chosen) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
        for ax in axes.flat[len(chosen) :]:
            ax.set_visible(False)
        for ax, chk in zip(axes.flat, chosen, strict=False):
            if get(chk.theorem).converged:  # exact solutions: one value per sample
                plot_per_sample(chk, ax=ax, linthresh=1e-4)
            else:
                plot_bound_vs_empirical(chk, ax=ax)
                ax.set_title(f"{chk.theorem} ({chk.notion})", fontsize=9)
        base = spec.base(loss, spec.families[0])
        fig.suptitle(
            f"Bound vs empirical leave-one-out stability, {spec.families[0]} data, {loss} loss, "
            f"lr={base.lr}, gamma={base.gamma}, n={base.n}, d={study.configs[k]['d']}",
            fontsize=10,
        )
        names.append(save_figure(fig, out, f"bounds_{loss}.png"))
    late = len(steps) - 1
    early = int(np.argmin(np.abs(steps - spec.early_t)))
    ref = int(np.argmin(np.abs(steps - spec.t_ref)))
    matched = spec.matched_steps
    for notion in NOTIONS:
        nf = len(spec.families)
        fig, axes = plt.subplots(nf, 4, figsize=(19, 3.7 * nf), squeeze=False)
        for row, family in zip(axes, spec.families, strict=True):
            curves, lr_curves, margin_curves, n_curves = {}, {}, {}, {}
            for loss in spec.losses_of(family):
                k = study.plan.index(spec.base(loss, family))
                curves[loss] = (steps, list(study.stability[k][notion]))
                ks = sweep(study, family, loss, "head.lr")
                lrs = [study.plan[j].lr for j in ks]
                lr_curves[f"{loss}, fixed t={steps[ref]} (confounded)"] = (
                    lrs,
                    [study.stability[j][notion][ref] for j in ks],
                )
                lr_curves[f"{loss}, matched eta*t={spec.lr * spec.t_ref:g}"] = (
                    lrs,
                    [
                        study.stability[j][notion][int(np.argmin(np.abs(steps - matched[lr])))]
                        for j, lr in zip(ks, lrs, strict=True)
                    ],
                )
                for tname, ti in (("early", early), ("late", late)):
                    label = f"{loss}, t={steps[ti]} ({tname})"
                    ks = sweep(study, family, loss, "head.margin")
                    margin_curves[label] = (
                        [margin_parameter(study.configs[j]) for j in ks],
                        [study.stability[j][notion][ti] for j in ks],
                    )
                    ks = sweep(study, family, loss, "head.n")
                    n_curves[label] = (
                        [study.plan[j].n for j in ks],
                        [study.stability[j][notion][ti] for j in ks],
                    )
            margin_label = FAMILIES[family].margin_label
            n_design = design(family, "head.n")
            n_title = f"head.n ({n_design})" if n_design != "natural" else "head.n"
            it_title = f"{family}: head.iterations"
            if notion == "weights":  # ||w(t)|| grows like log t / gamma: not counted
                it_title += " (positive-control: grows by construction)"
            plot_claim("GD step t", curves, ax=row[0], title=it_title)
            plot_claim("lr eta", lr_curves, ax=row[1], title=f"{family}: head.lr")
            plot_claim(margin_label, margin_curves, ax=row[2], title=f"{family}: head.margin")
            plot_claim("sample size n", n_curves, ax=row[3], title=f"{family}: {n_title}")
        fig.suptitle(
            f"Instability loo.{notion} against the swept parameters, one row per data family "
            "(mean over i, 95% hierarchical bootstrap interval)",
            fontsize=10,
        )
        names.append(save_figure(fig, out, f"claims_{notion}.png"))
    fig, ax = plt.subplots(figsize=(6, 4.2))
    curves = {}
    for family in spec.families:
        for loss in spec.losses_of(family):
            ks = sweep(study, family, loss, "head.n")
            curves[f"{family}, {loss}"] = (
                [study.plan[j].n for j in ks],
                [study.stability[j]["direction"][late] for j in ks],
            )
    plot_claim(
        "sample size n",
        curves,
        ax=ax,
        title=f"head.n per data family: loo.direction at t={steps[late]}",
    )
    names.append(save_figure(fig, out, "stability_vs_n.png"))
    if spec.ngd_gammas:
        names.append(_rates_figure(study, out))
    return names


#: How the rates figure names the training algorithms.
_ALGORITHMS = {"gd": "GD", "ngd": "normalized GD"}


def _rates_figure(study: HeadStudy, out: Path) -> str:
    """``rates_h1_h2_h3.png``: the direction bounds of GD beside those of normalized GD, on
    the planted data of the largest NGD margin (the trivial bound 2 drawn in each panel):
    every ``loo.direction`` theorem once, on the first of the two runs it applies to."""
    spec = study.spec
    gamma = max(spec.ngd_gammas)
    gd = HeadConfig("exponential", spec.lr, gamma, spec.n)
    ngd = HeadConfig("exponential", spec.ngd_lr, gamma, spec.n, optimizer="ngd")
    panels, shown = [], set()
    for cfg in (gd, ngd):
        k = study.plan.index(cfg) if cfg in study.plan else None
        rows = [c for i, c in study.checks if i == k and c.notion == "loo.direction"]
        for chk in rows:
            if chk.theorem not in shown:
                shown.add(chk.theorem)
                panels.append((cfg, chk))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(16, 4.2), sharey=True, squeeze=False)
    for ax, (cfg, chk) in zip(axes.flat, panels, strict=False):
        plot_bound_vs_empirical(chk, ax=ax)
        ax.axhline(2.0, color="r", lw=0.8, alpha=0.6, label="trivial bound 2")
        share = chk.vacuous_share
        vac = "not applicable" if share is None else f"vacuous share {share:.2f}"
        algorithm = _ALGORITHMS.get(cfg.optimizer, cfg.optimizer)
        ax.set_title(f"{chk.theorem}: {algorithm}, eta={cfg.lr} ({vac})", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Direction stability bounds side by side (planted data, gamma={gamma}, n={spec.n}, "
        "exponential loss, every draw): the GD rates are O(1/log t), normalized GD's O(1/t)",
        fontsize=10,
    )
    return save_figure(fig, out, "rates_h1_h2_h3.png")
