"""The generalization check's computation: its chunks, the batched programs (head GD, the Taylor
minimisers of full fine-tuning), each draw's per-sample losses, and the table
(:class:`GeneralizationStudy`).

A draw trains A(S), every A(S^(i)) and every A(S\\i) as the 2n + 1 masks of
:func:`~stabtheory.generalization.identity_weights` over the pool ``[S; S']``; every draw of
every configuration of one training loss (head) or task (fine-tuning) runs as ONE compiled
program, vmapped over draws and runs. The programs return margins ``y f(x)`` (every run on every
pool sample, A(S) on the test set); the losses and the estimators
(:mod:`stabtheory.generalization`) are read off them.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory import generalization as gen
from stabtheory.data import digits_pair_features
from stabtheory.data.families import FAMILIES
from stabtheory.simulations import engine
from stabtheory.simulations.generalization.spec import (
    FineTuneGenConfig,
    GeneralizationSpec,
    HeadGenConfig,
)
from stabtheory.simulations.head import train_items
from stabtheory.simulations.protocol import DrawResult, Study, draws_by_config

__all__ = [
    "GeneralizationStudy",
    "assemble",
    "chunks",
    "compute",
    "draw_result",
    "head_draw",
    "rows",
    "taylor_margins",
]


@dataclasses.dataclass
class GeneralizationStudy(Study):
    """Results of the generalization check (:class:`~stabtheory.simulations.protocol.Study`):
    one config dict per configuration, ``{"train.L", "replace.L", "loo.L": (1, draws, n)}`` per
    config and loss ``L``, the per-draw :class:`~stabtheory.simulations.protocol.DrawResult` s,
    and :attr:`table`, one row per (configuration, loss) (:func:`rows`)."""

    spec: GeneralizationSpec
    table: list[dict] = dataclasses.field(default_factory=list)


def head_draw(
    spec: GeneralizationSpec, cfg: HeadGenConfig, draw: int
) -> tuple[np.ndarray, np.ndarray]:
    """The signed points ``y x`` of one draw: the pool ``[S; S']`` (2n, d) and the test set.

    The family's sample of ``2n + n_test`` points (a ``"pair"`` family: its whole pool) is put
    in a uniformly random order, so S, S' and the test set are exchangeable (the replace-one
    identity needs no more) and disjoint."""
    fam = FAMILIES[cfg.family]
    seed = engine.draw_seed(spec.seed, draw)
    if fam.sweeps == "pair":
        margin, size = cfg.pair, _pool_size(cfg.pair)
    else:
        margin, size = cfg.gamma, 2 * cfg.n + cfg.n_test
    if size <= 2 * cfg.n:
        raise ValueError(f"{cfg.label}: {size} samples leave no test set beside 2n = {2 * cfg.n}.")
    ds = fam.draw(size, margin, d=spec.d, radius=spec.radius, seed=seed)
    order = np.random.default_rng([seed, 0x6E4]).permutation(ds.n)
    Z = (ds.y[:, None] * ds.X)[order]
    return Z[: 2 * cfg.n], Z[2 * cfg.n :]


@functools.lru_cache(maxsize=64)
def _pool_size(pair: tuple[int, int]) -> int:
    """The size of a digits pair's finite pool (its task images)."""
    return digits_pair_features(pair).n


def draw_result(
    cfg: HeadGenConfig | FineTuneGenConfig, draw: int, pool_margins, test_margins
) -> DrawResult:
    """One draw's per-sample losses, for the training loss and the 0-1 loss.

    Args:
      cfg: the configuration.
      pool_margins: every run of :func:`~stabtheory.generalization.identity_weights` on every
        pool sample, (2n + 1, 2n).
      test_margins: A(S) on the test set, (n_test,).

    Returns:
      A :class:`~stabtheory.simulations.protocol.DrawResult` whose ``stability`` has
      ``train.L``, ``replace.L`` and ``loo.L`` (n,) per loss ``L`` and whose ``measured`` has the
      test risk (``test.L``) and the variance of its estimate (``test_var.L``: the test-set
      noise in the per-draw gap)."""
    stability, measured = {}, {"n_test": int(test_margins.shape[0])}
    for loss in (cfg.loss, "0-1"):
        values = np.asarray(gen.margin_losses(pool_margins, loss))
        train, replaced, loo = gen.split_runs(values, cfg.n)
        stability |= {f"train.{loss}": train, f"replace.{loss}": replaced, f"loo.{loss}": loo}
        test = np.asarray(gen.margin_losses(test_margins, loss))
        measured[f"test.{loss}"] = float(test.mean())
        measured[f"test_var.{loss}"] = float(test.var(ddof=1) / test.size)
    return DrawResult(cfg, draw, measured, (), stability)


