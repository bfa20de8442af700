#!/usr/bin/env python3
"""One step of a run list (<out>/runs.json of `make table1` or `make ablation`): one run's
task, or the table of the runs that have finished.

    python tools/experiment.py task runs/ablation-ablation 3 [--gpus 0] [--quiet]
    python tools/experiment.py summary runs/ablation-ablation

task: the run at INDEX (0-based, the order of runs.json; a Slurm array task's id) trained to
its end, resuming from its newest snapshot (a finished run is left alone), then evaluated on
its test split unless its results are of its final weights already. The GPU queue and the
Slurm array tasks run this. Exit status: 0 when the run is done, 130 when it stopped early
(Ctrl-C, SIGINT: the same command resumes), 1 on an error, told in one line.

summary: the table (table1.json, table2.json, ... in <out>) from the runs that have finished,
and a MISSING line for each other run, saying where it stands (not started, at iteration N of
M, failed, ...). Exit status 1 when any run is missing. The Slurm job after the array runs it.
"""
import argparse
import sys
from pathlib import Path

from evaluation.evaluate import EvaluationError
from evaluation.experiments import report, summarize, train_and_evaluate
from evaluation.queue import QueueError, read_experiment, run_at
from evaluation.report import ReportError
from solver.caffe_cli import CaffeError, quiet_caffe_log
from solver.devices import DeviceError, parse_gpus
from solver.run_folder import RunError
from solver.training import command_status


def task(out, index, gpus, quiet):
    """Train and evaluate the run at `index` of the list in `out`; the line to print."""
    experiment = read_experiment(out)
    run = run_at(experiment, index)
    print(f"task: run {index} of {out}: {run.title}, in {run.folder}", flush=True)
    results = train_and_evaluate(run, gpus, quiet=quiet)
    return (f"task: {run.name}: MPJPE {results['mpjpe']['action_wise']:.1f} mm (action-wise) "
            f"on {results['frames']} {results['split']} frames; results in "
            f"{Path(run.folder) / 'results.json'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    one = steps.add_parser("task", help="train and evaluate one run of the list",
                           description="Train the run at INDEX to its end (resuming), then "
                                       "evaluate it on its test split.")
    one.add_argument("out", type=Path, metavar="OUT", help="the folder holding runs.json")
    one.add_argument("index", type=int, metavar="INDEX",
                     help="the run's index in runs.json, from 0 (a Slurm array task's id)")
    one.add_argument("--gpus", default="", metavar="IDS",
                     help="train on these GPUs (one id, or several: Caffe's NCCL) and evaluate "
                          "on the first; default: the CPU")
    one.add_argument("--quiet", action="store_true", help="no progress lines")
    table = steps.add_parser("summary", help="the table of the runs that have finished",
                             description="Build the table from the runs of the list that have "
                                         "finished; a MISSING line for each other one.")
    table.add_argument("out", type=Path, metavar="OUT", help="the folder holding runs.json")
    args = parser.parse_args(argv)
    quiet_caffe_log()

    def work():
        if args.step == "summary":
            return report(*summarize(args.out))
        print(task(args.out, args.index, parse_gpus(args.gpus), args.quiet))
        return 0

    return command_status(work, (CaffeError, DeviceError, EvaluationError, QueueError,
                                 ReportError, RunError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
