"""The full fine-tuning study's part of the report: its JSON section (with the Taylor
faithfulness table), markdown and figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from stabtheory.bounds import FTEvidence, get
from stabtheory.bounds.finetune import DEPARTURE_THRESHOLD
from stabtheory.report.figures import (
    plot_bound_vs_empirical,
    plot_claim,
    plot_per_sample,
    save_figure,
)
from stabtheory.report.format import check_rows, failures, fmt
from stabtheory.simulations.finetune.claims import KNOBS, design, sweeps
from stabtheory.simulations.finetune.compute import REAL, FineTuneStudy
from stabtheory.simulations.finetune.spec import MEASURES

__all__ = ["figures", "markdown", "section"]


def _designs(kind: str) -> str:
    """A knob's design on the Taylor model / on the real network (outside assumption (d))."""
    taylor, _, _ = design(kind, real=False, faithful=False)
    real, counted, _ = design(kind, real=True, faithful=False)
    return taylor if taylor == real else f"{taylor} / {real}{'' if counted else ' (not counted)'}"


def section(ft: FineTuneStudy) -> dict:
    """Check rows, verdicts, the study's entry and the ``taylor`` table of ``report.json``."""
    taylor = [
        {
            key: c[key]
            for key in (
                "task",
                "replicates",
                "n",
                "lam",
                "input_scale",
                "pretrain_steps",
                "alpha",
                "lr_fraction",
                "tilt",
                "shift",
                "scale",
                "rho",
                "distance",
                "taylor_departure",
                "loss_gap",
                "real_exceeds_ft2",
            )
        }
        | {"faithful": bool(c["taylor_departure"] <= DEPARTURE_THRESHOLD)}
        for c in ft.configs
    ]
    designs = [
        {
            "claim": claim_id,
            "task": task,
            "knob": knob,
            "design": _designs(dict(KNOBS[claim_id])[knob]),
            "values": [ft.configs[k][knob] for k in idx],
        }
        for claim_id, rows in sweeps(ft).items()
        for task, knob, idx in rows
    ]
    return {
        "checks": [chk.summary() for _, chk in ft.checks],
        "claims": list(ft.verdicts),
        "study": {"spec": ft.spec.__dict__},
        "extra": {"taylor": taylor, "ft_designs": designs},
    }


def _design(cfg: dict) -> str:
    """The design of one configuration: a controlled change, the control, or the plain one."""
    if cfg.get("scale", 1.0) != 1.0:
        return f"control (c={cfg['scale']:g})"
    parts = [f"{k}={cfg[k]:g}" for k in ("tilt", "shift") if cfg.get(k, 0.0)]
    return f"controlled ({', '.join(parts)})" if parts else "plain"