def _compute_head(spec: GeneralizationSpec, chunk: engine.Chunk) -> list[DrawResult]:
    _, loss, n, t, capacity = chunk.group
    width, m = spec.width, 2 * n
    Z = np.zeros((capacity, m, width))
    lr = np.zeros(capacity)
    tests = []
    for j, (cfg, draw) in enumerate(chunk.items):
        pool, test = head_draw(spec, cfg, draw)
        Z[j, :, : pool.shape[1]] = pool  # zero columns beyond the family's width
        lr[j] = cfg.lr
        tests.append(test)
    filled = len(chunk.items)
    Z[filled:], lr[filled:] = Z[filled - 1], lr[filled - 1]  # placeholders: copies
    masks = np.broadcast_to(np.asarray(gen.identity_weights(n)), (capacity, m + 1, m))
    traj = train_items(*engine.shard_leading(Z, masks, lr), (t,), loss=loss)
    w = np.asarray(traj.w)[:filled, :, -1, 0, :]  # (items, runs, width): the last checkpoint
    out = []
    for j, ((cfg, draw), test) in enumerate(zip(chunk.items, tests, strict=True)):
        pool_margins = w[j] @ Z[j].T
        test_margins = test @ w[j, 0, : test.shape[1]]
        out.append(draw_result(cfg, draw, pool_margins, test_margins))
    return out


def taylor_margins(apply, w0, X, y, X_test, y_test, weights, lam):
    """Margins of the Taylor-model minimisers of full fine-tuning, one draw (pure).

    Every pool sample is expanded around ``w0``
    (:func:`~stabtheory.full_finetuning.taylor_expand`); the minimiser of each mask
    (:func:`~stabtheory.full_finetuning.minimizers`, CG) is evaluated with the true network.

    Args:
      apply: ``apply(w, x) -> logit``.
      w0: the pre-trained weights (p,).
      X, y: the pool ``[S; S']`` (2n, d_in), (2n,); X_test, y_test: the test set.
      weights: masks (runs, 2n); lam: the L2-SP pull.

    Returns:
      ``(y f(w_s, x) for every run and pool sample (runs, 2n), y f(w_S, x) on the test set)``,
      where run 0 is S.
    """
    from stabtheory import full_finetuning as ff  # flax: imported when fine-tuning runs

    tm = ff.taylor_expand(apply, w0, X, y)
    W = ff.minimizers(tm, weights, lam)

    def logits(w, inputs):
        return jax.vmap(lambda x: apply(w, x))(inputs)

    pool = jax.vmap(logits, in_axes=(0, None))(W, tm.X)
    return tm.y * pool, jnp.asarray(y_test, W.dtype) * logits(W[0], jnp.asarray(X_test, W.dtype))


@functools.partial(jax.jit, static_argnames=("apply",))
def _taylor_program(apply, w0, X, y, X_test, y_test, weights, lam):
    """:func:`taylor_margins` of every draw (a loop over draws: one draw's CG at a time)."""
    return jax.lax.map(
        lambda a: taylor_margins(apply, w0, *a, weights, lam), (X, y, X_test, y_test)
    )


def _compute_finetune(spec: GeneralizationSpec, chunk: engine.Chunk) -> list[DrawResult]:
    from stabtheory import full_finetuning as ff  # flax: imported when fine-tuning runs

    _, task, n, capacity = chunk.group
    beds = []
    for cfg, draw in chunk.items:
        beds.append(
            ff.make_testbed(
                ff.TestbedConfig(
                    task=task,
                    n=2 * n,
                    n_test=cfg.n_test,
                    pretrain_steps=cfg.pretrain_steps,
                    seed=engine.draw_seed(spec.seed, draw),
                    init_seed=spec.seed,
                )
            )
        )
    filled = len(beds)
    beds += [beds[-1]] * (capacity - filled)  # placeholders: copies
    X, y, X_test, y_test = (
        np.stack([getattr(b, a) for b in beds]) for a in ("X", "y", "X_test", "y_test")
    )
    lam = chunk.items[0][0].lam  # a chunk's items share lam and the pre-training (chunks())
    pool, test = _taylor_program(
        beds[0].apply,
        jnp.asarray(beds[0].w0),
        X,
        y,
        X_test,
        y_test,
        gen.identity_weights(n),
        lam,
    )
    pool, test = np.asarray(pool), np.asarray(test)
    return [draw_result(cfg, draw, pool[j], test[j]) for j, (cfg, draw) in enumerate(chunk.items)]


