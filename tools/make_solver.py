#!/usr/bin/env python3
"""`make solver`: a run folder for a dataset, and solver/h36m.prototxt pointing at its solver.

    python tools/make_solver.py --lmdb data/lmdb/synth-h36m [--variant full] [--schedule paper]
        [--run runs/full-paper] [--gpus 0,1] [--set key=value ...] [--force]

Then, from the repository's root with the venv activated:

    caffe train -solver solver/h36m.prototxt      # the whole schedule (-gpu 0 for a GPU)
    python tools/evaluate.py                      # that run's latest snapshot on the test split

The run folder is the one tools/train.py (`make train`) writes and resumes (solver/run_folder.py).
"""
import argparse
import sys
from pathlib import Path

from config import ConfigError, add_config_arguments, add_schedule_argument, schedule_config
from prototxt.pose_net import VARIANTS
from solver.devices import DeviceError, parse_gpus
from solver.run_folder import SOLVER_LINK, RunError, prepare_solver


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmdb", type=Path, required=True, help="dataset folder of `make lmdb`")
    parser.add_argument("--variant", default="full", choices=list(VARIANTS),
                        help="Table 2 variant (default: %(default)s)")
    add_schedule_argument(parser)
    parser.add_argument("--run", type=Path, help="run folder (default: runs/<variant>-<schedule>)")
    parser.add_argument("--link", type=Path, default=SOLVER_LINK,
                        help="the link to the run's solver (default: %(default)s)")
    add_config_arguments(parser, "config overrides after the schedule's, e.g. batch_size=32")
    parser.add_argument("--gpus", default="", metavar="IDS",
                        help="GPUs the train net is for (e.g. 0,1: each reads batch_size / 2 "
                             "images; `make train GPUS=0,1` runs them); default: the CPU")
    parser.add_argument("--force", action="store_true",
                        help="replace a run folder that holds a run of another configuration")
    args = parser.parse_args(argv)
    run = args.run or Path("runs") / f"{args.variant}-{args.schedule}"
    try:
        cfg = schedule_config(args.schedule, args.config, args.set)
        gpus = parse_gpus(args.gpus)
        print(prepare_solver(run, cfg, args.variant, args.lmdb, gpus, args.link, args.force))
    except (ConfigError, DeviceError, RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
