"""The attention-theory study's computation: one chunk per full fine-tuning size (the Taylor
model of the shipped transformer, every FT theorem, the Taylor-faithfulness check) and one
chunk per pre-training length (pre-train, freeze, extract the pooled ``[CLS]`` features, audit
every head theorem on them), and the results (:class:`AttentionTheoryStudy`)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from stabtheory.simulations import engine
from stabtheory.simulations.attention_theory.spec import SHIPPED_STEPS, AttentionTheorySpec
from stabtheory.simulations.protocol import Study

__all__ = ["STUDY", "AttentionTheoryStudy", "assemble", "chunks", "compute"]

#: The registry name (chunk folder, row tag).
STUDY = "attention-theory"


@dataclasses.dataclass
class AttentionTheoryStudy(Study):
    """Results of the attention-theory study: :attr:`ft` one dict per full fine-tuning size
    (its measured quantities and faithfulness, its checks), :attr:`head` one dict per
    (pre-training length, head n) (separability, margin, its audit's checks);
    :attr:`checks` every :class:`~stabtheory.bounds.BoundCheck`, tagged with its config."""

    spec: AttentionTheorySpec
    ft: list[dict] = dataclasses.field(default_factory=list)
    head: list[dict] = dataclasses.field(default_factory=list)


def chunks(spec: AttentionTheorySpec) -> list[engine.Chunk]:
    """One chunk per fine-tuning size ``("ft", n)`` and one per pre-training length
    ``("head", steps)`` (every head n of that length: one pre-training)."""
    out = [engine.Chunk(STUDY, ("ft", n), ((("ft", n), 0),), spec) for n in spec.ns]
    out += [engine.Chunk(STUDY, ("head", s), ((("head", s), 0),), spec) for s in spec.lengths]
    return out


@functools.lru_cache(maxsize=4)
def _task(kind: str, n: int, shift: float, seed: int):
    from stabtheory import attention

    return attention.make_task(
        attention.DEFAULT_CORPUS, attention.TaskConfig(kind, n, 2, shift, seed)
    )


def _sample(spec: AttentionTheorySpec, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` sequences of the study's task draw and their labels in {-1, +1}."""
    data = _task(spec.task, spec.n_draw, spec.shift, spec.task_seed)
    return data.X[:n], 2.0 * data.y[:n] - 1.0


def _tag(check, **config):
    """A check with the study's configuration (its row's ``config`` in ``report.json``)."""
    return dataclasses.replace(check, config={"study": STUDY, **check.config, **config})


def compute_ft(spec: AttentionTheorySpec, n: int) -> dict:
    """The full fine-tuning theorems on the shipped transformer's Taylor model at size ``n``:
    :func:`~stabtheory.bounds.finetune.ft_evidence` (float64; the real network's
    leave-one-out runs only for ``n`` in ``real_ns``), every registered FT check, and the
    Taylor-faithfulness on S (:func:`~stabtheory.attention.theory.faithfulness_on_s`)."""
    from stabtheory.attention import theory  # flax: imported when a chunk is computed
    from stabtheory.bounds import check_all
    from stabtheory.bounds.finetune import (
        curvature_ratio,
        ft_evidence,
        true_hessian_psd,
    )

    model = theory.float64_model(theory.encoder_at(SHIPPED_STEPS)[0])
    apply, w0 = theory.logit_function(model, head_seed=spec.head_seed)
    X, y = _sample(spec, n)
    real = n in spec.real_ns
    # the real runs stop at the last checkpoint (max_steps=0: no stationarity phase)
    ev = ft_evidence(apply, w0, X, y, lam=spec.lam, steps=spec.steps, real=real, max_steps=0)
    faithful = theory.faithfulness_on_s(apply, ev)
    psd = true_hessian_psd(ev)
    config = {
        "task": f"attention {spec.task}",
        "n": n,
        "p": int(w0.size),
        "lam": spec.lam,
        "lr": ev.config["lr"],
        "pretrain_steps": SHIPPED_STEPS,
        # the keys the full fine-tuning study's tables read from every FT row
        "input_scale": 1.0,
        "task_shift": spec.shift,
        "alpha": 0.0,
        "replicates": 1,
    }
    checks = tuple(_tag(c, **config) for c in check_all(ev))
    measured = {
        **config,
        "rho": float(ev.rho.max()),
        "distance": ev.distance,
        "Lam": float(ev.Lam.min()),
        "beta": float(ev.beta_i.max()),
        "lambda_max": float(ev.lam_max.max()),
        "cg_residual": float(ev.cg_residual.max()),
        "steps": [int(s) for s in ev.steps],
        "real_loo": real,
        **faithful,
        "hessian_min_rel": float(curvature_ratio(ev)[0]),
        "true_hessian_psd": bool(psd.holds),
    }
    return {"kind": "ft", "n": n, "measured": measured, "checks": checks}


def compute_head(spec: AttentionTheorySpec, steps: int) -> list[dict]:
    """The head-tuning theorems on the frozen pooled ``[CLS]`` features of the encoder after
    ``steps`` pre-training steps, for every head n: :func:`~stabtheory.audit.audit`."""
    from stabtheory.attention import theory
    from stabtheory.audit import audit

    model, metrics = theory.encoder_at(steps)
    model = theory.float64_model(model)
    X, y = _sample(spec, max(spec.head_ns))
    features = theory.pooled_features(model, X)
    out = []
    for n in spec.head_ns:
        a = audit(features[:n], y[:n], loss=spec.head_loss, steps=spec.head_steps, bias=spec.bias)
        config = {
            "task": f"attention {spec.task}",
            "n": n,
            "pretrain_steps": steps,
            "loss": a.loss,
            "lr": a.lr,
            "gamma": None if not a.separable else a.gamma,
            "family": f"attention [CLS], pre-train {steps}",
            "replicates": 1,
        }
        out.append(
            {
                "kind": "head",
                "n": n,
                "pretrain_steps": steps,
                "measured": {
                    **config,
                    "d": a.d,
                    "R": a.radius,
                    "separable": a.separable,
                    "pretrain_metrics": metrics,
                    "steps": list(a.steps),
                },
                "checks": tuple(_tag(c, **config) for c in a.checks),
            }
        )
    return out


def compute(spec: AttentionTheorySpec, chunk: engine.Chunk) -> list[dict]:
    """One chunk: a fine-tuning size or a pre-training length."""
    ((item, _),) = chunk.items
    kind, value = item
    return [compute_ft(spec, value)] if kind == "ft" else compute_head(spec, value)


def assemble(spec: AttentionTheorySpec, results: list) -> AttentionTheoryStudy:
    """The study from its chunks' results, in chunk order."""
    study = AttentionTheoryStudy(spec)
    for part in results:
        for r in part:
            k = len(study.configs)
            study.configs.append(r["measured"])
            study.checks += [(k, c) for c in r["checks"]]
            (study.ft if r["kind"] == "ft" else study.head).append(r)
    return study