def compute(spec: GeneralizationSpec, chunk: engine.Chunk) -> list[DrawResult]:
    """Every draw of one chunk as one compiled program, then its per-sample losses
    (:func:`draw_result`)."""
    if chunk.group[0] == "head":
        return _compute_head(spec, chunk)
    return _compute_finetune(spec, chunk)


def chunks(spec: GeneralizationSpec) -> list[engine.Chunk]:
    """The chunks: head items grouped by (training loss, n, t), fine-tuning items by (task, n,
    lam, pre-training), at most ``max_runs`` runs (2n + 1 per draw) each; every chunk of a
    group has one capacity, so a group compiles once."""
    groups: dict[tuple, list] = {}
    for cfg in spec.plan():
        if isinstance(cfg, HeadGenConfig):
            key = ("head", cfg.loss, cfg.n, cfg.t)
        else:
            key = ("finetune", cfg.task, cfg.n, cfg.lam, cfg.pretrain_steps)
        groups.setdefault(key, []).extend((cfg, r) for r in range(spec.replicates))
    out = []
    for key, members in groups.items():
        per = max(1, spec.max_runs // (2 * key[2] + 1))
        k = -(-len(members) // per)
        size = -(-len(members) // k)
        group = key[:4] if key[0] == "head" else key[:3]
        for c in range(k):
            part = tuple(members[c * size : (c + 1) * size])
            out.append(engine.Chunk("generalization", (*group, size), part, spec))
    return out


def _interval(mean: float, ci: tuple[float, float]) -> dict:
    return {"mean": float(mean), "ci": [float(ci[0]), float(ci[1])]}


def rows(config: dict, stability: dict, members: list[DrawResult], *, level: float) -> list[dict]:
    """The table's rows of one configuration: its training loss, then the 0-1 loss.

    Each row has both sides of the replace-one identity with their intervals
    (:func:`~stabtheory.generalization.replace_one_identity`) and, for the 0-1 loss, the
    Bousquet-Elisseeff moment check (:func:`~stabtheory.generalization.be_moment_check`)."""
    cfg = members[0].config
    out = []
    for loss in (cfg.loss, "0-1"):
        train = stability[f"train.{loss}"][0]
        loo = stability[f"loo.{loss}"][0]
        test = np.array([it.measured[f"test.{loss}"] for it in members])
        est = gen.replace_one_identity(train, stability[f"replace.{loss}"][0], test, level=level)
        row = {
            "study": cfg.study,
            "config": config,
            "loss": loss,
            "gap": _interval(est.gap.mean(), est.gap_ci),
            "stability": _interval(est.stability.mean(), est.stability_ci),
            "identity_holds": est.holds,
            "be_bound": None,
            "be_holds": None,
            "difference": _interval(est.difference.mean(), est.difference_ci),
            "beta": gen.pointwise_hypothesis_stability(train, loo),
            "lhs": None,
            "be_exceeds": None,
            "test_noise": float(np.mean([it.measured[f"test_var.{loss}"] for it in members])),
            "n": cfg.n,
            "n_test": members[0].measured["n_test"],
            "replicates": len(members),
            "level": level,
        }
        if loss == "0-1":
            chk = gen.be_moment_check(est.gap, train, loo, M=1.0, level=level)
            row |= {
                "be_bound": chk.bound,
                "be_holds": chk.holds,
                "be_exceeds": chk.exceeds,
                "lhs": _interval(chk.lhs, chk.lhs_ci),
            }
        out.append(row)
    return out


def assemble(spec: GeneralizationSpec, results: list) -> GeneralizationStudy:
    """The study from its chunks' results: one config dict per configuration (its fields, the
    test set size and the number of draws) and the table (:func:`rows`)."""
    by_config = draws_by_config(results)
    study = GeneralizationStudy(spec)
    for cfg in spec.plan():
        members = by_config[cfg]
        config = {
            **dataclasses.asdict(cfg),
            "n_test": members[0].measured["n_test"],
            "replicates": len(members),
        }
        study.add_config(config, members)
        k = len(study.configs) - 1
        study.table += rows(config, study.stability[k], members, level=spec.level)
    return study
