"""Many fine-tuning problems as one program (``ft_evidence_batch``), the base reference of
the controlled designs (``ft_reference``) and the fine-tuning study's chunks."""

from __future__ import annotations

import collections
import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import stabtheory  # noqa: F401
from stabtheory import full_finetuning as ff
from stabtheory.bounds import finetune as ft
from stabtheory.simulations import finetune as study

#: Up to t = 10: on this small network the true objective has negative curvature at w0
#: (its Hessian's lambda_min, pull included, about -0.6; lambda_max about 1.1), so the real
#: network's GD amplifies a rounding difference (e.g. from padding) by up to
#: 1 + eta |lambda_min| = 1.5x per step (about 1.4x measured: 4e-16 at t = 10, 7e-10 at
#: t = 50, 4e-3 at t = 100), while it stays inside the true loss's stability region
#: (eta lambda_max / 2 <= 0.85 along the run on S); so only early checkpoints can be compared
#: tightly.
STEPS = (1, 5, 10)
FIELDS = ("w_min", "lam_min", "lam_max", "rho", "rho_loo", "deviation", "w_gd", "w_real")


@pytest.fixture(scope="module")
def bed():
    return ff.make_testbed(
        ff.TestbedConfig(task="synthetic", n=10, pretrain_steps=50, hidden=(8,), features=4, d_in=6)
    )


def problems(bed):
    """Three problems of different sizes, steps and designs on one network."""
    design = ff.FTDesign(tilt=0.2, shift=0.1, scale=2.0, seed=1)
    return [
        ft.FTProblem(bed.w0, bed.X, bed.y, lam=0.1, info={"k": 0}),
        ft.FTProblem(bed.w0, bed.X[:7], bed.y[:7], lam=0.3, lr_fraction=0.5, design=design),
        ft.FTProblem(0.9 * np.asarray(bed.w0), 2.0 * bed.X[:9], bed.y[:9], lam=0.05, lr=0.1),
    ]


def single(bed, problem):
    return ft.ft_evidence(
        bed.apply,
        problem.params,
        problem.X,
        problem.y,
        lam=problem.lam,
        lr=problem.lr,
        lr_fraction=problem.lr_fraction,
        steps=STEPS,
        design=problem.design,
        info=problem.info,
    )


def assert_same(a: ft.FTEvidence, b: ft.FTEvidence, rtol: float, atol: float) -> None:
    assert a.config.keys() == b.config.keys()
    for key, value in a.config.items():  # lr: from the eigenvalues of padded kernels
        assert value == (
            pytest.approx(b.config[key], rel=rtol) if isinstance(value, float) else b.config[key]
        )
    for field in FIELDS:
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=rtol, atol=atol)
    for kind in ("min.weights", "gd.weights", "real.weights", "real.loss"):
        np.testing.assert_allclose(a.empirical(kind), b.empirical(kind), rtol=rtol, atol=atol)


@pytest.mark.parametrize("vectorize", [1, None, 2])
def test_a_batch_equals_its_problems_run_alone(bed, vectorize):
    """Padded to one size and filled up to a capacity, each problem's evidence is its own:
    one after another (1), all vmapped (None) or in vmapped pairs (2)."""
    batch = ft.ft_evidence_batch(
        bed.apply, problems(bed), steps=STEPS, pad_to=12, capacity=5, vectorize=vectorize
    )
    assert [ev.n for ev in batch] == [10, 7, 9]
    for problem, ev in zip(problems(bed), batch, strict=True):
        alone = single(bed, problem)
        assert ev.w_real.shape == alone.w_real.shape
        # padding and vmapping change only the order of sums: rounding, which conjugate
        # gradients (relative residual 1e-12, condition number about 10) can carry to ~1e-11
        assert_same(ev, alone, rtol=1e-10, atol=1e-10)


def test_batch_arguments_are_checked(bed):
    with pytest.raises(ValueError, match="capacity"):
        ft.ft_evidence_batch(bed.apply, problems(bed), steps=STEPS, capacity=2)
    with pytest.raises(ValueError, match="pad_to"):
        ft.ft_evidence_batch(bed.apply, problems(bed), steps=STEPS, pad_to=8)
    assert ft.ft_evidence_batch(bed.apply, [], steps=STEPS) == []


