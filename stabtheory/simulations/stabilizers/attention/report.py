"""The attention part's report: its JSON entry, markdown section and figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from stabtheory.report import fmt, save_figure
from stabtheory.simulations.stabilizers.attention.claims import REGIMES, hard_margin, mechanism
from stabtheory.simulations.stabilizers.attention.spec import AttentionSpec

__all__ = ["attention_figure", "attention_markdown", "attention_report"]


def attention_report(spec: AttentionSpec, att: dict, table: list[dict]) -> dict:
    """The ``stabilizers.attention`` entry of ``report.json``: the design and its size, the FLOP
    counts of this design and of the full design, the per-(arm, regime) table, the
    mechanisms of every non-plain arm in both regimes, SURT's re-training and the
    leave-one-out subset."""
    full = AttentionSpec.full()
    mechanisms = {}
    for arm in spec.arms():
        if arm.method == "plain":
            continue
        mechanisms[arm.name] = {
            regime: {
                "text": m.text,
                "estimate": m.estimate,
                "ci": list(m.ci),
                "null": m.null,
                "predicted": m.predicted,
                "values": m.values,
                "verdict": m.verdict,
            }
            for regime in REGIMES
            for m in [mechanism(att, arm.method, arm.name, regime, spec.level)]
        }
        if arm.method == "mmr":
            mechanisms[arm.name]["hard_margin"] = hard_margin(att, arm.name, spec.level)
    return {
        "spec": dataclasses.asdict(spec),
        "design": {
            **spec.size(),
            "pairing": "seed s is the same key in every arm (head 0 initialisation, data "
            "order; no dropout in the encoder); SURT's re-training is one run per draw, "
            "shared by its seeds",
            "draw": "task sample task_seed + d"
            + (
                ", own pre-training from seed d (draw 0: the shipped checkpoint)"
                if spec.pretrain_draws
                else " on the shipped checkpoint (one pre-training: pre-training variance "
                "not sampled)"
            ),
            "flops": spec.flops(),
            "full": {
                "spec": "AttentionSpec.full()",
                "command": "stabtheory verify --study stabilizers --full",
                "is_this_run": spec == full,
                **full.size(),
                "flops": full.flops(),
            },
        },
        "arms": table,
        "mechanisms": mechanisms,
        "surt": {
            "doses": list(spec.surt_doses),
            "distance_from_checkpoint": att["surt_distance"],
            "mlm_loss_first_last": [
                [float(np.mean(x[:10])), float(np.mean(x[-10:]))] for x in att["surt_loss"]
            ],
        },
        "loo_points": np.asarray(att["loo_points"]).tolist(),
    }


def attention_markdown(entry: dict) -> list[str]:
    """The section "Stabilizers on the attention testbed"."""
    d = entry["design"]
    s = entry["spec"]
    full = d["full"]
    lines = [
        "",
        "## Stabilizers on the attention testbed (docs/attention.md)",
        "",
        f"Design: {d['draws']} draws ({d['draw']}) x {d['seeds_per_arm_and_draw']} paired "
        f"seeds x {d['arms']} arms ({d['paired_seeds_per_arm']} paired seeds per arm; "
        f"{d['fine_tuning_runs']} fine-tuning runs with {d['loo_runs']} leave-one-out runs). "
        f"Recipe: `{s['task']}`, n = {s['n']}, Adam "
        f"{'with' if s['bias_correction'] else 'without'} bias correction, lr {s['lr']:g}, "
        f"{s['steps']} steps, batch {s['batch_size']}. Regimes: the fixed budget, and frozen "
        f"at the first {s['window']}-step window whose mean minibatch loss is <= "
        f"{s['target']:g} (loss target). Pairing: {d['pairing']}. This design: "
        f"{d['flops']['total']:.3g} FLOP"
        + (
            " (the full design, `--full`)."
            if full["is_this_run"]
            else f"; the full design (`{full['command']}`: {full['draws']} draws x "
            f"{full['seeds_per_arm_and_draw']} seeds x {full['arms']} arms, own pre-training "
            f"per draw) {full['flops']['total']:.3g} FLOP."
        ),
        "",
        (
            "Scope: every draw fine-tunes the shipped checkpoint, so the verdicts are about "
            "fine-tuning that checkpoint (pre-training variance is not sampled; an effect can "
            "depend on the checkpoint, docs/attention.md). `--full` gives every draw its own "
            "pre-training."
            if not s["pretrain_draws"]
            else "Scope: every draw pre-trains its own encoder (draw 0: the shipped checkpoint), "
            "so the verdicts are about fine-tuning an encoder pre-trained by this recipe."
        ),
        "",
        "Primary endpoint (fixed in advance): the failure rate (paired McNemar over draws) and "
        "the log std ratio of test accuracy (t-interval over draws), Holm over a claim's four "
        "p-values; the mechanism is reported beside and decides nothing.",
        "",
        "| arm | regime | failure rate [95% CI] | class | acc. mean | acc. std | std ratio "
        "[CI] | fail ratio [CI], McNemar p (b/c) | reached | LOO flip | seed disagreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in entry["arms"]:
        lo, hi = r["failure_ci"]
        ls, pf = r.get("log_std_ratio"), r.get("paired_failures")
        std = (
            f"{fmt(ls['ratio'])} [{fmt(ls['ratio_ci'][0])}, {fmt(ls['ratio_ci'][1])}]" if ls else ""
        )
        fail = (
            f"{fmt(pf['ratio'])} [{fmt(pf['ratio_ci'][0])}, {fmt(pf['ratio_ci'][1])}], "
            f"p={pf['p']:.3g} ({pf['b']}/{pf['c']})"
            if pf
            else ""
        )
        lines.append(
            f"| {r['arm']}{' (primary)' if r['primary'] else ''} | {r['regime']} | "
            f"{r['failure_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r['classification']} | "
            f"{r['accuracy_mean']:.3f} | {r['accuracy_std']:.4f} | {std} | {fail} | "
            f"{r['reached']:.2f} | {r['loo_flip']:.4f} | {r['disagreement']:.4f} |"
        )
    lines += ["", "Mechanisms (beside the endpoint; intervals over draws):", ""]
    for name, m in entry["mechanisms"].items():
        lines.append(
            f"- **{name}** (fixed budget): {m[REGIMES[0]]['text']} -> {m[REGIMES[0]]['verdict']}"
        )
    return lines


def attention_figure(spec: AttentionSpec, att: dict, table: list[dict], out: Path) -> str:
    """``stabilizers_attention.png``: per arm the failure rate (both regimes, Clopper-Pearson
    interval) and the test accuracy of every seed (failures red), and the dose-responses of
    MMR (alpha) and SURT (re-training steps), with plain as dose 0."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    arms = [a.name for a in spec.arms()]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    ax = axes[0, 0]
    for j, regime in enumerate(REGIMES):
        rows = [next(r for r in table if r["arm"] == a and r["regime"] == regime) for a in arms]
        x = np.arange(len(arms)) + (j - 0.5) * 0.25
        rate = np.array([r["failure_rate"] for r in rows])
        ci = np.array([r["failure_ci"] for r in rows])
        ax.errorbar(
            x,
            rate,
            yerr=np.abs(np.stack([rate - ci[:, 0], ci[:, 1] - rate])),
            fmt="os"[j],
            capsize=3,
            label=regime,
        )
    ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
    ax.set_ylabel("failure rate (95% CI)")
    ax.set_title(
        f"Failure rate per arm ({spec.draws} draws x {spec.seeds} paired seeds)", fontsize=9
    )
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    maj = np.asarray(att["majority"], float)
    for k, a in enumerate(arms):
        acc = np.asarray(att["arms"][a]["test_accuracy"], float)
        failed = acc <= maj[:, None] + 0.01
        x = k + 0.3 * rng.uniform(-1, 1, acc.shape)
        ax.scatter(x[~failed], acc[~failed], s=6, color="C0", alpha=0.6)
        ax.scatter(x[failed], acc[failed], s=6, color="C3", alpha=0.8)
    ax.axhline(float(maj.mean()), color="k", lw=0.8, ls="--")
    labels = []
    for a in arms:
        r = next(r for r in table if r["arm"] == a and r["regime"] == REGIMES[0])
        ls = r.get("log_std_ratio")
        labels.append(a if ls is None else f"{a}\nstd x{ls['ratio']:.2f}")
    ax.set_xticks(range(len(arms)), labels, fontsize=7)
    ax.set_ylabel("test accuracy (fixed budget; red: failed)")
    ax.set_title(
        "Test accuracy of every seed; std ratio to plain (geometric mean over draws)", fontsize=9
    )

    for ax, method, xlabel in (
        (axes[1, 0], "mmr", "MMR alpha (0 = plain)"),
        (axes[1, 1], "surt", "SURT re-training steps (0 = plain)"),
    ):
        doses = [0.0] + [a.dose for a in spec.arms() if a.method == method]
        names = ["plain"] + [a.name for a in spec.arms() if a.method == method]
        for regime, mk, color in zip(REGIMES, "os", ("C0", "C1"), strict=True):
            rows = [
                next(r for r in table if r["arm"] == n and r["regime"] == regime) for n in names
            ]
            ax.plot(
                doses,
                [r["failure_rate"] for r in rows],
                mk + "-",
                color=color,
                label=f"failure rate, {regime}",
            )
            std = [1.0] + [r["log_std_ratio"]["ratio"] for r in rows[1:]]
            ax.plot(doses, std, mk + "--", color=color, label=f"accuracy std / plain's, {regime}")
        twin = ax.twinx()
        if method == "mmr":
            mech = [np.mean(att["arms"][n]["centroid_distance"]) for n in names]
            twin.set_ylabel("centroid distance (MMR's quantity)", color="C2")
        else:
            mech = [np.mean(att["arms"][n]["distance_start"]) for n in names]
            twin.set_ylabel("||theta_start - theta*||", color="C2")
        twin.plot(doses, mech, "^:", color="C2", label="mechanism (fixed budget)")
        ax.set_xlabel(xlabel)
        ax.set_xscale("symlog", linthresh=min(d for d in doses if d > 0))
        ax.set_title(f"{method}: dose-response (mechanism in green, right axis)", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Stabilizers on the attention testbed (paired seeds; plain = dose 0)")
    return save_figure(fig, out, "stabilizers_attention.png")
