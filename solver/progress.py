"""A progress line for a `caffe train` run, read from the log that Caffe writes as it trains.

    progress = TrainingProgress(total_iterations=900, images_per_iteration=128,
                                start_iteration=675, label="train")
    exit_code = follow_log(log_path, process, progress)

In a terminal the line is rewritten in place; in a log file or CI a full line is printed at
most every min_interval seconds (30 by default) and at the last iteration.

What the log holds, and what is made of it (BVLC Caffe's solver.cpp):
  "Iteration 20 (2.9 iter/s, 6.9s/20 iters), loss = 4.2"  iteration, smoothed total loss, rate
  "    Train net output #1: loss_3D_root0 = 0.06 (* 1 = 0.06 loss)"  follow each such line
  "Iteration 225, Testing net (#0)" ... "    Test net output #1: ..."  a test pass
  "Iteration 900, loss = 0.5"  after the last update, when display divides max_iter
  "Optimization Done."  Solve() reached max_iter
  "Optimization stopped early."  Solve() stopped at SIGINT (then caffe.cpp's "Optimization
      Done." all the same)
"""
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

from solver.caffe_cli import NET_OUTPUT, TEST_START, TRAIN_LOSS

# the "(2.9 iter/s, 6.9s/" part of a display line: Caffe's rate and the seconds it measured
ITERATIONS_PER_SECOND = re.compile(r"\(([-+0-9.eE]+|-?nan|-?inf) iter/s(?:, ([-+0-9.eE]+)s/)?")
OPTIMIZATION_DONE = "Optimization Done."
OPTIMIZATION_STOPPED = "Optimization stopped early."
# The clock times lines when they are read, and follow_log reads them in bursts (every 0.5 s
# by default): a rate over less time than this between two lines is the polling's, not
# Caffe's (1 iteration in the 0.01 ms between two lines of one burst: 1e5 iter/s).
MIN_RATE_SECONDS = 1.0
LOSS_3D_PREFIX = "loss_3D_root"
TERMINAL_INTERVAL = 0.5   # s between rewrites of a terminal line
LOG_INTERVAL = 30.0       # s between printed lines in a log file
DEFAULT_SIZE = (80, 24)   # columns and lines of a terminal that reports none


def format_duration(seconds):
    """1h02m, 4m10s or 35s."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # no isatty, or a closed file
        return False


def terminal_size(stream):
    """(columns, lines) of the stream's terminal; a terminal that reports none (a
    pseudo-terminal without a size, as `script` or a CI runner makes) counts as 80 x 24."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):   # not a real terminal: $COLUMNS, else 80
        size = shutil.get_terminal_size()
    return (size.columns if size.columns > 0 else DEFAULT_SIZE[0],
            size.lines if size.lines > 0 else DEFAULT_SIZE[1])


def terminal_width(stream):
    return terminal_size(stream)[0]


def _output_value(match):
    """An output's loss as the solver adds it (the weighted value when the line has one)."""
    raw, weighted = match.group(3), match.group(5)
    return float(weighted if weighted is not None else raw)


