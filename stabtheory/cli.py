"""The ``stabtheory`` command.

``stabtheory verify [--quick | --full] [--out DIR] [--force] [--replicates R] [--study NAME ...]``
runs the registered studies (default: head tuning, full fine-tuning and the generalization
check; ``--study stabilizers`` or ``all`` for more) on their embedded data (generated, and
scikit-learn's bundled digits) through the sweep engine, checks every applicable theorem per
sample, judges the paper's claims and writes ``report.json``, ``report.md`` and the figures into
``DIR``, with the finished chunks under ``DIR/.chunks`` (a killed run started again resumes from
them).

Exit status: 0 no violation; 1 a rigorous bound exceeded beyond numerical tolerance (named on
stderr); 2 bad usage or input (one line on stderr); 3 an internal error (one line on stderr, the
traceback in ``DIR/error.log``); 130 interrupted (run the same command to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

__all__ = ["LONG_RUN_S", "long_run_note", "main"]


class _Progress:
    """A minimal progress bar on stderr."""

    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream, self.width, self.start = stream, width, time.perf_counter()

    def __call__(self, done: int, total: int, label: str) -> None:
        filled = int(self.width * done / total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r[{bar}] {done}/{total} {elapsed:5.1f}s {label[:48]:<48}")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def _distributed(args: argparse.Namespace) -> None:
    """Join JAX's multi-controller runtime when asked (one process per host or per device)."""
    if args.num_processes and args.num_processes > 1:
        import jax

        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )


def _writable(out: Path) -> str | None:
    """Why ``out`` cannot take the report (``None`` when it can), checked before any work."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a directory"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        return f"--out {out} is not writable ({err.strerror or err})"
    return None


def _verify(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = Path(args.out)
    problem = _writable(out)
    if problem:
        print(f"error: {problem}; choose another --out.", file=sys.stderr)
        return 2
    if (out / "report.json").exists() and not args.force:
        print(
            f"error: {out / 'report.json'} exists; pass --force to overwrite it or choose "
            "another --out.",
            file=sys.stderr,
        )
        return 2
    if args.quick and args.full:
        print("error: --quick and --full exclude each other; pass one.", file=sys.stderr)
        return 2
    if args.replicates is not None and args.replicates < 2:
        print(
            "error: --replicates must be at least 2 (a verdict needs an interval over "
            "independent draws).",
            file=sys.stderr,
        )
        return 2
    import jax
    import matplotlib

    matplotlib.use("Agg")  # files only; the library itself never switches the backend
    import stabtheory  # noqa: F401  (enables float64)
    from stabtheory.report.document import write_report
    from stabtheory.simulations import STUDIES, engine

    _distributed(args)
    engine.enable_compilation_cache()
    names = list(STUDIES) if "all" in args.study else list(dict.fromkeys(args.study))
    if args.full and not any(STUDIES[n].has_full() for n in names):
        with_full = " ".join(n for n, st in STUDIES.items() if st.has_full())
        print(
            f"error: --full: none of the studies {' '.join(names)} has a full design (those "
            f"with one: {with_full}); pass --study with one of them.",
            file=sys.stderr,
        )
        return 2
    executor = engine.Executor(
        out, force=args.force, progress=None if args.no_progress else _Progress()
    )
    results, specs, timings = {}, {}, {}
    for name in names:
        specs[name] = STUDIES[name].spec(
            quick=args.quick, full=args.full, replicates=args.replicates
        )
    note = long_run_note(names, specs)
    if note:
        print(note, file=sys.stderr)
    for name in names:
        study = STUDIES[name]
        t0 = time.perf_counter()
        results[name] = study.run(specs[name], executor=executor)
        timings[name] = time.perf_counter() - t0
    if jax.process_index() != 0:  # process 0 writes the report
        print(f"process {jax.process_index()}: {executor.computed} chunks computed")
        return 0
    replicates = {k: s.replicates for k, s in specs.items() if hasattr(s, "replicates")}
    report = write_report(
        results,
        out,
        environment=engine.environment(replicates),
        workers=min(4, os.cpu_count() or 1),
    )
    runtime = time.perf_counter() - start
    timings = {
        "runtime_s": runtime,
        "studies_s": timings,
        "chunks_computed": executor.computed,
        "chunks_loaded": executor.loaded,
    }
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    applicable = [c for c in report["checks"] if c["applicable"]]
    resumed = f", {executor.loaded} chunks loaded from {out}/.chunks" if executor.loaded else ""
    print(
        f"{len(report['checks'])} checks ({len(applicable)} applicable), "
        f"{report['violations']} violations; report in {out}/report.md "
        f"({runtime:.1f} s{resumed})"
    )
    for v in report["claims"]:
        print(f"  {v['verdict']:<16} {v['id']} on {v['notion']}: {v.get('text') or ''}")
    if report["violations"]:
        for c in applicable:
            if c["violations"]:
                print(
                    f"VIOLATION: {c['theorem']} ({c['notion']}) exceeded at {c['violations']} "
                    f"(sample, t) points, config {c['config']}",
                    file=sys.stderr,
                )
        return 1
    return 0


#: A run estimated above this many seconds says so before it starts.
LONG_RUN_S = 15 * 60.0


def long_run_note(names: list[str], specs: dict) -> str | None:
    """The note a run estimated to take long prints before it starts (the studies'
    :meth:`~stabtheory.simulations.StudyProtocol.estimate_s`, on the 2-core reference CPU);
    ``None`` below :data:`LONG_RUN_S`."""
    from stabtheory.simulations import STUDIES

    estimates = [STUDIES[n].estimate_s(specs[n]) for n in names]
    total = sum(e for e in estimates if e is not None)
    if total <= LONG_RUN_S:
        return None
    return (
        f"note: this run is estimated to take about {total / 60:.0f} minutes on a 2-core "
        "CPU (each study's measured default time scaled by the size of this design: its "
        "configurations and draws, or its FLOPs); Ctrl-C stops it, and the same command "
        "resumes from the finished chunks."
    )


def _check(args: argparse.Namespace) -> int:
    """``stabtheory check``: the audit of the user's data, in words or as JSON."""
    from stabtheory.audit import audit, load_features
    from stabtheory.report.format import jsonable

    X, y = load_features(args.data, args.labels, label=args.label)
    result = audit(X, y, loss=args.loss, lr=args.lr, steps=args.steps, bias=args.bias)
    if args.figure:
        result.figure(args.figure)
    if args.json:
        print(json.dumps(jsonable(result.to_json()), indent=1, allow_nan=False))
    else:
        print(result.summary())
        if args.figure:
            print(f"\nfigure: {args.figure}")
    return 1 if result.violations else 0


