"""Faults of training: a training interrupted by SIGINT
(Ctrl-C, a script's process group, `caffe train` alone), a snapshot that cannot be written
(a full disk, a file size limit), a read-only run folder, a failed run's lock file, and the
progress line's rate. Each gives one `error:` line naming the file or process and the fix, no
traceback, a non-zero exit status, and leaves what existed as it was; the same command then
goes on.

tools/train.py runs as a user runs it, a subprocess, with PYTHONPATH set to this checkout:
the venv's path file names the checkout the venv was made in, which would otherwise be
imported in a clone.
"""
import io
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solver.progress import TrainingProgress
from solver.run_folder import RunFolder, complete_snapshot
from tests.test_kill import descendants, running
from tests.tiny_dataset import TINY

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
FINAL_ITERATION = 10    # TINY: 2 epochs of 5 iterations, snapshots at 5 and 10
LONG = ["epochs=40"]    # 200 iterations: time to interrupt it; still snapshots every 5
INTERRUPTED = 130


def train_command(lmdb_dir, run, *extra, quiet=True):
    return [sys.executable, "tools/train.py", "--lmdb", str(lmdb_dir), "--run", str(run),
            *(["--quiet"] if quiet else []), "--set", *TINY, *extra]


def run_tool(command, **options):
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=600, **options)


def the_error(done):
    """The one `error:` line of a finished command, which failed without a traceback."""
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    return errors[0]


def lock_file(run):
    return Path(run).with_name(Path(run).name + ".lock")


