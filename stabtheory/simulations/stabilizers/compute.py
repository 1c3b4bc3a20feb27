r"""Running the stabilizer study: every method fine-tuned over seeds on every testbed, measured.

On every testbed of the spec, each method (one chunk each) is fine-tuned for ``seeds`` seeds in
one vmapped program (:func:`stabtheory.stabilizers.finetune_seeds`: head init, data order,
minibatches, dropout; SURT's minibatches and noise too), every method on its own block of
seeds, so the methods' samples are independent. Stability (notion ``seed.std``,
docs/theory.md section 1) is the spread over seeds of the test accuracy (its std and the ratio
to plain with a percentile-bootstrap interval, seeds resampled within each method, and the
Brown-Forsythe test) and of the test predictions (:func:`disagreement` and its ratio to plain).
Every run is measured by the mechanism measures of :mod:`stabtheory.stabilizers` and by the
methods' own hooks (:meth:`stabtheory.stabilizers.Method.seed_measures`,
:meth:`~stabtheory.stabilizers.Method.measure`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from stabtheory.simulations import engine
from stabtheory.simulations.stabilizers import attention as att
from stabtheory.simulations.stabilizers.results import StabilizerStudy
from stabtheory.simulations.stabilizers.spec import REFERENCE, StabilizerStudySpec
from stabtheory.stabilizers import (
    Method,
    SeedRuns,
    features_margin,
    finetune_seeds,
    head_direction_error,
    mmr_penalty,
    split_weights,
    weight_distance,
)
from stabtheory.statistics import (
    bootstrap_mean_ci,
    bootstrap_ratio,
    brown_forsythe,
    disagreement,
    sample_std,
    std_ratio,
)

__all__ = [
    "MethodResult",
    "assemble",
    "chunks",
    "compute",
    "disagreement",
    "seed_measures",
]


def _disagreement_ratio(la, lb, *, n_boot, level, seed) -> tuple[float, tuple[float, float]]:
    """Disagreement ratio (method / plain) and its bootstrap interval (seeds resampled).

    A resample repeats seeds, and a repeated pair never disagrees; the same happens to both
    methods, so the ratio is compared on equal terms.
    """

    def stat(batch):  # (resamples, seeds, m) -> (resamples,)
        return np.array([disagreement(x) for x in batch])

    return bootstrap_ratio(stat, la, lb, n_boot=n_boot, level=level, seed=seed, batch_size=64)


def seed_measures(runs: SeedRuns, testbed: Any, methods: Sequence[Method]) -> dict[str, np.ndarray]:
    """The per-seed measures of one method's runs: ``feature_margin`` (``gamma / R`` of the
    final training features, non-separable as 0), ``weight_distance`` (from the fine-tuning
    start), ``head_direction_error``, ``logits`` (test), then every method's own
    :meth:`~stabtheory.stabilizers.Method.seed_measures`."""
    fms = [features_margin(F, testbed.y) for F in runs.train_features]
    out = {
        "feature_margin": np.array([f.margin if f.separable else 0.0 for f in fms]),
        "weight_distance": weight_distance(runs.encoder, runs.encoder_start),
        "head_direction_error": head_direction_error(runs.heads, fms),
        "logits": runs.test_logits,
    }
    for method in methods:
        out.update(method.seed_measures(runs, testbed))
    return out


@dataclasses.dataclass(frozen=True)
class MethodResult:
    """The result of one chunk: one method's seeds on one testbed, measured.

    Attributes:
      testbed: the testbed's name in the spec (``"synthetic"``, ``"digits"``).
      testbed_name: the testbed's own name.
      settings: the method's :class:`~stabtheory.stabilizers.Settings` as a dict.
      test_accuracy, test_logits, train_accuracy, train_loss: per seed (see
        :class:`~stabtheory.stabilizers.SeedRuns`).
      per_seed: :func:`seed_measures`.
      centroid_distance: the MMR quantity ``-R(phi)`` on all training features, mean over seeds.
      weight_distance_w0: the encoder's distance from the pre-trained one, mean over seeds.
      mechanisms: for the reference (plain) only: per method with testbed-level data, its
        :meth:`~stabtheory.stabilizers.Method.measure`.
    """

    testbed: str
    testbed_name: str
    settings: dict
    test_accuracy: np.ndarray
    test_logits: np.ndarray
    train_accuracy: np.ndarray
    train_loss: np.ndarray
    per_seed: dict[str, np.ndarray]
    centroid_distance: float
    weight_distance_w0: float
    mechanisms: dict[str, dict]
    majority: float = 0.5


def chunks(spec: StabilizerStudySpec) -> list[engine.Chunk]:
    """One chunk per (testbed, method): its seeds are one vmapped program; then one chunk per
    draw of the attention part (every arm's seeds as one program)."""
    mlp = [
        engine.Chunk("stabilizers", (task, m.name), (((task, m.name), 0),), spec)
        for task in spec.testbeds
        for m in spec.methods
    ]
    return mlp + (att.chunks(spec.attention, spec) if spec.attention is not None else [])


def compute(spec: StabilizerStudySpec, chunk: engine.Chunk) -> MethodResult:
    """Fine-tune one method of the spec over its seeds on one testbed, and measure the runs.

    The method at position ``j`` of ``spec.methods`` runs the seeds
    ``spec.seed + j * spec.seeds ..`` (:func:`stabtheory.stabilizers.finetune_seeds`). The
    reference's chunk also runs every method's testbed-level
    :meth:`~stabtheory.stabilizers.Method.measure` on the reference runs.
    """
    if chunk.group[0] == "attention":
        return att.compute_draw(spec.attention, chunk.group[1])
    (((task, name), _),) = chunk.items
    names = [m.name for m in spec.methods]
    j = names.index(name)
    tb = spec.testbed(task)
    r = finetune_seeds(
        tb, spec.method_configs()[name], seeds=spec.seeds, seed=spec.seed + j * spec.seeds
    )
    mechanisms = {}
    if name == REFERENCE:
        for method in spec.methods:
            data = method.measure(tb, r, seed=spec.seed, n_boot=spec.n_boot, level=spec.level)
            if data:
                mechanisms[method.name] = data
    w0_enc, _ = split_weights(tb)
    return MethodResult(
        testbed=task,
        testbed_name=tb.name,
        settings=r.settings.to_dict(),
        test_accuracy=r.test_accuracy,
        test_logits=r.test_logits,
        train_accuracy=r.train_accuracy,
        train_loss=r.train_loss,
        per_seed=seed_measures(r, tb, spec.methods),
        centroid_distance=float(
            np.mean([-float(mmr_penalty(F, tb.y)) for F in np.asarray(r.train_features)])
        ),
        weight_distance_w0=float(weight_distance(r.encoder, w0_enc).mean()),
        mechanisms=mechanisms,
        majority=_majority(tb.y_test),
    )


def _majority(y) -> float:
    """The test accuracy of predicting the majority class of labels ``y``."""
    share = float(np.mean(np.asarray(y) == np.max(y)))
    return max(share, 1.0 - share)


def _row(spec: StabilizerStudySpec, r: MethodResult, plain: MethodResult) -> dict:
    """The table row of one (testbed, method) (see :func:`assemble`)."""
    from stabtheory.attention.phenomenon import classify

    boot = dict(n_boot=spec.n_boot, level=spec.level)
    failures = classify(r.test_accuracy, r.train_loss, r.majority, level=spec.level)
    ps = r.per_seed
    ratio, ratio_ci = std_ratio(r.test_accuracy, plain.test_accuracy, **boot)
    dr, dr_ci = _disagreement_ratio(r.test_logits, plain.test_logits, seed=1, **boot)
    margin_ci = bootstrap_mean_ci(ps["feature_margin"], **boot)
    dist_ci = bootstrap_mean_ci(ps["weight_distance"], **boot)
    hde = ps["head_direction_error"]
    return {
        "testbed": r.testbed,
        "testbed_name": r.testbed_name,
        "method": r.settings["name"],
        "settings": r.settings,
        "seeds": int(spec.seeds),
        "acc_mean": float(r.test_accuracy.mean()),
        "acc_std": float(sample_std(r.test_accuracy)),
        "acc_min": float(r.test_accuracy.min()),
        "acc_max": float(r.test_accuracy.max()),
        "train_acc_mean": float(r.train_accuracy.mean()),
        "train_loss_mean": float(r.train_loss.mean()),
        "std_ratio": ratio,
        "std_ratio_ci": list(ratio_ci),
        "bf_p": brown_forsythe(r.test_accuracy, plain.test_accuracy),
        "disagreement": disagreement(r.test_logits),
        "disagreement_ratio": dr,
        "disagreement_ratio_ci": list(dr_ci),
        "feature_margin": float(ps["feature_margin"].mean()),
        "feature_margin_ci": [float(c) for c in margin_ci],
        "separable_fraction": float(np.mean(np.isfinite(hde))),
        "centroid_distance": r.centroid_distance,
        "weight_distance": float(ps["weight_distance"].mean()),
        "weight_distance_ci": [float(c) for c in dist_ci],
        "weight_distance_w0": r.weight_distance_w0,
        "head_direction_error": float(np.nanmean(hde)) if np.isfinite(hde).any() else math.nan,
        "majority": r.majority,
        "failure_rate": failures.failure_rate,
        "failure_ci": list(failures.failure_ci),
        "classification": failures.classification,
    }


def assemble(spec: StabilizerStudySpec, results: Sequence[MethodResult]) -> StabilizerStudy:
    """The study from its chunks' results (in :func:`chunks` order), without verdicts.

    Every row (``configs``, one per testbed and method) holds: ``testbed``, ``testbed_name``,
    ``method``, ``settings`` (the method's :class:`~stabtheory.stabilizers.Settings` as a
    dict), ``seeds``, ``acc_mean``, ``acc_std``, ``acc_min``, ``acc_max``,
    ``train_acc_mean``, ``train_loss_mean``, ``std_ratio`` and ``std_ratio_ci`` (to plain),
    ``bf_p`` (Brown-Forsythe vs plain), ``disagreement`` (:func:`disagreement` of the test
    predictions), ``disagreement_ratio`` and its ``_ci``, ``feature_margin`` (mean
    ``gamma/R``, non-separable as 0) and ``feature_margin_ci``, ``separable_fraction``,
    ``centroid_distance`` (the MMR quantity on all training features), ``weight_distance``
    (from the fine-tuning start) and its ``_ci``, ``weight_distance_w0`` (from the pre-trained
    encoder), ``head_direction_error`` (final mean head vs ``u_S``, mean over separable
    seeds), ``majority`` (of the test labels), ``failure_rate`` and ``failure_ci``
    (:func:`stabtheory.attention.classify`: test accuracy within 1 point of the majority class)
    and ``classification`` (``"failures"`` when the testbed shows the phenomenon). The
    attention part's draws go to ``study.attention`` and its table to
    ``study.attention_table``.
    """
    study = StabilizerStudy(spec)
    draws = [r for r in results if isinstance(r, dict)]
    results = [r for r in results if not isinstance(r, dict)]
    if spec.attention is not None and draws:
        a = spec.attention
        study.attention = att.assemble(a, draws)
        study.attention_table = att.arm_table(study.attention, a.level, a.n_boot)
    for task in spec.testbeds:
        parts = {r.settings["name"]: r for r in results if r.testbed == task}
        plain = parts[REFERENCE]
        study.configs += [_row(spec, r, plain) for r in parts.values()]
        study.accuracy[task] = {name: r.test_accuracy for name, r in parts.items()}
        study.per_seed[task] = {name: r.per_seed for name, r in parts.items()}
        study.mechanisms[task] = plain.mechanisms
    return study
