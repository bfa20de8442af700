"""Running Caffe's command-line tool (`caffe train`, `caffe time`) and reading its logs."""
import os
import re
import subprocess
import sys
from pathlib import Path

TRAIN_LOSS = re.compile(r"Iteration (\d+) \(.*\), loss = ([-+0-9.eE]+|nan|inf)")
TRAIN_LOSS_OLD = re.compile(r"Iteration (\d+), loss = ([-+0-9.eE]+|nan|inf)")


class CaffeError(RuntimeError):
    pass


def caffe_binary():
    """The venv's `caffe` (a wrapper that gives Python layers this venv), set up by make setup."""
    path = Path(sys.prefix) / "bin" / "caffe"
    if not path.exists():
        raise CaffeError(f"{path} is missing: run `make setup` and use .venv/bin/python")
    return path


def run_caffe(args, log_path, cwd=None):
    """Run `caffe <args>` with stdout and stderr (glog) into log_path; raise on failure."""
    log_path = Path(log_path)
    env = dict(os.environ, GLOG_logtostderr="1")
    env.pop("GLOG_minloglevel", None)  # the log is what we parse: keep INFO lines
    with open(log_path, "w") as log:
        code = subprocess.run([str(caffe_binary()), *map(str, args)], stdout=log,
                              stderr=subprocess.STDOUT, cwd=cwd, env=env).returncode
    if code != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-8:]
        raise CaffeError(f"caffe {args[0]} failed (exit {code}); log: {log_path}\n" +
                         "\n".join("  | " + line for line in tail))


def train_losses(log_text):
    """[(iteration, loss)] of the solver's display lines in a `caffe train` log."""
    found = TRAIN_LOSS.findall(log_text) or TRAIN_LOSS_OLD.findall(log_text)
    return [(int(it), float(loss)) for it, loss in found]


def forward_backward_ms(log_text):
    """Average forward-backward time per iteration in ms from a `caffe time` log."""
    match = re.search(r"Average Forward-Backward: ([0-9.]+) ms", log_text)
    if not match:
        raise CaffeError("no 'Average Forward-Backward' line in the caffe time log")
    return float(match.group(1))
