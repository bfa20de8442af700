#!/usr/bin/env python3
"""Data-pipeline benchmark (`make bench-data`): the LMDB build against video decoding (on the
default tree and at the real frame size), the data layer's loader against training, the
synthetic motion; what and how in benchmarks/data_speed.py. Writes runs/bench/data.json and
prints a table.
"""
import argparse
import multiprocessing
import sys
from pathlib import Path

from benchmarks.data_speed import data_benchmark, full_size_tree, report_rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/synth-h36m"),
                        help="raw dataset (default: %(default)s)")
    parser.add_argument("--lmdb", type=Path, default=Path("data/lmdb/synth-h36m"),
                        help="built LMDBs for the loader (default: %(default)s)")
    parser.add_argument("--subjects", nargs="+", default=["S1", "S9"],
                        help="subset for the build benchmark: first = train (default: S1 S9)")
    parser.add_argument("--actions", nargs="+", default=["Walking", "Sitting", "Phoning"],
                        help="subset for the build benchmark (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved decode and build rounds (default: %(default)s)")
    parser.add_argument("--loader-seconds", type=float, default=8.0,
                        help="seconds of each loader measurement (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=Path("prototxt/full/train.prototxt"),
                        help="training net for `caffe time` (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=2, help="caffe time iterations")
    parser.add_argument("--workers", type=int, default=multiprocessing.cpu_count(),
                        help="LMDB build and decoding processes (default: number of cores)")
    parser.add_argument("--full-size-root", type=Path,
                        default=Path("data/synth-h36m-full-size"),
                        help="the subset at the real frame size (1000x1000) for the build's "
                             "second figure, written there on first use (default: %(default)s)")
    parser.add_argument("--no-full-size", action="store_true",
                        help="measure the build on --root only")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/data.json"),
                        help="the JSON report (default: %(default)s)")
    args = parser.parse_args(argv)
    for path, fix in ((args.root, "make synth"), (args.lmdb, "make lmdb")):
        if not path.exists():
            parser.error(f"{path} not found: run `{fix}` first")
    full_size = None
    if not args.no_full_size:
        try:
            full_size = full_size_tree(args.full_size_root, args.subjects, args.actions)
        except ValueError as err:
            parser.error(str(err))
    report = data_benchmark(args.root, args.lmdb, args.subjects, args.actions, args.rounds,
                            args.loader_seconds, args.model, args.iterations, args.workers,
                            args.out, full_size)
    for name, value, note in report_rows(report):
        print(f"bench-data: {name:<56} {value:>16}  {note}")
    print(f"bench-data: report in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
