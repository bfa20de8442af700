#!/usr/bin/env python3
"""Speed of the paper's network on this machine: Caffe's training step against PyTorch's and
against the machine's limit, before and after the project's speed changes.

    .venv/bin/python tools/bench.py [--batch 32] [--rounds 5] [--steps 2] [--out runs/bench/speed.json]

What is measured, and how, is benchmarks/speed.py's docstring. Writes a JSON report and
prints a table with greppable lines. The same command with the hidden --serve-caffe flags is
the Caffe server process the benchmark starts for each build.
"""
import argparse
import os
import sys
from pathlib import Path


def main(argv=None):
    os.environ.setdefault("GLOG_minloglevel", "2")   # before pycaffe starts glog
    from benchmarks import speed
    from prototxt.pose_net import VARIANTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32,
                        help="images per training step (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds per figure (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=2,
                        help="timed steps per framework and round (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="PyTorch threads (default: the number of cores)")
    parser.add_argument("--deploy-batch", type=int, default=16,
                        help="images per deploy forward pass (default: %(default)s)")
    parser.add_argument("--memory-batch", type=int, default=128,
                        help="batch of the peak-memory step (default: the paper's 128)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="Table 2 variants to time (default: all four)")
    parser.add_argument("--skip-before", action="store_true",
                        help="do not time (or build) Caffe without the speed changes")
    parser.add_argument("--skip-torch", action="store_true", help="do not time PyTorch")
    parser.add_argument("--torch-wheels", type=Path, default=None, metavar="DIR",
                        help="a folder of wheels that pip may install the PyTorch of "
                             "benchmarks/requirements.txt from, before the package index (a "
                             "cache; default: none)")
    parser.add_argument("--out", type=Path, default=speed.REPO / "runs/bench/speed.json",
                        help="JSON report (default: runs/bench/speed.json)")
    # the server side, started by the bench itself
    parser.add_argument("--serve-caffe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="full", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--peak-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.batch, args.rounds, args.steps, args.threads, args.deploy_batch,
           args.memory_batch) < 1:
        parser.error("--batch, --rounds, --steps, --threads, --deploy-batch and "
                     "--memory-batch must be positive")
    return speed.caffe_server(args) if args.serve_caffe else speed.run(args)


if __name__ == "__main__":
    sys.exit(main())
