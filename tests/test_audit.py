"""`stabtheory.audit` and `stabtheory check`: the user's own data through every head theorem."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stabtheory import data
from stabtheory.audit import audit, fix_for, load_features
from stabtheory.bounds.theorem import Assumption
from stabtheory.cli import main
from stabtheory.errors import InvalidArgumentError, InvalidDataError

FIELDS = {"theorem", "applicable", "holds", "vacuous_share", "failed_assumptions"}


def _iris_pair():
    """Versicolor against virginica: not separable through the origin (nor with a bias)."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    keep = y > 0
    return X[keep], np.where(y[keep] == 2, "virginica", "versicolor")


def test_separable_data_check_every_head_theorem_on_shared_runs():
    ds = data.planted_margin(40, 4, 0.2, seed=0)
    a = audit(ds.X, ds.y, steps=300)
    assert a.separable and a.gamma == pytest.approx(0.2, rel=1e-6)
    assert a.loss == "exponential" and a.lr == pytest.approx(1 / a.radius**2)
    assert a.steps[0] == 1 and a.steps[-1] == 300
    rows = a.rows()
    assert all(FIELDS <= set(r) for r in rows)
    checked = {r["theorem"] for r in rows if r["reason"] is None}
    assert {"head.svm_loo", "head.H1", "head.C1", "head.H3"} <= checked
    assert not a.skipped and a.violations == 0
    for r in rows:  # an applicable row says how it compares; a failing one says why and how
        if r["applicable"]:
            assert r["holds"] is True and r["bound_mean"] >= r["empirical_mean"]
        else:
            assert r["failed_assumptions"] and all(f["fix"] for f in r["failed_assumptions"])
    doc = json.loads(json.dumps(a.to_json(), allow_nan=False))
    assert doc["data"]["separable"] and doc["settings"]["why"]["lr"].startswith("chosen")
    assert "head.H1" in a.summary() and "separable through the origin" in a.summary()


def test_non_separable_data_still_check_c1_and_say_why_the_others_do_not_apply():
    X, y = _iris_pair()
    a = audit(X, y, steps=100)
    assert not a.separable and math.isnan(a.gamma) and a.loss == "logistic"
    assert a.labels == {"versicolor": -1, "virginica": 1}
    applicable = {r["theorem"] for r in a.rows() if r["applicable"]}
    assert applicable == {"head.C1"}
    skipped = dict(a.skipped)
    assert {"head.H1", "head.H2", "head.H3", "head.svm_loo"} <= set(skipped)
    assert all("separable" in why for why in skipped.values())
    assert "NOT separable" in a.summary()
    assert a.to_json()["data"]["gamma"] is None


def test_a_failing_step_size_is_reported_with_its_fix():
    ds = data.planted_margin(30, 3, 0.2, seed=1)
    a = audit(ds.X, ds.y, lr=4.0 / float(np.linalg.norm(ds.X, axis=1).max()) ** 2, steps=50)
    h3 = next(r for r in a.rows() if r["theorem"] == "head.H3")
    assert not h3["applicable"]
    (failed,) = [f for f in h3["failed_assumptions"] if f["name"] == "eta R^2 <= 1"]
    assert failed["value"] == pytest.approx(4.0) and failed["threshold"] == 1.0
    assert "1/R^2" in failed["fix"]