def test_reference_is_the_plain_evidence_on_S(bed):
    ref = ft.ft_reference(bed.apply, bed.w0, bed.X, bed.y, lam=0.1, steps=STEPS)
    ev = single(bed, problems(bed)[0])
    np.testing.assert_allclose(ref.w_min, ev.w_min[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref.rho, ev.rho, rtol=1e-10)
    np.testing.assert_allclose(ref.w_real, ev.w_real[0, -1], rtol=0, atol=1e-12)
    assert ref.distance == pytest.approx(ev.distance, rel=1e-12)
    assert float(np.linalg.norm(ref.direction)) == pytest.approx(1.0, abs=1e-15)


_SHARDED = textwrap.dedent(
    """
    import sys
    import numpy as np
    import stabtheory
    import jax
    from stabtheory import full_finetuning as ff
    from stabtheory.bounds import finetune as ft
    from stabtheory.simulations import engine

    assert jax.local_device_count() == 4
    bed = ff.make_testbed(
        ff.TestbedConfig(n=10, pretrain_steps=50, hidden=(8,), features=4, d_in=6)
    )
    design = ff.FTDesign(tilt=0.2, seed=1)
    problems = [
        ft.FTProblem(bed.w0, bed.X[:n], bed.y[:n], lam=0.1, design=design) for n in (6, 8, 10)
    ]
    for mesh in (None, engine.local_mesh()):
        out = ft.ft_evidence_batch(bed.apply, problems, steps=(1, 5, 10), mesh=mesh)
        np.save(sys.argv[1] + ("-mesh" if mesh else ""), np.concatenate(
            [np.concatenate([e.w_gd.ravel(), e.w_real.ravel(), e.w_min.ravel()]) for e in out]
        ))
    """
)


def test_a_mesh_splits_the_batch_over_devices(tmp_path):
    """``jax.shard_map`` over 4 host devices (each loops over its own problems; the batch of 3
    is filled up to 4) gives the single-device results up to rounding."""
    script = tmp_path / "sharded.py"
    script.write_text(_SHARDED)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = str(tmp_path / "w")
    subprocess.run([sys.executable, str(script), out], env=env, check=True, timeout=600)
    plain, sharded = np.load(out + ".npy"), np.load(out + "-mesh.npy")
    np.testing.assert_allclose(sharded, plain, rtol=0, atol=1e-12)


def test_study_chunks_cover_every_item_once_with_one_capacity_per_group():
    spec = dataclasses.replace(study.FineTuneStudySpec(), max_runs=300, replicates=3)
    chunks = study.chunks(spec)
    items = [item for c in chunks for item in c.items]
    expected = [(c, r) for c in spec.plan() for r in range(spec.replicates)]
    assert sorted(items, key=repr) == sorted(expected, key=repr)
    capacity = collections.defaultdict(set)
    for c in chunks:
        task, size, per = c.group
        capacity[task, size].add(per)
        assert len(c.items) <= per == max(1, spec.max_runs // (size + 1))
        assert all(
            cfg.task == task and study.padded_size(spec, cfg.n) == size for cfg, _ in c.items
        )
    assert all(len(v) == 1 for v in capacity.values())
    assert set(capacity) == {(t, s) for t in spec.tasks for s in (spec.n, max(spec.ns))}


def test_static_checkpoints_give_the_traced_results(bed):
    """``static_steps=True`` compiles fixed-length loops (for accelerators): same states."""
    traced, static = (
        ft.ft_evidence_batch(bed.apply, problems(bed)[:2], steps=STEPS, static_steps=flag)
        for flag in (False, True)
    )
    for a, b in zip(traced, static, strict=True):
        assert_same(a, b, rtol=1e-13, atol=1e-13)


_STUDY = textwrap.dedent(
    """
    import dataclasses, pickle, sys
    import numpy as np
    import stabtheory
    from stabtheory.simulations import finetune as study

    spec = dataclasses.replace(
        study.FineTuneStudySpec.quick(), n=8, ns=(6, 8), pretrain_sweep=(0, 50),
        pretrain_steps=50, input_scales=(1.0,), interpolation=(0.0, 0.5), tilts=(4.0,),
        shifts=(1.0,), scales=(), steps=(1, 10), replicates=2, max_runs=40,
    )
    result = study.run_finetune_study(spec)
    rows = [
        (repr(it.config), it.draw, it.measured, {k: np.asarray(v) for k, v in it.stability.items()})
        for it in result.items
    ]
    pickle.dump(rows, open(sys.argv[1], "wb"))
    """
)


@pytest.mark.slow
def test_study_results_do_not_depend_on_the_number_of_host_devices(tmp_path):
    """The fine-tuning study on 1 and on 4 host devices: bit-identical per-draw results."""
    script = tmp_path / "study.py"
    script.write_text(_STUDY)
    rows = {}
    for devices in (1, 4):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        out = tmp_path / f"d{devices}.pkl"
        subprocess.run([sys.executable, str(script), str(out)], env=env, check=True, timeout=900)
        rows[devices] = _load(out)
    assert len(rows[1]) == len(rows[4]) > 0
    for a, b in zip(rows[1], rows[4], strict=True):
        assert a[:3] == b[:3]
        assert a[3].keys() == b[3].keys()
        assert all(np.array_equal(a[3][k], b[3][k]) for k in a[3])


def _load(path):
    import pickle

    with open(path, "rb") as f:
        return pickle.load(f)


class CountingApply:
    """``apply(w, x)`` that counts its Python calls: the evidence program calls it only while
    it is being traced, so an unchanged count means no new trace (counted from outside)."""

    def __init__(self, apply):
        self.apply = apply
        self.calls = 0

    def __call__(self, w, x):
        self.calls += 1
        return self.apply(w, x)


def test_evidence_batches_of_one_shape_trace_once(bed):
    """Designs, lam, lr, the checkpoint values and the batch's problems are traced: a batch
    of the same (n, p, C, capacity) runs the compiled program, and so does a reference of the
    same shape (n, p, C: its pilot passes run to the checkpoints)."""
    apply = CountingApply(bed.apply)
    ft.ft_evidence_batch(apply, problems(bed), steps=STEPS, pad_to=10, capacity=3)
    ft.ft_reference(apply, bed.w0, bed.X, bed.y, lam=0.1, steps=STEPS)
    traced = apply.calls
    assert traced > 0
    design = ff.FTDesign(tilt=0.5, shift=0.3, scale=3.0, seed=2)
    others = [ft.FTProblem(bed.w0, bed.X[:6], bed.y[:6], lam=0.2, lr=0.05, design=design)]
    ft.ft_evidence_batch(apply, others * 2, steps=(2, 20, 40), pad_to=10, capacity=3)
    ft.ft_reference(apply, 0.5 * np.asarray(bed.w0), bed.X, bed.y, lam=0.3, steps=(1, 7, 9))
    assert apply.calls == traced
