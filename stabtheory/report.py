"""``report.json``, ``report.md`` and the figures of ``stabtheory verify``."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from stabtheory import plotting
from stabtheory.bounds import REGISTRY
from stabtheory.bounds.finetune import ft1_signs
from stabtheory.bounds.head import h2_time_monotonicity
from stabtheory.simulations import engine
from stabtheory.simulations.finetune import MEASURES, FineTuneStudy, sweeps
from stabtheory.simulations.head import NOTIONS, HeadStudy

__all__ = ["SCHEMA", "build_report", "write_report"]

SCHEMA = "stabtheory.report/1"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def build_report(
    study: HeadStudy | None,
    *,
    finetune: FineTuneStudy | None = None,
    stabilizers=None,
    environment: dict | None = None,
) -> dict:
    """The report as a JSON-able dict (schema ``stabtheory.report/1``).

    ``checks`` and ``claims`` hold the rows of every study that ran (head tuning, full
    fine-tuning); ``taylor`` states how far the real network departs from the Taylor model.
    The report holds no wall times (they go to ``timings.json``), so a resumed run and an
    uninterrupted one write the same report.
    """
    pairs = (study.checks if study else []) + (finetune.checks if finetune else [])
    checks = [chk.summary() for _, chk in pairs]
    verdicts = (
        (study.verdicts if study else [])
        + (finetune.verdicts if finetune else [])
        + (stabilizers.verdicts if stabilizers else [])
    )
    studies = {}
    if study:
        studies["head"] = {"spec": study.spec.__dict__, "steps": study.steps.tolist()}
    if finetune:
        studies["finetune"] = {"spec": finetune.spec.__dict__}
    report = {
        "schema": SCHEMA,
        "checks": checks,
        "claims": [v.to_dict() for v in verdicts],
        "theorems": [th.to_dict() for th in REGISTRY.values()],
        "derived": {
            "head.H2": {"d bound / d t": h2_time_monotonicity()},
            "ft.FT1": {"signs": ft1_signs()},
        },
        "violations": sum(c["violations"] for c in checks if c["applicable"]),
        "studies": studies,
        "environment": {
            **(environment or engine.environment({})),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
    }
    if stabilizers:
        from stabtheory.simulations.stabilizers import to_report

        report["stabilizers"] = to_report(stabilizers)
        studies["stabilizers"] = {"spec": dataclasses.asdict(stabilizers.spec)}
    if finetune:
        report["taylor"] = [
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
                    "rho",
                    "distance",
                    "taylor_departure",
                    "loss_gap",
                    "real_exceeds_ft2",
                )
            }
            for c in finetune.configs
        ]
    return _jsonable(report)


def _figures(study: HeadStudy, out: Path) -> list[str]:
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
        names.append(_save(fig, out, f"bounds_{loss}.png"))
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
        names.append(_save(fig, out, f"claims_{notion}.png"))
    return names


def _save(fig, out: Path, name: str) -> str:
    """Lay out, write and close a figure; return its file name."""
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _svm_panel(ax, chk):
    emp, bound = chk.empirical[0], chk.bound[0]
    order = np.argsort(-bound)
    ax.bar(np.arange(len(order)), bound[order], color="0.8", label="Lemma H-2 bound D_i")
    ax.plot(np.arange(len(order)), emp[order], "o", ms=3, label="exact ||u_S - u_S\\i||")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_xlabel("sample (sorted by bound)")
    ax.set_title("head.svm_loo (max-margin direction)", fontsize=9)
    ax.legend(fontsize=7)


def _fmt(x, digits=3):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _failed(a: dict, check: dict) -> str:
    text = f"{a['name']} (worst {_fmt(a['value'])} {a['relation']} {_fmt(a['threshold'])} fails"
    if a["pointwise"]:
        at = check["steps_applicable"]
        text += f"; applies at t in {at}" if at else "; at every checkpoint"
    return text + ")"


def _regime_text(v: dict, r: dict) -> str:
    if "p_value" in r:  # stabilizers: a spread ratio method / plain
        p = f", p={_fmt(r['p_value'])}" if r["p_value"] is not None else ""
        lo, hi = r["ci"]
        return (
            f"{r['regime']}: ratio {_fmt(r['tau'])} [{_fmt(lo)}, {_fmt(hi)}]{p}; "
            f"mechanism {r['mechanism_verdict']}: {r['verdict']}"
        )
    return f"{r['regime']}: {r['tau']:+.2f} [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}] {r['verdict']}"


def _failures(c: dict) -> str:
    return "; ".join(_failed(a, c) for a in c["assumptions"] if not a["holds"]) or "none"


def _markdown(report: dict, figures: list[str]) -> str:
    lines = ["# stabtheory verify report", ""]
    env = report["environment"]
    reps = ", ".join(f"{k} {v}" for k, v in env["replicates"].items()) or "none"
    lines.append(
        f"Schema `{report['schema']}`; stabtheory {env['stabtheory']}, jax {env['jax']} on "
        f"{env['backend']} ({env['devices']} x {env['device_kind']}); data draws per "
        f"configuration: {reps}; **{report['violations']} violations** of rigorous bounds."
    )
    lines += ["", "## Theorems", ""]
    for th in report["theorems"]:
        lines.append(f"- `{th['id']}`: {th['title']}. {th['reference']}.")
        lines.append(f"  $${th['latex']}$$")
    d = report["derived"]["head.H2"]["d bound / d t"]
    lines += [
        "",
        f"sympy: dH2/dt has sign {d['sign']} (d h/d Psi = ${d['dh_dPsi']}$, "
        f"d Psi/d t = ${d['dPsi_dt']}$); signs of dFT1 from positivity: "
        f"{report['derived']['ft.FT1']['signs']}.",
        "",
    ]
    head_rows = [c for c in report["checks"] if c["theorem"].startswith("head.")]
    ft_rows = [c for c in report["checks"] if c["theorem"].startswith("ft.")]
    if head_rows:
        lines += [
            "## Head tuning: checks (bound vs empirical, per sample, over the checkpoints where "
            "the theorem applies)",
            "",
            "`vacuous` is the share of applicable entries where a direction bound is >= 2, the "
            "largest possible distance between unit vectors (the bound then says nothing). "
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
                f"{_fmt(cfg['gamma'])} | {cfg['n']} | {cfg['replicates']} | {c['applicable']} | "
                f"{_fmt(c['empirical_mean'])} | {_fmt(c['bound_mean'])} | "
                f"{_fmt(c['ratio_mean'])} | {_fmt(c['vacuous_fraction'], 2)} | "
                f"{c['violations']} | {_failures(c)} |"
            )
    if ft_rows:
        lines += [
            "",
            "## Full fine-tuning: checks on the Taylor model (and the real network beside them)",
            "",
            "The theorems cover the Taylor model. The rows `loo.weights (real)` set the real "
            "network's leave-one-out stability beside the FT-2 bound; they are not applicable "
            "(the Taylor model is not exact for a nonlinear network, see the faithfulness "
            "table), so they count no violations.",
            "",
            "| theorem | notion | task | n | lam | input scale | pre-train | alpha | draws | "
            "applicable | empirical mean | bound mean | bound/empirical | violations | "
            "failed assumptions |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in ft_rows:
            cfg = c["config"]
            lines.append(
                f"| {c['theorem']} | {c['notion']} | {cfg['task']} | {cfg['n']} | {cfg['lam']} | "
                f"{cfg['input_scale']} | {cfg['pretrain_steps']} | {cfg['alpha']} | "
                f"{cfg['replicates']} | {c['applicable']} | {_fmt(c['empirical_mean'])} | "
                f"{_fmt(c['bound_mean'])} | "
                f"{_fmt(c['ratio_mean'])} | {c['violations']} | {_failures(c)} |"
            )
        lines += [
            "",
            "### How far the real network departs from the Taylor model",
            "",
            "`departure` = max over draws, runs and checkpoints of ||w_real - w_quad|| / "
            "||w_quad - w0||; `loss gap` = max over draws and checkpoints of |F_real - F_quad| / "
            "F_real on S; `rho` and ||w_S - w0|| are means over the draws; `real > FT-2` = "
            "(sample, t) points, summed over the draws, where the real network's leave-one-out "
            "change exceeds the FT-2 bound computed from the Taylor quantities, at the checkpoints "
            "where FT-2 applies (n/a: nowhere).",
            "",
            "| task | n | lam | input scale | pre-train | alpha | lr / (1/lambda_max) | rho | "
            "||w_S - w0|| | departure | loss gap | real > FT-2 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in report["taylor"]:
            lines.append(
                f"| {r['task']} | {r['n']} | {r['lam']} | {r['input_scale']} | "
                f"{r['pretrain_steps']} | {r['alpha']} | {r['lr_fraction']} | {_fmt(r['rho'])} | "
                f"{_fmt(r['distance'])} | {_fmt(r['taylor_departure'])} | "
                f"{_fmt(r['loss_gap'])} | {r['real_exceeds_ft2']} |"
            )
    if "stabilizers" in report:
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
                f"| {r['testbed']} | {r['method']} | {r['seeds']} | {_fmt(r['acc_mean'])} | "
                f"{_fmt(r['acc_std'])} | {_fmt(r['std_ratio'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] "
                f"| {_fmt(r['bf_p'])} | {_fmt(r['disagreement_ratio'])} [{_fmt(dci[0])}, "
                f"{_fmt(dci[1])}] | {_fmt(r['feature_margin'])} | {_fmt(r['weight_distance'])} |"
            )
    lines += [
        "",
        "## Claims",
        "",
        "| claim | notion | verdict | regimes (tau [95% CI]: verdict) | figure |",
        "|---|---|---|---|---|",
    ]
    for v in report["claims"]:
        regs = "<br>".join(_regime_text(v, r) for r in v["statistic"]["regimes"])
        lines.append(f"| {v['id']} | {v['notion']} | **{v['verdict']}** | {regs} | {v['figure']} |")
    lines += [
        "",
        "Statistic: "
        + (report["claims"][0]["statistic"]["name"] if report["claims"] else "")
        + ". The intervals resample the independent data draws of each configuration, then "
        "the samples within each draw (docs/theory.md section 5); an effect below 1e-9 "
        "relative is never decisive; "
        "'regime-dependent' means some regimes support and others refute the claim.",
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def _ft_figures(ft: FineTuneStudy, out: Path) -> list[str]:
    names = []
    spec = ft.spec
    base_idx = [k for task in spec.tasks for k in ft.find(**dataclasses.asdict(spec.base(task)))]
    for k in base_idx:
        chosen = [c for i, c in ft.checks if i == k]
        fig, axes = plt.subplots(1, 3, figsize=(15.6, 3.9))
        one_point = [c for c in chosen if c.theorem in ("ft.FT1", "ft.FT1L")]
        for ax, chk in zip(axes[:2], one_point, strict=True):
            emp, bound = chk.empirical[0], chk.bound[0]
            order = np.argsort(-bound)
            ax.bar(np.arange(len(order)), bound[order], color="0.8", label=f"{chk.theorem} bound")
            ax.plot(np.arange(len(order)), emp[order], "o", ms=3, label=f"empirical {chk.notion}")
            ax.set_yscale("log")
            ax.set_xlabel("sample (sorted by bound)")
            ax.set_title(f"{chk.theorem} ({chk.notion}), Taylor minimiser", fontsize=9)
            ax.legend(fontsize=7)
        gd = next(c for c in chosen if c.notion == "loo.weights (gd)")
        real = next(c for c in chosen if c.notion == "loo.weights (real)")
        plotting.plot_bound_vs_empirical(gd, ax=axes[2], label="FT-2")
        steps = np.asarray(real.steps, float)
        axes[2].plot(
            steps,
            real.empirical.mean(axis=1),
            "-",
            color="tab:red",
            label="real network loo.weights (mean)",
        )
        axes[2].legend(fontsize=7)
        axes[2].set_title("ft.FT2: Taylor GD (and the real network)", fontsize=9)
        cfg = ft.configs[k]
        fig.suptitle(
            f"Full fine-tuning bounds, {cfg['task']} (n={cfg['n']}, p={cfg['p']}, "
            f"lam={cfg['lam']}, lr={cfg['lr']:.3g})",
            fontsize=10,
        )
        names.append(_save(fig, out, f"bounds_ft_{cfg['task']}.png"))
    late = len(spec.steps) - 1
    claim_sweeps = sweeps(ft)
    for notion, measures in MEASURES.items():
        fig, axes = plt.subplots(1, 3, figsize=(15.6, 3.9))
        for ax, (claim_id, parameter) in zip(
            axes,
            (("ft.n", "n"), ("ft.lipschitz", "rho"), ("ft.distance", "distance")),
            strict=True,
        ):
            curves = {}
            for task, knob, idx in claim_sweeps[claim_id]:
                idx = sorted(idx, key=lambda j: ft.configs[j][parameter])
                xs = [ft.configs[j][parameter] for j in idx]
                for label, kind in measures:
                    row = 0 if kind.startswith("min") else late
                    curves[f"{task}, {label} ({knob})"] = (
                        xs,
                        [ft.stability[j][kind][row] for j in idx],
                    )
            plotting.plot_claim(
                {
                    "n": "sample size n",
                    "rho": "Lipschitz constant rho = max_i rho_i",
                    "distance": "weight distance ||w_S - w0||",
                }[parameter],
                curves,
                ax=ax,
                title=claim_id,
            )
        fig.suptitle(
            f"Full fine-tuning: instability {notion} against the measured quantity "
            "of each claim (mean over i, 95% bootstrap interval)",
            fontsize=10,
        )
        names.append(_save(fig, out, f"claims_ft_{notion.split('.')[1]}.png"))
    return names


def write_report(
    study: HeadStudy | None,
    out: Path,
    *,
    finetune: FineTuneStudy | None = None,
    stabilizers=None,
    environment: dict | None = None,
) -> dict:
    """Write ``report.json``, ``report.md`` and the figures into ``out``; return the report.

    The report files are written last, each atomically (temporary file, then rename), so a
    ``report.json`` exists only when the whole report was written.
    """
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(
        study, finetune=finetune, stabilizers=stabilizers, environment=environment
    )
    figures = (_figures(study, out) if study else []) + (
        _ft_figures(finetune, out) if finetune else []
    )
    if stabilizers:
        from stabtheory.simulations.stabilizers import write_figures

        figures += write_figures(stabilizers, out)
    report["figures"] = figures
    _atomic_write(out / "report.md", _markdown(report, figures))
    _atomic_write(out / "report.json", json.dumps(report, indent=1, allow_nan=False))
    return report


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
