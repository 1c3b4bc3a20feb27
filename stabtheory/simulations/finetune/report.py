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

__all__ = ["appendix", "figures", "markdown", "real_vs_taylor", "section"]


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
                "task_shift",
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
                "edge_of_stability",
                "hessian_min_eig",
                "hessian_min_rel",
                "hessian_min_rel_path",
                "stationarity",
                "stationary",
                "stationary_steps",
                "real_over_taylor_min",
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
        "extra": {
            "taylor": taylor,
            "ft_designs": designs,
            "real_vs_taylor": real_vs_taylor(ft.verdicts),
        },
    }


_MODELS = ("Taylor minimiser", "Taylor GD", "real network GD")


def real_vs_taylor(verdicts) -> list[dict]:
    """The real network's elasticities beside its Taylor model's, a result of its own: per
    claim, notion and sweep (one vote's runs) and checkpoint, the per-draw log-log slope of
    each model's instability against the swept quantity (``report.json``'s
    ``real_vs_taylor``). The Taylor model is counted, the real network only inside the
    theory; where the two slopes differ, the quadratic model does not describe how the real
    network's stability scales."""
    rows = []
    for v in verdicts:
        groups: dict[tuple[str, str], dict] = {}
        for r in v.regimes:
            if r.slope is None:
                continue
            model = next((m for m in _MODELS if f", {m}," in r.regime), None)
            if model is None:
                continue
            when = r.regime.split(": ")[0] if r.regime.startswith(("early", "late")) else ""
            groups.setdefault((r.runs, when.split(" (")[0]), {})[model] = r
        for (runs, when), models in groups.items():
            real = models.get("real network GD")
            taylor = models.get("Taylor GD") or models.get("Taylor minimiser")
            if real is None or taylor is None:
                continue
            rows.append(
                {
                    "claim": v.claim,
                    "notion": v.notion,
                    "runs": runs,
                    "when": when or None,
                    "taylor_model": "Taylor GD" if "Taylor GD" in models else "Taylor minimiser",
                    "taylor": taylor.slope_dict(),
                    "real": real.slope_dict(),
                    "real_counted": bool(real.counted),
                }
            )
    return rows


def _stationary(r: dict) -> str:
    if r.get("stationary") is None:
        return "-"
    return f"{'yes' if r['stationary'] else 'no'} ({r['stationary_steps']})"


def _design(cfg: dict) -> str:
    """The design of one configuration: a controlled change, the control, or the plain one."""
    if cfg.get("scale", 1.0) != 1.0:
        return f"control (c={cfg['scale']:g})"
    parts = [f"{k}={cfg[k]:g}" for k in ("tilt", "shift") if cfg.get(k, 0.0)]
    return f"controlled ({', '.join(parts)})" if parts else "plain"


