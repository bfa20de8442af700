#!/usr/bin/env python3
"""Check the GPU path on a machine with a GPU: correctness first, then the speed goals.

    .venv/bin/python tools/gpu_check.py [--gpu 0] [--lmdb data/lmdb/synth-h36m] [--out runs/gpu-check]

`make gpu-check` runs it with the GPU build (make setup CAFFE_DEVICE=gpu) and the LMDBs of
`make lmdb`; the parts (agreement, gradients, kernels, demo, speed, layers, data), their
goals and the exit status are benchmarks/gpu_check.py's docstring. Writes <out>/report.json
and prints lines starting with GPUCHECK. Without a GPU it says so and exits 1.
"""
import argparse
import sys
from pathlib import Path

from benchmarks import gpu_check


def parts_list(text):
    """--parts: known part names, comma-separated."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in parts if part not in gpu_check.PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f"unknown part {', '.join(unknown) or '(none given)'}; the parts are "
            + ", ".join(gpu_check.PARTS))
    return parts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", type=int, default=0, help="GPU to check (default: 0)")
    parser.add_argument("--lmdb", type=Path, default=gpu_check.REPO / "data/lmdb/synth-h36m",
                        help="LMDBs for the demo and the data rate (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=gpu_check.REPO / "runs/gpu-check",
                        help="report.json and the demo run go here (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=128,
                        help="batch of the agreement, speed and data parts (default: the "
                             "paper's %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved Caffe/PyTorch rounds per variant (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=10,
                        help="timed steps per round (default: %(default)s)")
    parser.add_argument("--data-seconds", type=float, default=10.0,
                        help="seconds each data-layer rate is measured (default: %(default)s)")
    parser.add_argument("--parts", type=parts_list, default=list(gpu_check.PARTS),
                        metavar="A,B", help="the parts to run, comma-separated (default: all: "
                        + ",".join(gpu_check.PARTS) + "); a report of some parts is written "
                        "as report-<parts>.json beside report.json")
    parser.add_argument("--torch-python", help="interpreter with PyTorch for the reference "
                        "(default: .venv-bench's, else python3)")
    # the parts that run in a process of their own, started by the check itself
    parser.add_argument("--part", choices=["agreement", "caffe-steps"], help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="full", help=argparse.SUPPRESS)
    parser.add_argument("--shared", type=Path, help=argparse.SUPPRESS)
    return gpu_check.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
