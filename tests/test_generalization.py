"""The generalization check (docs/theory.md section 7): the replace-one identity exactly on an
enumerable distribution, the batched runs against plain loops, the moment bound's formula, the
study's chunks, draws, report entry and its quick spec end to end."""

from __future__ import annotations

import dataclasses
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import np_loss, np_train_head
from scipy import stats

from stabtheory import full_finetuning as ff
from stabtheory import generalization as gen
from stabtheory import linear_heads
from stabtheory.report.document import build_report
from stabtheory.simulations import STUDIES, engine
from stabtheory.simulations.generalization import (
    GENERALIZATION_STUDY,
    GeneralizationSpec,
    chunks,
    head_draw,
    run_generalization_study,
    taylor_margins,
)
from stabtheory.simulations.generalization import compute as gen_compute
from stabtheory.simulations.generalization import report as gen_report

#: Three signed points in general position (no two orthogonal, none at margin 0 of any run):
#: the distribution is uniform on them, so every expectation is an exact finite mean.
SUPPORT = np.array([[1.0, 0.2], [0.3, 1.0], [-0.4, 0.7]])
N = 2  # |S| = |S'|: 3^(2N) = 81 equally likely draws of (S, S')

#: Every field a row of report.json's ``generalization`` table must have.
ROW_FIELDS = {
    "study",
    "config",
    "loss",
    "gap",
    "stability",
    "identity_holds",
    "be_bound",
    "be_holds",
}


def _all_draws() -> np.ndarray:
    """Every (S, S') pool of N + N points of SUPPORT, (81, 2N, 2): all equally likely."""
    idx = np.array(list(itertools.product(range(len(SUPPORT)), repeat=2 * N)))
    return SUPPORT[idx]


def _head_margins(pools: np.ndarray, loss: str, steps: int = 20, lr: float = 0.5):
    """Margins of every run of identity_weights(N) on its pool, and of A(S) on the support."""
    masks = gen.identity_weights(N)
    runs = masks.shape[0]

    def one(Z):
        traj = linear_heads.train_runs(
            Z, masks, jnp.full(runs, lr), jnp.zeros((runs, 1, 2)), (steps,), loss=loss
        )
        w = traj.w[:, -1, 0]  # (runs, d)
        return w @ Z.T, SUPPORT @ w[0]

    return jax.jit(jax.vmap(one))(jnp.asarray(pools))


@pytest.mark.parametrize("train_loss", ["logistic", "exponential"])
def test_identity_is_exact_on_an_enumerable_distribution(train_loss):
    """E gap = E replace-one stability, both computed exactly (every draw of a uniform
    distribution on three points), for the training loss and the 0-1 loss."""
    pool, test = (np.asarray(a) for a in _head_margins(_all_draws(), train_loss))
    for loss in (train_loss, "0-1"):
        train, replaced, _ = gen.split_runs(np.asarray(gen.margin_losses(pool, loss)), N)
        risk = np.asarray(gen.margin_losses(test, loss)).mean(axis=1)  # exact R(A(S))
        est = gen.replace_one_identity(train, replaced, risk)
        assert abs(est.gap.mean() - est.stability.mean()) < 1e-12, loss
        assert np.abs(est.difference).max() > 1e-3  # the identity holds on average only
        assert est.holds


def test_identity_detects_a_wrong_replacement():
    """The check can fail: pairing A(S^(i)) with z'_i (the sample it trained on) instead of
    z_i breaks the identity."""
    pool, test = (np.asarray(a) for a in _head_margins(_all_draws(), "logistic"))
    values = np.asarray(gen.margin_losses(pool, "logistic"))
    train, _, _ = gen.split_runs(values, N)
    wrong = values[:, 1 + np.arange(N), N + np.arange(N)]  # l(A(S^(i)); z'_i): seen in training
    risk = np.asarray(gen.margin_losses(test, "logistic")).mean(axis=1)
    est = gen.replace_one_identity(train, wrong, risk)
    assert abs(est.gap.mean() - est.stability.mean()) > 1e-3


def test_taylor_identity_is_exact_on_an_enumerable_distribution():
    """The same exact identity for full fine-tuning's Taylor minimiser of a small network."""

    def apply(w, x):
        return w[2] * jnp.tanh(w[:2] @ x) + w[3:] @ x

    w0 = jnp.array([0.5, -0.3, 1.0, 0.2, 0.1])
    pools = jnp.asarray(_all_draws())
    y = jnp.ones(2 * N)
    masks = gen.identity_weights(N)
    pool, test = jax.jit(
        jax.vmap(lambda X: taylor_margins(apply, w0, X, y, SUPPORT, jnp.ones(3), masks, 0.1))
    )(pools)
    for loss in ("logistic", "0-1"):
        train, replaced, _ = gen.split_runs(np.asarray(gen.margin_losses(pool, loss)), N)
        risk = np.asarray(gen.margin_losses(test, loss)).mean(axis=1)
        est = gen.replace_one_identity(train, replaced, risk)
        assert abs(est.gap.mean() - est.stability.mean()) < 1e-10, loss