def main(argv=None) -> int:
    from stabtheory import __version__
    from stabtheory.errors import StabtheoryError
    from stabtheory.simulations import STUDIES

    parser = argparse.ArgumentParser(prog="stabtheory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"stabtheory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check the theory against simulations and write a report")
    v.add_argument("--quick", action="store_true", help="reduced studies (under a minute)")
    v.add_argument(
        "--full",
        action="store_true",
        help="the full design of the studies that have one (stabilizers: the attention "
        "testbed's 10 draws, each with its own pre-training, x 64 paired seeds x every arm; "
        "sized for an accelerator, about 25 minutes on a 2-core CPU); the others run their "
        "default",
    )
    v.add_argument("--out", default="stabtheory-report", help="output directory")
    v.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing report and recompute every persisted chunk",
    )
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.add_argument(
        "--study",
        nargs="+",
        choices=(*STUDIES, "all"),
        default=[name for name, study in STUDIES.items() if study.default],
        help="studies to run: "
        + "; ".join(f"{name}: {study.description}" for name, study in STUDIES.items())
        + "; default: "
        + " ".join(name for name, study in STUDIES.items() if study.default),
    )
    draws = [
        f"{name} {study.spec().replicates} (--quick: {study.spec(quick=True).replicates})"
        for name, study in STUDIES.items()
        if hasattr(study.spec_type, "replicates")
    ]
    v.add_argument(
        "--replicates",
        type=int,
        default=None,
        help="independent data draws per configuration (default: the study's own: "
        + ", ".join(draws)
        + ")",
    )
    dist = v.add_argument_group("several processes (JAX multi-controller runtime)")
    dist.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    dist.add_argument("--num-processes", type=int, default=None, help="number of processes")
    dist.add_argument("--process-id", type=int, default=None, help="this process's index")
    c = sub.add_parser(
        "check",
        help="check every head theorem on your own features and labels",
        description="Check every head-tuning theorem on your data: one shared training of S "
        "and every S\\i, defaults chosen from the data so the theorems can apply (said in the "
        "output), a table in words, a figure with the trivial bound (docs/theory.md sections "
        "3 and 6).",
    )
    c.add_argument(
        "data",
        help="a .npz with arrays X and y, a features .npy (with --labels), or a .csv with a "
        "header row (label column: --label, default the last)",
    )
    c.add_argument("--labels", default=None, help="the labels .npy beside a features .npy")
    c.add_argument("--label", default=None, help="the label column of a .csv")
    c.add_argument("--loss", choices=("exponential", "logistic"), default=None)
    c.add_argument("--lr", type=float, default=None, help="GD step (default 1/R^2)")
    c.add_argument("--steps", type=int, default=1000, help="the last step t (default 1000)")
    c.add_argument("--bias", action="store_true", help="append a constant feature (intercept)")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.add_argument("--figure", default=None, help="write the bound-vs-measured figure here")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return _check(args)
        return _verify(args)
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command to resume", file=sys.stderr)
        return 130
    except StabtheoryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        log = _error_log(Path(getattr(args, "out", None) or tempfile.gettempdir()))
        print(
            f"internal error: {type(err).__name__}: {err} (traceback in {log}); please report it",
            file=sys.stderr,
        )
        return 3


def _error_log(out: Path) -> Path:
    """Write the current exception's traceback to ``out/error.log`` (a temporary file when
    ``out`` cannot take it) and return its path."""
    text = traceback.format_exc()
    try:
        path = out / "error.log"
        path.write_text(text)
    except OSError:
        fd, name = tempfile.mkstemp(prefix="stabtheory-error-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        path = Path(name)
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
