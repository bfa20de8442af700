#!/usr/bin/env python3
"""Train one Table 2 variant on the LMDBs of `make lmdb`, in a run folder of its own.

    .venv/bin/python tools/train.py --variant full --lmdb data/lmdb/synth-h36m \\
        --run runs/full [--schedule demo] [--set batch_size=32 ...]

The run folder gets everything the run used: config.json, the nets (train, train_late, test,
deploy), the two solvers of section 4 (stage 1 with lambda_2D = 0.1 up to the switch epoch,
stage 2 from stage 1's .solverstate with 0.01, to the end), logs/stage1.log, logs/stage2.log
and snapshots/. Rerunning the same command resumes an interrupted run from its last snapshot
and does nothing for a finished one.

Schedules (config.SCHEDULES): `paper` (section 4: batch 128, 28 epochs, lr halved every 4,
switch at 16) and `demo` (an assumption, for two CPU cores: the same network and losses with
fewer epochs, a smaller batch and shorter learning-rate steps).
"""
import argparse
import json
import re
import sys
from pathlib import Path

from config import SCHEDULES, schedule_config
from prototxt.pose_net import VARIANTS, make_net
from solver.pose_solver import make_solver
from tools.caffe_cli import CaffeError, run_caffe
from tools.train_stages import stage_summaries

def read_manifest(lmdb_dir):
    path = Path(lmdb_dir) / "manifest.json"
    if not path.exists():
        raise CaffeError(f"{path} is missing: build the LMDBs with `make lmdb`")
    return json.loads(path.read_text())


def write_run(run, cfg, variant, lmdb_dir, manifest):
    """Write nets, solvers and config into the run folder; returns the two solver paths."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "snapshots").mkdir(exist_ok=True)
    (run / "logs").mkdir(exist_ok=True)
    data = str(Path(lmdb_dir).resolve())
    nets = {"train": make_net(cfg, variant, "train", data=data),
            "train_late": make_net(cfg, variant, "train", lambda_2d=cfg.lambda_2d_late, data=data),
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
         "config": cfg.to_dict()}, indent=2) + "\n")
    return solvers


def latest_state(run, below=None):
    """(iteration, path) of the newest .solverstate in the run (before `below`), or None."""
    states = []
    for path in (run / "snapshots").glob("iter_iter_*.solverstate"):
        iteration = int(re.search(r"_iter_(\d+)\.solverstate$", path.name).group(1))
        if below is None or iteration <= below:
            states.append((iteration, path))
    return max(states) if states else None


def run_stage(stage, solver_path, solver, run, start_state):
    """Run one stage with `caffe train`, from start_state if given; appends to its log."""
    args = ["train", f"-solver={solver_path}"]
    if start_state is not None:
        args.append(f"-snapshot={start_state}")
    log = run / "logs" / f"stage{stage}.log"
    part = run / "logs" / f"stage{stage}.part.log"
    run_caffe(args, part)
    with open(log, "a") as out:
        out.write(part.read_text())
    part.unlink()


def train(run, cfg, variant, lmdb_dir):
    manifest = read_manifest(lmdb_dir)
    (path1, solver1), (path2, solver2) = write_run(run, cfg, variant, lmdb_dir, manifest)
    done = latest_state(run)
    if done and done[0] >= solver2.max_iter:
        print(f"train: {run} already finished at iteration {done[0]}")
        return
    stage1 = latest_state(run, below=solver1.max_iter)
    if not stage1 or stage1[0] < solver1.max_iter:
        print(f"train: stage 1 (lambda_2D {cfg.lambda_2d}) to iteration {solver1.max_iter}"
              + (f", resuming from {stage1[0]}" if stage1 else ""))
        run_stage(1, path1, solver1, run, stage1[1] if stage1 else None)
    start = latest_state(run)
    print(f"train: stage 2 (lambda_2D {cfg.lambda_2d_late}) from iteration {start[0]} to "
          f"{solver2.max_iter}")
    run_stage(2, path2, solver2, run, start[1])


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
    args = parser.parse_args(argv)
    run = args.run or Path("runs") / f"{args.variant}-{args.schedule}"
    try:
        cfg = schedule_config(args.schedule, args.config, args.set)
    except ValueError as err:
        parser.error(str(err))
    try:
        train(run, cfg, args.variant, args.lmdb)
    except CaffeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in stage_summaries(run / "logs"):
        print(f"train: {line}")
    print(f"train: run folder {run} (deploy.prototxt, snapshots/, logs/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