def contents(folder):
    """{relative path: bytes} of every file under folder."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(Path(folder).rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def finished(lmdb_dir, tmp_path_factory):
    """A run of the tiny schedule trained to its end: snapshots of iterations 5 and 10."""
    run = tmp_path_factory.mktemp("finished") / "run"
    done = run_tool(train_command(lmdb_dir, run))
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def cut_after_iteration_5(finished, run):
    """A copy of the finished run as if interrupted after iteration 5's snapshot, its
    .solverstate naming the caffemodel beside it (as training rewrites it for a moved run)."""
    shutil.copytree(finished, run)
    for path in (run / "snapshots").glob(f"*_iter_{FINAL_ITERATION}.*"):
        path.unlink()
    RunFolder(run).point_state_at_its_model()
    return run


# ------------------------------------------------------------------------- interrupted by SIGINT

def send_sigint(process, to):
    """SIGINT as each case sends it: to `caffe train` alone; to the process group (a terminal's
    Ctrl-C, or a script's group when tools/train.py runs in its background); to
    tools/train.py alone (`kill -INT`)."""
    if to == "caffe":
        caffe = [pid for pid in descendants(process.pid)
                 if b"caffe" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert caffe, "no `caffe train` under tools/train.py"
        os.kill(caffe[0], signal.SIGINT)
    elif to in ("ctrl-c", "script"):
        os.killpg(process.pid, signal.SIGINT)
    else:
        os.kill(process.pid, signal.SIGINT)


def ignore_sigint():
    """What a non-interactive shell does for a command it starts in the background (`cmd &`):
    SIGINT ignored, so that a Ctrl-C of the script reaches only Caffe, which hooks its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_sigint():
    """SIGINT as a command started in a terminal has it, whatever this test run inherited (a
    suite started by `nohup ... &` ignores it, and so would the tool)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupted_training(lmdb_dir, run, to):
    """Start the long training in a process group of its own, SIGINT it (send_sigint) once
    Caffe has trained 3 iterations, and wait; returns (CompletedProcess-like, the pids of
    its descendants seen while it ran)."""
    process = subprocess.Popen(train_command(lmdb_dir, run, *LONG), cwd=REPO, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True,
                               preexec_fn=ignore_sigint if to == "script" else default_sigint)
    part, family = run / "logs" / "train.part.log", set()
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        family.update(descendants(process.pid))
        if part.exists() and "Iteration 3 (" in part.read_text(errors="replace"):
            family.update(descendants(process.pid))
            send_sigint(process, to)
            break
        time.sleep(0.02)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), family


@pytest.mark.slow
@pytest.mark.parametrize("to", ["ctrl-c", "script", "caffe", "tool"])
def test_an_interrupted_training_says_where_it_stopped_and_exits_130(lmdb_dir, tmp_path, to):
    """Caffe stops at SIGINT after a snapshot and exits 0: tools/train.py must not take that
    for the end ("iteration 200/200 ... done", status 0, evaluation then using the early
    snapshot). It checks the iteration reached and says where it stopped, in one line, with
    status 130; on Ctrl-C of itself (no KeyboardInterrupt traceback) its `caffe train`
    snapshots and ends too. The same command then resumes to the end."""
    run = tmp_path / "run"
    done, family = interrupted_training(lmdb_dir, run, to)
    assert done.returncode == INTERRUPTED, done.stderr[-3000:]
    error = the_error(done)
    state = RunFolder(run).latest_state()
    assert state is not None and complete_snapshot(state[1]) and state[0] < 200
    assert error.startswith("error: training stopped early")
    assert f"at iteration {state[0]} of 200" in error and str(state[1]) in error
    assert "run the same command again to resume" in error
    assert not [pid for pid in family if running(pid)], "`caffe train` outlived tools/train.py"
    assert not lock_file(run).exists()
    if to != "ctrl-c":
        return
    resumed = run_tool(train_command(lmdb_dir, run, *LONG, quiet=False))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert RunFolder(run).latest_state()[0] == 200
    # the progress line's rates: none above what Caffe measured (its first line after the
    # resume, counted from iteration 0, left out), with room for the clock's coarseness
    log = RunFolder(run).log_path.read_text().split("Resuming from")[-1]
    measured = [float(rate) for rate in re.findall(r"\(([0-9.e+]+) iter/s", log)[1:]]
    shown = [float(rate) for rate in re.findall(r"([0-9.]+) img/s", resumed.stderr)]
    assert shown and max(shown) <= 2 * max(measured) * 2   # batch 2


STOPPED_LOG = """\
I20261206 21:36:25.880000 32393 solver.cpp:247] Iteration 4 (125 iter/s, 0.008s/1 iters), loss = 14.45
I20261206 21:36:25.883356 32393 solver.cpp:472] Snapshotting to binary proto file /r/snapshots/iter_iter_5.caffemodel
I20261206 21:36:25.885890 32393 sgd_solver.cpp:326] Snapshotting solver state to binary proto file /r/snapshots/iter_iter_5.solverstate
I20261206 21:36:25.886395 32393 solver.cpp:319] Optimization stopped early.
I20261206 21:36:25.886415 32393 caffe.cpp:250] Optimization Done.
"""


def test_the_progress_line_of_a_training_stopped_early_is_not_done():
    """caffe.cpp logs "Optimization Done." even after Solve's "Optimization stopped early.":
    the line must not jump to the last iteration and say done."""
    stream = io.StringIO()
    progress = TrainingProgress(200, 2, stream=stream, min_interval=0)
    for line in STOPPED_LOG.splitlines():
        progress.feed(line)
    progress.finish()
    assert progress.iteration == 4
    assert progress.status().startswith("train: iteration 4/200 (2%), loss 14.45")
    assert progress.status().endswith(", stopped early")
    assert "done" not in stream.getvalue() and "200/200" not in stream.getvalue()


# ----------------------------------------------------------------------------- the progress rate

# The end of a `caffe train` resumed from iteration 5 (display every iteration, batch 2), as
# follow_log reads it: in one burst. The last line has no rate of Caffe's.
RESUMED_LOG = """\
I20261206 21:36:14.872268 31806 caffe.cpp:235] Resuming from /r/snapshots/iter_iter_5.solverstate
I20261206 21:36:15.191111 31806 solver.cpp:247] Iteration 5 (15.7729 iter/s, 0.317s/1 iters), loss = 7.0639
I20261206 21:36:15.203725 31806 solver.cpp:247] Iteration 6 (83.3333 iter/s, 0.012s/1 iters), loss = 7.26387
I20261206 21:36:15.211449 31806 solver.cpp:247] Iteration 7 (142.857 iter/s, 0.007s/1 iters), loss = 7.22238
I20261206 21:36:15.218760 31806 solver.cpp:247] Iteration 8 (142.857 iter/s, 0.007s/1 iters), loss = 6.40808
I20261206 21:36:15.225028 31806 solver.cpp:247] Iteration 9 (166.667 iter/s, 0.006s/1 iters), loss = 5.93379
I20261206 21:36:15.232177 31806 solver.cpp:335] Iteration 10, loss = 6.9089
I20261206 21:36:15.918810 31806 solver.cpp:340] Optimization Done.
"""


class BurstClock:
    """Seconds that advance 10 microseconds at every reading (lines read in one burst), or
    jump where a test sets them."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        self.now += 1e-5
        return self.now


