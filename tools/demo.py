#!/usr/bin/env python3
"""The main job on a built dataset: train with the demo schedule, evaluate, draw the figures.

    python tools/demo.py --lmdb data/lmdb/synth-h36m --run runs/demo [--gpus 0] [--quiet]

`make demo` runs it after `make setup`, `make synth` and `make lmdb`. It trains the paper's
model with the demo schedule (config.SCHEDULES["demo"]: the paper's network and losses; fewer
epochs, a smaller batch, shorter learning-rate steps) into --run, resuming after an
interruption (a finished run is kept); evaluates it on the test split (Table 1 layout,
results.json, results.csv) and, with --real-lmdb, on a real-motion test set (results in
<run>/eval-on-<its folder name>/); draws Fig. 4, Fig. 5 and the MPJPE bars into
<run>/figures/ (see evaluation/experiments.py). It ends with the tables, the ratios of the
model's MPJPE to the mean-pose baseline and the paths.
"""
import argparse
import sys
from pathlib import Path

from config import ConfigError, add_config_arguments, schedule_config
from evaluation.evaluate import EvaluationError
from evaluation.experiments import demo
from evaluation.report import ReportError
from prototxt.pose_net import VARIANTS
from solver.caffe_cli import CaffeError, quiet_caffe_log
from solver.devices import DeviceError, parse_gpus
from solver.run_folder import RunError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmdb", type=Path, default=Path("data/lmdb/synth-h36m"),
                        help="dataset folder of `make lmdb` (default: %(default)s)")
    parser.add_argument("--run", type=Path, default=Path("runs/demo"),
                        help="run folder (default: %(default)s)")
    parser.add_argument("--real-lmdb", type=Path, metavar="DIR",
                        help="a real-motion test set (`make real-motion`: CMU motion capture "
                             "rendered onto the held-out subjects) to evaluate the model on "
                             "too (default: none)")
    parser.add_argument("--variant", default="full", choices=list(VARIANTS),
                        help="Table 2 variant (default: %(default)s, the paper's model)")
    add_config_arguments(parser, "config overrides after the demo schedule's",
                         config_file=False)
    parser.add_argument("--gpus", default="", metavar="IDS",
                        help="train on these GPUs (e.g. 0) and evaluate on the first; "
                             "default: the CPU")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines for training and evaluation")
    args = parser.parse_args(argv)
    try:
        cfg = schedule_config("demo", overrides=args.set)
        gpus = parse_gpus(args.gpus)
    except (ConfigError, DeviceError) as err:
        parser.error(str(err))
    quiet_caffe_log()
    try:
        print("\n".join(demo(args.run, cfg, args.variant, args.lmdb, gpus, args.quiet,
                              real_lmdb=args.real_lmdb)))
    except (CaffeError, DeviceError, EvaluationError, ReportError, RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