def markdown(report: dict) -> list[str]:
    """The full fine-tuning checks table and the Taylor faithfulness table."""
    ft_rows = check_rows(report, FTEvidence)
    lines: list[str] = []
    if not ft_rows:
        return lines
    lines += [
        "",
        "## Full fine-tuning: checks on the Taylor model (and the real network beside them)",
        "",
        "The theorems cover the Taylor model. The rows `loo.weights (real)` set the real "
        "network's leave-one-out stability beside the FT-2 bound; they are not applicable "
        "(the Taylor model is not exact for a nonlinear network, see the faithfulness "
        "table), so they count no violations. `ft.FT1c` is FT-1 with the exact leave-one-out "
        "numerator ||r_i - mean r|| / ((n - 1) lambda_min(A_S\\i)), never above FT-1. "
        "`design`: plain, a controlled change (zero-sum tilt kappa = tilt x median rho_i, "
        "curvature-matched shift s = shift x ||w_S - w0||) or the loss-scaling control.",
        "",
        "| theorem | notion | task | n | lam | input scale | pre-train | alpha | design | draws | "
        "applicable | empirical mean | bound mean | bound/empirical | violations | "
        "failed assumptions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in ft_rows:
        cfg = c["config"]
        lines.append(
            f"| {c['theorem']} | {c['notion']} | {cfg['task']} | {cfg['n']} | {cfg['lam']} | "
            f"{cfg['input_scale']} | {cfg['pretrain_steps']} | {cfg['alpha']} | "
            f"{_design(cfg)} | {cfg['replicates']} | {c['applicable']} | "
            f"{fmt(c['empirical_mean'])} | "
            f"{fmt(c['bound_mean'])} | "
            f"{fmt(c['ratio_mean'])} | {c['violations']} | {failures(c)} |"
        )
    lines += [
        "",
        "### How far the real network departs from the Taylor model",
        "",
        "`departure` = max over draws, runs and checkpoints of ||w_real - w_quad|| / "
        "||w_quad - w0||; `loss gap` = max over draws and checkpoints of |F_real - F_quad| / "
        "|F_real| on S; `rho` and ||w_S - w0|| are means over the draws; `real > FT-2` = "
        "(sample, t) points, summed over the draws, where the real network's leave-one-out "
        "change exceeds the FT-2 bound computed from the Taylor quantities, at the checkpoints "
        "where FT-2 applies (n/a: nowhere).",
        "",
        "| task | n | lam | input scale | pre-train | alpha | lr / (1/lambda_max) | design | rho | "
        "||w_S - w0|| | departure | loss gap | real > FT-2 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["taylor"]:
        lines.append(
            f"| {r['task']} | {r['n']} | {r['lam']} | {r['input_scale']} | "
            f"{r['pretrain_steps']} | {r['alpha']} | {r['lr_fraction']} | {_design(r)} | "
            f"{fmt(r['rho'])} | "
            f"{fmt(r['distance'])} | {fmt(r['taylor_departure'])} | "
            f"{fmt(r['loss_gap'])} | {r['real_exceeds_ft2']} |"
        )
    if report.get("ft_designs"):
        lines += [
            "",
            "### Designs of the claim sweeps",
            "",
            "Design on the Taylor model / on the real network (docs/theory.md section 6): "
            "natural knobs are counted on the Taylor model (confounded, and not counted, when "
            "another bound quantity moves by x1.2 or more; n is judged by its total effect); "
            "the zero-sum tilt and the curvature-matched shift are positive controls there "
            "(decided by an identity); the loss scaling is a software control; the real "
            "network is counted only where it passes assumption (d).",
            "",
            "| claim | task | knob | design | values |",
            "|---|---|---|---|---|",
        ]
        for d in report["ft_designs"]:
            values = ", ".join(f"{x:g}" for x in d["values"])
            lines.append(f"| {d['claim']} | {d['task']} | {d['knob']} | {d['design']} | {values} |")
    return lines


def figures(ft: FineTuneStudy, out: Path) -> list[str]:
    """``bounds_ft_{task}.png`` (each task's base: the per-sample bounds on the Taylor
    minimiser and the GD bound beside the real network) and ``claims_ft_{notion}.png`` (the
    instability against the measured quantity of each claim)."""
    names = []
    spec = ft.spec
    base_idx = [k for task in spec.tasks for k in ft.find(**dataclasses.asdict(spec.base(task)))]
    for k in base_idx:
        chosen = [c for i, c in ft.checks if i == k]
        fig, axes = plt.subplots(1, 3, figsize=(15.6, 3.9))
        # one per-sample panel per notion: the first theorem on converged solutions bounding it
        converged = [c for c in chosen if get(c.theorem).converged]
        notions = dict.fromkeys(c.notion for c in converged)
        one_point = [next(c for c in converged if c.notion == notion) for notion in notions]
        for ax, chk in zip(axes[:2], one_point, strict=True):
            plot_per_sample(chk, ax=ax, title=f"{chk.theorem} ({chk.notion}), Taylor minimiser")
        real = next(c for c in chosen if c.notion == REAL)
        gd = next(c for c in chosen if c.theorem == real.theorem and c.notion != REAL)
        plot_bound_vs_empirical(gd, ax=axes[2], label=gd.theorem)
        steps = np.asarray(real.steps, float)
        axes[2].plot(
            steps,
            real.empirical.mean(axis=1),
            "-",
            color="tab:red",
            label="real network loo.weights (mean)",
        )
        axes[2].legend(fontsize=7)
        axes[2].set_title(f"{gd.theorem}: Taylor GD (and the real network)", fontsize=9)
        cfg = ft.configs[k]
        fig.suptitle(
            f"Full fine-tuning bounds, {cfg['task']} (n={cfg['n']}, p={cfg['p']}, "
            f"lam={cfg['lam']}, lr={cfg['lr']:.3g})",
            fontsize=10,
        )
        names.append(save_figure(fig, out, f"bounds_ft_{cfg['task']}.png"))
    late = len(spec.steps) - 1
    claim_sweeps = sweeps(ft)
    for notion, measures in MEASURES.items():
        fig, axes = plt.subplots(1, 3, figsize=(15.6, 8.4))
        for ax, (claim_id, parameter) in zip(
            axes,
            (("ft.n", "n"), ("ft.lipschitz", "rho"), ("ft.distance", "distance")),
            strict=True,
        ):
            curves = {}
            regimes = [
                r
                for v in ft.verdicts
                if v.claim == claim_id and v.notion == notion
                for r in v.regimes
            ]
            for task, knob, idx in claim_sweeps[claim_id]:
                idx = sorted(idx, key=lambda j: ft.configs[j][parameter])
                xs = [ft.configs[j][parameter] for j in idx]
                for label, kind in measures:
                    row = 0 if kind.startswith("min") else late
                    mine = [r for r in regimes if f"{task}, {label}, swept {knob} (" in r.regime]
                    shown = (
                        "" if not mine or mine[-1].counted else f"; {mine[-1].design}, not counted"
                    )
                    curves[f"{task}, {label} ({knob}{shown})"] = (
                        xs,
                        [ft.stability[j][kind][row] for j in idx],
                    )
            plot_claim(
                {
                    "n": "sample size n",
                    "rho": "Lipschitz constant rho = max_i rho_i",
                    "distance": "weight distance ||w_S - w0||",
                }[parameter],
                curves,
                ax=ax,
                title=claim_id,
            )
            # up to 15 curves per panel: the legend goes below the axes, not over the data
            ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
        fig.suptitle(
            f"Full fine-tuning: instability {notion} against the measured quantity "
            "of each claim (mean over i, 95% bootstrap interval)",
            fontsize=10,
        )
        names.append(save_figure(fig, out, f"claims_ft_{notion.split('.')[1]}.png"))
    return names
