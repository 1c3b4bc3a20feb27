"""The sweep engine: chunks, persistence, resume after a kill, devices, processes, compilations."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from stabtheory.data.families import FAMILIES
from stabtheory.report.document import build_report
from stabtheory.simulations import STUDIES, engine, register_study
from stabtheory.simulations import head as head_study

TINY = head_study.HeadStudySpec(
    n=12,
    d=3,
    gamma=0.2,
    t_max=300,
    checkpoints=4,
    lrs=(0.1, 0.9),
    gammas=(0.2, 0.4),
    ns=(6, 12),
    losses=("exponential",),
    early_t=10,
    replicates=2,
    family_n=12,
    family_ns=(6, 12),
    band_gammas=(0.2, 0.4),
    digits_pairs=((5, 6), (0, 7)),
)


def _report(study) -> dict:
    return build_report({"head": study}, environment={"replicates": {}})


def test_draw_seeds_are_distinct_and_stable():
    seeds = [engine.draw_seed(0, r) for r in range(50)]
    assert len(set(seeds)) == 50 and seeds[0] == 0
    assert seeds == [engine.draw_seed(0, r) for r in range(50)]
    assert engine.draw_seed(1, 3) != engine.draw_seed(3, 1)


def test_chunk_keys_depend_on_items_and_study():
    a = engine.Chunk("head", ("exponential", 16, 2), ((TINY.base("exponential"), 0),))
    b = dataclasses.replace(a, items=((TINY.base("exponential"), 1),))
    c = dataclasses.replace(a, study="other")
    assert len({a.key, b.key, c.key}) == 3
    assert a.key == engine.Chunk(a.study, a.group, a.items).key


def test_a_changed_spec_never_reuses_a_chunk(tmp_path):
    """Settings outside the items (here the checkpoints) are part of every chunk's key."""
    longer = dataclasses.replace(TINY, t_max=400)
    assert not {c.key for c in head_study.chunks(TINY)} & {c.key for c in head_study.chunks(longer)}
    head_study.run_head_study(TINY, executor=engine.Executor(tmp_path))
    ex = engine.Executor(tmp_path)
    study = head_study.run_head_study(longer, executor=ex)
    assert ex.loaded == 0 and ex.computed > 0
    assert study.checks[0][1].steps[-1] == 400


def test_persisted_chunks_are_reused_corrupt_ones_recomputed(tmp_path, capsys):
    chunks = [engine.Chunk("toy", (k,), ((k, 0),)) for k in range(3)]
    calls = []

    def compute(chunk):
        calls.append(chunk.group[0])
        return {"value": np.arange(5.0) * chunk.group[0]}

    first = engine.Executor(tmp_path).run(chunks, compute)
    assert calls == [0, 1, 2]
    again = engine.Executor(tmp_path)
    second = again.run(chunks, compute)
    assert calls == [0, 1, 2] and again.loaded == 3 and again.computed == 0
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x["value"], y["value"])
    # a truncated file and a flipped byte are detected and recomputed
    files = sorted((tmp_path / ".chunks" / "toy").glob("*.chunk"))
    assert len(files) == 3 and not list((tmp_path / ".chunks" / "toy").glob(".tmp-*"))
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    raw = bytearray(files[1].read_bytes())
    raw[-3] ^= 0xFF
    files[1].write_bytes(bytes(raw))
    third = engine.Executor(tmp_path)
    third.run(chunks, compute)
    assert third.computed == 2 and third.loaded == 1
    assert "recomputing chunk" in capsys.readouterr().err
    forced = engine.Executor(tmp_path, force=True)
    forced.run(chunks, compute)
    assert forced.computed == 3


def test_a_chunk_holding_another_keys_content_is_recomputed(tmp_path, capsys):
    chunks = [engine.Chunk("toy", (k,), ((k, 0),)) for k in range(2)]
    engine.Executor(tmp_path).run(chunks, lambda c: c.group[0])
    folder = tmp_path / ".chunks" / "toy"
    a, b = (folder / f"{c.key}.chunk" for c in chunks)
    b.write_bytes(a.read_bytes())  # a valid chunk copied over another key
    again = engine.Executor(tmp_path)
    assert again.run(chunks, lambda c: c.group[0]) == [0, 1]
    assert again.loaded == 1 and again.computed == 1
    assert "not this key" in capsys.readouterr().err


