r"""The stabilizer study: MMR, MHLoss and SURT against the baselines, across seeds.

docs/theory.md section 4 defines the three stabilizers and the effect each is meant to have;
section 5 lists the claims ``mmr``, ``mhloss`` and ``surt``. On every testbed (synthetic and
digits by default), each method of :func:`stabtheory.methods.make_methods` (plain, small_lr,
long, l2sp, head_only, mmr, mhloss, surt) is fine-tuned for ``seeds`` seeds in one vmapped
program (:func:`stabtheory.methods.finetune_seeds`: head init, data order, minibatches,
dropout; SURT's minibatches and noise too). Every method gets its own block of seeds, so the
methods' samples are independent.

Stability (notion ``seed.std``, docs/theory.md section 1) is the spread over seeds of

* the test accuracy: the standard deviation ``s_m`` and its ratio to plain fine-tuning
  ``s_m / s_plain`` with a percentile-bootstrap interval (seeds resampled within each
  method), and the Brown-Forsythe test of equal variances
  (``scipy.stats.levene(center="median")``);
* the test predictions: the mean pairwise disagreement of the predicted labels between
  seeds (:func:`disagreement`) and its ratio to plain, with a bootstrap interval.

The mechanism measures (per seed unless said otherwise):

* MMR -- the exact max margin ``gamma / R`` of the final training features with a bias
  coordinate (:func:`stabtheory.methods.feature_margin`; non-separable features count as 0,
  since their max margin is <= 0); statistic: the difference of means, method - plain;
* MHLoss -- on frozen features (the final features of the first plain seed whose features
  are separable), the error ``||v(t)/||v(t)|| - u_S||`` of the mean head of ``K`` heads
  against one head, at log-spaced GD steps ``t``
  (:func:`stabtheory.methods.head_convergence`); statistic: the ratio of the areas under the
  two error curves on the log-t grid (``< 1``: the K heads approach ``u_S`` faster); also
  reported: the final mean head's direction error in the runs;
* SURT -- the weight distance ``||theta_start - theta*||`` that supervised fine-tuning moves
  the encoder (``theta_start`` the SURT encoder for SURT, the pre-trained one otherwise);
  statistic: the ratio of means, method / plain.

A claim "X raises <mechanism> and stability" gets, per testbed and spread measure (a
regime):

* ``supported`` when the mechanism moves as predicted (its 95% interval excludes no change,
  on the predicted side) and stability is raised: the ratio is at most 1/1.1 and its interval
  lies below 1 (for the accuracy std, **and** the Brown-Forsythe p-value is below ``alpha`` =
  0.05);
* ``refuted`` when either part moves decisively the other way (the mechanism's interval on
  the wrong side, or a ratio of at least 1.1 whose interval lies above 1, with p < alpha for
  the accuracy std);
* ``inconclusive`` otherwise (e.g. the mechanism works but the spread does not change
  detectably);

and the regimes (design ``"controlled"``, ``replicates`` the seeds, ``effect`` the ratio) are
combined by :func:`stabtheory.claims.combine` (``regime-dependent`` when some regimes support
and others refute). Intervals resample the seeds of one task draw and
one pre-training: verdicts are conditional on them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stabtheory import claims as _claims
from stabtheory import methods as _methods
from stabtheory.simulations import engine
from stabtheory.statistics import (
    bootstrap_mean_ci,
    bootstrap_ratio,
    brown_forsythe,
    mean_difference,
    mean_ratio,
    percentile_interval,
    std_ratio,
)

__all__ = [
    "MEASURES",
    "STABILIZER_CLAIMS",
    "STATISTIC",
    "StabilizerRegime",
    "StabilizerStudy",
    "StabilizerStudySpec",
    "StabilizerVerdict",
    "disagreement",
    "judge_claims",
    "run_stabilizer_study",
    "std_ratio",
    "to_report",
    "write_figures",
]

STABILIZER_CLAIMS = {
    c.id: c
    for c in (
        _claims.Claim("mmr", "MMR raises the feature margin and stability", "method", -1),
        _claims.Claim("mhloss", "MHLoss speeds convergence and raises stability", "method", -1),
        _claims.Claim("surt", "SURT lowers the weight distance and raises stability", "method", -1),
    )
}

#: The statistic of the stability part of a verdict (the ``effect`` of a regime).
STATISTIC = (
    "effect = ratio method / plain of the seed spread (test-accuracy std, with the "
    "Brown-Forsythe p-value; or test-prediction disagreement), percentile-bootstrap 95% CI "
    "(seeds resampled within each method); stability is raised (lowered) only when the CI "
    f"lies below (above) 1, the ratio is <= 1/{_claims.MIN_EFFECT} (>= {_claims.MIN_EFFECT}) "
    "and, for the accuracy std, p < alpha; the mechanism statistic and its interval are in "
    "'mechanism'"
)


@dataclasses.dataclass(frozen=True)
class StabilizerStudySpec:
    """What the stabilizer study runs (see the module docstring).

    Attributes:
      testbeds: ``"synthetic"`` and/or ``"digits"`` (:func:`stabtheory.finetune.make_testbed`).
      n: training set size; ``n_test``: test set size (None: the testbed's default).
      shift: the synthetic task's mean shift from the source.
      hidden, features, pretrain_steps: the encoder and its pre-training.
      methods: the methods to run (keys of :func:`stabtheory.methods.make_methods`; must
        include ``plain``).
      seeds: seeds per method and testbed; ``seed``: the first seed.
      lr, steps, batch_size, dropout: plain fine-tuning (Adam); the other methods' settings
        below.
      convergence_K, convergence_steps, convergence_seeds: the MHLoss head-convergence
        measure (K heads vs one, up to this many GD steps, this many inits).
      n_boot, level, alpha: bootstrap resamples, interval level, test level.
    """

    testbeds: tuple[str, ...] = ("synthetic", "digits")
    n: int = 64
    n_test: int | None = None
    shift: float = 0.5
    hidden: tuple[int, ...] = (32, 32)
    features: int = 8
    pretrain_steps: int = 1000
    methods: tuple[str, ...] = (
        "plain",
        "small_lr",
        "long",
        "l2sp",
        "head_only",
        "mmr",
        "mhloss",
        "surt",
    )
    seeds: int = 200
    seed: int = 0
    lr: float = 1e-3
    steps: int = 150
    batch_size: int = 16
    dropout: float = 0.1
    small_lr_factor: float = 0.25
    long_factor: int = 4
    l2sp: float = 1.0
    head_only_lr_factor: float = 10.0
    mmr_alpha: float = 0.3
    mmr_kind: str = "centroid"
    mhloss_heads: int = 5
    surt_steps: int = 300
    convergence_K: int = 5
    convergence_steps: int = 10_000
    convergence_seeds: int = 100
    n_boot: int = 2000
    level: float = 0.95
    alpha: float = 0.05

    @classmethod
    def quick(cls) -> StabilizerStudySpec:
        """A small version (one small synthetic testbed, 20 seeds): seconds, for tests."""
        return cls(
            testbeds=("synthetic",),
            n=32,
            n_test=128,
            hidden=(16,),
            features=4,
            pretrain_steps=300,
            seeds=20,
            steps=100,
            surt_steps=100,
            convergence_steps=1000,
            convergence_seeds=20,
            n_boot=500,
        )

    def method_configs(self) -> dict[str, _methods.Method]:
        """The :class:`stabtheory.methods.Method` of every method the spec runs."""
        if "plain" not in self.methods:
            raise ValueError("methods must include 'plain' (every comparison is against it).")
        all_methods = _methods.make_methods(
            lr=self.lr,
            steps=self.steps,
            batch_size=self.batch_size,
            dropout=self.dropout,
            small_lr_factor=self.small_lr_factor,
            long_factor=self.long_factor,
            l2sp=self.l2sp,
            head_only_lr_factor=self.head_only_lr_factor,
            mmr_alpha=self.mmr_alpha,
            mmr_kind=self.mmr_kind,
            mhloss_heads=self.mhloss_heads,
            surt_steps=self.surt_steps,
        )
        unknown = set(self.methods) - set(all_methods)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; known: {list(all_methods)}.")
        return {m: all_methods[m] for m in self.methods}


@dataclasses.dataclass(frozen=True)
class StabilizerRegime(_claims.RegimeVerdict):
    """A claim's verdict on one testbed and spread measure (design ``"controlled"``).

    The inherited fields hold the stability statistic: ``effect`` the spread ratio
    ``s_method / s_plain`` (std of test accuracy over seeds, or prediction disagreement),
    ``effect_ci`` its bootstrap interval, ``replicates`` the seeds, ``parameter_values``
    ``[mechanism plain, mechanism method]`` and ``instability`` ``[s_plain, s_method]``;
    ``tau``, ``ci`` and the sign test are NaN (two arms, no sweep to rank). The added
    fields give the rest.

    Attributes:
      p_value: Brown-Forsythe p-value (method vs plain); NaN for the disagreement.
      mechanism: the mechanism statistic, its interval and what it says, in words.
      mechanism_verdict: ``"as predicted"``, ``"opposite"`` or ``"no detectable change"``.
      stability_verdict: ``"raised"``, ``"lowered"`` or ``"no detectable change"``.
    """

    p_value: float = math.nan
    mechanism: str = ""
    mechanism_verdict: str = ""
    stability_verdict: str = ""

    def statistic(self) -> dict:
        p = float(self.p_value)
        return {**super().statistic(), "p_value": p if math.isfinite(p) else None}

    def to_dict(self) -> dict:
        return {
            **super().to_dict(),
            "mechanism": {
                "text": self.mechanism,
                "verdict": self.mechanism_verdict,
                "stability": self.stability_verdict,
            },
        }


@dataclasses.dataclass(frozen=True)
class StabilizerVerdict(_claims.Verdict):
    """A :class:`stabtheory.claims.Verdict` whose statistic is the std ratio (see ``STATISTIC``)."""

    statistic_name = STATISTIC


@dataclasses.dataclass
class StabilizerStudy:
    """Results of :func:`run_stabilizer_study`.

    Attributes:
      spec: the :class:`StabilizerStudySpec`.
      rows: one dict per (testbed, method) (see :func:`run_stabilizer_study`).
      verdicts: :class:`StabilizerVerdict` for ``mmr``, ``mhloss``, ``surt``.
      runtime_s: wall time.
      convergence: per testbed, the MHLoss head-convergence curves and statistic.
      accuracy: per testbed and method, the test accuracy of every seed (for figures).
      per_seed: per testbed and method, per-seed mechanism values (margin, distance).
    """

    spec: StabilizerStudySpec
    rows: list[dict] = dataclasses.field(default_factory=list)
    verdicts: list = dataclasses.field(default_factory=list)
    runtime_s: float = 0.0
    convergence: dict[str, dict] = dataclasses.field(default_factory=dict)
    accuracy: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    per_seed: dict[str, dict[str, dict[str, np.ndarray]]] = dataclasses.field(default_factory=dict)

    def row(self, testbed: str, method: str) -> dict:
        """The row of one (testbed, method)."""
        (r,) = [r for r in self.rows if r["testbed"] == testbed and r["method"] == method]
        return r


# --------------------------------------------------------------------------------------------
# Statistics


def _std(a: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.std(a, axis=axis, ddof=1)


#: Brown-Forsythe p-value (:func:`stabtheory.statistics.brown_forsythe`).
_brown_forsythe = brown_forsythe


def disagreement(logits: np.ndarray) -> float:
    r"""Mean pairwise disagreement of the predicted test labels between seeds ("churn").

    .. math::
        D = \frac{1}{S(S-1)} \sum_{s \ne s'} \frac1m \sum_j
            \mathbb{1}[\operatorname{sign} f_s(x_j) \ne \operatorname{sign} f_{s'}(x_j)]
          = \frac1m \sum_j \frac{2\, S\, p_j (1 - p_j)}{S - 1},

    with ``p_j`` the fraction of the ``S`` seeds that predict +1 on test point ``j``. Scale
    free (only the signs of the logits enter), so methods whose logits grow at different
    rates compare fairly.

    Example:
      >>> disagreement(np.array([[1.0, 1.0], [1.0, -1.0]]))  # the seeds differ on one of two
      0.5
    """
    pos = (np.asarray(logits) > 0).astype(np.float64)
    S = pos.shape[0]
    p = pos.mean(axis=0)
    return float(np.mean(2.0 * S * p * (1.0 - p) / (S - 1)))


def _disagreement_ratio(la, lb, *, n_boot, level, seed) -> tuple[float, tuple[float, float]]:
    """Disagreement ratio (method / plain) and its bootstrap interval (seeds resampled).

    A resample repeats seeds, and a repeated pair never disagrees; the same happens to both
    methods, so the ratio is compared on equal terms.
    """

    def stat(batch):  # (resamples, seeds, m) -> (resamples,)
        return np.array([disagreement(x) for x in batch])

    return bootstrap_ratio(stat, la, lb, n_boot=n_boot, level=level, seed=seed, batch_size=64)


def _area_ratio(e_multi, e_single, *, n_boot, level, seed) -> tuple[float, tuple[float, float]]:
    """Ratio of the areas under the mean error curves (paired: seed s shares head 0)."""

    def area(batch):  # (resamples, seeds, t) -> (resamples,)
        return batch.mean(axis=-2).sum(axis=-1)

    return bootstrap_ratio(
        area, e_multi, e_single, n_boot=n_boot, level=level, seed=seed, paired=True
    )


def _side(est: float, ci: tuple[float, float], null: float, predicted: int) -> str:
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no detectable change"
    if lo > null:
        return "as predicted" if predicted > 0 else "opposite"
    if hi < null:
        return "as predicted" if predicted < 0 else "opposite"
    return "no detectable change"


# --------------------------------------------------------------------------------------------
# The study


def _testbed(spec: StabilizerStudySpec, task: str):
    from stabtheory import finetune

    kwargs = dict(
        n=spec.n,
        n_test=spec.n_test,
        hidden=spec.hidden,
        features=spec.features,
        pretrain_steps=spec.pretrain_steps,
        seed=spec.seed,
    )
    if task == "synthetic":
        kwargs["shift"] = spec.shift
    return finetune.make_testbed(task, **kwargs)


def _features_margins(runs: _methods.SeedRuns, y: np.ndarray) -> list[_methods.FeatureMargin]:
    return [_methods.features_margin(F, y) for F in runs.train_features]


def _head_direction_error(runs: _methods.SeedRuns, fms) -> np.ndarray:
    """Per seed: ``||mean head / ||mean head|| - u_S||`` on the final features (NaN if not sep.)."""
    out = np.full(len(fms), np.nan)
    for s, fm in enumerate(fms):
        if fm.separable:
            H = runs.heads[s].mean(axis=0)  # [c, v]
            v = np.concatenate([H[1:], H[:1]])  # the order of [phi, 1]
            out[s] = np.linalg.norm(v / np.linalg.norm(v) - fm.direction)
    return out


def run_stabilizer_study(
    spec: StabilizerStudySpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: engine.Executor | None = None,
) -> StabilizerStudy:
    """Run the stabilizer study through the sweep engine as one chunk (persisted, resumable;
    its seeds are already one vmapped batch per testbed and method): see :func:`_run`."""
    spec = spec or StabilizerStudySpec()
    executor = executor or engine.Executor(progress=progress)
    chunk = engine.Chunk("stabilizers", ("all",), ((spec, 0),), spec)
    inner = progress if progress is not None else executor.progress
    (study,) = executor.run([chunk], lambda c: _run(spec, progress=inner), label=lambda c: "")
    return study


def _run(
    spec: StabilizerStudySpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> StabilizerStudy:
    """Run the stabilizer study: fine-tune every method over seeds, measure, judge.

    Every row (one per testbed and method) holds: ``testbed``, ``method``, ``settings`` (the
    :class:`~stabtheory.methods.Method` as a dict), ``seeds``, ``acc_mean``, ``acc_std``,
    ``acc_min``, ``acc_max``, ``train_acc_mean``, ``train_loss_mean``, ``std_ratio`` and
    ``std_ratio_ci`` (to plain), ``bf_p`` (Brown-Forsythe vs plain), ``disagreement``
    (:func:`disagreement` of the test predictions), ``disagreement_ratio`` and its ``_ci``,
    ``feature_margin`` (mean ``gamma/R``,
    non-separable as 0) and ``feature_margin_ci``, ``separable_fraction``,
    ``centroid_distance`` (the MMR quantity on all training features), ``weight_distance``
    (from the fine-tuning start) and its ``_ci``, ``weight_distance_w0`` (from the pre-trained
    encoder), ``head_direction_error`` (final mean head vs ``u_S``, mean over separable seeds).

    Args:
      spec: the :class:`StabilizerStudySpec` (default: the default spec).
      progress: called as ``progress(done, total, message)`` after each fine-tuning.

    Returns:
      :class:`StabilizerStudy`.
    """
    spec = spec or StabilizerStudySpec()
    start = time.perf_counter()
    study = StabilizerStudy(spec)
    methods = spec.method_configs()
    total, done = len(spec.testbeds) * len(methods), 0
    boot = dict(n_boot=spec.n_boot, level=spec.level)
    for task in spec.testbeds:
        tb = _testbed(spec, task)
        w0_enc = np.asarray(tb.w0[: tb.info["head_slice"][0]])
        runs: dict[str, _methods.SeedRuns] = {}
        study.accuracy[task], study.per_seed[task] = {}, {}
        for j, (name, method) in enumerate(methods.items()):
            r = _methods.finetune_seeds(
                tb, method, seeds=spec.seeds, seed=spec.seed + j * spec.seeds
            )
            runs[name] = r
            fms = _features_margins(r, tb.y)
            margin = np.array([f.margin if f.separable else 0.0 for f in fms])
            dist = _methods.weight_distance(r.encoder, r.encoder_start)
            study.accuracy[task][name] = r.test_accuracy
            study.per_seed[task][name] = {
                "feature_margin": margin,
                "weight_distance": dist,
                "head_direction_error": _head_direction_error(r, fms),
                "logits": r.test_logits,
            }
            done += 1
            if progress is not None:
                progress(done, total, f"stabilizers {task} {name}")
        plain = runs["plain"]
        for name, r in runs.items():
            ps = study.per_seed[task][name]
            ratio, ratio_ci = std_ratio(r.test_accuracy, plain.test_accuracy, **boot)
            dr, dr_ci = _disagreement_ratio(r.test_logits, plain.test_logits, seed=1, **boot)
            margin_ci = bootstrap_mean_ci(ps["feature_margin"], **boot)
            dist_ci = bootstrap_mean_ci(ps["weight_distance"], **boot)
            hde = ps["head_direction_error"]
            study.rows.append(
                {
                    "testbed": task,
                    "testbed_name": tb.name,
                    "method": name,
                    "settings": dataclasses.asdict(r.method),
                    "seeds": int(spec.seeds),
                    "acc_mean": float(r.test_accuracy.mean()),
                    "acc_std": float(_std(r.test_accuracy)),
                    "acc_min": float(r.test_accuracy.min()),
                    "acc_max": float(r.test_accuracy.max()),
                    "train_acc_mean": float(r.train_accuracy.mean()),
                    "train_loss_mean": float(r.train_loss.mean()),
                    "std_ratio": ratio,
                    "std_ratio_ci": list(ratio_ci),
                    "bf_p": _brown_forsythe(r.test_accuracy, plain.test_accuracy),
                    "disagreement": disagreement(r.test_logits),
                    "disagreement_ratio": dr,
                    "disagreement_ratio_ci": list(dr_ci),
                    "feature_margin": float(ps["feature_margin"].mean()),
                    "feature_margin_ci": [float(c) for c in margin_ci],
                    "separable_fraction": float(np.mean(np.isfinite(hde))),
                    "centroid_distance": float(
                        np.mean(
                            [
                                -float(_methods.mmr_penalty(F, tb.y))
                                for F in np.asarray(r.train_features)
                            ]
                        )
                    ),
                    "weight_distance": float(ps["weight_distance"].mean()),
                    "weight_distance_ci": [float(c) for c in dist_ci],
                    "weight_distance_w0": float(_methods.weight_distance(r.encoder, w0_enc).mean()),
                    "head_direction_error": float(np.nanmean(hde))
                    if np.isfinite(hde).any()
                    else math.nan,
                }
            )
        study.convergence[task] = _convergence(spec, tb, plain, boot)
    study.verdicts = judge_claims(study)
    study.runtime_s = time.perf_counter() - start
    return study


def _convergence(spec, tb, plain: _methods.SeedRuns, boot) -> dict:
    """MHLoss mechanism on frozen features: the first separable plain seed's final features."""
    for s, F in enumerate(plain.train_features):
        if _methods.features_margin(F, tb.y).separable:
            hc = _methods.head_convergence(
                F,
                tb.y,
                K=spec.convergence_K,
                steps=spec.convergence_steps,
                seeds=spec.convergence_seeds,
                seed=spec.seed,
            )
            ratio, ci = _area_ratio(hc.error_multi, hc.error_single, seed=4, **boot)
            return {
                "features": f"final features of plain seed {int(plain.seeds[s])}",
                "K": hc.K,
                "margin": hc.margin,
                "lr": hc.lr,
                "steps": hc.steps.tolist(),
                "error_single": hc.error_single.mean(0).tolist(),
                "error_multi": hc.error_multi.mean(0).tolist(),
                "error_single_band": [list(percentile_interval(c)) for c in hc.error_single.T],
                "error_multi_band": [list(percentile_interval(c)) for c in hc.error_multi.T],
                "area_ratio": ratio,
                "area_ratio_ci": list(ci),
            }
    return {"features": "none separable", "area_ratio": math.nan, "area_ratio_ci": [math.nan] * 2}


# --------------------------------------------------------------------------------------------
# Verdicts


def _mechanism(study: StabilizerStudy, claim: str, task: str) -> tuple[str, str, list[float]]:
    spec, boot = study.spec, dict(n_boot=study.spec.n_boot, level=study.spec.level)
    ps = study.per_seed[task]
    if claim == "mmr":
        a, b = ps["mmr"]["feature_margin"], ps["plain"]["feature_margin"]
        est, ci = mean_difference(a, b, seed=5, **boot)
        word = _side(est, ci, 0.0, +1)
        text = (
            f"feature max margin gamma/R: plain {b.mean():.4f}, mmr {a.mean():.4f}, "
            f"difference {est:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"
        )
        return word, text, [float(b.mean()), float(a.mean())]
    if claim == "mhloss":
        c = study.convergence[task]
        est, ci = c["area_ratio"], tuple(c["area_ratio_ci"])
        word = _side(est, ci, 1.0, -1)
        text = (
            f"head-direction error area ratio (K={c.get('K')} heads / 1 head, GD on "
            f"{c['features']}, t <= {spec.convergence_steps}): {est:.3f} "
            f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        )
        e1 = float(np.sum(c.get("error_single", [math.nan])))
        eK = float(np.sum(c.get("error_multi", [math.nan])))
        return word, text, [e1, eK]
    a, b = ps["surt"]["weight_distance"], ps["plain"]["weight_distance"]
    est, ci = mean_ratio(a, b, seed=6, **boot)
    word = _side(est, ci, 1.0, -1)
    text = (
        f"fine-tuning weight distance ||theta_start - theta*||: plain {b.mean():.3f}, "
        f"surt {a.mean():.3f}, ratio {est:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    )
    return word, text, [float(b.mean()), float(a.mean())]


#: The two faces of ``seed.std`` (docs/theory.md section 1) that the verdicts use as regimes.
MEASURES = ("test accuracy", "test predictions")


def _seeds(study: StabilizerStudy, task: str, method: str) -> int:
    """The seeds behind a comparison of ``method`` with plain (the smaller of the two)."""
    ps = study.per_seed.get(task, {})
    counts = [len(next(iter(ps[m].values()))) for m in (method, "plain") if ps.get(m)]
    return min(counts) if counts else int(study.spec.seeds)


def _regime(study: StabilizerStudy, claim: str, task: str, measure: str) -> StabilizerRegime:
    spec = study.spec
    row, plain = study.row(task, claim), study.row(task, "plain")
    if measure == "test accuracy":
        ratio, (lo, hi), p = row["std_ratio"], row["std_ratio_ci"], row["bf_p"]
        significant = np.isfinite(p) and p < spec.alpha
        spread = [plain["acc_std"], row["acc_std"]]
    else:  # no variance test for the disagreement: its bootstrap interval alone decides
        ratio, (lo, hi), p = row["disagreement_ratio"], row["disagreement_ratio_ci"], math.nan
        significant = True
        spread = [plain["disagreement"], row["disagreement"]]
    # A spread change counts only when significant and non-negligible (docs/theory.md sec. 6).
    if significant and hi < 1.0 and ratio <= 1.0 / _claims.MIN_EFFECT:
        stab = "raised"
    elif significant and lo > 1.0 and ratio >= _claims.MIN_EFFECT:
        stab = "lowered"
    else:
        stab = "no detectable change"
    mech, text, values = _mechanism(study, claim, task)
    if mech == "as predicted" and stab == "raised":
        word = "supported"
    elif mech == "opposite" or stab == "lowered":
        word = "refuted"
    else:
        word = "inconclusive"
    return StabilizerRegime(
        regime=f"{task}, {measure}",
        verdict=word,
        tau=math.nan,
        ci=(math.nan, math.nan),
        parameter_values=values,
        instability=spread,
        design="controlled",
        replicates=_seeds(study, task, claim),
        effect=ratio,
        effect_ci=(lo, hi),
        p_value=p,
        mechanism=f"{text}: {mech}",
        mechanism_verdict=mech,
        stability_verdict=stab,
    )


def judge_claims(study: StabilizerStudy) -> list[StabilizerVerdict]:
    """Verdicts for ``mmr``, ``mhloss``, ``surt`` (notion ``seed.std``).

    Regimes: every testbed, times the two measures of ``seed.std`` (:data:`MEASURES`): the
    std of test accuracy (std ratio, bootstrap interval and Brown-Forsythe test) and the
    disagreement of the test predictions (its ratio and bootstrap interval).
    """
    verdicts = []
    for cid, claim in STABILIZER_CLAIMS.items():
        if cid not in study.spec.methods:
            continue
        regimes = [
            _regime(study, cid, task, measure)
            for task in study.spec.testbeds
            for measure in MEASURES
        ]
        v = _claims.combine(claim, "seed.std", regimes, figure=f"stabilizers_{cid}.png")
        details = []
        for task in study.spec.testbeds:
            acc, pred = (r for r in regimes if r.regime.startswith(f"{task},"))
            details.append(
                f"{task}: {acc.mechanism}; test-accuracy std ratio {acc.effect:.3f} "
                f"[{acc.effect_ci[0]:.3f}, {acc.effect_ci[1]:.3f}], Brown-Forsythe "
                f"p={acc.p_value:.3g}: stability {acc.stability_verdict} -> {acc.verdict}; "
                f"prediction disagreement ratio {pred.effect:.3f} "
                f"[{pred.effect_ci[0]:.3f}, {pred.effect_ci[1]:.3f}]: stability "
                f"{pred.stability_verdict} -> {pred.verdict}"
            )
        fields = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
        fields["explanation"] = f"{v.explanation}. " + "; ".join(details)
        verdicts.append(StabilizerVerdict(**fields))
    return verdicts


# --------------------------------------------------------------------------------------------
# Report and figures


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.bool_ | bool):
        return bool(x)
    if isinstance(x, np.integer | int):
        return int(x)
    if isinstance(x, np.floating | float):
        return float(x) if math.isfinite(x) else None
    return x


def to_report(study: StabilizerStudy) -> dict:
    """The study as a JSON-able dict: ``spec``, ``rows``, ``convergence``,
    ``verdicts`` (``v.to_dict()``); NaN becomes None."""
    return _jsonable(
        {
            "spec": dataclasses.asdict(study.spec),
            "rows": study.rows,
            "convergence": study.convergence,
            "verdicts": [v.to_dict() for v in study.verdicts],
        }
    )


def _strip(ax, data: list[np.ndarray], labels: list[str], ylabel: str, rng) -> None:
    ax.boxplot(data, showfliers=False, widths=0.6)
    for i, d in enumerate(data, start=1):
        d = np.asarray(d, float)
        ax.plot(i + rng.uniform(-0.18, 0.18, d.size), d, "o", ms=2.5, alpha=0.6, color="tab:blue")
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)


def write_figures(study: StabilizerStudy, out_dir) -> list[str]:
    """Draw the study's figures (PNG) into ``out_dir``; return their file names.

    * ``stabilizers_accuracy.png``: test accuracy across seeds for every method (box and
      strip plots), one panel per testbed, with the std ratio to plain in the labels;
    * ``stabilizers_std_ratio.png``: the accuracy std ratio and the prediction disagreement
      ratio to plain, with their bootstrap intervals;
    * ``stabilizers_mmr.png``, ``stabilizers_mhloss.png``, ``stabilizers_surt.png``: for each
      claim and testbed, the mechanism (feature margin per method; head-direction error vs
      ``t`` for one head and ``K`` heads; weight distance per method) beside plain's and the
      method's test accuracy across seeds.
    """
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tasks = list(study.spec.testbeds)
    methods = list(study.spec.methods)
    names = []

    fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        labels = [f"{m}\n(x{study.row(task, m)['std_ratio']:.2f})" for m in methods]
        _strip(ax, [study.accuracy[task][m] for m in methods], labels, "test accuracy", rng)
        ax.set_title(f"{task}: test accuracy over {study.spec.seeds} seeds", fontsize=9)
    fig.suptitle("Stabilizers and baselines: test accuracy across seeds (std ratio to plain)")
    fig.tight_layout()
    names.append("stabilizers_accuracy.png")
    fig.savefig(out / names[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 3.9))
    width = 0.8 / len(tasks)
    panels = (
        ("std_ratio", "std(test accuracy) / std(plain)"),
        ("disagreement_ratio", "prediction disagreement / plain's"),
    )
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        for t, task in enumerate(tasks):
            rows = [study.row(task, m) for m in methods]
            x = np.arange(len(methods)) + (t - (len(tasks) - 1) / 2) * width
            r = np.array([row[key] for row in rows], float)
            ci = np.array([row[f"{key}_ci"] for row in rows], float)
            ax.errorbar(
                x,
                r,
                yerr=np.abs(np.stack([r - ci[:, 0], ci[:, 1] - r])),
                fmt="o",
                capsize=3,
                label=task,
            )
        ax.axhline(1.0, color="0.4", lw=1, ls="--")
        ax.set_yscale("log")
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Seed instability relative to plain fine-tuning ({study.spec.seeds} seeds, 95% "
        "bootstrap CI; below 1 = more stable)",
        fontsize=10,
    )
    fig.tight_layout()
    names.append("stabilizers_std_ratio.png")
    fig.savefig(out / names[-1], dpi=110)
    plt.close(fig)

    verdict = {v.claim: v for v in study.verdicts}
    for cid in ("mmr", "mhloss", "surt"):
        if cid not in methods:
            continue
        fig, axes = plt.subplots(len(tasks), 2, figsize=(11.5, 3.6 * len(tasks)), squeeze=False)
        for (ax_m, ax_a), task in zip(axes, tasks, strict=True):
            per = study.per_seed[task]
            if cid == "mmr":
                _strip(
                    ax_m,
                    [per[m]["feature_margin"] for m in methods],
                    methods,
                    "max margin gamma/R of final features",
                    rng,
                )
                ax_m.set_title(f"{task}: feature margin per method (non-separable = 0)", fontsize=9)
            elif cid == "surt":
                _strip(
                    ax_m,
                    [per[m]["weight_distance"] for m in methods],
                    methods,
                    "||theta_start - theta*||",
                    rng,
                )
                ax_m.set_title(f"{task}: encoder weight distance of fine-tuning", fontsize=9)
            else:
                c = study.convergence[task]
                if "steps" in c:
                    ts = np.asarray(c["steps"], float)
                    for key, label in (("single", "1 head"), ("multi", f"mean of {c['K']} heads")):
                        mean = np.asarray(c[f"error_{key}"])
                        band = np.asarray(c[f"error_{key}_band"])
                        line = ax_m.plot(ts, mean, "-o", ms=3, label=label)[0]
                        ax_m.fill_between(
                            ts, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.2, lw=0
                        )
                    ax_m.set_xscale("log")
                    ax_m.set_xlabel("GD step t (frozen features)")
                    ax_m.legend(fontsize=8)
                else:
                    ax_m.text(0.5, 0.5, "no separable features", ha="center", va="center")
                ax_m.set_ylabel("||v(t)/||v(t)|| - u_S||")
                ax_m.set_title(
                    f"{task}: head direction error (area ratio {c['area_ratio']:.3f})",
                    fontsize=9,
                )
            _strip(
                ax_a,
                [study.accuracy[task]["plain"], study.accuracy[task][cid]],
                ["plain", cid],
                "test accuracy",
                rng,
            )
            acc, pred = (
                next(r for r in verdict[cid].regimes if r.regime == f"{task}, {m}")
                for m in MEASURES
            )
            ax_a.set_title(
                f"{task}: accuracy std ratio {acc.effect:.2f} "
                f"[{acc.effect_ci[0]:.2f}, {acc.effect_ci[1]:.2f}], BF p={acc.p_value:.2g} -> "
                f"{acc.verdict}\nprediction disagreement ratio {pred.effect:.2f} "
                f"[{pred.effect_ci[0]:.2f}, {pred.effect_ci[1]:.2f}] -> {pred.verdict}",
                fontsize=9,
            )
        fig.suptitle(
            f"{cid}: {STABILIZER_CLAIMS[cid].text} -- verdict {verdict[cid].verdict}", fontsize=10
        )
        fig.tight_layout()
        names.append(f"stabilizers_{cid}.png")
        fig.savefig(out / names[-1], dpi=110)
        plt.close(fig)
    return names
