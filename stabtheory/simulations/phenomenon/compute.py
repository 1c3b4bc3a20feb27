"""The phenomenon study's computation: one chunk per setting (its seeds as one vmapped program
from the shipped checkpoint), the classification and the table (:class:`PhenomenonStudy`)."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from stabtheory.simulations import engine
from stabtheory.simulations.phenomenon.spec import PhenomenonSpec
from stabtheory.simulations.protocol import Study

__all__ = ["PhenomenonStudy", "assemble", "chunks", "compute", "row"]


@dataclasses.dataclass
class PhenomenonStudy(Study):
    """Results of the phenomenon study: per setting its seeds' arrays (:attr:`runs`) and its
    table row (:attr:`table`, :func:`row`); :attr:`accepted` as
    :func:`~stabtheory.attention.accepted` decides."""

    spec: PhenomenonSpec
    runs: list[dict] = dataclasses.field(default_factory=list)
    table: list[dict] = dataclasses.field(default_factory=list)
    accepted: bool = False
    pretraining: dict = dataclasses.field(default_factory=dict)


def chunks(spec: PhenomenonSpec) -> list[engine.Chunk]:
    """One chunk per setting (shapes: ``n`` and the batch size; lr, steps and bias correction
    are traced, so settings of one ``n`` share one compilation)."""
    return [
        engine.Chunk("phenomenon", (s.n, s.batch_size, s.label), ((s, 0),), spec)
        for s in spec.settings
    ]


@functools.lru_cache(maxsize=8)
def _task(kind: str, n: int, n_test: int, shift: float, seed: int):
    from stabtheory import attention

    return attention.make_task(
        attention.DEFAULT_CORPUS, attention.TaskConfig(kind, n, n_test, shift, seed)
    )


def compute(spec: PhenomenonSpec, chunk: engine.Chunk) -> dict:
    """Fine-tune one setting's seeds; return its per-seed arrays and the majority class."""
    from stabtheory import attention  # flax: imported when the study runs

    ((setting, _),) = chunk.items
    data = _task(spec.task, setting.n, spec.n_test, spec.shift, spec.task_seed)
    recipe = attention.Recipe.make(
        setting.lr, setting.steps, setting.warmup, setting.bias_correction
    )
    apply, _ = attention.classifier_functions(attention.encoder_config(attention.DEFAULT))
    res = attention.finetune_seeds(
        attention.load_classifier(),
        data.X,
        data.y,
        data.X_test,
        data.y_test,
        recipe,
        spec.seeds,
        batch_size=setting.batch_size,
        apply=apply,
    )
    return {
        "setting": setting,
        "majority": data.majority,
        "train_loss": res.train_loss,
        "train_accuracy": res.train_accuracy,
        "test_accuracy": res.test_accuracy,
    }


def _q(x: np.ndarray) -> dict:
    q = np.quantile(x, [0.1, 0.25, 0.5, 0.75, 0.9])
    return dict(zip(("q10", "q25", "median", "q75", "q90"), (float(v) for v in q), strict=True))


def row(run: dict, *, level: float) -> dict:
    """A setting's row of ``report.json``'s ``phenomenon.settings``."""
    from stabtheory.attention import classify

    s, acc, loss = run["setting"], run["test_accuracy"], run["train_loss"]
    c = classify(acc, loss, run["majority"], level=level)
    return {
        "n": s.n,
        "optimizer": s.optimizer,
        "lr": s.lr,
        "steps": s.steps,
        "warmup": s.warmup,
        "batch_size": s.batch_size,
        "epochs": s.epochs,
        "sweep": s.sweep,
        "seeds": int(acc.size),
        "majority": run["majority"],
        "failures": int(c.failed.sum()),
        "failure_rate": c.failure_rate,
        "failure_ci": list(c.failure_ci),
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std(ddof=1)),
        "success_accuracy": c.success_accuracy,
        "failed_at_ln2": c.collapsed_loss,
        "final_train_loss": _q(loss),
        "ln2": math.log(2.0),
        "classification": c.classification,
        "counts": c.counts,
    }


def assemble(spec: PhenomenonSpec, results: list) -> PhenomenonStudy:
    """The study from its chunks' results, in setting order."""
    from stabtheory.attention import accepted, classify

    study = PhenomenonStudy(spec)
    study.runs = list(results)
    study.table = [row(r, level=spec.level) for r in results]
    study.configs = [dict(dataclasses.asdict(r["setting"])) for r in results]
    classes = [classify(r["test_accuracy"], r["train_loss"], r["majority"]) for r in results]
    study.accepted = accepted(classes)
    return study
