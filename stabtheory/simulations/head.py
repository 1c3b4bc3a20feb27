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

The sweeps are one-at-a-time around a base configuration, in three data families (every
family is a regime of each head claim): ``planted`` (:func:`stabtheory.data.planted_margin`,
exact margin, fixed support set: a control for ``head.n``), ``generic``
(:func:`stabtheory.data.separable_band`, where new samples can become support vectors) and
``digits`` (:func:`stabtheory.data.digits_pair_features`, frozen features of the pre-trained
digits encoder; the margin sweep runs across digit pairs). The n sweep uses nested subsets of
one dataset per draw. ``head.lr`` is judged at a fixed t and at matched eta * t (docs/theory.md
section 6).
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
from stabtheory.data import (
    DIGITS_ENCODER,
    Dataset,
    digits_pair_features,
    planted_margin,
    separable_band,
)
from stabtheory.margin import loo_max_margin, max_margin
from stabtheory.simulations import engine
from stabtheory.simulations.base import DrawResult, Study, draws_by_config
from stabtheory.stability import Simulation

__all__ = ["FAMILIES", "HeadConfig", "HeadStudy", "HeadStudySpec", "run_head_study"]

NOTIONS = ("direction", "weights", "loss")

#: The data families of the head claims (docs/theory.md section 6).
FAMILIES = ("planted", "generic", "digits")


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """One configuration of the head study.

    Attributes:
      loss: ``"exponential"`` or ``"logistic"``.
      lr: the GD step eta.
      gamma: ``planted``: the exact max margin; ``generic``: the rejected band's half-width
        (a lower bound on the max margin); ``digits``: ``None`` (the pair sets the margin).
      n: the number of samples.
      family: one of :data:`FAMILIES`.
      pair: ``digits`` only: the two digits (``pair[0]`` is +1).
      optimizer: ``"gd"`` (the claims' sweeps, Theorems H-1, H-2, C-1) or ``"ngd"``
        (normalized GD, the runs that check Theorem H-3).
    """

    loss: str
    lr: float
    gamma: float | None
    n: int
    family: str = "planted"
    pair: tuple[int, int] | None = None
    optimizer: str = "gd"