class TrainingProgress:
    """Progress of one `caffe train` run, from its log lines.

    total_iterations: the solver's max_iter; images_per_iteration: the images of one update
    (for img/s); start_iteration: where the run starts (a restored snapshot's iteration);
    label: the start of the line; stream: where to show it (default sys.stderr); quiet: show
    nothing (status() still works); clock: seconds, for rates and throttling; min_interval:
    seconds between shown lines (default 0.5 in a terminal, 30 elsewhere).
    """

    def __init__(self, total_iterations, images_per_iteration, start_iteration=0, label="train",
                 stream=None, quiet=False, clock=time.monotonic, min_interval=None):
        self.total_iterations = total_iterations
        self.images_per_iteration = images_per_iteration
        self.label = label
        self._stream = sys.stderr if stream is None else stream
        self._quiet = quiet
        self._clock = clock
        self._terminal = _is_terminal(self._stream)
        if min_interval is None:
            min_interval = TERMINAL_INTERVAL if self._terminal else LOG_INTERVAL
        self._min_interval = min_interval

        self._iteration = start_iteration
        self._loss = None             # smoothed total of the last display line
        self._train_outputs = {}      # {"loss_2D": raw, "loss_3D": weighted sum} of that line
        self._test_loss_3d = None     # of the last test pass that printed outputs
        self._test_outputs = None     # {loss_3D_root*: value} of test net #0's last pass
        self._testing = False
        self._iterations_per_second = None
        self._rate_from = None        # (iteration, clock) whence the clock measures a rate
        self._block_open = False      # a display line or net outputs seen, more may follow
        self._done = False
        self._stopped = False         # Caffe stopped short of max_iter (SIGINT)
        self._shown_at = None         # clock of the last line shown
        self._shown_text = None
        self._finished = False

    @property
    def iteration(self):
        """The last iteration the log has reached."""
        return self._iteration

    def feed(self, line):
        """Take one log line (with or without its newline); show the progress when due."""
        line = line.rstrip("\r\n")
        output = NET_OUTPUT.search(line)
        if output:
            self._add_output(output)
            return
        display = TRAIN_LOSS.search(line)
        if display:
            self._start_display(display, line)
            return
        # any other line ends the outputs above it: the state is whole again and may be shown
        self._block_open = False
        test = TEST_START.search(line)
        if test:
            self._start_test(int(test.group(1)), int(test.group(2)))
        elif OPTIMIZATION_STOPPED in line:
            self._stopped = True
        elif OPTIMIZATION_DONE in line and not self._stopped:
            self._done = True
            self._iteration = max(self._iteration, self.total_iterations)
        self.refresh()

    def refresh(self):
        """Show the status if it changed and min_interval has passed (always at the last
        iteration in a log file). follow_log calls it while Caffe writes nothing, so that a
        status held back by the interval still appears. Never while a display line's or test
        pass's outputs may still be coming: a half-summed loss_3D is not shown."""
        if self._quiet or self._finished or self._block_open:
            return
        text = self.status()
        if text == self._shown_text:
            return
        now = self._clock()
        due = self._shown_at is None or now - self._shown_at >= self._min_interval
        last = not self._terminal and self._iteration >= self.total_iterations
        if due or last:
            self._show(text)
            self._shown_at, self._shown_text = now, text

    def finish(self):
        """Show the final status (ending the line in a terminal). Calling it again does
        nothing."""
        if self._finished:
            return
        self._block_open = False
        if not self._quiet:
            text = self.status()
            if self._terminal:
                self._stream.write("\r" + self._fit(text) + "\x1b[K\n")
            elif text != self._shown_text:
                self._stream.write(text + "\n")
            self._stream.flush()
        self._finished = True

    def status(self):
        """The current progress, e.g. "train: iteration 120/900 (13%), loss 1.234
        (loss_2D 3.1, loss_3D 0.92), test loss_3D 0.35, 45.1 img/s, 4m10s left"."""
        return self._text(details=True)

    def _text(self, details, test=True):
        total = self.total_iterations
        percent = 100 * self._iteration // total if total > 0 else 100
        parts = [f"{self.label}: iteration {self._iteration}/{total} ({percent}%)"]
        if self._loss is not None:
            parts.append(f"loss {self._loss:.4g}")
            if details and self._train_outputs:
                parts[-1] += " (" + ", ".join(f"{name} {value:.4g}" for name, value
                                              in self._train_outputs.items()) + ")"
        if self._testing:
            parts.append("testing")
        elif test and self._test_loss_3d is not None:
            parts.append(f"test loss_3D {self._test_loss_3d:.4g}")
        if self._iterations_per_second:
            parts.append(f"{self._iterations_per_second * self.images_per_iteration:.1f} img/s")
        if self._done:
            parts.append("done")
        elif self._stopped:
            parts.append("stopped early")
        elif self._iterations_per_second and self._iteration < total:
            seconds = (total - self._iteration) / self._iterations_per_second
            parts.append(f"{format_duration(seconds)} left")
        return ", ".join(parts)

    def _start_display(self, match, line):
        iteration, now = int(match.group(1)), self._clock()
        rate = self._rate(iteration, now, ITERATIONS_PER_SECOND.search(line))
        if rate is not None and math.isfinite(rate) and rate > 0:
            self._iterations_per_second = rate
        # the clock measures from the line of the last rate taken (or the run's first line),
        # over as many lines as it takes to make MIN_RATE_SECONDS
        if rate is not None or self._rate_from is None:
            self._rate_from = (iteration, now)
        self._iteration, self._loss = iteration, float(match.group(2))
        self._train_outputs = {}
        self._block_open = True

    def _rate(self, iteration, now, logged):
        """Iterations per second at a display line, or None where none is measured: Caffe's
        own figure, timed by Caffe (where it measured some time), else the clock's since the
        line of the last rate, over MIN_RATE_SECONDS at least. None at the first display line
        of the run, whose logged rate is meaningless: Caffe divides by iterations since
        `iterations_last_`, which is uninitialised at iteration 0 (1.56e+31 iter/s in a real
        log) and 0 after a restored snapshot (680 iterations counted for 5)."""
        if self._rate_from is None:
            return None
        if logged:
            seconds = logged.group(2)
            return float(logged.group(1)) if seconds is None or float(seconds) > 0 else None
        last_iteration, last_time = self._rate_from
        if iteration > last_iteration and now - last_time >= MIN_RATE_SECONDS:
            return (iteration - last_iteration) / (now - last_time)
        return None

    def _start_test(self, iteration, net_index):
        self._iteration = max(self._iteration, iteration)
        # only the first test net's outputs count, as in Fig. 4's parser
        self._testing = net_index == 0
        self._test_outputs = {} if net_index == 0 else None

    def _add_output(self, match):
        self._block_open = True
        name = match.group(2)
        if match.group(1) == "Train":
            self._add_train_output(name, match)
        elif self._test_outputs is not None:   # a pass of the first test net
            self._testing = False
            if name.startswith(LOSS_3D_PREFIX):
                self._test_outputs[name] = _output_value(match)
                self._test_loss_3d = sum(self._test_outputs.values())

    def _add_train_output(self, name, match):
        """loss_3D_root* outputs add up into "loss_3D" (weighted, as in the total); others
        keep their name and raw value (loss_2D without its weight lambda_2D, which changes
        during training)."""
        if name.startswith(LOSS_3D_PREFIX):
            self._train_outputs["loss_3D"] = (self._train_outputs.get("loss_3D", 0.0)
                                              + _output_value(match))
        else:
            self._train_outputs[name] = float(match.group(3))

    def _show(self, text):
        if self._terminal:
            self._stream.write("\r" + self._fit(text) + "\x1b[K")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def _fit(self, text):
        """The status within the terminal's width, which a rewritten line must not exceed
        (a wrapped line is not rewritten in place): first without the per-output losses,
        then without the test loss, then cut."""
        width = max(terminal_width(self._stream) - 1, 20)
        for shorter in (text, self._text(details=False), self._text(details=False, test=False)):
            if len(shorter) <= width:
                return shorter
        return shorter[:width]


