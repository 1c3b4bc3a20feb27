"""The head-tuning study of ``stabtheory verify``: sweeps of t, learning rate, margin and n.

Every configuration (a :class:`HeadConfig`) is run on ``replicates`` independent data draws.
For each (configuration, draw), S and all n sets S\\i are trained to log-spaced checkpoints,
every leave-one-out max margin is solved, every head theorem is checked per sample and
checkpoint, and the per-sample stability of every notion is kept for the claims.

Execution goes through the sweep engine (:mod:`stabtheory.simulations.engine`): all
(configuration, draw) items of one loss and one padded size run as ONE compiled program, vmapped
over items and over the n + 1 runs of each item. Sizes are padded to the next power of two with
zero sample weights (a padded sample has no effect on the gradient, the loss or ``max |l'|``),
and the learning rate is traced, so the number of compiled trainers is (losses) x (padded
sizes), whatever the number of configurations and draws.

The sweeps are one-at-a-time around a base configuration, on planted datasets whose max
margin is known exactly (:func:`stabtheory.data.planted_margin`); the n sweep uses nested
subsets of one dataset per draw (its support vectors first), so the margin is the same for
every n.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory import claims as _claims
from stabtheory import heads
from stabtheory.bounds import head as _head
from stabtheory.data import Dataset, planted_margin
from stabtheory.margin import loo_max_margin, max_margin
from stabtheory.simulations import engine
from stabtheory.simulations.base import DrawResult, Study, draws_by_config
from stabtheory.stability import Simulation

__all__ = ["HeadConfig", "HeadStudy", "HeadStudySpec", "run_head_study"]

NOTIONS = ("direction", "weights", "loss")


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """One configuration of the head study (planted data of margin ``gamma``, ``n`` samples)."""

    loss: str
    lr: float
    gamma: float
    n: int


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
      replicates: independent data draws per configuration.
      seed: seed of the planted data (draw r uses :func:`engine.draw_seed` (seed, r)).
      max_runs: at most this many runs (n + 1 per item, padded) in one chunk.
    """

    n: int = 64
    d: int = 8
    gamma: float = 0.1
    lr: float = 0.3
    radius: float = 1.0
    t_max: int = 10_000
    checkpoints: int = 13
    lrs: tuple[float, ...] = (0.1, 0.3, 0.9)
    gammas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
    ns: tuple[int, ...] = (16, 32, 64, 128)
    losses: tuple[str, ...] = ("exponential", "logistic")
    early_t: int = 100
    replicates: int = 10
    seed: int = 0
    max_runs: int = 4096

    @classmethod
    def quick(cls) -> HeadStudySpec:
        """A reduced study for ``verify --quick``."""
        return cls(
            n=32,
            t_max=5_000,
            checkpoints=9,
            lrs=(0.1, 0.9),
            gammas=(0.1, 0.3),
            ns=(16, 32),
            losses=("exponential", "logistic"),
            replicates=3,
        )

    @property
    def steps(self) -> np.ndarray:
        ck = np.unique(np.round(np.logspace(0, np.log10(self.t_max), self.checkpoints)))
        return np.unique(np.append(ck, self.early_t)).astype(np.int64)

    @property
    def n_max(self) -> int:
        return max((*self.ns, self.n))

    def base(self, loss: str) -> HeadConfig:
        """The base configuration of ``loss`` (the centre of every one-at-a-time sweep)."""
        return HeadConfig(loss, self.lr, self.gamma, self.n)

    def plan(self) -> list[HeadConfig]:
        """The configurations: one-at-a-time sweeps around the base, without duplicates."""
        plan: list[HeadConfig] = []
        for loss in self.losses:
            base = self.base(loss)
            variants = [base]
            variants += [dataclasses.replace(base, lr=v) for v in self.lrs]
            variants += [dataclasses.replace(base, gamma=v) for v in self.gammas]
            variants += [dataclasses.replace(base, n=v) for v in self.ns]
            plan += [v for v in dict.fromkeys(variants) if v not in plan]
        return plan

    def dataset(self, gamma: float, n: int, draw: int) -> Dataset:
        """Draw ``draw`` of the planted data of margin ``gamma``, its first ``n`` samples."""
        return _planted(self.n_max, self.d, gamma, self.radius, self.seed, draw).subset(n)


@functools.lru_cache(maxsize=256)
def _planted(n, d, gamma, radius, seed, draw) -> Dataset:
    return planted_margin(n, d, gamma, radius=radius, seed=engine.draw_seed(seed, draw))


@dataclasses.dataclass
class HeadStudy(Study):
    """Results of :func:`run_head_study` (:class:`~stabtheory.simulations.base.Study`): one
    config dict per :class:`HeadConfig` (its fields and the measured gamma, R over the draws),
    one check row per (config, theorem) over every draw, ``{notion: (C, draws, n)}`` per
    config, verdicts, and the per-draw :class:`~stabtheory.simulations.base.DrawResult` s."""

    spec: HeadStudySpec

    @property
    def steps(self) -> np.ndarray:
        return self.spec.steps


def _bucket(n: int) -> int:
    """The padded size of a set of n samples: the next power of two."""
    return 1 << max(0, int(n - 1).bit_length())


#: Traces of the batched trainer (a test keeps this small and independent of the plan size).
TRACES = {"count": 0}


