"""The head-tuning study of ``stabtheory verify``: sweeps of t, learning rate, margin and n.

Every configuration trains S and all n sets S\\i as one vmapped batch to log-spaced
checkpoints, solves every leave-one-out max margin, checks every head theorem per sample and
checkpoint, and keeps the per-sample stability of every notion for the claims.

The sweeps are one-at-a-time around a base configuration, on planted datasets whose max
margin is known exactly (:func:`stabtheory.data.planted_margin`); the n sweep uses nested
subsets of one dataset (its support vectors first), so the margin is the same for every n.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from stabtheory import claims as _claims
from stabtheory.bounds import head as _head
from stabtheory.data import Dataset, planted_margin
from stabtheory.simulations.base import Study

__all__ = ["HeadStudy", "HeadStudySpec", "run_head_study"]

NOTIONS = ("direction", "weights", "loss")


@dataclasses.dataclass(frozen=True)
class HeadStudySpec:
    """What the head study sweeps.

    Attributes:
      n, d, gamma, lr, radius: the base configuration (planted data, exact margin gamma).
      t_max, checkpoints: log-spaced checkpoints from 1 to t_max.
      lrs, gammas, ns: the one-at-a-time sweeps around the base.
      losses: losses trained.
      early_t: claims are judged separately at t = early_t ("early") and t = t_max ("late"),
        and the iterations claim on t <= early_t and t >= early_t.
      seed: seed of the planted data.
    """

    n: int = 64
    d: int = 8
    gamma: float = 0.1
    lr: float = 0.3
    radius: float = 1.0
    t_max: int = 100_000
    checkpoints: int = 16
    lrs: tuple[float, ...] = (0.1, 0.3, 0.9)
    gammas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
    ns: tuple[int, ...] = (16, 32, 64, 128)
    losses: tuple[str, ...] = ("exponential", "logistic")
    early_t: int = 100
    seed: int = 0

    @classmethod
    def quick(cls) -> HeadStudySpec:
        """A reduced study for ``verify --quick``."""
        return cls(
            n=32,
            t_max=20_000,
            checkpoints=10,
            lrs=(0.1, 0.9),
            gammas=(0.1, 0.3),
            ns=(16, 32),
            losses=("exponential", "logistic"),
        )

    @property
    def steps(self) -> np.ndarray:
        ck = np.unique(np.round(np.logspace(0, np.log10(self.t_max), self.checkpoints)))
        return np.unique(np.append(ck, self.early_t)).astype(np.int64)


@dataclasses.dataclass
class HeadStudy(Study):
    """Results of :func:`run_head_study` (:class:`~stabtheory.simulations.base.Study`): configs
    (loss, lr, gamma, n, ...), checks, ``{notion: (C, n) instability}`` per config, verdicts."""

    spec: HeadStudySpec

    @property
    def steps(self) -> np.ndarray:
        return self.spec.steps


def _plan(spec: HeadStudySpec) -> list[dict]:
    """The configurations: one-at-a-time sweeps around the base, without duplicates."""
    base = {"lr": spec.lr, "gamma": spec.gamma, "n": spec.n}
    plan, seen = [], set()
    for loss in spec.losses:
        variants = [dict(base)]
        variants += [{**base, "lr": v} for v in spec.lrs]
        variants += [{**base, "gamma": v} for v in spec.gammas]
        variants += [{**base, "n": v} for v in spec.ns]
        for v in variants:
            key = (loss, v["lr"], v["gamma"], v["n"])
            if key not in seen:
                seen.add(key)
                plan.append({"loss": loss, **v})
    return plan


def _dataset(spec: HeadStudySpec, gamma: float, n: int, cache: dict) -> Dataset:
    key = gamma
    if key not in cache:
        n_max = max((*spec.ns, spec.n))
        cache[key] = planted_margin(n_max, spec.d, gamma, radius=spec.radius, seed=spec.seed)
    return cache[key].subset(n)


def run_head_study(
    spec: HeadStudySpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> HeadStudy:
    """Run the head study: train, check every theorem, and judge the claims.

    Args:
      spec: what to sweep; the default :class:`HeadStudySpec` when ``None``.
      progress: called as ``progress(done, total, label)`` after each configuration.
    """
    spec = spec or HeadStudySpec()
    start = time.perf_counter()
    study = HeadStudy(spec)
    plan = _plan(spec)
    data_cache: dict = {}
    loo_cache: dict = {}
    steps = spec.steps
    for k, cfg in enumerate(plan):
        ds = _dataset(spec, cfg["gamma"], cfg["n"], data_cache)
        loo = loo_cache.get((cfg["gamma"], cfg["n"]))
        ev = _head.head_evidence(ds.X, ds.y, loss=cfg["loss"], lr=cfg["lr"], steps=steps, loo=loo)
        loo_cache[(cfg["gamma"], cfg["n"])] = ev.loo
        config = {**ev.config, "gamma_planted": cfg["gamma"], "data": ds.name}
        study.configs.append(config)
        index = len(study.configs) - 1
        checks = [
            _head.check_h1(ev),
            _head.check_h2(ev),
            _head.check_h2_margin(ev),
            _head.check_c1(ev, "weights"),
            _head.check_c1(ev, "loss"),
        ]
        if cfg["loss"] == spec.losses[0]:
            checks.append(_head.check_svm_loo(ev))
        for chk in checks:
            study.checks.append((index, dataclasses.replace(chk, config=config)))
        study.stability[index] = {notion: ev.empirical(notion) for notion in NOTIONS}
        if progress is not None:
            progress(
                k + 1, len(plan), f"{cfg['loss']} lr={cfg['lr']} gamma={cfg['gamma']} n={cfg['n']}"
            )
    study.verdicts = judge_claims(study)
    study.runtime_s = time.perf_counter() - start
    return study


def _t_index(steps: np.ndarray, t: int) -> int:
    return int(np.argmin(np.abs(steps - t)))


def judge_claims(study: HeadStudy) -> list:
    """Verdicts for head.iterations, head.lr, head.margin and head.n under every notion."""
    spec, steps = study.spec, study.steps
    times = {"early": _t_index(steps, spec.early_t), "late": len(steps) - 1}
    verdicts = []
    sweeps = {"head.lr": "lr", "head.margin": "gamma_planted", "head.n": "n"}
    base = {"lr": spec.lr, "gamma_planted": spec.gamma, "n": spec.n}
    for notion in NOTIONS:
        # head.iterations: instability against t, early and late ranges, per loss.
        claim = _claims.HEAD_CLAIMS["head.iterations"]
        regimes = []
        for loss in spec.losses:
            (k,) = study.find(loss=loss, **base)
            values = study.stability[k][notion]
            cut = times["early"]
            for name, sl in (("early", slice(0, cut + 1)), ("late", slice(cut, None))):
                t_range = f"t in [{steps[sl][0]}, {steps[sl][-1]}]"
                regimes.append(
                    _claims.verdict(
                        claim,
                        steps[sl].astype(float),
                        list(values[sl]),
                        regime=f"{loss}, {name} ({t_range})",
                    )
                )
        verdicts.append(
            _claims.combine(claim, f"loo.{notion}", regimes, figure=f"claims_{notion}.png")
        )
        for claim_id, field in sweeps.items():
            claim = _claims.HEAD_CLAIMS[claim_id]
            regimes = []
            for loss in spec.losses:
                others = {key: v for key, v in base.items() if key != field}
                ks = sorted(study.find(loss=loss, **others), key=lambda j: study.configs[j][field])
                params = [study.configs[j][field] for j in ks]
                for name, ti in times.items():
                    regimes.append(
                        _claims.verdict(
                            claim,
                            params,
                            [study.stability[j][notion][ti] for j in ks],
                            regime=f"{loss}, {name} (t={steps[ti]})",
                        )
                    )
            verdicts.append(
                _claims.combine(claim, f"loo.{notion}", regimes, figure=f"claims_{notion}.png")
            )
    return verdicts