def test_psi_fix_names_the_step_count_it_needs():
    a = Assumption.measure("Psi(t) > 0", "", -1.0, ">", 0.0)
    text = fix_for(a, radius=1.0, lr=0.5, n=11, gamma=0.5)
    assert "= 160" in text  # 2 (n - 1) / (eta gamma^2) = 20 / 0.125


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"loss": "hinge"}, "loss"),
        ({"lr": -1.0}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    ds = data.planted_margin(10, 2, 0.2, seed=0)
    with pytest.raises(InvalidArgumentError, match=name):
        audit(ds.X, ds.y, **kwargs)


def test_labels_need_exactly_two_values():
    with pytest.raises(InvalidDataError, match="two distinct labels"):
        audit(np.eye(3), [0, 1, 2])
    with pytest.raises(InvalidDataError, match="NaN"):
        audit(np.eye(3), [1.0, np.nan, 1.0])


def test_numpy_scalars_are_valid_arguments():
    ds = data.planted_margin(10, 2, 0.2, seed=0)
    a = audit(ds.X, ds.y, lr=np.float32(0.25), steps=np.int64(20))
    assert a.lr == 0.25 and a.steps[-1] == 20


def test_load_features_reads_npz_npy_and_csv(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "d.csv").write_text(
        "a,label,b,c\n"
        + "".join(
            f"{r[0]},{'no' if t == 0 else 'yes'},{r[1]},{r[2]}\n" for r, t in zip(X, y, strict=True)
        )
    )
    for got in (
        load_features(tmp_path / "d.npz"),
        load_features(tmp_path / "X.npy", tmp_path / "y.npy"),
    ):
        np.testing.assert_array_equal(got[0], X)
        np.testing.assert_array_equal(got[1], y)
    Xc, yc = load_features(tmp_path / "d.csv", label="label")
    np.testing.assert_array_equal(Xc, X)
    assert yc.tolist() == ["no", "yes", "no", "yes"]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.npz", None, "no such file"),
        ("d.txt", "1,2\n", "unknown format"),
        ("d.csv", "a,b,c\n1,x,0\n", "not a number"),
        ("d.csv", "a,b\n", "at least one data row"),
    ],
)
def test_load_features_errors_name_the_file(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidDataError, match=match):
        load_features(path)
    np.savez(tmp_path / "bad.npz", A=np.eye(2))
    with pytest.raises(InvalidDataError, match="X and y"):
        load_features(tmp_path / "bad.npz")
    with pytest.raises(InvalidDataError, match="no column"):
        (tmp_path / "ok.csv").write_text("a,b\n1,0\n")
        load_features(tmp_path / "ok.csv", label="y")


def test_check_command_json_and_exit_codes(tmp_path, capsys):
    ds = data.planted_margin(30, 3, 0.2, seed=2)
    np.savez(tmp_path / "d.npz", X=ds.X, y=ds.y)
    figure = tmp_path / "f.png"
    assert (
        main(
            ["check", str(tmp_path / "d.npz"), "--json", "--steps", "100", "--figure", str(figure)]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["violations"] == 0 and doc["checks"]
    assert all(FIELDS <= set(r) for r in doc["checks"])
    assert figure.stat().st_size > 0
    assert main(["check", str(tmp_path / "d.npz"), "--steps", "100"]) == 0
    assert "head.C1" in capsys.readouterr().out
    # bad input: one line on stderr, exit 2
    assert main(["check", str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err
    assert main(["check", str(tmp_path / "d.npz"), "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err


def test_a_users_model_through_the_fine_tuning_theorems():
    import jax.numpy as jnp

    from stabtheory.audit_model import audit_model

    X = np.random.default_rng(0).standard_normal((12, 3))
    y = np.sign(X[:, 0])
    a = audit_model(lambda w, x: jnp.tanh(w @ x), X, y, params=jnp.full(3, 0.1), lam=0.1)
    rows = a.rows()
    assert {r["theorem"] for r in rows} == {"ft.FT1", "ft.FT1c", "ft.FT1L", "ft.FT2"}
    assert all(FIELDS <= set(r) for r in rows) and a.violations == 0
    assert "ft.FT2" in a.summary() and json.dumps(a.to_json(), allow_nan=False)

    # with more weights than samples (p = 20 > n = 12), Lambda = lam: plain fine-tuning
    # (lam = 0) is outside FT-1 and FT-2, and the fix says so
    def wide(w, x):
        return jnp.tanh(w[15:] @ jnp.tanh(w[:15].reshape(5, 3) @ x))

    w0 = jnp.asarray(np.random.default_rng(1).standard_normal(20) * 0.3)
    plain = audit_model(wide, X, y, params=w0, lam=0.0)
    failed = [f for r in plain.rows() for f in r["failed_assumptions"]]
    assert failed and any("lam > 0" in f["fix"] for f in failed)
    with pytest.raises(InvalidArgumentError, match="one logit"):
        audit_model(lambda w, x: (w @ x)[None], X, y, params=jnp.zeros(3))