def follow_log(path, process, progress, poll_seconds=0.5):
    """Feed progress every complete line appended to the file `path` while `process` (a
    subprocess.Popen, or anything with .poll()) runs, then what remains after it exits (an
    unfinished last line included); wait for the file if it does not exist yet. Calls
    progress.finish() at the end and returns the process's exit code."""
    path = Path(path)
    try:
        log = _wait_for_file(path, process, poll_seconds)
        if log is not None:
            with log:
                _follow(log, process, progress, poll_seconds)
    finally:
        progress.finish()
    return process.poll()


def _wait_for_file(path, process, poll_seconds):
    """The log opened for reading once it exists; None if the process ended without it."""
    while True:
        exited = process.poll() is not None   # before the look: a file made before exit is seen
        try:
            return open(path, "rb")
        except FileNotFoundError:
            if exited:
                return None
        time.sleep(poll_seconds)


def _follow(log, process, progress, poll_seconds):
    pending = b""   # the start of a line whose newline is not written yet
    while True:
        # poll before reading: once the process has exited, this read gets all it wrote
        exited = process.poll() is not None
        *lines, pending = (pending + log.read()).split(b"\n")
        for line in lines:
            progress.feed(line.decode("utf-8", errors="replace"))
        if exited:
            break
        progress.refresh()
        time.sleep(poll_seconds)
    if pending:
        progress.feed(pending.decode("utf-8", errors="replace"))
