#!/usr/bin/env python3
"""Table 1: one variant's MPJPE per action, one model per action as in the paper, or one model
for all actions.

    python tools/table1.py --lmdb-prefix data/lmdb/synth-h36m [--actions Eating Walking | all]
        [--variant full] [--schedule paper] [--out DIR] [--gpus 0,1,2,3 | --slurm ...]

Each action's model trains on the dataset <prefix>-<action> (`make lmdb ACTIONS=<action>`;
`make table1` builds those missing) in <out>/<action>/, and is evaluated on that dataset's test
split; with --actions all a single model trains on <prefix> itself (the all-actions dataset) in
<out>/all/. The table takes each action's row from its model: MPJPE, P-MPJPE, the mean-pose
baseline and the paper's Table 1 beside them (<out>/table1.json, table1.csv,
figures/table1.png).

The runs are a list (<out>/runs.json), trained here one after another on the CPU, with --gpus
one per GPU at a time (a queue), or with --slurm as a Slurm job array with the table as a job
after it. The table is built from the runs that have finished; a MISSING line names each other
one, and the exit status is then 1. Running the command again resumes what was stopped and
leaves finished runs alone.

What it trains and writes: evaluation/table1.py; the queue: evaluation/queue.py; the Slurm
scripts: evaluation/slurm.py.
"""
import argparse
import sys
from pathlib import Path

from config import add_config_arguments, add_schedule_argument
from data_prep.h36m import ACTIONS
from evaluation.experiments import add_experiment_arguments, experiment_command
from evaluation.table1 import ALL_ACTIONS, table1_experiment
from prototxt.pose_net import VARIANTS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmdb-prefix", type=Path, required=True, metavar="PREFIX",
                        help="the datasets of `make lmdb`: PREFIX-<action> for each action's "
                             "model (e.g. data/lmdb/synth-h36m for data/lmdb/synth-h36m-Walking),"
                             " PREFIX itself for --actions all")
    parser.add_argument("--actions", nargs="+", default=list(ACTIONS), metavar="ACTION",
                        choices=[*ACTIONS, ALL_ACTIONS],
                        help="the actions, one model each (default: the 15 of Human3.6M), or "
                             "`all` for one model of all actions")
    parser.add_argument("--variant", default="full", choices=list(VARIANTS),
                        help="Table 2 variant (default: %(default)s, the paper's model)")
    add_schedule_argument(parser)
    parser.add_argument("--out", type=Path,
                        help="folder of the runs and the table (default: "
                             "runs/table1-<variant>-<schedule>, with -all for --actions all)")
    add_config_arguments(parser, "config overrides after the schedule's, the same for every "
                         "action's model")
    add_experiment_arguments(parser)
    args = parser.parse_args(argv)
    if ALL_ACTIONS in args.actions and len(args.actions) > 1:
        parser.error("--actions all stands alone: one model of all actions")
    everything = args.actions == [ALL_ACTIONS]
    out = args.out or Path("runs") / (f"table1-{args.variant}-{args.schedule}"
                                      + ("-all" if everything else ""))
    return experiment_command(parser, args, lambda cfg: table1_experiment(
        out, cfg, args.variant, args.lmdb_prefix, args.actions, args.schedule))


if __name__ == "__main__":
    sys.exit(main())
