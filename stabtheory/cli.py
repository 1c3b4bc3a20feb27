"""The ``stabtheory`` command.

``stabtheory verify [--quick] [--out DIR] [--force] [--study head finetune stabilizers|all]``
runs the head-tuning study and the full fine-tuning study (and, when asked, the stabilizers
study) on their embedded data (generated, and
scikit-learn's bundled digits), checks every applicable theorem per sample, judges the paper's
claims and writes ``report.json``, ``report.md`` and the figures into ``DIR``. It exits
with status 1 when a rigorous bound is exceeded beyond numerical tolerance, naming it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]


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


def _verify(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = Path(args.out)
    if (out / "report.json").exists() and not args.force:
        print(
            f"error: {out / 'report.json'} exists; pass --force to overwrite it or choose "
            "another --out.",
            file=sys.stderr,
        )
        return 2
    import stabtheory  # noqa: F401  (enables float64)
    from stabtheory.report import write_report
    from stabtheory.simulations.finetune import FineTuneStudySpec, run_finetune_study
    from stabtheory.simulations.head import HeadStudySpec, run_head_study

    studies = {"head", "finetune", "stabilizers"} if "all" in args.study else set(args.study)
    head = finetune = stabilizers = None
    if "head" in studies:
        spec = HeadStudySpec.quick() if args.quick else HeadStudySpec()
        head = run_head_study(spec, progress=None if args.no_progress else _Progress())
    if "finetune" in studies:
        ft_spec = FineTuneStudySpec.quick() if args.quick else FineTuneStudySpec()
        finetune = run_finetune_study(ft_spec, progress=None if args.no_progress else _Progress())
    if "stabilizers" in studies:
        from stabtheory.simulations.stabilizers import StabilizerStudySpec, run_stabilizer_study

        st_spec = StabilizerStudySpec.quick() if args.quick else StabilizerStudySpec()
        stabilizers = run_stabilizer_study(
            st_spec, progress=None if args.no_progress else _Progress()
        )
    report = write_report(
        head,
        out,
        runtime_s=time.perf_counter() - start,
        finetune=finetune,
        stabilizers=stabilizers,
    )
    applicable = [c for c in report["checks"] if c["applicable"]]
    print(
        f"{len(report['checks'])} checks ({len(applicable)} applicable), "
        f"{report['violations']} violations; report in {out}/report.md "
        f"({report['runtime_s']:.1f} s)"
    )
    for v in report["claims"]:
        print(f"  {v['id']:<16} {v['notion']:<14} {v['verdict']}")
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stabtheory", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check the theory against simulations and write a report")
    v.add_argument("--quick", action="store_true", help="a reduced study (about 30 s)")
    v.add_argument("--out", default="stabtheory-report", help="output directory")
    v.add_argument("--force", action="store_true", help="overwrite an existing report")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.add_argument(
        "--study",
        nargs="+",
        choices=("head", "finetune", "stabilizers", "all"),
        default=["head", "finetune"],
        help="studies to run: head tuning (THEORY.md section 3), full fine-tuning (section 2), "
        "the stabilizers MMR/MHLoss/SURT across seeds (section 4); default: head finetune",
    )
    args = parser.parse_args(argv)
    if args.command == "verify":
        return _verify(args)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