@dataclasses.dataclass(frozen=True)
class HeadStudySpec:
    """What the head study sweeps.

    Attributes:
      n, d, gamma, lr, radius: the base configuration of the planted family (exact margin
        gamma); ``lr`` is the base of every family.
      t_max, checkpoints: log-spaced checkpoints from 1 to t_max.
      lrs, gammas, ns: the planted family's one-at-a-time sweeps around its base (``lrs``
        for every family).
      losses: losses trained on the planted family.
      early_t: claims are judged separately at t = early_t ("early") and t = t_max ("late"),
        and the iterations claim on t <= early_t and t >= early_t.
      matched_t: ``head.lr`` is judged at fixed t = matched_t and at matched eta * t =
        lr * matched_t: the run of step eta is read at t = round(lr * matched_t / eta), a
        checkpoint added to :attr:`steps`. ``None``: the largest t with every such
        checkpoint <= t_max.
      families: the data families (:data:`FAMILIES`).
      family_losses: losses trained on the generic and digits families.
      family_n, family_ns: base n and n sweep of the generic and digits families.
      band_gammas: the generic family's margin sweep (band half-widths; the base is gamma).
      digits_pairs: the digits family's pairs; the first is its base, all of them its
        margin sweep.
      ngd_lr, ngd_gammas: the normalized-GD runs that check Theorem H-3: planted data of the
        base n, exponential loss, step ``ngd_lr`` (eta R^2 <= 1), one run per margin in
        ``ngd_gammas``; they inform no claim.
      replicates: independent data draws per configuration.
      seed: seed of the data (draw r uses :func:`engine.draw_seed` (seed, r)).
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
    matched_t: int | None = None
    families: tuple[str, ...] = FAMILIES
    family_losses: tuple[str, ...] = ("exponential",)
    family_n: int = 32
    family_ns: tuple[int, ...] = (16, 32, 64)
    band_gammas: tuple[float, ...] = (0.05, 0.1, 0.2)
    digits_pairs: tuple[tuple[int, int], ...] = ((5, 6), (1, 2), (0, 7))
    ngd_lr: float = 0.9
    ngd_gammas: tuple[float, ...] = (0.1, 0.4)
    replicates: int = 10
    seed: int = 0
    max_runs: int = 4096

    def __post_init__(self):
        unknown = set(self.families) - set(FAMILIES)
        if unknown or not self.families:
            raise ValueError(
                f"families must be a non-empty subset of {FAMILIES}, got {self.families}."
            )
        if "digits" in self.families and not self.digits_pairs:
            raise ValueError("the digits family needs at least one pair in digits_pairs.")
        if self.matched_t is not None:
            late = {lr: t for lr, t in self.matched_steps.items() if not 1 <= t <= self.t_max}
            if late:
                raise ValueError(
                    f"matched_t={self.matched_t} puts the matched eta*t checkpoints of lrs "
                    f"{sorted(late)} at t={sorted(late.values())}, outside "
                    f"[1, t_max={self.t_max}]; "
                    "lower matched_t or leave it None."
                )

    @classmethod
    def quick(cls) -> HeadStudySpec:
        """A reduced study for ``verify --quick`` (planted and generic data: the digits
        family needs the encoder's pre-training, which the quick budget cannot pay)."""
        return cls(
            n=32,
            t_max=5_000,
            checkpoints=9,
            lrs=(0.1, 0.9),
            gammas=(0.1, 0.3),
            ns=(16, 32),
            losses=("exponential", "logistic"),
            families=("planted", "generic"),
            family_n=16,
            family_ns=(16, 32),
            band_gammas=(0.1, 0.3),
            digits_pairs=((5, 6), (0, 7)),
            ngd_gammas=(0.3,),
            replicates=3,
        )

    @property
    def lr_values(self) -> tuple[float, ...]:
        """Every learning rate of the lr sweep (the base included), increasing."""
        return tuple(sorted({self.lr, *self.lrs}))

    @property
    def t_ref(self) -> int:
        """The fixed t of ``head.lr`` (the base lr's matched checkpoint)."""
        if self.matched_t is not None:
            return int(self.matched_t)
        return max(1, int(np.floor(self.t_max * min(self.lr_values) / self.lr + 1e-9)))

    @property
    def matched_steps(self) -> dict[float, int]:
        """``{eta: t}`` with eta * t = lr * t_ref (t rounded to an integer, at least 1)."""
        return {v: max(1, round(self.lr * self.t_ref / v)) for v in self.lr_values}

    @property
    def steps(self) -> np.ndarray:
        ck = np.unique(np.round(np.logspace(0, np.log10(self.t_max), self.checkpoints)))
        extra = [self.early_t, *self.matched_steps.values()]
        return np.unique(np.append(ck, extra)).astype(np.int64)

    @property
    def n_max(self) -> int:
        return max((*self.ns, self.n))

    @property
    def family_n_max(self) -> int:
        return max((*self.family_ns, self.family_n))

    def base(self, loss: str, family: str = "planted") -> HeadConfig:
        """The base configuration of ``loss`` in ``family`` (the centre of its sweeps)."""
        if family == "planted":
            return HeadConfig(loss, self.lr, self.gamma, self.n)
        if family == "generic":
            return HeadConfig(loss, self.lr, self.gamma, self.family_n, "generic")
        return HeadConfig(loss, self.lr, None, self.family_n, "digits", self.digits_pairs[0])

    def losses_of(self, family: str) -> tuple[str, ...]:
        """The losses trained on ``family``."""
        return self.losses if family == "planted" else self.family_losses

    def plan(self) -> list[HeadConfig]:
        """The configurations: one-at-a-time sweeps around each family's base, no duplicates."""
        plan: list[HeadConfig] = []
        for family in self.families:
            margins = {
                "planted": [{"gamma": v} for v in self.gammas],
                "generic": [{"gamma": v} for v in self.band_gammas],
                "digits": [{"pair": tuple(p)} for p in self.digits_pairs],
            }[family]
            ns = self.ns if family == "planted" else self.family_ns
            for loss in self.losses_of(family):
                base = self.base(loss, family)
                variants = [base]
                variants += [dataclasses.replace(base, lr=v) for v in self.lrs]
                variants += [dataclasses.replace(base, **m) for m in margins]
                variants += [dataclasses.replace(base, n=v) for v in ns]
                plan += [v for v in dict.fromkeys(variants) if v not in plan]
        plan += [
            HeadConfig("exponential", self.ngd_lr, g, self.n, optimizer="ngd")
            for g in dict.fromkeys(self.ngd_gammas)
        ]
        return plan

    @property
    def width(self) -> int:
        """The feature width of the batched programs (every family padded to it with zeros)."""
        digits = DIGITS_ENCODER["features"] if "digits" in self.families else 0
        return max(self.d, digits)

    def dataset(self, cfg: HeadConfig, draw: int) -> Dataset:
        """Draw ``draw`` of ``cfg``'s data: the first ``cfg.n`` samples of the family's draw
        (nested subsets: a draw of size n is a subset of the draw of any larger size)."""
        seed = engine.draw_seed(self.seed, draw)
        if cfg.family == "planted":
            full = _planted(self.n_max, self.d, cfg.gamma, self.radius, seed)
        elif cfg.family == "generic":
            full = _band(self.family_n_max, self.d, cfg.gamma, self.radius, seed)
        elif cfg.family == "digits":
            full = _digits_draw(cfg.pair, self.family_n_max, seed)
        else:
            raise ValueError(f"unknown data family {cfg.family!r}; expected one of {FAMILIES}.")
        return full.subset(cfg.n)


@functools.lru_cache(maxsize=256)
def _planted(n, d, gamma, radius, seed) -> Dataset:
    return planted_margin(n, d, gamma, radius=radius, seed=seed)


@functools.lru_cache(maxsize=256)
def _band(n, d, gamma, radius, seed) -> Dataset:
    return separable_band(n, d, gamma, radius=radius, seed=seed)


@functools.lru_cache(maxsize=256)
def _digits_draw(pair, n, seed) -> Dataset:
    """A uniformly random subset of n images of the pair's pool (one encoder for all draws)."""
    pool = digits_pair_features(pair)
    if n > pool.n:
        raise ValueError(f"digits {pair}: the pool has {pool.n} images, fewer than n={n}.")
    pick = np.random.default_rng([seed, 0xD161, *pair]).permutation(pool.n)[:n]
    a, b = pair
    return Dataset(pool.X[pick], pool.y[pick], name=f"digits{a}v{b}-features")


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

    @functools.cached_property
    def plan(self) -> list[HeadConfig]:
        """The typed configurations, in the order of :attr:`configs`."""
        return self.spec.plan()


def _bucket(n: int) -> int:
    """The padded size of a set of n samples: the next power of two."""
    return 1 << max(0, int(n - 1).bit_length())


#: Traces of the batched trainer (a test keeps this small and independent of the plan size).
TRACES = {"count": 0}


@functools.partial(jax.jit, static_argnames=("checkpoints", "loss", "optimizer"))
def _train_items(Z, masks, lr, checkpoints, *, loss, optimizer="gd"):
    """Every run of every item: Z (I, m, d), masks (I, m + 1, m), lr (I,) -> Trajectory.

    ``checkpoints`` is a static tuple: fixed-length loops between checkpoints (a traced trip
    count would block XLA's loop optimisations on GPU)."""
    TRACES["count"] += 1

    def item(Zi, mi, li):
        w0 = jnp.zeros((1, Zi.shape[1]), Zi.dtype)
        return jax.vmap(
            lambda s: heads.train(Zi, s, li, w0, checkpoints, loss=loss, optimizer=optimizer)
        )(mi)

    return jax.vmap(item)(Z, masks, lr)


def _compute(spec: HeadStudySpec, chunk: engine.Chunk, loo_cache: dict) -> list[DrawResult]:
    loss, optimizer, m, capacity = chunk.group
    d, steps = spec.width, spec.steps
    Z = np.zeros((capacity, m, d))
    masks = np.zeros((capacity, m + 1, m))
    lr = np.zeros(capacity)
    data = []
    for j, (cfg, draw) in enumerate(chunk.items):
        ds = spec.dataset(cfg, draw)
        data.append(ds)
        Z[j, : cfg.n, : ds.d] = ds.y[:, None] * ds.X  # zero columns beyond ds.d stay zero
        masks[j, : cfg.n + 1, : cfg.n] = np.asarray(heads.loo_weights(cfg.n))
        masks[j, cfg.n + 1 :, : cfg.n] = 1.0  # unused runs: copies of the run on S
        lr[j] = cfg.lr
    filled = len(chunk.items)
    Z[filled:], masks[filled:], lr[filled:] = Z[filled - 1], masks[filled - 1], lr[filled - 1]
    checkpoints = heads.static_checkpoints(steps)
    traj = _train_items(
        *engine.shard_leading(Z, masks, lr), checkpoints, loss=loss, optimizer=optimizer
    )
    traj = jax.tree_util.tree_map(np.asarray, traj)
    results = []
    for j, ((cfg, draw), ds) in enumerate(zip(chunk.items, data, strict=True)):
        n = cfg.n
        steps_j, w, log_loss, dloss_max = (a[j, : n + 1] for a in traj)
        runs = heads.Trajectory(steps_j, w[..., : ds.d], log_loss, dloss_max)
        Zj = jnp.asarray(ds.y[:, None] * ds.X)
        sim = Simulation(
            "loo",
            Zj,
            Zj,
            heads.loo_weights(n),
            jnp.full((n + 1,), cfg.lr),
            runs,
            loss,
            optimizer,
        )
        key = (cfg.family, cfg.gamma, cfg.pair, n, draw)
        if key not in loo_cache:
            loo_cache[key] = loo_max_margin(ds.X, ds.y, result=max_margin(ds.X, ds.y))
        ev = _head.head_evidence(
            ds.X,
            ds.y,
            loss=loss,
            lr=cfg.lr,
            steps=steps,
            optimizer=optimizer,
            loo=loo_cache[key],
            sim=sim,
        )
        if optimizer == "ngd":
            checks = [_head.check_h1(ev), _head.check_h3(ev), _head.check_h3_margin(ev)]
        else:
            checks = [
                _head.check_h1(ev),
                _head.check_h2(ev),
                _head.check_h2_margin(ev),
                _head.check_c1(ev, "weights"),
                _head.check_c1(ev, "loss"),
            ]
            if loss == spec.losses_of(cfg.family)[0]:
                checks.append(_head.check_svm_loo(ev))
        measured = {"gamma": ev.config["gamma"], "R": ev.config["R"], "data": ds.name, "d": ds.d}
        stability = {notion: ev.empirical(notion) for notion in NOTIONS}
        results.append(DrawResult(cfg, draw, measured, tuple(checks), stability))
    return results


def chunks(spec: HeadStudySpec) -> list[engine.Chunk]:
    """The study's chunks: items grouped by (loss, optimizer, padded n), at most ``max_runs``
    runs each.

    Every chunk of a group is padded to the same number of items, so a group compiles once.
    """
    items = [(cfg, r) for cfg in spec.plan() for r in range(spec.replicates)]
    groups: dict[tuple, list] = {}
    for item in items:
        cfg = item[0]
        groups.setdefault((cfg.loss, cfg.optimizer, _bucket(cfg.n)), []).append(item)
    out = []
    for (loss, optimizer, m), members in groups.items():
        per = max(1, spec.max_runs // (m + 1))
        k = -(-len(members) // per)
        size = -(-len(members) // k)
        for c in range(k):
            part = tuple(members[c * size : (c + 1) * size])
            out.append(engine.Chunk("head", (loss, optimizer, m, size), part, spec))
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
        label=lambda c: (
            f"head {c.group[0]} {c.group[1]} n<={c.group[2]}: {len(c.items)} config x draws"
        ),
    )
    by_config = draws_by_config(results)
    study = HeadStudy(spec)
    for cfg in spec.plan():
        members = by_config[cfg]
        config = {
            **dataclasses.asdict(cfg),
            "pair": None if cfg.pair is None else list(cfg.pair),
            "gamma_planted": cfg.gamma if cfg.family == "planted" else float("nan"),
            "gamma_band": cfg.gamma if cfg.family == "generic" else float("nan"),
            "gamma": float(np.mean([it.measured["gamma"] for it in members])),
            "R": float(max(it.measured["R"] for it in members)),
            "d": int(members[0].measured["d"]),
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


def margin_parameter(config: dict) -> float:
    """The swept margin of a config dict: the planted margin, the generic band's half-width,
    or (digits) the mean measured max margin of the pair's draws."""
    family = config["family"]
    if family == "planted":
        return float(config["gamma_planted"])
    if family == "generic":
        return float(config["gamma_band"])
    return float(config["gamma"])


def sweep(study: HeadStudy, family: str, loss: str, claim_id: str) -> list[int]:
    """Config indices of ``claim_id``'s one-at-a-time sweep in (family, loss): the configs
    that differ from the family's base in the swept field only (lr, margin or n), ordered by
    the swept parameter."""
    base = study.spec.base(loss, family)
    free = {"head.lr": ("lr",), "head.margin": ("gamma", "pair"), "head.n": ("n",)}[claim_id]
    pinned = {f: getattr(base, f) for f in free}
    ks = [k for k, cfg in enumerate(study.plan) if dataclasses.replace(cfg, **pinned) == base]
    if claim_id == "head.margin":
        return sorted(ks, key=lambda k: margin_parameter(study.configs[k]))
    return sorted(ks, key=lambda k: getattr(study.plan[k], free[0]))


def regime_label(family: str, loss: str, claim_id: str, spec: HeadStudySpec) -> str:
    """The family part of a regime's name (what kind of evidence it is)."""
    if family == "planted" and claim_id == "head.n":
        return f"planted (control: fixed support set), {loss}"
    if family == "digits" and claim_id == "head.margin":
        pairs = ", ".join(f"{a}v{b}" for a, b in spec.digits_pairs)
        return (
            f"digits across pairs {pairs} (observational: pairs differ in more than margin), {loss}"
        )
    if family == "generic" and claim_id == "head.margin":
        return f"generic (band half-width; observational: the support set moves), {loss}"
    return f"{family}, {loss}"


def judge_claims(study: HeadStudy) -> list:
    """Verdicts for head.iterations, head.lr, head.margin and head.n under every notion: one
    regime per (family, loss) and time (head.lr: fixed t and matched eta * t)."""
    spec, steps = study.spec, study.steps
    times = {"early": _t_index(steps, spec.early_t), "late": len(steps) - 1}
    verdicts = []
    pairs = [(f, loss) for f in spec.families for loss in spec.losses_of(f)]
    for notion in NOTIONS:
        # head.iterations: instability against t, early and late ranges, per family and loss.
        claim = _claims.HEAD_CLAIMS["head.iterations"]
        regimes = []
        for family, loss in pairs:
            k = study.plan.index(spec.base(loss, family))
            values = study.stability[k][notion]
            cut = times["early"]
            for name, sl in (("early", slice(0, cut + 1)), ("late", slice(cut, None))):
                t_range = f"t in [{steps[sl][0]}, {steps[sl][-1]}]"
                regimes.append(
                    _claims.verdict(
                        claim,
                        steps[sl].astype(float),
                        list(values[sl]),
                        regime=f"{family}, {loss}, {name} ({t_range})",
                    )
                )
        verdicts.append(
            _claims.combine(claim, f"loo.{notion}", regimes, figure=f"claims_{notion}.png")
        )
        # head.lr: fixed t and matched eta * t.
        claim = _claims.HEAD_CLAIMS["head.lr"]
        regimes = []
        ti_ref = _t_index(steps, spec.t_ref)
        matched = spec.matched_steps
        for family, loss in pairs:
            ks = sweep(study, family, loss, "head.lr")
            lrs = [study.configs[j]["lr"] for j in ks]
            label = regime_label(family, loss, "head.lr", spec)
            fixed = [study.stability[j][notion][ti_ref] for j in ks]
            regimes.append(
                _claims.verdict(claim, lrs, fixed, regime=f"{label}, fixed t={steps[ti_ref]}")
            )
            ts = [matched[study.plan[j].lr] for j in ks]
            at = [
                study.stability[j][notion][_t_index(steps, t)] for j, t in zip(ks, ts, strict=True)
            ]
            shown = ", ".join(str(t) for t in ts)
            regimes.append(
                _claims.verdict(
                    claim,
                    lrs,
                    at,
                    regime=f"{label}, matched eta*t={spec.lr * spec.t_ref:g} (t={shown})",
                )
            )
        verdicts.append(
            _claims.combine(claim, f"loo.{notion}", regimes, figure=f"claims_{notion}.png")
        )
        for claim_id in ("head.margin", "head.n"):
            claim = _claims.HEAD_CLAIMS[claim_id]
            regimes = []
            for family, loss in pairs:
                ks = sweep(study, family, loss, claim_id)
                if claim_id == "head.n":
                    params = [study.configs[j]["n"] for j in ks]
                else:
                    params = [margin_parameter(study.configs[j]) for j in ks]
                label = regime_label(family, loss, claim_id, spec)
                design = (
                    "control" if (family, claim_id) == ("planted", "head.n") else "observational"
                )
                for name, ti in times.items():
                    regimes.append(
                        _claims.verdict(
                            claim,
                            params,
                            [study.stability[j][notion][ti] for j in ks],
                            regime=f"{label}, {name} (t={steps[ti]})",
                            design=design,
                        )
                    )
            verdicts.append(
                _claims.combine(claim, f"loo.{notion}", regimes, figure=f"claims_{notion}.png")
            )
    return verdicts
