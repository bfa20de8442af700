#!/usr/bin/env python3
"""Table 2: train the four variants identically, evaluate each and print the comparison.

    python tools/ablation.py --lmdb data/lmdb/synth-h36m-Discussion-...-Walking \
        --schedule demo --out runs/ablation-demo --seeds 3 [--gpus 0,1,2,3 | --slurm ...]

With --seeds N every variant trains N times, into <out>/seed<s>/<variant>/; seed index s gives
every variant random_seed R + s and data_seed D + s (R and D: the configuration's), so that the
variants of one seed see the same batches; printed: the mean over the seeds, 95% intervals and
the differences paired by seed.

The ablation is a list of runs (<out>/runs.json), trained here one after another on the CPU,
with --gpus one per GPU at a time (a queue, each run's output on lines of its own), or with
--slurm as a Slurm job array with the table as a job after it. The table is built from the
runs that have finished; a MISSING line names each other one, and the exit status is then 1.
Running the command again resumes what was stopped and leaves finished runs alone.

What it trains, writes and draws: evaluation/experiments.py; the queue: evaluation/queue.py;
the Slurm scripts: evaluation/slurm.py.
"""
import argparse
import sys
from pathlib import Path

from config import ConfigError, add_config_arguments, add_schedule_argument, whole_number
from evaluation.experiments import (ablation_experiment, add_experiment_arguments,
                                    experiment_command, seed_configs)
from prototxt.pose_net import VARIANTS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmdb", type=Path, required=True,
                        help="dataset folder of `make lmdb` (for Table 2: its six actions)")
    add_schedule_argument(parser, default="ablation")
    parser.add_argument("--out", type=Path,
                        help="ablation folder (default: runs/ablation-<schedule>)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="variants to train (default: all four)")
    parser.add_argument("--seeds", type=whole_number(1, "seed"), default=1, metavar="N",
                        help="train every variant N times, seed index s with random_seed and "
                             "data_seed advanced by s, and report means, 95%% intervals and "
                             "paired differences over them (default: %(default)s)")
    add_config_arguments(parser, "config overrides after the schedule's, the same for every "
                         "variant")
    add_experiment_arguments(parser)
    args = parser.parse_args(argv)
    out = args.out or Path("runs") / f"ablation-{args.schedule}"
    variants = list(dict.fromkeys(args.variants))

    def make_experiment(cfg):
        try:
            seed_configs(cfg, args.seeds)   # every seed's config valid before any training
        except ConfigError as err:
            parser.error(f"--seeds {args.seeds}: {err}")
        return ablation_experiment(out, cfg, args.lmdb, variants, args.seeds, args.schedule)

    return experiment_command(parser, args, make_experiment)


if __name__ == "__main__":
    sys.exit(main())
