"""solver/progress.py: the progress line made from a `caffe train` log (an excerpt in the
format of a run's logs/train.log, fed with a fake clock), how it is shown in a terminal, in
a log file and not at all, and follow_log reading a log that a real process writes."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from solver.progress import TrainingProgress, follow_log, format_duration

ROOT = Path(__file__).resolve().parents[1]
BATCH = 16

# A run resumed at iteration 800, to max_iter 900: display 20, test_interval 50,
# lambda_2D 0.01. As in real logs, the first display line's rate is Caffe's meaningless one
# (820 iterations over 17.3 s, counted from 0), and the rate after a test pass includes it.
LOG = """\
I1126 16:54:20.998302 15550 caffe.cpp:239] Starting Optimization
I1126 16:54:20.998324 15550 solver.cpp:289] Solving pose_net
I1126 16:54:20.998327 15550 solver.cpp:290] Learning Rate Policy: step
I1126 16:54:21.045902 15550 solver.cpp:347] Iteration 800, Testing net (#0)
I1126 16:54:30.100001 15550 solver.cpp:414]     Test net output #0: loss_2D = 32.1 (* 0.01 = 0.321 loss)
I1126 16:54:30.100002 15550 solver.cpp:414]     Test net output #1: loss_3D_root0 = 0.05 (* 1 = 0.05 loss)
I1126 16:54:30.100003 15550 solver.cpp:414]     Test net output #2: loss_3D_root12 = 0.07 (* 1 = 0.07 loss)
I1126 16:54:30.100004 15550 solver.cpp:414]     Test net output #3: loss_3D_root15 = 0.08 (* 1 = 0.08 loss)
I1126 16:54:30.100005 15550 solver.cpp:414]     Test net output #4: loss_3D_root2 = 0.06 (* 1 = 0.06 loss)
I1126 16:54:30.100006 15550 solver.cpp:414]     Test net output #5: loss_3D_root5 = 0.06 (* 1 = 0.06 loss)
I1126 16:54:30.100007 15550 solver.cpp:414]     Test net output #6: loss_3D_root9 = 0.04 (* 1 = 0.04 loss)
I1126 16:54:38.342537 15550 solver.cpp:239] Iteration 820 (47.4 iter/s, 17.3s/20 iters), loss = 0.6021
I1126 16:54:38.342601 15550 solver.cpp:258]     Train net output #0: loss_2D = 30.2 (* 0.01 = 0.302 loss)
I1126 16:54:38.342612 15550 solver.cpp:258]     Train net output #1: loss_3D_root0 = 0.04 (* 1 = 0.04 loss)
I1126 16:54:38.342620 15550 solver.cpp:258]     Train net output #2: loss_3D_root12 = 0.06 (* 1 = 0.06 loss)
I1126 16:54:38.342628 15550 solver.cpp:258]     Train net output #3: loss_3D_root15 = 0.07 (* 1 = 0.07 loss)
I1126 16:54:38.342636 15550 solver.cpp:258]     Train net output #4: loss_3D_root2 = 0.05 (* 1 = 0.05 loss)
I1126 16:54:38.342644 15550 solver.cpp:258]     Train net output #5: loss_3D_root5 = 0.05 (* 1 = 0.05 loss)
I1126 16:54:38.342652 15550 solver.cpp:258]     Train net output #6: loss_3D_root9 = 0.03 (* 1 = 0.03 loss)
I1126 16:54:38.342697 15550 sgd_solver.cpp:112] Iteration 820, lr = 0.005
I1126 16:54:46.342681 15550 solver.cpp:239] Iteration 840 (2.5 iter/s, 8s/20 iters), loss = 0.5714
I1126 16:54:46.342755 15550 solver.cpp:258]     Train net output #0: loss_2D = 31.5 (* 0.01 = 0.315 loss)
I1126 16:54:46.342766 15550 solver.cpp:258]     Train net output #1: loss_3D_root0 = 0.03 (* 1 = 0.03 loss)
I1126 16:54:46.342774 15550 solver.cpp:258]     Train net output #2: loss_3D_root12 = 0.06 (* 1 = 0.06 loss)
I1126 16:54:46.342782 15550 solver.cpp:258]     Train net output #3: loss_3D_root15 = 0.07 (* 1 = 0.07 loss)
I1126 16:54:46.342790 15550 solver.cpp:258]     Train net output #4: loss_3D_root2 = 0.05 (* 1 = 0.05 loss)
I1126 16:54:46.342798 15550 solver.cpp:258]     Train net output #5: loss_3D_root5 = 0.04 (* 1 = 0.04 loss)
I1126 16:54:46.342806 15550 solver.cpp:258]     Train net output #6: loss_3D_root9 = 0.03 (* 1 = 0.03 loss)
I1126 16:54:46.342855 15550 sgd_solver.cpp:112] Iteration 840, lr = 0.005
I1126 16:54:50.342901 15550 solver.cpp:347] Iteration 850, Testing net (#0)
I1126 16:55:30.100001 15550 solver.cpp:414]     Test net output #0: loss_2D = 31.9 (* 0.01 = 0.319 loss)
I1126 16:55:30.100002 15550 solver.cpp:414]     Test net output #1: loss_3D_root0 = 0.04 (* 1 = 0.04 loss)
I1126 16:55:30.100003 15550 solver.cpp:414]     Test net output #2: loss_3D_root12 = 0.06 (* 1 = 0.06 loss)
I1126 16:55:30.100004 15550 solver.cpp:414]     Test net output #3: loss_3D_root15 = 0.07 (* 1 = 0.07 loss)
I1126 16:55:30.100005 15550 solver.cpp:414]     Test net output #4: loss_3D_root2 = 0.05 (* 1 = 0.05 loss)
I1126 16:55:30.100006 15550 solver.cpp:414]     Test net output #5: loss_3D_root5 = 0.05 (* 1 = 0.05 loss)
I1126 16:55:30.100007 15550 solver.cpp:414]     Test net output #6: loss_3D_root9 = 0.04 (* 1 = 0.04 loss)
I1126 16:55:36.342901 15550 solver.cpp:239] Iteration 860 (0.4 iter/s, 50s/20 iters), loss = 0.5311
I1126 16:55:36.342975 15550 solver.cpp:258]     Train net output #0: loss_2D = 30.98 (* 0.01 = 0.3098 loss)
I1126 16:55:36.342986 15550 solver.cpp:258]     Train net output #1: loss_3D_root0 = 0.03 (* 1 = 0.03 loss)
I1126 16:55:36.342994 15550 solver.cpp:258]     Train net output #2: loss_3D_root12 = 0.06 (* 1 = 0.06 loss)
I1126 16:55:36.343002 15550 solver.cpp:258]     Train net output #3: loss_3D_root15 = 0.07 (* 1 = 0.07 loss)
I1126 16:55:36.343010 15550 solver.cpp:258]     Train net output #4: loss_3D_root2 = 0.04 (* 1 = 0.04 loss)
I1126 16:55:36.343018 15550 solver.cpp:258]     Train net output #5: loss_3D_root5 = 0.05 (* 1 = 0.05 loss)
I1126 16:55:36.343026 15550 solver.cpp:258]     Train net output #6: loss_3D_root9 = 0.02 (* 1 = 0.02 loss)
I1126 16:55:36.343075 15550 sgd_solver.cpp:112] Iteration 860, lr = 0.005
I1126 16:55:46.343121 15550 solver.cpp:239] Iteration 880 (2 iter/s, 10s/20 iters), loss = 0.5203
I1126 16:55:46.343195 15550 solver.cpp:258]     Train net output #0: loss_2D = 30.5 (* 0.01 = 0.305 loss)
I1126 16:55:46.343206 15550 solver.cpp:258]     Train net output #1: loss_3D_root0 = 0.03 (* 1 = 0.03 loss)
I1126 16:55:46.343214 15550 solver.cpp:258]     Train net output #2: loss_3D_root12 = 0.05 (* 1 = 0.05 loss)
I1126 16:55:46.343222 15550 solver.cpp:258]     Train net output #3: loss_3D_root15 = 0.07 (* 1 = 0.07 loss)
I1126 16:55:46.343230 15550 solver.cpp:258]     Train net output #4: loss_3D_root2 = 0.04 (* 1 = 0.04 loss)
I1126 16:55:46.343238 15550 solver.cpp:258]     Train net output #5: loss_3D_root5 = 0.05 (* 1 = 0.05 loss)
I1126 16:55:46.343246 15550 solver.cpp:258]     Train net output #6: loss_3D_root9 = 0.02 (* 1 = 0.02 loss)
I1126 16:55:46.343295 15550 sgd_solver.cpp:112] Iteration 880, lr = 0.005
I1126 16:55:56.101234 15550 solver.cpp:464] Snapshotting to binary proto file runs/demo/snapshots/iter_iter_900.caffemodel
I1126 16:55:56.301234 15550 sgd_solver.cpp:284] Snapshotting solver state to binary proto file runs/demo/snapshots/iter_iter_900.solverstate
I1126 16:55:56.400001 15550 solver.cpp:327] Iteration 900, loss = 0.4977
I1126 16:55:56.400002 15550 solver.cpp:347] Iteration 900, Testing net (#0)
I1126 16:56:06.100001 15550 solver.cpp:414]     Test net output #0: loss_2D = 30.7 (* 0.01 = 0.307 loss)
I1126 16:56:06.100002 15550 solver.cpp:414]     Test net output #1: loss_3D_root0 = 0.04 (* 1 = 0.04 loss)
I1126 16:56:06.100003 15550 solver.cpp:414]     Test net output #2: loss_3D_root12 = 0.05 (* 1 = 0.05 loss)
I1126 16:56:06.100004 15550 solver.cpp:414]     Test net output #3: loss_3D_root15 = 0.06 (* 1 = 0.06 loss)
I1126 16:56:06.100005 15550 solver.cpp:414]     Test net output #4: loss_3D_root2 = 0.05 (* 1 = 0.05 loss)
I1126 16:56:06.100006 15550 solver.cpp:414]     Test net output #5: loss_3D_root5 = 0.05 (* 1 = 0.05 loss)
I1126 16:56:06.100007 15550 solver.cpp:414]     Test net output #6: loss_3D_root9 = 0.04 (* 1 = 0.04 loss)
I1126 16:56:06.100012 15550 solver.cpp:332] Optimization Done.
I1126 16:56:06.100018 15550 caffe.cpp:250] Optimization Done.
"""

FINAL_STATUS = "train: iteration 900/900 (100%), loss 0.4977, test loss_3D 0.29, 32.0 img/s, done"


class FakeClock:
    """Seconds that the test sets; step > 0 advances them at every reading."""

    def __init__(self, now=0.0, step=0.0):
        self.now, self.step = now, step

    def __call__(self):
        self.now += self.step
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def resumed_progress(**options):
    options.setdefault("stream", io.StringIO())
    options.setdefault("clock", FakeClock())
    return TrainingProgress(900, BATCH, start_iteration=800, **options)


def feed_through(progress, lines, marker):
    """Feed lines (an iterator) up to and including the first one that contains marker."""
    for line in lines:
        progress.feed(line)
        if marker in line:
            return
    raise AssertionError(f"no line with {marker!r} left")


def feed_all(progress, text=LOG):
    for line in text.splitlines(keepends=True):
        progress.feed(line)


def test_status_through_the_log():
    progress = resumed_progress()
    lines = iter(LOG.splitlines(keepends=True))
    feed_through(progress, lines, "Starting Optimization")
    assert progress.iteration == 800
    assert progress.status() == "train: iteration 800/900 (88%)"

    feed_through(progress, lines, "Iteration 800, Testing net")
    assert progress.status() == "train: iteration 800/900 (88%), testing"

    # first display line: its 47.4 iter/s is Caffe's artefact, so no rate and no time left
    feed_through(progress, lines, "Iteration 820, lr")
    assert progress.iteration == 820
    assert progress.status() == ("train: iteration 820/900 (91%), loss 0.6021 "
                                 "(loss_2D 30.2, loss_3D 0.3), test loss_3D 0.36")

    # 2.5 iter/s * 16 images = 40 img/s; (900 - 840) / 2.5 = 24 s
    feed_through(progress, lines, "Iteration 840, lr")
    assert progress.status() == ("train: iteration 840/900 (93%), loss 0.5714 "
                                 "(loss_2D 31.5, loss_3D 0.28), test loss_3D 0.36, "
                                 "40.0 img/s, 24s left")

    feed_through(progress, lines, "Iteration 850, Testing net")
    assert progress.iteration == 850
    assert ", testing, 40.0 img/s, 20s left" in progress.status()

    # 0.4 iter/s * 16 = 6.4 img/s; (900 - 860) / 0.4 = 100 s = 1m40s
    feed_through(progress, lines, "Iteration 860, lr")
    assert progress.status() == ("train: iteration 860/900 (95%), loss 0.5311 "
                                 "(loss_2D 30.98, loss_3D 0.27), test loss_3D 0.31, "
                                 "6.4 img/s, 1m40s left")

    # the final "Iteration 900, loss" line has no outputs; the fixed clock gives no rate of its
    # own, so the 2 iter/s of iteration 880 stays
    for line in lines:
        progress.feed(line)
    assert progress.iteration == 900
    assert progress.status() == FINAL_STATUS


def test_loss_3d_sums_the_weighted_roots_and_others_keep_their_raw_value():
    progress = resumed_progress()
    feed_all(progress, """\