def test_a_rate_is_only_shown_when_measured_over_enough_time():
    """114413.2 img/s: the clock's rate between two lines read in one burst (the last line
    after a resume has no rate of Caffe's, and came 10 microseconds after the one before).
    Caffe's own figures are timed by Caffe; the clock's need MIN_RATE_SECONDS."""
    progress = TrainingProgress(10, 2, start_iteration=5, stream=io.StringIO(),
                                clock=BurstClock())
    for line in RESUMED_LOG.splitlines():
        progress.feed(line)
    assert progress.status() == "train: iteration 10/10 (100%), loss 6.909, 333.3 img/s, done"

    # older Caffe: no rate in any line; two lines of one burst give none, the next one, 10 s
    # later, gives it over the 20 iterations since the first
    clock = BurstClock()
    progress = TrainingProgress(100, 16, stream=io.StringIO(), clock=clock)
    progress.feed("I1126 10:00:00.000000 1 solver.cpp:239] Iteration 20, loss = 1.5")
    progress.feed("I1126 10:00:00.010000 1 solver.cpp:239] Iteration 21, loss = 1.4")
    assert "img/s" not in progress.status()
    clock.now += 10
    progress.feed("I1126 10:00:10.000000 1 solver.cpp:239] Iteration 40, loss = 1.25")
    assert progress.status() == "train: iteration 40/100 (40%), loss 1.25, 32.0 img/s, 30s left"
    # a figure of Caffe's timed over no time at all (it then divides by 1 s) is none
    progress.feed("I1126 10:00:10.000000 1 solver.cpp:239] Iteration 45 (5 iter/s, 0s/5 iters), "
                  "loss = 1.2")
    assert ", 32.0 img/s" in progress.status()


# ------------------------------------------------------------- a snapshot that cannot be written

def dev_full_in_place_of(path):
    """Make `path` a symbolic link to /dev/full, where every write fails with ENOSPC (No
    space left on device), as on a full disk: no root, no small file system needed."""
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/full")


