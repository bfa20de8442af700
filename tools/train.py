#!/usr/bin/env python3
"""Train one Table 2 variant on a dataset of `make lmdb`, in a run folder of its own.

    python tools/train.py --variant full --lmdb data/lmdb/synth-h36m --run runs/full-paper
        [--schedule demo] [--set batch_size=32 ...] [--gpus 0 | 0,1,2,3] [--quiet] [--force]

The run folder (solver/run_folder.py) gets the nets, the solver of section 4 for the whole
schedule (the lambda_2D switch happens inside the net), config.json, logs/train.log and
snapshots/: the same files `make solver` writes for `caffe train -solver
solver/h36m.prototxt`. Rerunning the command resumes an interrupted run from its newest
snapshot and leaves a finished one alone; a run folder of another configuration is refused
(--force replaces it). A progress line follows Caffe's log (--quiet: none).

Exit status: 0 when the run reached its last iteration; 130 when it stopped early (Ctrl-C, or
SIGINT to `caffe train`, which snapshots the iteration it reached: the same command resumes);
1 on an error, told in one line.

Schedules (config.SCHEDULES): `paper` (section 4: batch 128, 28 epochs, lr halved every 4,
switch at 16), `demo` and `ablation` (assumptions, for two CPU cores: the same network and
losses with fewer epochs, a smaller batch and shorter learning-rate steps).

Devices (--gpus): none, the CPU; one id, `caffe train -gpu N`; several, one process per GPU
with Caffe's NCCL (solver/training.py). batch_size is the batch of one update on any number of
GPUs: each of N GPUs runs batch_size / N images and the update averages their gradients.
"""
import argparse
import sys
from pathlib import Path

from config import ConfigError, add_config_arguments, add_schedule_argument, schedule_config
from prototxt.pose_net import VARIANTS
from solver.caffe_cli import CaffeError
from solver.devices import DeviceError, parse_gpus
from solver.run_folder import RunError
from solver.training import command_status, train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="full", choices=list(VARIANTS),
                        help="Table 2 variant (default: %(default)s)")
    parser.add_argument("--lmdb", type=Path, default=Path("data/lmdb/synth-h36m"),
                        help="dataset folder of `make lmdb` (default: %(default)s)")
    parser.add_argument("--run", type=Path, help="run folder (default: runs/<variant>-<schedule>)")
    add_schedule_argument(parser)
    add_config_arguments(parser, "config overrides after the schedule's, e.g. batch_size=16")
    parser.add_argument("--gpus", default="", metavar="IDS",
                        help="GPU ids: 0 for one GPU, 0,1,2,3 for several (Caffe's NCCL; the "
                             "update's batch_size is split over them); default: the CPU")
    parser.add_argument("--force", action="store_true",
                        help="replace a run folder that holds a run of another configuration")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    run = args.run or Path("runs") / f"{args.variant}-{args.schedule}"
    try:
        cfg = schedule_config(args.schedule, args.config, args.set)
        gpus = parse_gpus(args.gpus)
    except (ConfigError, DeviceError) as err:
        parser.error(str(err))

    def work():
        train(run, cfg, args.variant, args.lmdb, gpus, force=args.force, quiet=args.quiet)

    return command_status(work, (CaffeError, DeviceError, RunError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
