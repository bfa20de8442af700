"""Running Caffe's command-line tool (`caffe train`, `caffe time`) and reading its logs."""
import os
import re
import subprocess
import sys
from pathlib import Path

# "Iteration 20 (97 iter/s, 0.05s/5 iters), loss = 0.25" (BVLC since 2017) or
# "Iteration 20, loss = 0.25" (older Caffe and forks; also the final line after training)
TRAIN_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = (-?nan|-?inf|[-+0-9.eE]+)")


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
    """[(iteration, loss)] of the solver's loss lines in a `caffe train` log: every display
    iteration and the final one, each once."""
    losses = {}
    for iteration, loss in TRAIN_LOSS.findall(log_text):
        losses.setdefault(int(iteration), float(loss))
    return sorted(losses.items())


def forward_backward_ms(log_text):
    """Average forward-backward time per iteration in ms from a `caffe time` log."""
    match = re.search(r"Average Forward-Backward: ([0-9.]+) ms", log_text)
    if not match:
        raise CaffeError("no 'Average Forward-Backward' line in the caffe time log")
    return float(match.group(1))
