"""Running Caffe's command-line tool (`caffe train`, `caffe time`), reading its logs, and
quieting pycaffe's own log in a command's process."""
import functools
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from child_processes import die_with_parent

_VALUE = r"(-?nan|-?inf|[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)"
# "Iteration 20 (97 iter/s, 0.05s/5 iters), loss = 0.25" (BVLC since 2017), or
# "Iteration 20, loss = 0.25" (older Caffe; also the final line after training)
TRAIN_DISPLAY = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = " + _VALUE + r"\s*$")
# the same anywhere in a text (train_losses)
TRAIN_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = " + _VALUE)
# glog's FATAL lines: "F1126 20:05:31.614074 14628 file.cpp:238] message", or with the year
# ("F20261126 ...") as the glog of Debian 12's Caffe writes them
FATAL = re.compile(r"F(?:\d{4}){1,2} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\] ")
# "Snapshotting to binary proto file <path>.caffemodel", then "Snapshotting solver state to
# binary proto file <path>.solverstate" (Solver::Snapshot)
SNAPSHOTTING = re.compile(r"Snapshotting (?:solver state )?to binary proto file (\S+)")
# Caffe's io.cpp when a snapshot's bytes cannot be written (a full disk, a file size limit)
NOT_WRITTEN = "SerializeToOstream"
# Where a Python layer's error ends Caffe, with no FATAL line: the exception's last line,
# an interpreter's fatal error, and C++'s "terminate called after throwing ..."
PYTHON_FAILURE = re.compile(r"(\w+\.)*\w*(Error|Exception)(: |$)|Fatal Python error|"
                            r"terminate called")
# The solver's stop at a non-finite loss (setup/patches/debian/04-solver-stop-at-nonfinite-loss).
DIVERGED = re.compile(r"Non-finite loss \(([^)]*)\) at iteration (\d+)")
# "Iteration 10, Testing net (#0)"
TEST_START = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
# "    Train net output #0: loss_3D = 4.2 (* 0.1 = 0.42 loss)"; the weight part is absent for
# outputs that are not losses (an accuracy, say)
NET_OUTPUT = re.compile(r"(Train|Test) net output #\d+: (\S+) = " + _VALUE +
                        r"(?: \(\* " + _VALUE + r" = " + _VALUE + r" loss\))?\s*$")


def _complete_lines(text):
    """The lines of a log, without a last line that the writer had not finished (no newline)."""
    lines = text.splitlines()
    if lines and not text.endswith(("\n", "\r")):
        lines.pop()
    return lines


def parse_caffe_log(text):
    """Outputs of a `caffe train` log per iteration:

        {"train": [(iteration, {name: value})], "test": [(iteration, {name: value})]}

    A train entry comes from each display line ("Iteration N (...), loss = X" or the older
    "Iteration N, loss = X", which is also the final line) and holds "loss": X, the weighted
    total, plus the unweighted value of each "Train net output" line after it (an output named
    "loss" thus overrides the total, which equals it for a weight of 1). A test entry comes from
    each "Testing net (#0)" block; other test nets are skipped. An iteration seen twice keeps its
    first entry; a test block without outputs and an unfinished last line are dropped, so a log
    cut off mid-way parses to what it holds. Entries are sorted by iteration.
    """
    entries = {"train": {}, "test": {}}
    current = None   # the outputs dict that the next "net output" lines belong to, or None
    current_kind = None
    for line in _complete_lines(text):
        display = TRAIN_DISPLAY.search(line)
        if display:
            iteration, total = int(display.group(1)), float(display.group(2))
            current_kind = "train"
            if iteration in entries["train"]:
                current = {}   # a repeated iteration: its outputs go nowhere
            else:
                current = entries["train"][iteration] = {"loss": total}
            continue
        test = TEST_START.search(line)
        if test:
            iteration, net_index = int(test.group(1)), int(test.group(2))
            if net_index == 0 and iteration not in entries["test"]:
                current, current_kind = entries["test"].setdefault(iteration, {}), "test"
            else:
                current, current_kind = None, None
            continue
        output = NET_OUTPUT.search(line)
        if output and current is not None and output.group(1).lower() == current_kind:
            current[output.group(2)] = float(output.group(3))
    return {kind: sorted((iteration, outputs) for iteration, outputs in by_iteration.items()
                         if outputs)
            for kind, by_iteration in entries.items()}



