#!/usr/bin/env python3
"""Run the two-stage lambda_2D schedule of section 4 with `caffe train`.

Stage 1 trains with solver/h36m.prototxt (lambda_2D = 0.1) up to its max_iter and snapshots;
stage 2 resumes from stage 1's last .solverstate with solver/h36m_stage2.prototxt, whose net
has the same layer names and lambda_2D = 0.01, and trains to the end. Each stage logs to
<log-dir>/stage<k>.log. --gpus runs both on one GPU or several (solver/training.py; for
several, write the solvers with `make solver GPUS=...` so that the nets split the batch).

    .venv/bin/python tools/train_stages.py [--stage1 solver/h36m.prototxt]
        [--stage2 solver/h36m_stage2.prototxt] [--log-dir runs/h36m] [--gpus 0,1]
"""
import argparse
import sys
from pathlib import Path

from google.protobuf import text_format

from caffe.proto import caffe_pb2
from solver.devices import DeviceError, parse_gpus
from solver.training import run_stage
from solver.caffe_cli import CaffeError, train_losses


def read_solver(path):
    solver = caffe_pb2.SolverParameter()
    try:
        text_format.Merge(Path(path).read_text(), solver)
    except (OSError, text_format.ParseError) as err:
        raise CaffeError(f"cannot read solver {path}: {err}") from None
    return solver


def final_solverstate(solver):
    """The .solverstate Caffe writes when a solver with this prefix finishes."""
    return Path(f"{solver.snapshot_prefix}_iter_{solver.max_iter}.solverstate")


def train_two_stages(stage1, stage2, log_dir, cwd=None, gpus=()):
    """Run both stages on gpus (() = the CPU); returns {stage: [(iteration, loss)]}."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    first, second = read_solver(stage1), read_solver(stage2)
    if second.max_iter <= first.max_iter:
        raise CaffeError(f"{stage2} ends at iteration {second.max_iter}, not after stage 1's "
                         f"{first.max_iter}")
    # Caffe does not create the snapshot folder itself
    (Path(cwd or ".") / first.snapshot_prefix).parent.mkdir(parents=True, exist_ok=True)
    run_stage(stage1, log_dir / "stage1.log", gpus, cwd=cwd)
    state = final_solverstate(first)
    resolved = Path(cwd or ".") / state
    if not resolved.exists():
        raise CaffeError(f"stage 1 finished without writing {resolved}")
    run_stage(stage2, log_dir / "stage2.log", gpus, snapshot=state, cwd=cwd)
    return {k: train_losses((log_dir / f"stage{k}.log").read_text()) for k in (1, 2)}


def stage_summaries(log_dir):
    """One line per stage log in log_dir: its iterations and first and last loss."""
    lines = []
    for stage in (1, 2):
        log = Path(log_dir) / f"stage{stage}.log"
        curve = train_losses(log.read_text()) if log.exists() else []
        if curve:
            lines.append(f"stage {stage}: iterations {curve[0][0]}-{curve[-1][0]}, "
                         f"loss {curve[0][1]:.4f} -> {curve[-1][1]:.4f}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage1", type=Path, default=Path("solver/h36m.prototxt"),
                        help="stage 1 solver (default: %(default)s)")
    parser.add_argument("--stage2", type=Path, default=Path("solver/h36m_stage2.prototxt"),
                        help="stage 2 solver (default: %(default)s)")
    parser.add_argument("--log-dir", type=Path, default=Path("runs/h36m"),
                        help="where stage1.log and stage2.log go (default: %(default)s)")
    parser.add_argument("--gpus", default="", metavar="IDS",
                        help="GPU ids, e.g. 0 or 0,1 (default: the CPU)")
    args = parser.parse_args(argv)
    for path in (args.stage1, args.stage2):
        if not path.exists():
            parser.error(f"{path} does not exist; write it with `make solver TRAIN_SIZE=N`")
    try:
        train_two_stages(args.stage1, args.stage2, args.log_dir, gpus=parse_gpus(args.gpus))
    except (CaffeError, DeviceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in stage_summaries(args.log_dir):
        print(line)
    print(f"logs: {args.log_dir}/stage1.log, {args.log_dir}/stage2.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