def test_taylor_margins_match_minimisers_of_sliced_sets():
    """Masks over the pool give the minimiser of each explicit set S^(i) and S\\i."""

    def apply(w, x):
        return w[2] * jnp.tanh(w[:2] @ x) + w[3:] @ x

    w0 = jnp.array([0.5, -0.3, 1.0, 0.2, 0.1])
    rng = np.random.default_rng(3)
    n = 3
    X, y = rng.standard_normal((2 * n, 2)), np.where(rng.random(2 * n) < 0.5, 1.0, -1.0)
    pool, _ = taylor_margins(apply, w0, X, y, X, y, gen.identity_weights(n), 0.1)
    _, replaced, loo = gen.split_runs(np.asarray(pool), n)
    for i in range(n):
        for keep, got in (
            (np.r_[np.delete(np.arange(n), i), n + i], replaced),
            (np.delete(np.arange(n), i), loo),
        ):
            tm = ff.taylor_expand(apply, w0, X[keep], y[keep])
            w = ff.minimizers(tm, jnp.ones((1, keep.size)), 0.1)[0]
            assert abs(float(y[i] * apply(w, X[i])) - got[i]) < 1e-9


TINY = GeneralizationSpec(
    families=("generic",),
    losses=("logistic", "exponential"),
    n=4,
    t=50,
    d=3,
    gamma=0.2,
    n_test=40,
    ft_tasks=(),
    replicates=3,
)


@pytest.mark.parametrize("loss", ["logistic", "exponential"])
def test_study_runs_match_a_brute_force_loop(loss):
    """The study's batched program against plain numpy GD on explicitly built sets S, S^(i)
    and S\\i (helpers.np_train_head), for the training loss and the 0-1 loss."""
    chunk = next(c for c in chunks(TINY) if c.group[1] == loss)
    results = gen_compute.compute(TINY, chunk)
    for item in results:
        cfg, n = item.config, item.config.n
        pool, test = head_draw(TINY, cfg, item.draw)
        S, Sp = pool[:n], pool[n:]
        w_S = np_train_head(S, cfg.lr, cfg.t, loss)
        for name, values in ((loss, lambda m: np_loss(m, loss)), ("0-1", lambda m: (m <= 0) * 1.0)):
            replaced, loo = [], []
            for i in range(n):
                Si = S.copy()
                Si[i] = Sp[i]
                replaced.append(values(S[i] @ np_train_head(Si, cfg.lr, cfg.t, loss)))
                w_loo = np_train_head(np.delete(S, i, axis=0), cfg.lr, cfg.t, loss)
                loo.append(values(S[i] @ w_loo))
            np.testing.assert_allclose(item.stability[f"train.{name}"], values(S @ w_S), 1e-10)
            np.testing.assert_allclose(item.stability[f"replace.{name}"], replaced, 1e-10)
            np.testing.assert_allclose(item.stability[f"loo.{name}"], loo, 1e-10)
            assert item.measured[f"test.{name}"] == pytest.approx(
                np.mean(values(test @ w_S)), rel=1e-10
            )


def test_draws_split_an_exchangeable_sample_disjointly():
    cfg = TINY.plan()[0]
    pool, test = head_draw(TINY, cfg, 0)
    assert pool.shape == (2 * cfg.n, TINY.d) and test.shape == (cfg.n_test, TINY.d)
    rows = {tuple(r) for r in np.concatenate([pool, test])}
    assert len(rows) == 2 * cfg.n + cfg.n_test  # S, S' and the test set are disjoint
    other, _ = head_draw(TINY, cfg, 1)
    assert not np.allclose(pool, other)  # independent draws


def test_a_pair_family_draw_partitions_its_whole_pool():
    """Digits: S, S' and the test set are drawn without replacement from the finite pool."""
    from stabtheory.data import digits_pair_features

    spec = dataclasses.replace(TINY, families=("digits",), pair=(1, 2))
    cfg = spec.plan()[0]
    assert cfg.pair == (1, 2) and cfg.n_test is None and cfg.gamma is None
    pool, test = head_draw(spec, cfg, 0)
    ds = digits_pair_features((1, 2))
    signed = ds.y[:, None] * ds.X
    drawn = np.concatenate([pool, test])
    assert drawn.shape == signed.shape
    np.testing.assert_array_equal(np.sort(drawn, axis=0), np.sort(signed, axis=0))


def test_chunks_batch_every_draw_of_a_loss_into_one_program():
    spec = GeneralizationSpec()
    parts = chunks(spec)
    items = [it for c in parts for it in c.items]
    assert len(items) == len(set(items)) == len(spec.plan()) * spec.replicates
    groups = {}
    for c in parts:
        groups.setdefault(c.group[:-1], set()).add(c.group[-1])  # one capacity per group
        assert c.group[-1] >= len(c.items)
        assert len(c.items) * (2 * c.group[2] + 1) <= spec.max_runs
    assert set(groups) == {
        ("head", "logistic", 32, 1000),
        ("head", "exponential", 32, 1000),
        ("finetune", "synthetic", 32),
    }
    assert all(len(caps) == 1 for caps in groups.values())