class CaffeError(RuntimeError):
    """Caffe failed, or what it left is not what was asked for; the message says why."""


@functools.cache
def quiet_caffe_log():
    """Keep pycaffe's INFO and WARNING lines (every net's layer-by-layer dump) off the
    terminal of this process; errors still show. For a command's main, never at import.
    Once per process: glog aborts when initialised twice, so later calls do nothing."""
    import caffe
    if hasattr(caffe, "init_log"):   # the PyPI fork's pycaffe has none: its lines stay
        caffe.init_log(2, True)   # to stderr only: no log files in /tmp


def caffe_binary():
    """The venv's `caffe` (a wrapper that gives Python layers this venv), set up by make setup."""
    path = Path(sys.prefix) / "bin" / "caffe"
    if not path.exists():
        raise CaffeError(f"{path} is missing: run `make setup` and use .venv/bin/python")
    return path


def run_caffe(args, log_path, cwd=None, progress=None):
    """Run `caffe <args>` with stdout and stderr (glog) into log_path; raise on failure.
    progress: a solver.progress.TrainingProgress fed with the log as it is written."""
    from solver.progress import follow_log
    log_path = Path(log_path)
    env = dict(os.environ, GLOG_logtostderr="1")
    env.pop("GLOG_minloglevel", None)  # the log is what we parse: keep INFO lines
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(caffe_binary()), *map(str, args)], stdout=log,
                                   stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                   preexec_fn=die_with_parent)
        try:
            code = (follow_log(log_path, process, progress) if progress is not None
                    else process.wait())
        except KeyboardInterrupt:
            stop_at_sigint(process)
            raise
        finally:
            if process.poll() is None:   # interrupted here: no orphaned `caffe train`
                process.kill()
                process.wait()
    if code != 0:
        raise CaffeError(f"caffe {args[0]} failed (exit {code}); log: {log_path}\n" +
                         failure_excerpt(log_path.read_text(errors="replace")))


def stop_at_sigint(process):
    """Have Caffe end as it does at SIGINT, and wait for it: `caffe train` snapshots the
    iteration it reached, then exits. A Ctrl-C in a terminal signals Caffe too (the whole
    process group); `kill -INT` of this process alone does not, so the signal is passed on
    (a second one changes nothing). Ctrl-C again while waiting ends the wait, and run_caffe
    then kills Caffe."""
    print("caffe: stopping at Ctrl-C (a training first saves a snapshot of the iteration it "
          "reached; Ctrl-C again ends it at once)", file=sys.stderr, flush=True)
    process.send_signal(signal.SIGINT)   # nothing when it has already ended
    process.wait()


def unwritten_snapshot(log_text):
    """The snapshot file (a Path) that Caffe could not write, when its log ends so (its
    "Check failed: proto.SerializeToOstream(&output)" after "Snapshotting ... <file>": a full
    disk, or a file size limit); else None."""
    lines = log_text.splitlines()
    fatal = next((index for index, line in enumerate(lines) if FATAL.match(line)), None)
    if fatal is None or NOT_WRITTEN not in lines[fatal]:
        return None
    written = [SNAPSHOTTING.search(line) for line in lines[:fatal]]
    return next((Path(match.group(1)) for match in reversed(written) if match), None)


def diverged_at(log_text):
    """(iteration, loss as Caffe printed it) where the solver stopped at a non-finite loss,
    or None."""
    match = DIVERGED.search(log_text)
    return (int(match.group(2)), match.group(1)) if match else None


def failure_excerpt(log_text, lines=8):
    """The end of a failed Caffe's log, indented, led by the reason, which the stack trace
    after it pushes out of the tail: its glog FATAL line ("F... Check failed: ..."), else the
    lines where a Python layer's error ended it (PYTHON_FAILURE)."""
    text = log_text.splitlines()
    fatal = ([line for line in text if FATAL.match(line)][:1]
             or [line for line in text if PYTHON_FAILURE.match(line)][-3:])
    tail = [line for line in text[-lines:] if line not in fatal]
    return "\n".join("  | " + line for line in fatal + tail)


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
