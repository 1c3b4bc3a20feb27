"""The attention-theory study's part of the report: its check rows, the ``attention_theory``
section of ``report.json``, its markdown tables and its two figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from stabtheory.report.figures import save_figure
from stabtheory.report.format import failures, fmt
from stabtheory.simulations.attention_theory.compute import STUDY, AttentionTheoryStudy

__all__ = [
    "appendix",
    "figures",
    "last_applicable",
    "last_step",
    "markdown",
    "section",
    "summary",
]

_KEYS = ("bound_mean", "empirical_mean", "ratio_mean", "vacuous_share", "violations")


def last_step(check) -> dict:
    """A check at its last checkpoint: the mean measured change over the samples (whether or
    not the theorem applies there: the real network's, outside the theorem, too), the mean
    bound and their ratio (``None`` where the theorem does not apply there)."""
    bound, emp = check.as_2d()
    e = float(np.mean(emp[-1]))
    if not check.applicable or not check.applicable_at[-1]:
        return {"bound": None, "measured": e, "ratio": None}
    b = float(np.mean(bound[-1]))
    return {"bound": b, "measured": e, "ratio": b / e if e > 0 else None}


def last_applicable(check) -> dict | None:
    """A check at the last checkpoint where it applies: ``t``, mean bound and mean measured
    change (``None`` where it applies nowhere)."""
    if not check.applicable:
        return None
    k = int(np.flatnonzero(check.applicable_at)[-1])
    bound, emp = check.as_2d()
    return {
        "t": int(np.atleast_1d(check.steps)[k]),
        "bound": float(np.mean(bound[k])),
        "measured": float(np.mean(emp[k])),
    }


def _check(c) -> dict:
    s = c.summary()
    failed = [a.name for a in c.assumptions if not a.holds]
    return {
        "theorem": c.theorem,
        "notion": c.notion,
        "applicable": c.applicable,
        **{k: s[k] for k in _KEYS},
        "last_step": last_step(c),
        "last_applicable": last_applicable(c),
        "failed_assumptions": failed,
    }


def _rows(study: AttentionTheoryStudy) -> tuple[list[dict], list[dict]]:
    ft = [{**r["measured"], "checks": [_check(c) for c in r["checks"]]} for r in study.ft]
    head = [{**r["measured"], "checks": [_check(c) for c in r["checks"]]} for r in study.head]
    return ft, head


def _find(checks: list[dict], theorem: str, notion: str | None = None) -> dict | None:
    return next(
        (c for c in checks if c["theorem"] == theorem and notion in (None, c["notion"])), None
    )


def summary(ft: list[dict], head: list[dict]) -> str:
    """The measured answers in words: FT bound/measured ratios per n and the faithfulness;
    per pre-training length the separability, margin and head stability."""
    parts = []
    if ft:
        ratios = ", ".join(
            f"n={r['n']}: FT-1 x{fmt(_find(r['checks'], 'ft.FT1')['ratio_mean'])}, FT-2 "
            f"x{fmt(_find(r['checks'], 'ft.FT2', 'loo.weights (gd)')['ratio_mean'])}"
            for r in ft
        )
        deps = ", ".join(f"n={r['n']}: {fmt(r['departure'])}" for r in ft)
        parts.append(
            f"Full fine-tuning of the shipped transformer (p = {ft[0]['p']}, lam = "
            f"{ft[0]['lam']}): bound / measured (means) {ratios}. The real network departs "
            f"from its Taylor model along GD on S by {deps} (relative weight gap), so the "
            "theorems cover the Taylor model only."
        )
    if head:
        text = []
        for r in head:
            sep = f"gamma = {fmt(r['gamma'])}" if r["separable"] else "NOT separable"
            h1 = _find(r["checks"], "head.H1")
            c1 = _find(r["checks"], "head.C1", "loo.weights")
            if h1 is not None:
                loo = f", LOO direction change {fmt(h1['last_step']['measured'])}"
            else:
                loo = f", LOO weight change {fmt(c1['last_step']['measured'])}"
            text.append(f"pre-train {r['pretrain_steps']} (n={r['n']}): {sep}{loo}")
        parts.append("Frozen pooled [CLS] features: " + "; ".join(text) + ".")
    return " ".join(parts)


def section(study: AttentionTheoryStudy) -> dict:
    """The check rows, the study's entry and the top-level ``attention_theory`` section."""
    ft, head = _rows(study)
    return {
        "checks": [c.summary() for _, c in study.checks],
        "claims": [],
        "study": {"spec": dataclasses.asdict(study.spec)},
        "extra": {
            "attention_theory": {
                "ft": ft,
                "head": head,
                "summary": summary(ft, head),
                "runtime_s": study.runtime_s,
            }
        },
    }


def _ft_cell(r: dict, theorem: str, notion: str | None = None) -> str:
    c = _find(r["checks"], theorem, notion)
    if c is None:
        return "n/a"
    if notion == "loo.weights (real)":
        taylor = _find(r["checks"], theorem, "loo.weights (gd)")["last_step"]["bound"]
        return (
            f"real network {fmt(c['last_step']['measured'])} at the last t beside the "
            f"Taylor bound {fmt(taylor)} (outside the theorem: "
            + ", ".join(c["failed_assumptions"])
            + ")"
        )
    if not c["applicable"]:
        return "not applicable (" + ", ".join(c["failed_assumptions"]) + ")"
    vac = "" if c["vacuous_share"] is None else f", vac. {fmt(c['vacuous_share'], 2)}"
    return (
        f"{fmt(c['bound_mean'])} / {fmt(c['empirical_mean'])} = x{fmt(c['ratio_mean'])}{vac}"
        f"{', **' + str(c['violations']) + ' violations**' if c['violations'] else ''}"
    )


def markdown(report: dict) -> list[str]:
    """The section "The theorems on the attention testbed's transformer": the FT table (with
    the faithfulness) and the head table per pre-training length."""
    at = report.get("attention_theory")
    if not at:
        return []
    lines = ["", "## The theorems on the attention testbed's transformer (docs/attention.md)", ""]
    if at["ft"]:
        r0 = at["ft"][0]
        lines += [
            f"Full fine-tuning of the shipped post-LN encoder (p = {r0['p']} weights: encoder, "
            "pooler, a fresh two-logit head whose logit difference is the one logit; float64) "
            f"on the `{r0['task']}` task, L2-SP pull lam = {r0['lam']}, GD step 0.9 / "
            f"lambda_max, checkpoints {r0['steps']}. The theorems are checked on the Taylor "
            "model (Gauss-Newton curvature, matrix-free); plain fine-tuning (lam = 0) is outside "
            "FT-1/FT-2 (Lam = 0 when p > n). Cells: bound mean / measured mean = ratio, "
            "vacuous share. `departure`: max over t of ||w_real - w_quad|| / ||w_quad - w0|| "
            "along GD on S; `loss gap`: max over t of |F_real - F_quad| / |F_real| there; "
            "`min/max eig`: the true Hessian's lambda_min / lambda_max at w0 (negative: not "
            "PSD).",
            "",
            "| n | lr | rho | ||w_S - w0|| | Lam | FT-1 | FT-1c | FT-1L | FT-2 (Taylor GD) | "
            "FT-2 beside the real network | departure | loss gap | min/max eig |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in at["ft"]:
            lines.append(
                f"| {r['n']} | {fmt(r['lr'])} | {fmt(r['rho'])} | {fmt(r['distance'])} | "
                f"{fmt(r['Lam'])} | {_ft_cell(r, 'ft.FT1')} | {_ft_cell(r, 'ft.FT1c')} | "
                f"{_ft_cell(r, 'ft.FT1L')} | {_ft_cell(r, 'ft.FT2', 'loo.weights (gd)')} | "
                f"{_ft_cell(r, 'ft.FT2', 'loo.weights (real)')} | {fmt(r['departure'])} | "
                f"{fmt(r['loss_gap'])} | {fmt(r['hessian_min_rel'])} |"
            )
        lines.append("")
    if at["head"]:
        lines += [
            "Head tuning on the frozen pooled [CLS] features (with a constant feature: the "
            "head's bias) of encoders pre-trained for the given number of steps (0: the "
            "initialisation; the largest: the shipped checkpoint), every head theorem by "
            "`stabtheory.audit.audit`. Cells: bound / measured (means over the samples) at the "
            "last step t where the theorem applies (C-1 on the exponential loss needs "
            "eta <= 2 / b with b = R^2 max|l'| measured along the runs, which fails once "
            "a sample's margin turns negative); `LOO dir.` / `LOO weights`: the measured "
            "leave-one-out change of the head's direction / raw weights at the last step; a "
            "theorem stated for separable data does not apply where the "
            "features are not separable (its assumption fails: reported, not hidden).",
            "",
            "| pre-train steps | n | d | R | separable | gamma | LOO dir. | LOO weights | H-1 | "
            "H-3 | C-1 (weights) | svm LOO | violations |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in at["head"]:

            def cell(theorem, notion=None, r=r):
                c = _find(r["checks"], theorem, notion)
                if c is None or c["last_applicable"] is None:
                    return "n/a"
                s = c["last_applicable"]
                when = f" (t={s['t']})" if s["t"] >= 0 else ""  # a limit (svm): no t
                return f"{fmt(s['bound'])} / {fmt(s['measured'])}{when}"

            viol = sum(c["violations"] for c in r["checks"] if c["applicable"])
            h1 = _find(r["checks"], "head.H1")
            c1 = _find(r["checks"], "head.C1", "loo.weights")
            loo_dir = "n/a" if h1 is None else fmt(h1["last_step"]["measured"])
            loo_w = "n/a" if c1 is None else fmt(c1["last_step"]["measured"])
            lines.append(
                f"| {r['pretrain_steps']} | {r['n']} | {r['d']} | {fmt(r['R'])} | "
                f"{'yes' if r['separable'] else '**no**'} | {fmt(r['gamma'])} | {loo_dir} | "
                f"{loo_w} | {cell('head.H1')} | {cell('head.H3')} | "
                f"{cell('head.C1', 'loo.weights')} | {cell('head.svm_loo')} | {viol} |"
            )
        lines.append("")
    lines += [f"**Measured.** {at['summary']}", ""]
    return lines


def appendix(report: dict) -> list[str]:
    """The attention-theory check rows (report.md's appendix): every theorem and notion per
    fine-tuning size and per (pre-training length, head n)."""
    rows = [c for c in report["checks"] if c["config"].get("study") == STUDY]
    if not rows:
        return []
    lines = [
        "## The theorems on the attention transformer: checks",
        "",
        "| theorem | notion | part | n | pre-train | applicable | empirical mean | bound mean | "
        "bound/empirical | vacuous | violations | failed assumptions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        cfg = c["config"]
        part = "full fine-tuning" if c["theorem"].startswith("ft.") else "head"
        lines.append(
            f"| {c['theorem']} | {c['notion']} | {part} | {cfg['n']} | {cfg['pretrain_steps']} | "
            f"{c['applicable']} | {fmt(c['empirical_mean'])} | {fmt(c['bound_mean'])} | "
            f"{fmt(c['ratio_mean'])} | {fmt(c['vacuous_share'], 2)} | {c['violations']} | "
            f"{failures(c)} |"
        )
    return lines


def _ft_figure(study: AttentionTheoryStudy, out: Path) -> str:
    ns = [r["n"] for r in study.ft]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = (
        (axes[0], (("ft.FT1", "loo.weights"), ("ft.FT1c", "loo.weights"))),
        (axes[1], (("ft.FT2", "loo.weights (gd)"),)),
    )
    for ax, keys in panels:
        for k, (theorem, notion) in enumerate(keys):
            checks = [
                next(c for c in r["checks"] if (c.theorem, c.notion) == (theorem, notion))
                for r in study.ft
            ]
            steps = [last_step(c) for c in checks]
            ax.plot(
                ns,
                [s["bound"] or np.nan for s in steps],
                "o--",
                color=f"C{k}",
                label=f"{theorem} bound",
            )
            if k == 0:
                ax.plot(
                    ns,
                    [s["measured"] or np.nan for s in steps],
                    "o-",
                    color="k",
                    label="measured (Taylor model)",
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n")
    real = [
        (r["n"], last_step(c)["measured"])
        for r in study.ft
        for c in r["checks"]
        if c.notion == "loo.weights (real)"
    ]
    if real:
        axes[1].plot(*zip(*real, strict=True), "s", color="C3", label="real network (outside)")
    t = study.spec.steps[-1]
    axes[0].set_title("converged minimiser: mean LOO weight change")
    axes[1].set_title(f"GD at t = {t}: mean LOO weight change")
    axes[0].set_ylabel("||w_S - w_S\\i||")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Full fine-tuning theorems on the transformer's Taylor model (lam = {study.spec.lam})"
    )
    return save_figure(fig, out, "attention_theory_ft.png")


def _head_figure(study: AttentionTheoryStudy, out: Path) -> str:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    lengths = list(study.spec.lengths)
    xs = np.arange(len(lengths))
    for k, n in enumerate(study.spec.head_ns):
        rows = [
            next(r for r in study.head if r["n"] == n and r["pretrain_steps"] == s) for s in lengths
        ]
        gam = [r["measured"]["gamma"] if r["measured"]["separable"] else np.nan for r in rows]
        axes[0].plot(xs, gam, "o-", color=f"C{k}", label=f"n = {n}")
        for x, r in zip(xs, rows, strict=True):
            if not r["measured"]["separable"]:
                axes[0].plot([x], [0], "x", color=f"C{k}", ms=9)
        for ax, theorem, notion in (
            (axes[1], "head.C1", "loo.weights"),
            (axes[2], "head.H1", "loo.direction"),
        ):
            got = [
                next((c for c in r["checks"] if (c.theorem, c.notion) == (theorem, notion)), None)
                for r in rows
            ]
            steps = [
                last_step(c) if c is not None else {"bound": None, "measured": None} for c in got
            ]
            ax.plot(
                xs,
                [s["measured"] or np.nan for s in steps],
                "o-",
                color=f"C{k}",
                label=f"measured, n = {n}",
            )
            ax.plot(
                xs,
                [s["bound"] or np.nan for s in steps],
                "o--",
                color=f"C{k}",
                alpha=0.6,
                label=f"{theorem} bound, n = {n}",
            )
    axes[0].set_title("max margin gamma (x: not separable)")
    axes[1].set_title(
        f"raw head weights: LOO change at t = {study.spec.head_steps}\n(C-1 bound where it "
        "applies there)",
        fontsize=10,
    )
    axes[2].set_title(f"head direction: LOO change at t = {study.spec.head_steps}")
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[2].axhline(2.0, color="grey", lw=0.8, ls=":", label="trivial bound 2")
    for ax in axes:
        ax.set_xticks(xs)
        ax.set_xticklabels([str(s) for s in lengths])
        ax.set_xlabel("pre-training steps")
        ax.legend(fontsize=7)
    fig.suptitle("Pre-training -> margin -> head stability (frozen pooled [CLS] features)")
    return save_figure(fig, out, "attention_theory_head.png")


def figures(study: AttentionTheoryStudy, out: Path) -> list[str]:
    """The FT bound against the measured change per n, and the margin and head stability
    against the pre-training length."""
    names = []
    if study.ft:
        names.append(_ft_figure(study, out))
    if study.head:
        names.append(_head_figure(study, out))
    return names