def test_a_second_run_on_one_out_waits_for_a_claimed_chunk(tmp_path):
    """A chunk claimed by a live run is loaded when that run saves it, never computed twice;
    a claim left by a dead process is taken over."""
    import socket
    import subprocess
    import sys
    import threading

    chunks = [engine.Chunk("toy", (k,), ((k, 0),)) for k in range(2)]
    other = engine.Executor(tmp_path)
    assert other.claim(chunks[0])  # another run is computing chunk 0 ...
    calls = []

    def finish():
        time.sleep(0.5)
        other.save(chunks[0], "from the other run")  # ... and saves it
        other.release(chunks[0])

    thread = threading.Thread(target=finish)
    thread.start()
    mine = engine.Executor(tmp_path)
    results = mine.run(chunks, lambda c: calls.append(c.group[0]) or c.group[0])
    thread.join()
    assert results == ["from the other run", 1] and calls == [1]
    assert mine.computed == 1 and mine.loaded == 1
    # a claim whose process is gone is taken over
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    late = engine.Chunk("toy", (9,), ((9, 0),))
    lock = tmp_path / ".chunks" / "toy" / f"{late.key}.lock"
    lock.write_text(f"{socket.gethostname()} {dead}")
    ex = engine.Executor(tmp_path)
    assert ex.run([late], lambda c: "computed") == ["computed"]
    assert ex.computed == 1 and not lock.exists()
    # a run releases only its own claim
    lock.write_text(f"{socket.gethostname()} {dead}0")
    ex.release(late)
    assert lock.exists()


def test_chunks_split_by_process(tmp_path):
    chunks = [engine.Chunk("toy", (k,), ((k, 0),)) for k in range(4)]
    mine = engine.Executor(tmp_path, process_index=1, process_count=2, wait_timeout_s=0.1)
    with pytest.raises(TimeoutError):  # process 0's chunks never appear
        mine.run(chunks, lambda c: c.group[0])
    assert mine.computed == 2
    other = engine.Executor(tmp_path, process_index=0, process_count=2)
    assert other.run(chunks, lambda c: c.group[0]) == [0, 1, 2, 3]
    assert other.computed == 2 and other.loaded == 2


def test_head_study_resumes_to_the_same_report(tmp_path):
    fresh = head_study.run_head_study(TINY)
    ex = engine.Executor(tmp_path)
    head_study.run_head_study(TINY, executor=ex)
    resumed_ex = engine.Executor(tmp_path)
    resumed = head_study.run_head_study(TINY, executor=resumed_ex)
    assert resumed_ex.computed == 0 and resumed_ex.loaded == ex.computed > 0
    assert json.dumps(_report(fresh)) == json.dumps(_report(resumed))


class _TraceCounter:
    """Counts the traces of a jitted function by name, from JAX's own monitoring events (a
    trace is a compilation of a new program; a cache hit records none)."""

    EVENT = "/jax/core/compile/jaxpr_trace_duration"

    def __init__(self, fun_name: str):
        self.fun_name, self.count = fun_name, 0

    def __call__(self, event: str, duration: float, **kwargs) -> None:
        if event == self.EVENT and kwargs.get("fun_name") == self.fun_name:
            self.count += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


def test_trace_counter_sees_the_head_trainer_compile_once():
    spec = dataclasses.replace(TINY, families=("planted",), ngd_gammas=(), ns=(12,))
    spec = dataclasses.replace(spec, t_max=301)  # checkpoints no other test compiles
    with _TraceCounter(head_study.train_items.__name__) as first:
        head_study.run_head_study(spec)
    with _TraceCounter(head_study.train_items.__name__) as again:
        head_study.run_head_study(spec)
    assert first.count == 1 and again.count == 0


