"""The head study's computation: its chunks, the batched trainer, one chunk's checks and
stability, and the results (:class:`HeadStudy`).

All (configuration, draw) items of one loss, optimizer and padded size run as ONE compiled
program (:func:`train_items`), vmapped over items and over the n + 1 runs of each item. Sizes
are padded to the next power of two with zero sample weights (a padded sample has no effect on
the gradient, the loss or ``max |l'|``), and the learning rate is traced, so the number of
compiled trainers is (losses) x (optimizers) x (padded sizes), whatever the plan.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory import linear_heads
from stabtheory.bounds import check_all, theorems_for
from stabtheory.bounds.head import head_evidence
from stabtheory.data.families import FAMILIES
from stabtheory.simulations import engine
from stabtheory.simulations.head.spec import NOTIONS, HeadConfig, HeadStudySpec
from stabtheory.simulations.protocol import DrawResult, Study, draws_by_config
from stabtheory.svm import LooMaxMargin, loo_max_margin, max_margin

__all__ = ["HeadStudy", "assemble", "bucket", "chunks", "compute", "loss_parts", "train_items"]


@dataclasses.dataclass
class HeadStudy(Study):
    """Results of the head study (:class:`~stabtheory.simulations.protocol.Study`): one
    config dict per :class:`HeadConfig` (its fields and the measured gamma, R over the draws),
    one check row per (config, theorem, notion) over every draw, ``{notion: (C, draws, n)}``
    per config, verdicts, and the per-draw
    :class:`~stabtheory.simulations.protocol.DrawResult` s."""

    spec: HeadStudySpec

    @property
    def steps(self) -> np.ndarray:
        return self.spec.steps

    @functools.cached_property
    def plan(self) -> list[HeadConfig]:
        """The typed configurations, in the order of :attr:`configs`."""
        return self.spec.plan()


def bucket(n: int) -> int:
    """The padded size of a set of n samples: the next power of two."""
    return 1 << max(0, int(n - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("checkpoints", "loss", "optimizer"))
def train_items(Z, masks, lr, checkpoints, *, loss, optimizer="gd"):
    """Every run of every item: Z (I, m, d), masks (I, m + 1, m), lr (I,) -> Trajectory.

    ``checkpoints`` is a static tuple: fixed-length loops between checkpoints (a traced trip
    count would block XLA's loop optimisations on GPU)."""

    def item(Zi, mi, li):
        w0 = jnp.zeros((1, Zi.shape[1]), Zi.dtype)
        return jax.vmap(
            lambda s: linear_heads.train(Zi, s, li, w0, checkpoints, loss=loss, optimizer=optimizer)
        )(mi)

    return jax.vmap(item)(Z, masks, lr)


@functools.lru_cache(maxsize=1024)
def _loo(
    spec: HeadStudySpec, family: str, gamma, pair, n: int, draw: int, copy: int
) -> LooMaxMargin:
    """The leave-one-out max margins of one data set (solved once per data set and spec,
    whatever the loss, step and optimizer trained on it)."""
    ds = spec.dataset(HeadConfig("", 0.0, gamma, n, family, pair, copy=copy), draw)
    return loo_max_margin(ds.X, ds.y, result=max_margin(ds.X, ds.y))


def compute(spec: HeadStudySpec, chunk: engine.Chunk) -> list[DrawResult]:
    """Train every item of one chunk in one program, then check every applicable theorem
    (:func:`~stabtheory.bounds.check_all`) and measure every notion's per-sample stability
    of each item.

    The checks on the runs come first (registry order), then those that depend on the data
    alone (``depends_on_training`` false), on the family's first loss only: the other losses
    train on the same data."""
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
        masks[j, : cfg.n + 1, : cfg.n] = np.asarray(linear_heads.loo_weights(cfg.n))
        masks[j, cfg.n + 1 :, : cfg.n] = 1.0  # unused runs: copies of the run on S
        lr[j] = cfg.lr
    filled = len(chunk.items)
    Z[filled:], masks[filled:], lr[filled:] = Z[filled - 1], masks[filled - 1], lr[filled - 1]
    checkpoints = linear_heads.static_checkpoints(steps)
    traj = train_items(
        *engine.shard_leading(Z, masks, lr), checkpoints, loss=loss, optimizer=optimizer
    )
    traj = jax.tree_util.tree_map(np.asarray, traj)
    results = []
    for j, ((cfg, draw), ds) in enumerate(zip(chunk.items, data, strict=True)):
        n = cfg.n
        steps_j, w, log_loss, dloss_max = (a[j, : n + 1] for a in traj)
        runs = linear_heads.Trajectory(steps_j, w[..., : ds.d], log_loss, dloss_max)
        Zj = jnp.asarray(ds.y[:, None] * ds.X)
        sim = linear_heads.HeadRuns(
            "loo",
            Zj,
            Zj,
            linear_heads.loo_weights(n),
            jnp.full((n + 1,), cfg.lr),
            runs,
            loss,
            optimizer,
        )
        ev = head_evidence(
            ds.X,
            ds.y,
            loss=loss,
            lr=cfg.lr,
            steps=steps,
            optimizer=optimizer,
            loo=_loo(spec, cfg.family, cfg.gamma, cfg.pair, n, draw, cfg.copy),
            sim=sim,
        )
        checks = check_all(ev, trained_only=True)
        if loss == spec.losses_of(cfg.family)[0]:  # the checks on the data alone, once
            checks += [
                th.check(ev, notion)
                for th in theorems_for(ev)
                if not th.depends_on_training
                for notion in th.notions
            ]
        measured = {"gamma": ev.config["gamma"], "R": ev.config["R"], "data": ds.name, "d": ds.d}
        stability = {notion: ev.empirical(notion) for notion in NOTIONS}
        stability |= loss_parts(stability["loss"], sim, ev.empirical("clipped_loss"))
        results.append(DrawResult(cfg, draw, measured, tuple(checks), stability))
    return results


def loss_parts(loss: np.ndarray, sim: linear_heads.HeadRuns, clipped: np.ndarray) -> dict:
    """The loss notion's per-sample changes (C, n) split by whether the held-out point is
    misclassified by u_S\\i (its margin <= 0): ``loss.misclassified`` and ``loss.correct``
    (each the change on its points, 0 on the others, so the two add up to ``loss``), and the
    clipped loss's changes ``clipped_loss``
    (:func:`~stabtheory.linear_heads.per_sample_stability`)."""
    w = sim.trajectory.w
    missed = np.asarray(linear_heads.held_out_margins(w[1:], sim.Z)).T <= 0  # (C, n)
    return {
        "loss.misclassified": np.where(missed, loss, 0.0),
        "loss.correct": np.where(missed, 0.0, loss),
        "clipped_loss": clipped,
    }


def chunks(spec: HeadStudySpec) -> list[engine.Chunk]:
    """The study's chunks: items grouped by (loss, optimizer, padded n), at most ``max_runs``
    runs each.

    Every chunk of a group is padded to the same number of items, so a group compiles once.
    """
    items = [(cfg, r) for cfg in spec.plan() for r in range(spec.replicates)]
    groups: dict[tuple, list] = {}
    for item in items:
        cfg = item[0]
        groups.setdefault((cfg.loss, cfg.optimizer, bucket(cfg.n)), []).append(item)
    out = []
    for (loss, optimizer, m), members in groups.items():
        per = max(1, spec.max_runs // (m + 1))
        k = -(-len(members) // per)
        size = -(-len(members) // k)
        for c in range(k):
            part = tuple(members[c * size : (c + 1) * size])
            out.append(engine.Chunk("head", (loss, optimizer, m, size), part, spec))
    return out


def assemble(spec: HeadStudySpec, results: list) -> HeadStudy:
    """The study from its chunks' results: one config dict per planned configuration (its
    fields, every family's nominal margin key, the measured gamma and R over the draws)."""
    by_config = draws_by_config(results)
    study = HeadStudy(spec)
    keyed = [f for f in FAMILIES.values() if f.config_key]
    for cfg in spec.plan():
        members = by_config[cfg]
        config = {
            **dataclasses.asdict(cfg),
            "pair": None if cfg.pair is None else list(cfg.pair),
            **{f.config_key: cfg.gamma if cfg.family == f.name else float("nan") for f in keyed},
            "gamma": float(np.mean([it.measured["gamma"] for it in members])),
            "R": float(max(it.measured["R"] for it in members)),
            "d": int(members[0].measured["d"]),
            "heads": 1,
            "init": "zero",
            "dtype": "float64",
            "replicates": len(members),
        }
        study.add_config(config, members)
    return study
