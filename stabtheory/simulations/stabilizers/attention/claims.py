r"""The attention part's statistics and regimes: the primary endpoint, the mechanisms, the rule.

**Primary endpoint (fixed in advance).** For the arm that decides a claim (the spec's primary
dose) against plain fine-tuning, in each regime (fixed budget; loss target):

* *failure rate*: a seed fails as :func:`stabtheory.attention.classify` counts it (test accuracy
  within 1 point of the majority class). Seeds are paired across arms (the same key), so the
  test is McNemar's exact test on the discordant pairs pooled over draws (the
  Cochran-Mantel-Haenszel test for matched pairs stratified by draw reduces to it); the effect
  is the ratio of pooled failure rates arm / plain; its interval is the union of a paired
  hierarchical bootstrap (draws, then seed pairs within a draw: the between-draw variance)
  and the exact conditional interval (:func:`conditional_ratio_interval`: Clopper-Pearson on
  the discordant pairs, the interval that inverts McNemar's test, valid where a count is 0
  and the bootstrap collapses to a point);
* *accuracy std*: the log ratio ``log(std_arm / std_plain)`` of the test accuracy over seeds,
  one per draw, combined by a Student-t interval over draws (and its t-test p-value); the
  effect is ``exp`` of its mean.

The four p-values of a claim (two endpoints x two regimes) pass a Holm correction at
``alpha``. An endpoint says stability is *raised* when its Holm-adjusted p-value is at most
``alpha``, its effect is at most ``1 / 1.1`` and its interval lies below 1; *lowered*
symmetrically; else *no detectable change*. **The rule is symmetric and the endpoint alone
decides**: raised -> ``supported``, lowered -> ``refuted``. The mechanism (MMR: the
centroid distance it maximizes and the exact max margin of the pooled features; MHLoss: the
steps to the loss target; SURT: ``||theta_start - theta*||`` and the re-trained encoder's
distance from the checkpoint) is reported beside, with its own interval over draws, and
changes no verdict. The regimes of one arm reuse the same runs: one vote in
:func:`stabtheory.claims.combine`.

**What counts.** A testbed must show the phenomenon a claim is about before the claim is judged
on it: the regimes count only when plain fine-tuning's seeds (pooled over draws, fixed budget)
are classified ``"failures"`` (some fail while the others succeed). Secondary doses are shown
beside (dose-response), not counted.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stabtheory.claims import MIN_EFFECT, RegimeVerdict
from stabtheory.elasticities import holm, t_interval
from stabtheory.report.format import jsonable
from stabtheory.stabilizers.method import Mechanism
from stabtheory.statistics import (
    binomial_interval,
    disagreement,
    percentile_interval,
    sign_test,
)

__all__ = [
    "ENDPOINTS",
    "MIN_DRAWS",
    "REGIMES",
    "AttentionRegime",
    "arm_table",
    "attention_regimes",
    "conditional_ratio_interval",
    "hard_margin",
    "log_std_ratio",
    "mechanism",
    "paired_failures",
]

#: The two regimes: the fixed budget and the training-loss target.
REGIMES = ("fixed budget", "loss target")
#: The primary endpoints.
ENDPOINTS = ("failure rate", "accuracy std")


def paired_failures(
    plain: np.ndarray, arm: np.ndarray, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict:
    """Paired comparison of failures (D draws x S seeds, bool; seed ``s`` of draw ``d`` paired).

    Returns:
      ``{"plain_failures", "arm_failures", "pairs", "b"`` (plain fails, arm not), ``"c"`` (arm
      fails, plain not), ``"p"`` (McNemar's exact two-sided test on the discordant pairs),
      ``"ratio"`` (pooled failure rate arm / plain; NaN when neither fails, inf when only the
      arm does), ``"ratio_ci"`` (the union of the paired hierarchical bootstrap interval and
      :func:`conditional_ratio_interval`)``}``.

    Example:
      >>> plain = np.array([[1, 1, 1, 0, 0, 0]] * 2, bool)
      >>> arm = np.zeros((2, 6), bool)
      >>> r = paired_failures(plain, arm, n_boot=200)
      >>> r["b"], r["c"], round(r["p"], 4), r["ratio"]
      (6, 0, 0.0312, 0.0)
    """
    plain, arm = np.atleast_2d(plain).astype(bool), np.atleast_2d(arm).astype(bool)
    b = int(np.sum(plain & ~arm))
    c = int(np.sum(~plain & arm))
    p = sign_test(np.r_[np.ones(b), -np.ones(c)]).p
    rng = np.random.default_rng(seed)
    D, S = plain.shape
    di = rng.integers(0, D, size=(n_boot, D))
    si = rng.integers(0, S, size=(n_boot, D, S))
    kp = plain[di[..., None], si].sum(axis=(1, 2))
    ka = arm[di[..., None], si].sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        boots = np.where((kp == 0) & (ka == 0), 1.0, ka / kp)
    kp0, ka0 = int(plain.sum()), int(arm.sum())
    ratio = math.nan if kp0 == ka0 == 0 else (math.inf if kp0 == 0 else ka0 / kp0)
    return {
        "plain_failures": kp0,
        "arm_failures": ka0,
        "pairs": int(plain.size),
        "b": b,
        "c": c,
        "p": float(p),
        "ratio": ratio,
        "ratio_ci": _union(
            percentile_interval(boots, level), conditional_ratio_interval(plain, arm, level)
        ),
    }


def _union(a, b) -> list[float]:
    """The smallest interval that holds both (NaN bounds ignored; NaN when both are)."""
    lo = [v for v in (a[0], b[0]) if not math.isnan(v)]
    hi = [v for v in (a[1], b[1]) if not math.isnan(v)]
    return [float(min(lo)) if lo else math.nan, float(max(hi)) if hi else math.nan]


def conditional_ratio_interval(plain: np.ndarray, arm: np.ndarray, level: float = 0.95):
    """The exact conditional interval of the pooled failure-rate ratio arm / plain of paired
    seeds (D x S, bool), given the concordant failures ``a`` and the discordant pairs
    ``m = b + c``.

    Under the paired model a discordant pair is an arm-only failure with probability ``pi``;
    the ratio ``(a + c) / (a + b)`` at ``c = pi m`` is ``(a + pi m) / (a + (1 - pi) m)``,
    increasing in ``pi``, so the Clopper-Pearson interval of ``pi`` (``c`` of ``m``) maps to an
    interval of the ratio. It excludes 1 exactly when McNemar's exact two-sided test rejects at
    ``1 - level`` (ratio 1 is ``pi = 1/2``), and it is not a point when ``c = 0`` or ``b = 0``.

    Example:
      >>> plain = np.array([[1, 1, 1, 0, 0, 0]] * 2, bool)
      >>> lo, hi = conditional_ratio_interval(plain, np.zeros((2, 6), bool))
      >>> lo, round(hi, 3)
      (0.0, 0.849)
    """
    plain, arm = np.atleast_2d(plain).astype(bool), np.atleast_2d(arm).astype(bool)
    a = int(np.sum(plain & arm))
    b = int(np.sum(plain & ~arm))
    c = int(np.sum(~plain & arm))
    m = b + c
    if m == 0:  # no discordant pair: the ratio is 1 (a > 0) or undefined, with no interval
        return (1.0, 1.0) if a else (math.nan, math.nan)

    def ratio(pi: float) -> float:
        den = a + (1.0 - pi) * m
        return math.inf if den == 0 else (a + pi * m) / den

    lo, hi = binomial_interval(c, m, level)
    return ratio(lo), ratio(hi)


def log_std_ratio(plain: np.ndarray, arm: np.ndarray, *, level: float = 0.95) -> dict:
    """Per draw ``log(std(arm) / std(plain))`` of the test accuracy over seeds (D x S), and its
    Student-t interval and p-value over draws.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> plain = rng.standard_normal((4, 30))
      >>> r = log_std_ratio(plain, 0.5 * plain[:, ::-1])
      >>> round(r["ratio"], 3), [round(v, 3) for v in r["per_draw"]][:2]
      (0.5, [-0.693, -0.693])
    """
    sp = np.std(np.atleast_2d(plain), axis=1, ddof=1)
    sa = np.std(np.atleast_2d(arm), axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.log(sa / sp)
    per = np.where(np.isfinite(per), per, np.nan)
    lo, hi, p = t_interval(per, level)
    est = float(np.nanmean(per)) if np.isfinite(per).any() else math.nan
    return {
        "per_draw": per.tolist(),
        "log_ratio": est,
        "log_ratio_ci": [lo, hi],
        "p": p,
        "ratio": math.exp(est) if math.isfinite(est) else math.nan,
        "ratio_ci": [math.exp(v) if math.isfinite(v) else math.nan for v in (lo, hi)],
    }


def _stability(effect: float, ci, p_adj: float, alpha: float) -> str:
    lo, hi = ci
    if not (p_adj <= alpha):
        return "no detectable change"
    if effect <= 1 / MIN_EFFECT and hi < 1:
        return "raised"
    if effect >= MIN_EFFECT and lo > 1:
        return "lowered"
    return "no detectable change"


def _draw_interval(values: np.ndarray, level: float):
    """Mean of per-draw values and its t-interval over draws."""
    v = np.asarray(values, float)
    lo, hi, _ = t_interval(v, level)
    return float(np.nanmean(v)), (lo, hi)


def mechanism(study: dict, method: str, arm: str, regime: str, level: float) -> Mechanism:
    """The mechanism of ``method``'s arm against plain in ``regime``, over draws.

    * ``mmr``: the difference (arm - plain) of the mean centroid distance of the normalised
      pooled training features (the quantity MMR maximizes), predicted +; the text adds the
      exact max margin (separable share of the whole training set; ``gamma / R`` of the
      margin subset, 0 when not separable) and its difference.
    * ``mhloss``: the difference of the mean steps to the loss target (a run that never
      reaches it counts the whole budget), predicted -.
    * ``surt``: the ratio of mean ``||theta_start - theta*||`` (encoder and pooler; at the
      budget or at the freeze), predicted below 1 (``exp`` of the mean per-draw log ratio);
      the text adds the re-trained encoder's distance from the checkpoint.
    """
    arms = study["arms"]
    a, b = arms[arm], arms["plain"]

    def per_draw(key, who):
        return np.array([np.mean(x) for x in who[key]])

    if method == "mmr":
        diff = per_draw("centroid_distance", a) - per_draw("centroid_distance", b)
        est, ci = _draw_interval(diff, level)
        mdiff = per_draw("margin_subset", a) - per_draw("margin_subset", b)
        mest, mci = _draw_interval(mdiff, level)
        margin = Mechanism(mest, mci, 0.0, +1, "", [])
        text = (
            f"centroid distance of normalised pooled features (what MMR maximizes): plain "
            f"{per_draw('centroid_distance', b).mean():.3f}, {arm} "
            f"{per_draw('centroid_distance', a).mean():.3f}, difference {est:+.3f} "
            f"[{ci[0]:+.3f}, {ci[1]:+.3f}]; exact max margin: separable share of the whole "
            f"training set plain {np.mean(b['separable']):.2f}, {arm} "
            f"{np.mean(a['separable']):.2f}; on the first {study['margin_subset']} training "
            f"examples separable plain {np.mean(b['margin_subset'] > 0):.2f}, {arm} "
            f"{np.mean(a['margin_subset'] > 0):.2f}, gamma/R (0 if not) plain "
            f"{per_draw('margin_subset', b).mean():.2e}, {arm} "
            f"{per_draw('margin_subset', a).mean():.2e}, difference {mest:+.2e} "
            f"[{mci[0]:+.2e}, {mci[1]:+.2e}] ({margin.verdict})"
        )
        values = [float(per_draw("centroid_distance", x).mean()) for x in (b, a)]
        return Mechanism(est, ci, 0.0, +1, text, values)
    if method == "mhloss":
        diff = per_draw("reach_step", a) - per_draw("reach_step", b)
        est, ci = _draw_interval(diff, level)
        text = (
            f"steps to the loss target (budget if never reached): plain "
            f"{per_draw('reach_step', b).mean():.1f} (reached {np.mean(b['reached']):.2f}), "
            f"{arm} {per_draw('reach_step', a).mean():.1f} (reached "
            f"{np.mean(a['reached']):.2f}), difference {est:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]"
        )
        values = [float(per_draw("reach_step", x).mean()) for x in (b, a)]
        return Mechanism(est, ci, 0.0, -1, text, values)
    if method == "surt":
        key = "distance_start" if regime == REGIMES[0] else "distance_start_target"
        logs = np.log(per_draw(key, a) / per_draw(key, b))
        lest, (llo, lhi) = _draw_interval(logs, level)
        est, ci = (
            math.exp(lest),
            (math.exp(llo), math.exp(lhi))
            if math.isfinite(llo)
            else (
                math.nan,
                math.nan,
            ),
        )
        j = study["surt_doses"].index(int(arms[arm]["dose"]))
        moved = np.mean([d[j] for d in study["surt_distance"]])
        text = (
            f"||theta_start - theta*|| (encoder and pooler, {regime}): plain "
            f"{per_draw(key, b).mean():.3f}, {arm} {per_draw(key, a).mean():.3f}, ratio "
            f"{est:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]; the re-trained encoder lies "
            f"{moved:.3f} from the checkpoint"
        )
        values = [float(per_draw(key, x).mean()) for x in (b, a)]
        return Mechanism(est, ci, 1.0, -1, text, values)
    raise ValueError(f"no attention mechanism for method {method!r}.")


def hard_margin(study: dict, arm: str, level: float) -> dict:
    """The exact max margin of the pooled training features, ``arm`` against plain: the
    separable share of the whole training set and of the first ``margin_subset`` examples,
    and ``gamma / R`` there (0 when not separable) with the difference's t-interval over
    draws."""
    a, b = study["arms"][arm], study["arms"]["plain"]
    ma = np.array([np.mean(x) for x in a["margin_subset"]])
    mb = np.array([np.mean(x) for x in b["margin_subset"]])
    est, ci = _draw_interval(ma - mb, level)
    return {
        "subset": study["margin_subset"],
        "separable_whole": [float(np.mean(b["separable"])), float(np.mean(a["separable"]))],
        "separable_subset": [
            float(np.mean(b["margin_subset"] > 0)),
            float(np.mean(a["margin_subset"] > 0)),
        ],
        "margin_subset": [float(mb.mean()), float(ma.mean())],
        "difference": est,
        "difference_ci": list(ci),
    }


def arm_table(study: dict, level: float, n_boot: int) -> list[dict]:
    """One row per (arm, regime): failure rate and interval, per-draw rates, classification,
    accuracy, log std ratio to plain, the paired failure test, the regime's reach share, and
    the arm's leave-one-out stability beside its seed spread."""
    from stabtheory.attention import classify

    arms = study["arms"]
    plain = arms["plain"]
    maj = study["majority"]
    rows = []
    for regime in REGIMES:
        key = "test_accuracy" if regime == REGIMES[0] else "test_accuracy_target"
        pred_key = "test_pred" if regime == REGIMES[0] else "test_pred_target"
        failed_plain = _failed(plain[key], maj)
        for name, a in arms.items():
            acc = np.asarray(a[key], float)
            failed = _failed(acc, maj)
            k, m = int(failed.sum()), failed.size
            cls = classify(acc.ravel(), np.asarray(a["train_loss"]).ravel(), float(np.mean(maj)))
            row = {
                "arm": name,
                "method": a["method"],
                "dose": a["dose"],
                "primary": a["primary"],
                "regime": regime,
                "seeds": m,
                "failures": k,
                "failure_rate": k / m,
                "failure_ci": list(binomial_interval(k, m, level)),
                "failure_rate_per_draw": failed.mean(axis=1).tolist(),
                "classification": cls.classification,
                "accuracy_mean": float(acc.mean()),
                "accuracy_std": float(np.mean(np.std(acc, axis=1, ddof=1))),
                "success_accuracy": cls.success_accuracy,
                "reached": float(np.mean(a["reached"])),
                "disagreement": float(np.mean([_disagree(p) for p in a[pred_key]])),
                "loo_flip": float(np.mean(a["loo_flip"])),
                "loo_distance": float(np.mean(a["loo_distance"])),
                "loo_accuracy": float(np.mean(a["loo_accuracy"])),
            }
            if name != "plain":
                row["log_std_ratio"] = log_std_ratio(plain[key], acc, level=level)
                row["paired_failures"] = paired_failures(
                    failed_plain, failed, n_boot=n_boot, level=level
                )
            rows.append(row)
    return rows


def _disagree(pred: np.ndarray) -> float:
    """Mean pairwise disagreement of (S, m) {0, 1} predicted labels."""
    return disagreement(2.0 * np.asarray(pred, float) - 1.0)


def _failed(acc, majority) -> np.ndarray:
    """Failed seeds (D, S): test accuracy within 1 point of the draw's majority class (the
    rule of :func:`stabtheory.attention.classify`)."""
    acc = np.asarray(acc, float)
    return acc <= np.asarray(majority, float)[:, None] + 0.01


@dataclasses.dataclass(frozen=True)
class AttentionRegime(RegimeVerdict):
    """A claim's verdict on the attention testbed in one (arm, regime, endpoint).

    The inherited fields: ``effect`` the endpoint's ratio arm / plain (failure rates, or the
    accuracy std, ``exp`` of the mean per-draw log ratio), ``effect_ci`` its interval,
    ``replicates`` the draws, ``parameter_values`` ``[mechanism plain, mechanism arm]``,
    ``instability`` ``[plain, arm]`` (failure rates, or mean per-draw accuracy std),
    ``p_holm`` the Holm-adjusted p-value (NaN when not counted); ``tau`` NaN.

    Attributes:
      arm, endpoint: the arm's name and ``"failure rate"`` or ``"accuracy std"``.
      p_value: McNemar's exact p (failures) or the t-test p over draws (log std ratio).
      seeds: paired seeds per draw.
      pretraining: ``"own per draw"`` (every draw pre-trains its encoder from its own seed) or
        ``"shared"`` (every draw fine-tunes the shipped checkpoint: the verdict is about that
        checkpoint, pre-training variance is not sampled).
      detail: the endpoint's statistics (paired failure counts, per-draw log ratios...).
      mechanism, mechanism_verdict: the mechanism in words and its own verdict (beside).
      stability_verdict: ``"raised"``, ``"lowered"`` or ``"no detectable change"``.
    """

    arm: str = ""
    endpoint: str = ""
    p_value: float = math.nan
    seeds: int = 0
    pretraining: str = "shared"
    detail: dict = dataclasses.field(default_factory=dict)
    mechanism: str = ""
    mechanism_verdict: str = ""
    stability_verdict: str = ""

    def statistic(self) -> dict:
        def f(x):
            x = float(x)
            return x if math.isfinite(x) else None

        test = "McNemar exact" if self.endpoint == "failure rate" else "t over draws"
        return {
            **super().statistic(),
            "p_value": f(self.p_value),
            "p_holm": f(self.p_holm),
            "test": test,
        }

    def to_dict(self) -> dict:
        return {
            **super().to_dict(),
            "testbed": "attention",
            "arm": self.arm,
            "endpoint": self.endpoint,
            "seeds_per_draw": int(self.seeds),
            "pretraining": self.pretraining,
            "detail": jsonable(self.detail),
            "mechanism": {
                "text": self.mechanism,
                "verdict": self.mechanism_verdict,
                "stability": self.stability_verdict,
            },
        }


#: The fewest draws (task samples) that let a regime count (docs/theory.md section 6: a claim
#: is about the algorithm, so every configuration runs on at least this many data draws).
MIN_DRAWS = 10


def attention_regimes(study: dict, method: str, spec, table: list[dict]) -> list[AttentionRegime]:
    """Every regime of ``method`` on the attention testbed: its primary arm's four (counted
    when plain shows failures and the design has at least :data:`MIN_DRAWS` draws; Holm over
    the four p-values) and each secondary dose's four (shown)."""
    plain_budget = next(r for r in table if r["arm"] == "plain" and r["regime"] == REGIMES[0])
    shows = plain_budget["classification"] == "failures"
    enough = spec.draws >= MIN_DRAWS
    why = ""
    if not shows:
        why = (
            f" [not counted: plain fine-tuning is '{plain_budget['classification']}' here, "
            "no failure rate to move]"
        )
    elif not enough:
        why = (
            f" [not counted: {spec.draws} draw(s), fewer than {MIN_DRAWS} (docs/theory.md "
            "section 6)]"
        )
    out = []
    for arm in (a for a in spec.arms() if a.method == method):
        counted = arm.primary and shows and enough
        rows = {r["regime"]: r for r in table if r["arm"] == arm.name}
        plain_rows = {r["regime"]: r for r in table if r["arm"] == "plain"}
        cells = []
        for regime in REGIMES:
            row, prow = rows[regime], plain_rows[regime]
            mech = mechanism(study, method, arm.name, regime, spec.level)
            pf, ls = row["paired_failures"], row["log_std_ratio"]
            cells.append(
                (
                    regime,
                    "failure rate",
                    pf["ratio"],
                    tuple(pf["ratio_ci"]),
                    pf["p"],
                    mech,
                    [prow["failure_rate"], row["failure_rate"]],
                    pf,
                )
            )
            cells.append(
                (
                    regime,
                    "accuracy std",
                    ls["ratio"],
                    tuple(ls["ratio_ci"]),
                    ls["p"],
                    mech,
                    [prow["accuracy_std"], row["accuracy_std"]],
                    ls,
                )
            )
        adjusted = holm([c[4] for c in cells]) if counted else [math.nan] * len(cells)
        for (regime, endpoint, eff, ci, p, mech, inst, detail), p_adj in zip(
            cells, adjusted, strict=True
        ):
            # Shown regimes are judged at their raw p-value (Holm only over the counted).
            stab = _stability(eff, ci, p_adj if counted else p, spec.alpha)
            word = {"raised": "supported", "lowered": "refuted"}.get(stab, "inconclusive")
            label = "" if arm.primary else " (secondary dose: dose-response, shown)"
            out.append(
                AttentionRegime(
                    regime=f"attention {arm.name}, {regime}, {endpoint}{label}"
                    + ("" if counted or not arm.primary else why),
                    verdict=word,
                    tau=math.nan,
                    ci=(math.nan, math.nan),
                    parameter_values=mech.values,
                    instability=inst,
                    design="natural",
                    replicates=spec.draws,
                    effect=eff,
                    effect_ci=ci,
                    counted=counted,
                    runs=f"attention {arm.name}",
                    p_holm=float(p_adj),
                    arm=arm.name,
                    endpoint=endpoint,
                    p_value=p,
                    seeds=spec.seeds,
                    pretraining="own per draw" if spec.pretrain_draws else "shared",
                    detail=detail,
                    mechanism=f"{mech.text}: {mech.verdict}",
                    mechanism_verdict=mech.verdict,
                    stability_verdict=stab,
                )
            )
    return out
