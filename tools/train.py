#!/usr/bin/env python3
"""Train one Table 2 variant on the LMDBs of `make lmdb`, in a run folder of its own.

    .venv/bin/python tools/train.py --variant full --lmdb data/lmdb/synth-h36m \\
        --run runs/full [--schedule demo] [--set batch_size=32 ...] [--gpus 0 | 0,1,2,3]

The run folder gets everything the run used: config.json, the nets (train, train_late, test,
deploy), the two solvers of section 4 (stage 1 with lambda_2D = 0.1 up to the switch epoch,
stage 2 from stage 1's .solverstate with 0.01, to the end), logs/stage1.log, logs/stage2.log
and snapshots/. Rerunning the same command resumes an interrupted run from its last snapshot
and does nothing for a finished one.

Schedules (config.SCHEDULES): `paper` (section 4: batch 128, 28 epochs, lr halved every 4,
switch at 16) and `demo` (an assumption, for two CPU cores: the same network and losses with
fewer epochs, a smaller batch and shorter learning-rate steps).

Devices (--gpus): none, the CPU; one id, `caffe train -gpu N`; several, one process per GPU
with Caffe's NCCL (solver/training.py). batch_size is the batch of one update on any number of
GPUs: each of N GPUs runs batch_size / N images and the update averages their gradients. A
rerun resumes on whatever devices it is given.
"""
import argparse
import json
import re
import sys
from pathlib import Path

from config import SCHEDULES, schedule_config
from prototxt.pose_net import VARIANTS, gpu_batch, make_net
from solver.devices import DeviceError, check_gpus, describe, parse_gpus
from solver.pose_solver import make_solver
from solver.training import rank_log, run_stage as run_solver_stage
from solver.caffe_cli import CaffeError
from tools.train_stages import stage_summaries

def read_manifest(lmdb_dir):
    path = Path(lmdb_dir) / "manifest.json"
    if not path.exists():
        raise CaffeError(f"{path} is missing: build the LMDBs with `make lmdb`")
    return json.loads(path.read_text())


def write_run(run, cfg, variant, lmdb_dir, manifest, gpus=()):
    """Write nets, solvers and config into the run folder; returns the two solver paths."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "snapshots").mkdir(exist_ok=True)
    (run / "logs").mkdir(exist_ok=True)
    data = str(Path(lmdb_dir).resolve())
    share = max(1, len(gpus))   # the train nets' batch is split over the GPUs
    nets = {"train": make_net(cfg, variant, "train", data=data, gpus=share),
            "train_late": make_net(cfg, variant, "train", lambda_2d=cfg.lambda_2d_late, data=data,
                                   gpus=share),
            "test": make_net(cfg, variant, "test", data=data),
            "deploy": make_net(cfg, variant, "deploy")}
    for name, spec in nets.items():
        (run / f"{name}.prototxt").write_text(str(spec.to_proto()))
    train_size = manifest["splits"]["train"]["count"]
    test_size = manifest["splits"]["test"]["count"]
    solvers = []
    for stage, net in ((1, "train"), (2, "train_late")):
        solver = make_solver(cfg, run / f"{net}.prototxt", run / "snapshots" / "iter", train_size,
                             stage, test_net=run / "test.prototxt", test_size=test_size)
        path = run / f"solver_stage{stage}.prototxt"
        path.write_text(str(solver))
        solvers.append((path, solver))
    (run / "config.json").write_text(json.dumps(
        {"variant": variant, "lmdb": data, "train_size": train_size, "test_size": test_size,
         "gpus": list(gpus), "config": cfg.to_dict()}, indent=2) + "\n")
    return solvers


def latest_state(run, below=None):
    """(iteration, path) of the newest .solverstate in the run (before `below`), or None."""
    states = []
    for path in (run / "snapshots").glob("iter_iter_*.solverstate"):
        iteration = int(re.search(r"_iter_(\d+)\.solverstate$", path.name).group(1))
        if below is None or iteration <= below:
            states.append((iteration, path))
    return max(states) if states else None


def run_stage(stage, solver_path, run, start_state, gpus=()):
    """Run one stage on gpus (() = the CPU), from start_state if given; appends to its logs
    (logs/stage<k>.log, and logs/stage<k>.rank<r>.log of the other ranks on several GPUs)."""
    log = run / "logs" / f"stage{stage}.log"
    part = run / "logs" / f"stage{stage}.part.log"
    try:
        run_solver_stage(solver_path, part, gpus, start_state)
    finally:
        for rank in range(max(1, len(gpus))):
            if rank_log(part, rank).exists():
                with open(rank_log(log, rank), "a") as out:
                    out.write(rank_log(part, rank).read_text())
                rank_log(part, rank).unlink()


def train(run, cfg, variant, lmdb_dir, gpus=()):
    check_gpus(gpus)
    gpu_batch(cfg, max(1, len(gpus)))   # before anything is written
    manifest = read_manifest(lmdb_dir)
    (path1, solver1), (path2, solver2) = write_run(run, cfg, variant, lmdb_dir, manifest, gpus)
    done = latest_state(run)
    if done and done[0] >= solver2.max_iter:
        print(f"train: {run} already finished at iteration {done[0]}")
        return
    stage1 = latest_state(run, below=solver1.max_iter)
    if not stage1 or stage1[0] < solver1.max_iter:
        print(f"train: stage 1 (lambda_2D {cfg.lambda_2d}) to iteration {solver1.max_iter} on "
              f"{describe(gpus)}" + (f", resuming from {stage1[0]}" if stage1 else ""),
              flush=True)
        run_stage(1, path1, run, stage1[1] if stage1 else None, gpus)
    start = latest_state(run)
    print(f"train: stage 2 (lambda_2D {cfg.lambda_2d_late}) from iteration {start[0]} to "
          f"{solver2.max_iter} on {describe(gpus)}", flush=True)
    run_stage(2, path2, run, start[1], gpus)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="full", choices=list(VARIANTS),
                        help="Table 2 variant (default: %(default)s)")
    parser.add_argument("--lmdb", type=Path, default=Path("data/lmdb/synth-h36m"),
                        help="folder of `make lmdb` (default: %(default)s)")
    parser.add_argument("--run", type=Path, help="run folder (default: runs/<variant>-<schedule>)")
    parser.add_argument("--schedule", choices=list(SCHEDULES), default="paper",
                        help="paper (section 4) or demo (short, for two CPU cores)")
    parser.add_argument("--config", type=Path, help="JSON file of config overrides")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides after the schedule's, e.g. batch_size=16")
    parser.add_argument("--gpus", default="", metavar="IDS",
                        help="GPU ids: 0 for one GPU, 0,1,2,3 for several (Caffe's NCCL; the "
                             "update's batch_size is split over them); default: the CPU")
    args = parser.parse_args(argv)
    run = args.run or Path("runs") / f"{args.variant}-{args.schedule}"
    try:
        cfg = schedule_config(args.schedule, args.config, args.set)
        gpus = parse_gpus(args.gpus)
    except ValueError as err:
        parser.error(str(err))
    try:
        train(run, cfg, args.variant, args.lmdb, gpus)
    except (CaffeError, DeviceError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in stage_summaries(run / "logs"):
        print(f"train: {line}")
    print(f"train: run folder {run} (deploy.prototxt, snapshots/, logs/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