def appendix(report: dict) -> list[str]:
    """The full fine-tuning checks table (report.md's appendix)."""
    ft_rows = check_rows(report, FTEvidence)
    if not ft_rows:
        return []
    lines = [
        "## Full fine-tuning: checks on the Taylor model (and the real network beside them)",
        "",
        "| theorem | notion | task | n | lam | input scale | task shift | pre-train | alpha | "
        "design | draws | applicable | empirical mean | bound mean | bound/empirical | "
        "violations | failed assumptions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in ft_rows:
        cfg = c["config"]
        lines.append(
            f"| {c['theorem']} | {c['notion']} | {cfg['task']} | {cfg['n']} | {cfg['lam']} | "
            f"{cfg['input_scale']} | {cfg.get('task_shift')} | {cfg['pretrain_steps']} | "
            f"{cfg['alpha']} | {_design(cfg)} | {cfg['replicates']} | {c['applicable']} | "
            f"{fmt(c['empirical_mean'])} | {fmt(c['bound_mean'])} | "
            f"{fmt(c['ratio_mean'])} | {c['violations']} | {failures(c)} |"
        )
    return lines


def markdown(report: dict) -> list[str]:
    """The full fine-tuning study: what the rows cover, the Taylor faithfulness table, the
    designs of the sweeps and the real network's elasticities beside the Taylor model's (the
    checks table is in :func:`appendix`)."""
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
        "The checks table is in Appendix B.",
    ]
    lines += [
        "",
        "### How far the real network departs from the Taylor model",
        "",
        "`departure` = max over draws, runs and checkpoints of ||w_real - w_quad|| / "
        "||w_quad - w0||; `loss gap` = max over draws and checkpoints of |F_real - F_quad| / "
        "|F_real| on S; `rho` and ||w_S - w0|| are means over the draws; `real > FT-2` = "
        "(sample, t) points, summed over the draws, where the real network's leave-one-out "
        "change exceeds the FT-2 bound computed from the Taylor quantities, at the checkpoints "
        "where FT-2 applies (n/a: nowhere). The real network's regime, from the true Hessian "
        "of its objective on S (Lanczos): `edge` = max over draws, w0 and the checkpoints of "
        "eta lambda_max / 2 (below 1: GD inside the classical stability region of the true "
        "loss); `min/max eig` = min over draws of lambda_min / lambda_max of the mean loss's "
        "Hessian at w0 (and along the real run on S), negative where the true curvature is "
        "not PSD (the Taylor model's Gauss-Newton curvature is PSD by construction); "
        "`stationarity` = max over draws of ||grad F_S|| where the real run stopped over its "
        "value at w0. The step (`lr_fraction` / lambda_max) uses the largest of the "
        "Gauss-Newton lambda_max over S and every S\\i and the true Hessian's at w0 and "
        "along two pilot GD runs on S (`path_lr`: the curvature grows along the path). The "
        "base configurations' real runs (S and every S\\i) go on after the last checkpoint "
        "to ||grad F_s|| <= 1e-3 ||grad F_s(w0)|| (at most `stationary_steps` more steps; "
        "`stationary` says whether every run of every draw got there, and `real / Taylor min` "
        "is the real network's mean leave-one-out weight change there over the Taylor "
        "minimiser's); the others stop at the last checkpoint (-).",
        "",
        "| task | n | lam | input scale | task shift | pre-train | alpha | lr / (1/lambda_max) | "
        "design | rho | "
        "||w_S - w0|| | departure | loss gap | real > FT-2 | edge | min/max eig at w0 "
        "(path) | stationarity | stationary (steps) | real / Taylor min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["taylor"]:
        lines.append(
            f"| {r['task']} | {r['n']} | {r['lam']} | {r['input_scale']} | {r['task_shift']} | "
            f"{r['pretrain_steps']} | {r['alpha']} | {r['lr_fraction']} | {_design(r)} | "
            f"{fmt(r['rho'])} | "
            f"{fmt(r['distance'])} | {fmt(r['taylor_departure'])} | "
            f"{fmt(r['loss_gap'])} | {r['real_exceeds_ft2']} | "
            f"{fmt(r['edge_of_stability'])} | {fmt(r['hessian_min_rel'])} "
            f"({fmt(r['hessian_min_rel_path'])}) | {fmt(r['stationarity'])} | "
            f"{_stationary(r)} | {fmt(r['real_over_taylor_min'])} |"
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
    if report.get("real_vs_taylor"):
        lines += [
            "",
            "### The real network against its Taylor model: elasticities",
            "",
            "Per claim, notion and sweep: the per-draw log-log slope of the leave-one-out "
            "instability against the swept quantity, mean over draws with its 95% t-interval, "
            "for the Taylor model (counted) and for the real network trained by GD from the same "
            "w0 on the same draws (shown, counted only inside the Taylor regime), beside the "
            "exponent the bound predicts along the sweep. Where they differ, the quadratic "
            "model does not describe how the real network's stability scales.",
            "",
            "| claim | notion | sweep | when | Taylor model: elasticity [CI] | real network: "
            "elasticity [CI] | bound's |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in report["real_vs_taylor"]:
            t, q = r["taylor"], r["real"]
            lines.append(
                f"| {r['claim']} | {r['notion']} | {r['runs']} | {r['when'] or 'end'} | "
                f"{r['taylor_model']}: {_slope(t)} | {_slope(q)} | {_signed(t['predicted'])} |"
            )
    return lines


def _signed(x) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def _slope(s: dict) -> str:
    lo, hi = s["ci"]
    return f"{_signed(s['estimate'])} [{_signed(lo)}, {_signed(hi)}]"


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
        fig, axes = plt.subplots(1, 5, figsize=(26.0, 8.4))
        for ax, (claim_id, parameter) in zip(
            axes[:3],
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
        _fig_ft2_panels(ft, notion, measures, axes[3:])
        fig.suptitle(
            f"Full fine-tuning: instability {notion} against the measured quantity "
            "of each claim (mean over i, 95% bootstrap interval)",
            fontsize=10,
        )
        names.append(save_figure(fig, out, f"claims_ft_{notion.split('.')[1]}.png"))
    return names


def _fig_ft2_panels(ft: FineTuneStudy, notion: str, measures, axes) -> None:
    """The panels of FT-2's predictions: ``ft.lr`` (GD at the early checkpoint against the
    measured step) and ``ft.steps`` (GD against t up to the early checkpoint, each task's
    base configuration)."""
    spec = ft.spec
    steps = list(spec.steps)
    early = steps.index(spec.early_step) if spec.early_step in steps else 1
    gd = [(label, kind) for label, kind in measures if not kind.startswith("min")]
    curves = {}
    for task, _knob, idx in sweeps(ft).get("ft.lr", []):
        idx = sorted(idx, key=lambda j: ft.configs[j]["lr"])
        xs = [ft.configs[j]["lr"] for j in idx]
        for label, kind in gd:
            curves[f"{task}, {label} (lr_fraction)"] = (
                xs,
                [ft.stability[j][kind][early] for j in idx],
            )
    plot_claim(f"step eta (GD at t = {steps[early]})", curves, ax=axes[0], title="ft.lr")
    axes[0].legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    curves = {}
    for task in spec.tasks:
        (k,) = ft.find(**dataclasses.asdict(spec.base(task)))
        for label, kind in gd:
            curves[f"{task}, {label} (base)"] = (
                [float(t) for t in steps[: early + 1]],
                [ft.stability[k][kind][r] for r in range(early + 1)],
            )
    plot_claim("GD step t", curves, ax=axes[1], title="ft.steps")
    axes[1].legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
