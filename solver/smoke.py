"""Smoke run of the Caffe toolchain: generate a tiny net and solver, `caffe train` it for a few
dozen iterations, `caffe time` it, and report the loss curve and the time per iteration
(tools/smoke_train.py is its command line, `make smoke` runs it).

smoke_train writes net.prototxt, solver.prototxt, train.log, time.log, a snapshot and
summary.json into the output folder (built in a temporary folder beside it and renamed when
complete).
"""
import json
import sys
import time
from pathlib import Path

from built_folders import FolderError, check_replaceable, replace, temporary_sibling
from prototxt.smoke_net import make_smoke_net
from solver.smoke_solver import make_smoke_solver
from solver.caffe_cli import CaffeError, forward_backward_ms, run_caffe, train_losses


def smoke_run(out_dir, iterations, batch, python_layer=None):
    """Train and time the smoke net in out_dir; returns the summary dict."""
    net_path = out_dir / "net.prototxt"
    net_path.write_text(str(make_smoke_net(batch=batch, python_layer=python_layer).to_proto()))
    solver = make_smoke_solver(net_path, out_dir / "smoke", max_iter=iterations)
    solver_path = out_dir / "solver.prototxt"
    solver_path.write_text(str(solver))

    started = time.monotonic()
    run_caffe(["train", f"-solver={solver_path}"], out_dir / "train.log")
    train_seconds = time.monotonic() - started
    run_caffe(["time", f"-model={net_path}", "-iterations=5"], out_dir / "time.log")

    losses = train_losses((out_dir / "train.log").read_text())
    if len(losses) < 2:
        raise CaffeError(f"fewer than two loss lines in {out_dir / 'train.log'}")
    return {
        "iterations": iterations,
        "batch": batch,
        "losses": losses,
        "first_loss": losses[0][1],
        "last_loss": losses[-1][1],
        "train_seconds": round(train_seconds, 2),
        "forward_backward_ms": forward_backward_ms((out_dir / "time.log").read_text()),
        "snapshot": f"smoke_iter_{iterations}.caffemodel",
    }


def smoke_train(out, iterations, batch, force=False):
    """The smoke run into the folder `out` (force: replace it if it exists), with its summary
    on stdout; the exit status (1: Caffe failed, 2: `out` exists)."""
    out = Path(out)
    try:
        check_replaceable(out, "smoke run", force)
    except FolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    work = temporary_sibling(out)
    try:
        summary = smoke_run(work, iterations, batch)
    except CaffeError as err:
        print(f"error: {err}\n(partial output kept in {work})", file=sys.stderr)
        return 1
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    replace(work, out)
    print(f"smoke: caffe train, {summary['iterations']} iterations of batch {summary['batch']}: "
          f"loss {summary['first_loss']:.4f} -> {summary['last_loss']:.4f} "
          f"in {summary['train_seconds']:.1f} s")
    print(f"smoke: caffe time, forward-backward {summary['forward_backward_ms']:.2f} ms/iteration")
    print(f"smoke: results in {out}/ (summary.json, train.log, time.log, "
          f"{summary['snapshot']})")
    return 0
