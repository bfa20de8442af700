#!/usr/bin/env python3
"""Figures of evaluated runs: loss curves (Fig. 4), qualitative skeletons (Fig. 5), MPJPE bars.

    python tools/report.py --run runs/full-demo [--out runs/full-demo/figures]
    python tools/report.py --run runs/ablation/multi-reg --label "without 2D-cls" \
        --run runs/ablation/full --label "with 2D-cls" --out runs/ablation/figures

Each run is a run folder that tools/evaluate.py has evaluated; the figures are described in
evaluation/report.py.
"""
import argparse
import sys
from pathlib import Path

from evaluation.report import ReportError, draw_report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, action="append", required=True,
                        help="an evaluated run folder (repeat for several runs)")
    parser.add_argument("--label", action="append", default=[],
                        help="legend label of each --run, in order (default: the folder name)")
    parser.add_argument("--out", type=Path, help="folder of the PNGs (default: <first run>/figures)")
    parser.add_argument("--examples", type=int, default=6,
                        help="test frames in Fig. 5 (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.run):
        parser.error(f"{len(args.label)} --label for {len(args.run)} --run")
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    labels = args.label or [run.name for run in args.run]
    if len(set(labels)) != len(labels):
        parser.error(f"labels must differ, got {labels}")
    try:
        paths = draw_report(dict(zip(labels, args.run)), args.out or args.run[0] / "figures",
                            args.examples)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"report: {name} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