def test_head_study_compiles_one_trainer_per_group_whatever_the_plan():
    def traces(spec):
        with _TraceCounter(head_study.train_items.__name__) as counter:
            study = head_study.run_head_study(spec)
        return counter.count, study

    head_study.run_head_study(dataclasses.replace(TINY, replicates=1))  # warm the jit cache
    _, small = traces(dataclasses.replace(TINY, replicates=1))
    wide = dataclasses.replace(TINY, replicates=5, lrs=(0.05, 0.1, 0.3, 0.9), gammas=(0.15, 0.3))
    groups = {c.group[:3] for c in head_study.chunks(wide)}
    count, study = traces(wide)
    # (loss, optimizer, padded n) groups: GD at n = 12 -> 16 and n = 6 -> 8 (the three data
    # families share them), normalized GD (Theorem H-3) at n = 12 -> 16
    assert count <= len(groups) == 3
    assert {c["family"] for c in study.configs} == set(FAMILIES)
    assert all(c["replicates"] == 5 for c in study.configs)
    assert study.stability[0]["direction"].shape == (len(wide.steps), 5, TINY.n)
    assert len(study.configs) == len(wide.plan()) > len(small.configs)


def test_replicates_are_independent_draws():
    study = head_study.run_head_study(TINY)
    a, b = (it for it in study.items if it.config == TINY.base("exponential"))
    assert a.draw == 0 and b.draw == 1
    assert not np.allclose(a.stability["weights"], b.stability["weights"])
    pooled = next(c for k, c in study.checks if k == 0)
    assert pooled.bound.shape[-1] == 2 * TINY.n  # the draws' samples, pooled per row


def test_registry_drives_the_cli_choices():
    assert set(STUDIES) == {
        "head",
        "finetune",
        "stabilizers",
        "generalization",
        "phenomenon",
        "attention-theory",
    }
    assert all(STUDIES[name].name == name for name in STUDIES)
    spec = STUDIES["head"].spec(quick=True, replicates=4)
    assert spec.replicates == 4 and spec == dataclasses.replace(
        head_study.HeadStudySpec.quick(), replicates=4
    )


def test_register_study_refuses_duplicates_and_incomplete_studies():
    with pytest.raises(ValueError, match="already registered"):
        register_study(STUDIES["head"])
    with pytest.raises(TypeError, match="StudyProtocol"):
        register_study(object())

    class Nameless(type(STUDIES["head"])):
        name = ""

    with pytest.raises(TypeError, match="name"):
        register_study(Nameless())
    assert list(STUDIES) == [
        "head",
        "finetune",
        "stabilizers",
        "generalization",
        "phenomenon",
        "attention-theory",
    ]


def _cli(out: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stabtheory.cli", "verify", "--quick", "--study", "head"]
    return subprocess.Popen(
        [*cmd, "--out", str(out), "--no-progress", *extra],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _body(path: Path) -> dict:
    report = json.loads((path / "report.json").read_text())
    report.pop("environment")
    return report


@pytest.mark.slow
def test_killed_run_resumes_and_devices_do_not_change_the_report(tmp_path):
    """SIGKILL mid-way, start again: the report equals an uninterrupted run's; so does a run
    sharded over 4 (forced host) devices."""
    whole = _cli(tmp_path / "whole")
    four = tmp_path / "four"
    assert whole.wait(timeout=600) == 0, whole.stderr.read()
    killed = _cli(tmp_path / "killed")
    chunks = tmp_path / "killed" / ".chunks" / "head"
    deadline = time.monotonic() + 300
    while not (chunks.exists() and list(chunks.glob("*.chunk"))) and killed.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "report.json").exists()
    again = _cli(tmp_path / "killed")
    assert again.wait(timeout=600) == 0, again.stderr.read()
    assert "chunks loaded" in again.stdout.read()
    assert (tmp_path / "whole" / "report.json").read_text() == (
        tmp_path / "killed" / "report.json"
    ).read_text()
    sharded = _cli(four, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert sharded.wait(timeout=600) == 0, sharded.stderr.read()
    assert json.loads((four / "report.json").read_text())["environment"]["devices"] == 4
    assert _body(four) == _body(tmp_path / "whole")


@pytest.mark.slow
def test_two_processes_share_the_chunks(tmp_path):
    """JAX's multi-controller runtime on 2 local processes: each computes its share into one
    --out, process 0 writes the report, equal to a single process's."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "two"
    procs = [
        _cli(
            out,
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num-processes",
            "2",
            "--process-id",
            str(i),
        )
        for i in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()
    assert "chunks computed" in procs[1].stdout.read()
    report = json.loads((out / "report.json").read_text())
    assert report["environment"]["processes"] == 2
    single = _cli(tmp_path / "one")
    assert single.wait(timeout=600) == 0
    assert _body(out) == _body(tmp_path / "one")
