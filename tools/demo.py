#!/usr/bin/env python3
"""The main job on a built LMDB: train with the demo schedule, evaluate, draw the figures.

    .venv/bin/python tools/demo.py --lmdb data/lmdb/synth-h36m --run runs/demo [--gpus 0]

`make demo` runs it after `make setup`, `make synth` and `make lmdb`. Steps:
  1. tools/train.py with the demo schedule (config.SCHEDULES["demo"]: the paper's network and
     losses; fewer epochs, a smaller batch, shorter learning-rate steps) into --run; rerun
     after an interruption, it resumes from the last snapshot (a finished run is kept);
  2. tools/evaluate.py on the test split: Table 1 layout, results.json, results.csv;
  3. tools/report.py: Fig. 4 (loss curves), Fig. 5 (test crops, ground truth, prediction)
     and the MPJPE bars in <run>/figures/.
Ends with the table, the ratio of the model's MPJPE to the mean-pose baseline and the paths.
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")   # before pycaffe starts glog: no net dumps

from config import schedule_config  # noqa: E402
from prototxt.pose_net import VARIANTS  # noqa: E402
from solver.devices import DeviceError, parse_gpus  # noqa: E402
from solver.caffe_cli import CaffeError  # noqa: E402
from tools.evaluate import EvaluationError, evaluate, latest_weights, write_results  # noqa: E402
from evaluation.metrics import format_table1  # noqa: E402
from tools.report import ReportError, draw_report  # noqa: E402
from tools.train import train  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmdb", type=Path, default=Path("data/lmdb/synth-h36m"),
                        help="folder of `make lmdb` (default: %(default)s)")
    parser.add_argument("--run", type=Path, default=Path("runs/demo"),
                        help="run folder (default: %(default)s)")
    parser.add_argument("--variant", default="full", choices=list(VARIANTS),
                        help="Table 2 variant (default: %(default)s, the paper's model)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides after the demo schedule's")
    parser.add_argument("--gpus", default="", metavar="IDS",
                        help="train on these GPUs (e.g. 0) and evaluate on the first; "
                             "default: the CPU")
    args = parser.parse_args(argv)
    try:
        cfg = schedule_config("demo", overrides=args.set)
        gpus = parse_gpus(args.gpus)
    except ValueError as err:
        parser.error(str(err))
    start = time.monotonic()
    try:
        train(args.run, cfg, args.variant, args.lmdb, gpus)
        trained = time.monotonic()
        print(f"demo: trained in {(trained - start) / 60:.1f} min; evaluating", flush=True)
        results, poses = evaluate(args.run, latest_weights(args.run), args.lmdb,
                                  gpu=gpus[0] if gpus else None)
        write_results(results, args.run, poses)
        evaluated = time.monotonic()
        print(f"demo: evaluated in {(evaluated - trained) / 60:.1f} min; drawing", flush=True)
        figures = draw_report({f"{args.variant} (demo)": args.run}, args.run / "figures")
    except (CaffeError, DeviceError, EvaluationError, ReportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_table1(results["mpjpe"], results["mean_pose_mpjpe"]))
    print("(paper column: the paper's results on real Human3.6M, not this run's)")
    ours, floor = results["mpjpe"]["frame_weighted"], results["mean_pose_mpjpe"]["frame_weighted"]
    print(f"demo: MPJPE {ours:.1f} mm = {100 * ours / floor:.0f}% of the mean-pose baseline "
          f"({floor:.1f} mm); P-MPJPE {results['p_mpjpe']['frame_weighted']:.1f} mm; "
          f"{results['frames']} test frames")
    print(f"demo: results {args.run / 'results.json'} and results.csv")
    for name, path in figures.items():
        print(f"demo: {name} {path}")
    print(f"demo: {(time.monotonic() - start) / 60:.1f} min after the LMDBs were built")
    return 0


if __name__ == "__main__":
    sys.exit(main())