I1126 16:54:38.342537 15550 solver.cpp:239] Iteration 820 (2 iter/s, 10s/20 iters), loss = 0.8
I1126 16:54:38.342601 15550 solver.cpp:258]     Train net output #0: lambda_2D = 0.01
I1126 16:54:38.342601 15550 solver.cpp:258]     Train net output #1: loss_2D = 30 (* 0.01 = 0.3 loss)
I1126 16:54:38.342612 15550 solver.cpp:258]     Train net output #2: loss_3D_root0 = 0.1 (* 2 = 0.2 loss)
I1126 16:54:38.342620 15550 solver.cpp:258]     Train net output #3: loss_3D_root9 = 0.15 (* 2 = 0.3 loss)
I1126 16:54:38.342697 15550 sgd_solver.cpp:112] Iteration 820, lr = 0.005
""")
    assert "loss 0.8 (lambda_2D 0.01, loss_2D 30, loss_3D 0.5)" in progress.status()


def test_rate_from_the_clock_when_the_log_has_none():
    """Older Caffe writes "Iteration N, loss = X" without a rate: the clock between two such
    lines gives it, (40 - 20) / 10 s = 2 iter/s, so 32 img/s and (100 - 40) / 2 = 30 s left."""
    clock = FakeClock(now=100.0)
    progress = TrainingProgress(100, BATCH, stream=io.StringIO(), clock=clock)
    progress.feed("I1126 10:00:00.000000 1 solver.cpp:239] Iteration 20, loss = 1.5\n")
    assert "img/s" not in progress.status()
    clock.now = 110.0
    progress.feed("I1126 10:00:10.000000 1 solver.cpp:239] Iteration 40, loss = 1.25\n")
    progress.feed("I1126 10:00:10.000000 1 sgd_solver.cpp:112] Iteration 40, lr = 0.01\n")
    assert progress.status() == "train: iteration 40/100 (40%), loss 1.25, 32.0 img/s, 30s left"


@pytest.mark.parametrize("seconds, text", [(3720, "1h02m"), (250, "4m10s"), (35, "35s"),
                                           (59.6, "1m00s"), (0, "0s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_terminal_line_is_rewritten_in_place_until_finish(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    terminal = FakeTerminal()
    progress = resumed_progress(stream=terminal, clock=FakeClock(step=1.0))
    feed_all(progress)
    shown = terminal.getvalue()
    assert shown.startswith("\r") and shown.count("\r") > 5
    assert "\n" not in shown
    assert "\r" + "train: iteration 860/900 (95%), loss 0.5311" in shown
    progress.finish()
    shown = terminal.getvalue()
    assert shown.count("\n") == 1
    # (the stepping clock gives the final line a rate of its own: the status, not FINAL_STATUS)
    assert progress.status().startswith("train: iteration 900/900 (100%), loss 0.4977")
    assert shown.endswith("\r" + progress.status() + "\x1b[K\n")


def test_terminal_rewrites_at_most_every_min_interval(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    terminal = FakeTerminal()
    progress = resumed_progress(stream=terminal, clock=FakeClock(now=50.0))   # time stands still
    feed_all(progress)
    assert terminal.getvalue() == "\r" + "train: iteration 800/900 (88%)" + "\x1b[K"
    progress.finish()
    assert terminal.getvalue().count("\r") == 2


def test_terminal_line_fits_the_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    terminal = FakeTerminal()
    progress = resumed_progress(stream=terminal, clock=FakeClock(step=1.0))
    feed_all(progress)
    progress.finish()
    shown = [part.split("\x1b[K")[0] for part in terminal.getvalue().split("\r")[1:]]
    assert shown and all(len(text) <= 59 for text in shown)
    assert not any("(loss_2D" in text for text in shown)
    # too wide even without the per-output losses: the test loss goes before anything is cut,
    # so that the rate and the time left stay in view
    assert shown[-1] == "train: iteration 900/900 (100%), loss 0.4977, 160.0 img/s, done"[:59]


def test_log_file_gets_a_line_at_most_every_30_seconds_and_at_the_end():
    stream, clock = io.StringIO(), FakeClock()
    progress = resumed_progress(stream=stream, clock=clock)
    lines = iter(LOG.splitlines(keepends=True))
    for seconds, marker in [(0, "Learning Rate Policy"),        # shown: the first
                            (5, "loss_3D_root9 = 0.04"),        # test pass, 5 s later: held
                            (20, "Iteration 820, lr"),          # held
                            (31, "Iteration 840, lr"),          # shown: 31 s after the first
                            (40, "Iteration 850, Testing net"), # held
                            (50, "Iteration 860, lr"),          # held
                            (61, "Iteration 880, lr"),          # shown: 30 s after 840's
                            (62, "caffe.cpp:250] Optimization Done.")]:  # the last iteration
        clock.now = seconds
        feed_through(progress, lines, marker)
    progress.finish()
    progress.finish()
    printed = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in printed] == [
        "train: iteration 800/900", "train: iteration 840/900", "train: iteration 880/900",
        "train: iteration 900/900", "train: iteration 900/900"]
    assert printed[0] == "train: iteration 800/900 (88%)"
    assert printed[3].endswith(", testing, 320.0 img/s")   # 900 - 880 in 1 s of the clock
    assert printed[4].endswith(", test loss_3D 0.29, 320.0 img/s, done")


def test_log_file_every_change_with_min_interval_zero():
    stream = io.StringIO()
    progress = resumed_progress(stream=stream, min_interval=0)
    feed_all(progress)
    progress.finish()
    printed = stream.getvalue().splitlines()
    assert len(printed) == len(set(printed)) == 9   # start, 2 tests, 4 displays, final test x2
    assert printed[-1] == FINAL_STATUS


@pytest.mark.parametrize("stream_type", [io.StringIO, FakeTerminal])
def test_quiet_prints_nothing(stream_type):
    stream = stream_type()
    progress = resumed_progress(stream=stream, quiet=True, clock=FakeClock(step=100.0))
    feed_all(progress)
    progress.finish()
    assert stream.getvalue() == ""
    assert progress.status().startswith("train: iteration 900/900 (100%), loss 0.4977")


def test_default_stream_is_stderr_when_made(capsys):
    progress = TrainingProgress(10, BATCH, label="smoke")
    progress.finish()
    progress.finish()
    assert capsys.readouterr().err == "smoke: iteration 0/10 (0%)\n"


def test_import_has_no_side_effects():
    """Importing the module loads neither matplotlib (which evaluation.figures loads) nor
    writes anything."""
    probe = "import sys, solver.progress; print('matplotlib' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert (run.stdout, run.stderr) == ("False\n", "")


# appends each piece to the log, flushing, with a short sleep between: a stand-in for Caffe.
# It creates the log only once the file named by argv[2] exists, so that a test can make the
# log appear after follow_log has started waiting for it.
WRITER = """
import json, os, sys, time
log_path, go_path, pieces, code = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
while go_path and not os.path.exists(go_path):
    time.sleep(0.01)
