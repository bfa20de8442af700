#!/usr/bin/env python3
"""Smoke run of the Caffe toolchain: generate a tiny net and solver, `caffe train` it for a few
dozen iterations, `caffe time` it, and report the loss curve and the time per iteration.

    .venv/bin/python tools/smoke_train.py --out runs/smoke [--force]

Writes net.prototxt, solver.prototxt, train.log, time.log, a snapshot and summary.json into the
output folder (built in a temporary folder beside it and renamed when complete); the run is
solver/smoke.py.
"""
import argparse
import sys
from pathlib import Path

from solver.smoke import smoke_train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/smoke"),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=40,
                        help="training iterations (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="replace the output folder if it exists")
    args = parser.parse_args(argv)
    if args.iterations < 10:
        parser.error(f"--iterations must be at least 10 to see the loss fall, got {args.iterations}")
    if args.batch < 1:
        parser.error(f"--batch must be positive, got {args.batch}")
    return smoke_train(args.out, args.iterations, args.batch, force=args.force)


if __name__ == "__main__":
    sys.exit(main())
