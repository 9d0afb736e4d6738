"""`python -m bench [sweep] [diagnose] [diagnose-hostprocess] [ack] [hostile] [--sizes …]`:
prints one JSON object per benchmark (per fleet size for the sweep) on stdout."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench import ack, diagnose, hostile, sweep
from bench.harness import emit

BENCHMARKS = ("sweep", "diagnose", "diagnose-hostprocess", "ack", "hostile")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmarks", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in sweep.SIZES),
        help="fleet sizes (Windows nodes) for the sweep, comma-separated",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.benchmarks) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; one of {', '.join(BENCHMARKS)}")
    chosen = args.benchmarks or list(BENCHMARKS)
    sizes = tuple(int(size) for size in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="winpod-bench-") as directory:
        workdir = Path(directory)
        if "sweep" in chosen:
            for figures in sweep.run(workdir, sizes):
                emit(figures)
        if "diagnose" in chosen:
            emit(diagnose.run(workdir))
        if "diagnose-hostprocess" in chosen:
            emit(diagnose.run_hostprocess(workdir))
        if "ack" in chosen:
            emit(ack.run(workdir))
        if "hostile" in chosen:
            emit(hostile.run(workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