with open(log_path, "w") as log:
    for piece in pieces:
        log.write(piece)
        log.flush()
        time.sleep(0.02)
sys.exit(code)
"""


class RecordingProgress(TrainingProgress):
    def __init__(self):
        super().__init__(900, BATCH, start_iteration=800, stream=io.StringIO())
        self.lines, self.finish_calls = [], 0

    def feed(self, line):
        self.lines.append(line)
        super().feed(line)

    def finish(self):
        self.finish_calls += 1
        super().finish()


class PollCounter:
    """A process whose third poll() creates go_path (the writer's signal to start)."""

    def __init__(self, process, go_path):
        self.process, self.go_path, self.polls = process, go_path, 0

    def poll(self):
        self.polls += 1
        if self.polls == 3:
            self.go_path.touch()
        return self.process.poll()


def log_pieces():
    """The log cut every 400 characters, so that lines arrive in two pieces, without the
    newline of its last line (an unfinished line at exit)."""
    text = LOG.rstrip("\n")
    return [text[start:start + 400] for start in range(0, len(text), 400)]


def start_writer(log_path, pieces, code, go_path=""):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(log_path), str(go_path),
                             json.dumps(pieces), str(code)])


def test_follow_log_feeds_every_line_once_and_returns_the_exit_code(tmp_path):
    pieces = log_pieces()
    assert any(not piece.endswith("\n") for piece in pieces[:-1])   # lines split in two
    progress = RecordingProgress()
    process = start_writer(tmp_path / "train.log", pieces, code=3)
    try:
        code = follow_log(tmp_path / "train.log", process, progress, poll_seconds=0.01)
    finally:
        process.wait()
    assert code == 3
    assert progress.lines == LOG.rstrip("\n").split("\n")
    assert progress.finish_calls == 1
    assert progress.iteration == 900 and progress.status().endswith(", done")