@pytest.mark.parametrize(
    "n, beta, M, expected",
    [(10, 0.01, 1.0, 0.08), (32, 0.0, 1.0, 1 / 64), (4, 0.1, 2.0, 4 / 8 + 0.6)],
)
def test_be_moment_bound_formula(n, beta, M, expected):
    assert gen.be_moment_bound(n, beta, M) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(
    "n, beta, M", [(0, 0.1, 1.0), (5, -0.1, 1.0), (5, float("nan"), 1.0), (5, 0.1, 0.0)]
)
def test_be_moment_bound_rejects_bad_input(n, beta, M):
    with pytest.raises(ValueError):
        gen.be_moment_bound(n, beta, M)


def test_be_moment_check_reads_beta_and_the_squared_gap():
    train = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    loo = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]])  # two flips of eight
    chk = gen.be_moment_check([0.5, 0.5], train, loo)
    assert chk.beta == 0.25 and chk.bound == pytest.approx(1 / 8 + 0.75)
    assert chk.lhs == 0.25 and chk.lhs_ci == (0.25, 0.25) and chk.holds and not chk.exceeds
    over = gen.be_moment_check([0.9, 0.95, 1.0], [[0.0] * 4] * 3, [[0.0] * 4] * 3)
    assert not over.holds and over.exceeds  # 1/8 < every squared gap


def test_mean_interval_is_the_student_t_interval():
    x = np.random.default_rng(0).standard_normal(12)
    expected = stats.t.interval(0.99, 11, loc=x.mean(), scale=stats.sem(x))
    np.testing.assert_allclose(gen.mean_interval(x, 0.99), expected, rtol=1e-12)
    assert gen.mean_interval([2.0, 2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError):
        gen.mean_interval([1.0])


def test_zero_margin_is_an_error():
    assert np.asarray(gen.margin_losses(jnp.array([-0.0, 0.0, 1e-300]), "0-1")).tolist() == [
        1.0,
        1.0,
        0.0,
    ]
    with pytest.raises(ValueError):
        gen.margin_losses(jnp.zeros(2), "hinge")


def test_spec_levels_and_validation():
    spec = GeneralizationSpec()
    assert spec.replicates >= 10 and spec.rows == 10 and spec.level == pytest.approx(0.995)
    assert GeneralizationSpec.quick().replicates < spec.replicates
    with pytest.raises(ValueError, match="families"):
        GeneralizationSpec(families=("nope",))
    with pytest.raises(ValueError, match="replicates"):
        GeneralizationSpec(replicates=1)


def test_the_study_is_registered_and_run_by_default():
    assert STUDIES["generalization"] is GENERALIZATION_STUDY
    assert GENERALIZATION_STUDY.default
    assert GENERALIZATION_STUDY.spec(quick=True) == GeneralizationSpec.quick()


@pytest.fixture(scope="module")
def quick_study():
    engine.enable_compilation_cache()
    return run_generalization_study(GeneralizationSpec.quick())


def test_quick_spec_end_to_end(quick_study):
    """Every row of the quick spec: the identity's interval covers 0, the moment bound holds,
    no check rows and no claims."""
    study = quick_study
    assert study.verdicts == [] and study.checks == []
    assert len(study.table) == study.spec.rows == 6
    for row in study.table:
        assert row["identity_holds"], row
        assert row["replicates"] == study.spec.replicates
        if row["loss"] == "0-1":
            assert row["be_holds"] and not row["be_exceeds"], row
            assert 0.0 <= row["beta"] <= 1.0
    assert {r["study"] for r in study.table} == {"head", "finetune"}


def test_report_entry_fields(quick_study, tmp_path):
    part = GENERALIZATION_STUDY.section(quick_study)
    assert part["checks"] == [] and part["claims"] == []
    report = build_report({"generalization": quick_study})
    table = report["generalization"]
    json.dumps(report, allow_nan=False)
    assert len(table) == len(quick_study.table)
    for row in table:
        assert ROW_FIELDS <= set(row)
        assert row["study"] in ("head", "finetune")
        assert row["loss"] in gen.LOSSES
        assert all(isinstance(v, int | float | str | list | None) for v in row["config"].values())
        for side in ("gap", "stability"):
            lo, hi = row[side]["ci"]
            assert set(row[side]) == {"mean", "ci"} and lo <= row[side]["mean"] <= hi
        assert isinstance(row["identity_holds"], bool)
        if row["loss"] == "0-1":
            assert isinstance(row["be_bound"], float) and isinstance(row["be_holds"], bool)
            assert row["be_bound"] == pytest.approx(gen.be_moment_bound(row["n"], row["beta"], 1.0))
        else:
            assert row["be_bound"] is None and row["be_holds"] is None
    assert report["studies"]["generalization"]["level"] == pytest.approx(1 - 0.05 / len(table))
    lines = gen_report.markdown(report)
    assert "## Generalization (docs/theory.md section 7)" in lines
    assert sum(line.startswith("| head") or line.startswith("| FT") for line in lines) == len(table)
    assert gen_report.figures(quick_study, tmp_path) == ["generalization.png"]
    assert (tmp_path / "generalization.png").stat().st_size > 0