@functools.partial(jax.jit, static_argnames=("checkpoints", "loss"))
def _train_items(Z, masks, lr, checkpoints, *, loss):
    """Every run of every item: Z (I, m, d), masks (I, m + 1, m), lr (I,) -> Trajectory.

    ``checkpoints`` is a static tuple: fixed-length loops between checkpoints (a traced trip
    count would block XLA's loop optimisations on GPU)."""
    TRACES["count"] += 1

    def item(Zi, mi, li):
        w0 = jnp.zeros((1, Zi.shape[1]), Zi.dtype)
        return jax.vmap(lambda s: heads.train(Zi, s, li, w0, checkpoints, loss=loss))(mi)

    return jax.vmap(item)(Z, masks, lr)


def _compute(spec: HeadStudySpec, chunk: engine.Chunk, loo_cache: dict) -> list[DrawResult]:
    loss, m, capacity = chunk.group
    d, steps = spec.d, spec.steps
    Z = np.zeros((capacity, m, d))
    masks = np.zeros((capacity, m + 1, m))
    lr = np.zeros(capacity)
    data = []
    for j, (cfg, draw) in enumerate(chunk.items):
        ds = spec.dataset(cfg.gamma, cfg.n, draw)
        data.append(ds)
        Z[j, : cfg.n] = ds.y[:, None] * ds.X
        masks[j, : cfg.n + 1, : cfg.n] = np.asarray(heads.loo_weights(cfg.n))
        masks[j, cfg.n + 1 :, : cfg.n] = 1.0  # unused runs: copies of the run on S
        lr[j] = cfg.lr
    filled = len(chunk.items)
    Z[filled:], masks[filled:], lr[filled:] = Z[filled - 1], masks[filled - 1], lr[filled - 1]
    checkpoints = heads.static_checkpoints(steps)
    traj = _train_items(*engine.shard_leading(Z, masks, lr), checkpoints, loss=loss)
    traj = jax.tree_util.tree_map(np.asarray, traj)
    results = []
    for j, ((cfg, draw), ds) in enumerate(zip(chunk.items, data, strict=True)):
        n = cfg.n
        runs = heads.Trajectory(*(a[j, : n + 1] for a in traj))
        Zj = jnp.asarray(ds.y[:, None] * ds.X)
        sim = Simulation(
            "loo",
            Zj,
            Zj,
            heads.loo_weights(n),
            jnp.full((n + 1,), cfg.lr),
            runs,
            loss,
            "gd",
        )
        key = (cfg.gamma, n, draw)
        if key not in loo_cache:
            loo_cache[key] = loo_max_margin(ds.X, ds.y, result=max_margin(ds.X, ds.y))
        ev = _head.head_evidence(
            ds.X, ds.y, loss=loss, lr=cfg.lr, steps=steps, loo=loo_cache[key], sim=sim
        )
        checks = [
            _head.check_h1(ev),
            _head.check_h2(ev),
            _head.check_h2_margin(ev),
            _head.check_c1(ev, "weights"),
            _head.check_c1(ev, "loss"),
        ]
        if loss == spec.losses[0]:
            checks.append(_head.check_svm_loo(ev))
        measured = {"gamma": ev.config["gamma"], "R": ev.config["R"], "data": ds.name}
        stability = {notion: ev.empirical(notion) for notion in NOTIONS}
        results.append(DrawResult(cfg, draw, measured, tuple(checks), stability))
    return results


def chunks(spec: HeadStudySpec) -> list[engine.Chunk]:
    """The study's chunks: items grouped by (loss, padded n), at most ``max_runs`` runs each.

    Every chunk of a group is padded to the same number of items, so a group compiles once.
    """
    items = [(cfg, r) for cfg in spec.plan() for r in range(spec.replicates)]
    groups: dict[tuple, list] = {}
    for item in items:
        groups.setdefault((item[0].loss, _bucket(item[0].n)), []).append(item)
    out = []
    for (loss, m), members in groups.items():
        per = max(1, spec.max_runs // (m + 1))
        k = -(-len(members) // per)
        size = -(-len(members) // k)
        for c in range(k):
            part = tuple(members[c * size : (c + 1) * size])
            out.append(engine.Chunk("head", (loss, m, size), part, spec))
    return out


def run_head_study(
    spec: HeadStudySpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: engine.Executor | None = None,
) -> HeadStudy:
    """Run the head study: train, check every theorem, and judge the claims.

    Args:
      spec: what to sweep; the default :class:`HeadStudySpec` when ``None``.
      progress: called as ``progress(done, total, label)`` after each chunk (when no
        ``executor`` is given).
      executor: the :class:`~stabtheory.simulations.engine.Executor` (persistence, resume,
        processes); a fresh in-memory one by default.
    """
    spec = spec or HeadStudySpec()
    executor = executor or engine.Executor(progress=progress)
    start = time.perf_counter()
    loo_cache: dict = {}
    todo = chunks(spec)
    results = executor.run(
        todo,
        lambda c: _compute(spec, c, loo_cache),
        label=lambda c: f"head {c.group[0]} n<={c.group[1]}: {len(c.items)} config x draws",
    )
    by_config = draws_by_config(results)
    study = HeadStudy(spec)
    for cfg in spec.plan():
        members = by_config[cfg]
        config = {
            **dataclasses.asdict(cfg),
            "gamma_planted": cfg.gamma,
            "gamma": float(np.mean([it.measured["gamma"] for it in members])),
            "R": float(max(it.measured["R"] for it in members)),
            "d": spec.d,
            "optimizer": "gd",
            "heads": 1,
            "init": "zero",
            "dtype": "float64",
            "replicates": len(members),
        }
        study.add_config(config, members)
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
