"""``report.json``, ``report.md`` and the figures of ``stabtheory verify``."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from stabtheory import plotting
from stabtheory.bounds import REGISTRY
from stabtheory.bounds.head import h2_time_monotonicity
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


def build_report(study: HeadStudy, *, runtime_s: float) -> dict:
    """The report as a JSON-able dict (schema ``stabtheory.report/1``)."""
    checks = [chk.summary() for _, chk in study.checks]
    return _jsonable(
        {
            "schema": SCHEMA,
            "checks": checks,
            "claims": [v.to_dict() for v in study.verdicts],
            "theorems": [th.to_dict() for th in REGISTRY.values()],
            "derived": {"head.H2": {"d bound / d t": h2_time_monotonicity()}},
            "violations": sum(c["violations"] for c in checks if c["applicable"]),
            "study": {"spec": study.spec.__dict__, "steps": study.steps.tolist()},
            "environment": {
                "python": platform.python_version(),
                "jax": jax.__version__,
                "backend": jax.default_backend(),
                "machine": platform.machine(),
            },
            "runtime_s": runtime_s,
        }
    )


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
        fig.tight_layout()
        name = f"bounds_{loss}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
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
        fig.tight_layout()
        name = f"claims_{notion}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
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


def _markdown(report: dict, figures: list[str]) -> str:
    lines = ["# stabtheory verify report", ""]
    lines.append(
        f"Schema `{report['schema']}`; runtime {report['runtime_s']:.1f} s on "
        f"{report['environment']['backend']} ({report['environment']['machine']}); "
        f"**{report['violations']} violations** of rigorous bounds."
    )
    lines += ["", "## Theorems", ""]
    for th in report["theorems"]:
        lines.append(f"- `{th['id']}`: {th['title']}. {th['reference']}.")
        lines.append(f"  $${th['latex']}$$")
    d = report["derived"]["head.H2"]["d bound / d t"]
    lines += [
        "",
        f"sympy: dH2/dt has sign {d['sign']} (d h/d Psi = ${d['dh_dPsi']}$, "
        f"d Psi/d t = ${d['dPsi_dt']}$).",
        "",
    ]
    lines += [
        "## Checks (bound vs empirical, per sample, over the checkpoints where the "
        "theorem applies)",
        "",
        "| theorem | notion | loss | lr | gamma | n | applicable | empirical mean | "
        "bound mean | bound/empirical | violations | failed assumptions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report["checks"]:
        cfg = c["config"]
        failed = "; ".join(_failed(a, c) for a in c["assumptions"] if not a["holds"]) or "none"
        lines.append(
            f"| {c['theorem']} | {c['notion']} | {cfg['loss']} | {cfg['lr']} | "
            f"{_fmt(cfg['gamma'])} | {cfg['n']} | {c['applicable']} | "
            f"{_fmt(c['empirical_mean'])} | {_fmt(c['bound_mean'])} | {_fmt(c['ratio_mean'])} | "
            f"{c['violations']} | {failed} |"
        )
    lines += [
        "",
        "## Claims",
        "",
        "| claim | notion | verdict | regimes (tau [95% CI]: verdict) | figure |",
        "|---|---|---|---|---|",
    ]
    for v in report["claims"]:
        regs = "<br>".join(
            f"{r['regime']}: {r['tau']:+.2f} [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}] {r['verdict']}"
            for r in v["statistic"]["regimes"]
        )
        lines.append(f"| {v['id']} | {v['notion']} | **{v['verdict']}** | {regs} | {v['figure']} |")
    lines += [
        "",
        "Statistic: " + (report["claims"][0]["statistic"]["name"] if report["claims"] else ""),
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write_report(study: HeadStudy, out: Path, *, runtime_s: float) -> dict:
    """Write ``report.json``, ``report.md`` and the figures into ``out``; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(study, runtime_s=runtime_s)
    figures = _figures(study, out)
    report["figures"] = figures
    (out / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False))
    (out / "report.md").write_text(_markdown(report, figures))
    return report
