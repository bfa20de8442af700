#!/usr/bin/env python3
"""Table 2: train the four variants identically, evaluate each and print the comparison.

    python tools/ablation.py --lmdb data/lmdb/synth-h36m-Discussion-...-Walking \
        --schedule demo --out runs/ablation-demo --seeds 3

With --seeds N every variant trains N times, into <out>/seed<s>/<variant>/; seed index s gives
every variant random_seed R + s and data_seed D + s (R and D: the configuration's), so that the
variants of one seed see the same batches; printed: the mean over the seeds, 95% intervals and
the differences paired by seed.

What it trains, writes and draws: evaluation/experiments.py.
"""
import argparse
import sys
from pathlib import Path

from config import SCHEDULES, ConfigError, add_config_arguments, schedule_config
from evaluation.evaluate import EvaluationError
from evaluation.experiments import ablation, seed_configs
from evaluation.report import ReportError
from prototxt.pose_net import VARIANTS
from solver.caffe_cli import CaffeError, quiet_caffe_log
from solver.run_folder import RunError


def seed_count(text):
    """--seeds: a whole number of at least 1."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"need at least 1 seed, got {count}")
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmdb", type=Path, required=True,
                        help="dataset folder of `make lmdb` (for Table 2: its six actions)")
    parser.add_argument("--schedule", default="demo", choices=list(SCHEDULES),
                        help="paper (section 4) or demo (short, two CPU cores); "
                             "default: %(default)s")
    parser.add_argument("--out", type=Path,
                        help="ablation folder (default: runs/ablation-<schedule>)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="variants to train (default: all four)")
    parser.add_argument("--seeds", type=seed_count, default=1, metavar="N",
                        help="train every variant N times, seed index s with random_seed and "
                             "data_seed advanced by s, and report means, 95%% intervals and "
                             "paired differences over them (default: %(default)s)")
    add_config_arguments(parser, "config overrides after the schedule's, the same for every "
                         "variant")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    out = args.out or Path("runs") / f"ablation-{args.schedule}"
    try:
        cfg = schedule_config(args.schedule, args.config, args.set)
    except ConfigError as err:
        parser.error(str(err))
    try:
        seed_configs(cfg, args.seeds)   # every seed's config valid before any training
    except ConfigError as err:
        parser.error(f"--seeds {args.seeds}: {err}")
    quiet_caffe_log()
    try:
        lines = ablation(out, cfg, args.lmdb, list(dict.fromkeys(args.variants)), args.quiet,
                         seeds=args.seeds)
    except (CaffeError, EvaluationError, ReportError, RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