def test_follow_log_waits_for_the_file(tmp_path):
    log_path, go_path = tmp_path / "logs" / "train.log", tmp_path / "go"
    log_path.parent.mkdir()
    progress = RecordingProgress()
    process = start_writer(log_path, ["Iteration 820 (2 iter/s, 10s/20 iters), loss = 0.6\n",
                                      "Iteration 820, lr = 0.005\n"], code=0, go_path=go_path)
    watched = PollCounter(process, go_path)
    try:
        code = follow_log(log_path, watched, progress, poll_seconds=0.01)
    finally:
        process.wait()
    assert code == 0
    assert watched.polls > 3   # it looked for the log before the writer made it
    assert progress.lines == ["Iteration 820 (2 iter/s, 10s/20 iters), loss = 0.6",
                              "Iteration 820, lr = 0.005"]
    assert progress.iteration == 820 and progress.finish_calls == 1


def test_follow_log_when_the_process_ends_without_a_log(tmp_path):
    progress = RecordingProgress()
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(5)"])
    try:
        code = follow_log(tmp_path / "never.log", process, progress, poll_seconds=0.01)
    finally:
        process.wait()
    assert code == 5
    assert progress.lines == [] and progress.finish_calls == 1


def test_a_terminal_without_a_size_counts_as_80_columns(monkeypatch):
    # a pseudo-terminal that reports 0 columns (`script`, CI runners) must not cut the line
    # to nothing
    import os
    from solver import progress
    monkeypatch.setattr(progress.os, "get_terminal_size", lambda fd: os.terminal_size((0, 0)))
    assert progress.terminal_width(sys.stderr) == 80
    monkeypatch.setattr(progress.os, "get_terminal_size", lambda fd: os.terminal_size((132, 40)))
    assert progress.terminal_width(sys.stderr) == 132