@pytest.mark.slow
def test_a_snapshot_on_a_full_disk_is_told_in_one_line_and_the_rerun_resumes(lmdb_dir,
                                                                              finished,
                                                                              tmp_path):
    """The snapshot of iteration 10 and the run's log (appended after Caffe ends) go to a
    "full disk": Caffe's `Check failed: SerializeToOstream`, then an OSError traceback of
    the log's append, were all the user saw. Now one line names the snapshot's folder and says
    the disk is full, the snapshot of iteration 5 stays as it was, Caffe's log of the run
    waits in train.part.log, and with room again the same command appends that log and
    resumes from iteration 5. (The log is /dev/full from the start: its size reads 0, so an
    earlier log could not be put back consistently.)"""
    run = cut_after_iteration_5(finished, tmp_path / "run")
    kept = contents(run / "snapshots")
    log, part = RunFolder(run).log_path, run / "logs" / "train.part.log"
    dev_full_in_place_of(run / "snapshots" / "iter_iter_10.caffemodel")
    dev_full_in_place_of(log)

    done = run_tool(train_command(lmdb_dir, run))
    assert done.returncode == 1
    error = the_error(done)
    assert f"could not write the snapshot iter_iter_10.caffemodel in {run / 'snapshots'}" in error
    assert "the disk is full" in error and "resumes from the snapshot of iteration 5" in error
    assert f"Caffe's log stays in {part}" in error and "No space left on device" in error
    assert "Check failed: proto.SerializeToOstream" in part.read_text()
    for name, content in kept.items():
        assert (run / "snapshots" / name).read_bytes() == content
    assert not lock_file(run).exists()

    (run / "snapshots" / "iter_iter_10.caffemodel").unlink()   # room again
    log.unlink()
    done = run_tool(train_command(lmdb_dir, run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert RunFolder(run).latest_state()[0] == FINAL_ITERATION
    text = log.read_text()   # the failed run's log, then this one's
    assert text.index("Check failed: proto.SerializeToOstream") < text.rindex("Resuming from")
    assert text.count("Resuming from") == 2 and not part.exists()


@pytest.mark.slow
def test_a_snapshot_past_the_file_size_limit_is_told_in_one_line(lmdb_dir, finished, tmp_path):
    """`ulimit -f` below a snapshot's size (set in the child: resource.setrlimit): Caffe,
    whose embedded Python ignores SIGXFSZ as Python does, gets EFBIG and fails its check as on
    a full disk. The message names the folder and the limit; the cut-short file is removed
    (it takes room and is of no use), the snapshot of iteration 5 kept."""
    run = cut_after_iteration_5(finished, tmp_path / "run")
    kept = contents(run / "snapshots")
    limit = (run / "snapshots" / "iter_iter_5.caffemodel").stat().st_size * 3 // 4
    assert RunFolder(run).log_path.stat().st_size * 2 < limit   # the logs fit under it

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = run_tool(train_command(lmdb_dir, run), preexec_fn=limit_file_size)
    assert done.returncode == 1
    error = the_error(done)
    assert f"could not write the snapshot iter_iter_10.caffemodel in {run / 'snapshots'}" in error
    assert "the file size limit (ulimit -f)" in error and "raise that limit" in error
    assert contents(run / "snapshots") == kept
    assert not lock_file(run).exists()


# ----------------------------------------------------------------------------- read-only folders

def read_only_prefix(folder):
    """A command prefix that runs a command with `folder` mounted read-only (EROFS for every
    write, root's included: the tests run as root here, and root ignores permission bits, so
    chmod would prove nothing). A bind mount made read-only in a mount namespace of the
    command's own (`unshare --user --map-root-user --mount`), which needs neither root nor
    any change outside that command; None where this system refuses it."""
    prefix = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
              'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"',
              "sh", str(folder)]
    try:
        probe = subprocess.run(prefix + ["touch", str(Path(folder) / "probe")],
                               capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    if "Read-only file system" not in probe.stderr or (Path(folder) / "probe").exists():
        return None
    return prefix


@pytest.mark.slow
@pytest.mark.parametrize("read_only", ["run", "parent"])
def test_a_read_only_run_folder_is_refused_in_one_line(lmdb_dir, finished, tmp_path,
                                                       read_only):
    """A finished run on a read-only run folder (its parent writable, where the lock goes) or
    in a read-only folder (no lock can be made beside it): tools/train.py used to fail with
    an OSError traceback (prepare_run rewriting the nets, or opening the lock). Now one line
    names what cannot be written, before anything is, and the run is left as it was."""
    run = tmp_path / "parent" / "run"
    shutil.copytree(finished, run)
    prefix = read_only_prefix(run if read_only == "run" else run.parent)
    if prefix is None:
        pytest.skip("this system gives no read-only bind mount in a namespace of one's own")
    before = contents(run)
    done = run_tool(prefix + train_command(lmdb_dir, run))
    assert done.returncode == 1
    error = the_error(done)
    if read_only == "run":
        assert f"cannot write {run} (a read-only file system)" in error
        assert "give a run folder you can write to (--run)" in error
    else:
        assert f"cannot write {lock_file(run)}" in error and "Read-only file system" in error
    assert contents(run) == before
    assert sorted(path.name for path in run.parent.iterdir()) == ["run"]   # no lock left


@pytest.mark.slow
def test_a_run_folder_under_a_file_is_refused_in_one_line(lmdb_dir, tmp_path):
    """Where no read-only mount can be made, a run folder whose parent is a regular file:
    nothing can be written there, for root too."""
    (tmp_path / "file").write_text("a file, not a folder\n")
    run = tmp_path / "file" / "run"
    done = run_tool(train_command(lmdb_dir, run))
    assert done.returncode == 1
    assert f"cannot write {lock_file(run)}" in the_error(done)
    assert (tmp_path / "file").read_text() == "a file, not a folder\n"


# --------------------------------------------------------------------------------- the lock file

@pytest.mark.slow
def test_a_failed_training_leaves_no_lock_file(tmp_path):
    """The lock (<run>.lock beside the run) is held while the run is prepared: a run that
    fails there (no dataset) must not leave the file behind."""
    run = tmp_path / "run"
    done = run_tool(train_command(tmp_path / "no-dataset", run))
    assert done.returncode == 1
    assert "no-dataset" in the_error(done)
    assert list(tmp_path.iterdir()) == []   # neither the run folder nor its lock
