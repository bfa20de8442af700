"""Kill tests: SIGKILL at many instants of `make_lmdb`, of `make_lmdb --force` and
of training (`make train`'s tools/train.py, including while Caffe writes a snapshot); the same
command run again must give what an uninterrupted run gives, and nothing a kill leaves may
be taken for a result. The instants are spread over an uninterrupted run's duration:
`--kill-points N` (tests/conftest.py) per command, few in `make test`, more in `make
fault-sweep`."""
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import pytest

from solver.caffe_cli import train_losses
from solver.run_folder import RunFolder, complete_model, complete_snapshot
from tests.tiny_dataset import TINY
from tests.tiny_raw import lmdb_arguments, write_tiny_raw

REPO = Path(__file__).resolve().parents[1]
# A snapshot every iteration, so that kills fall into snapshot writes often.
SNAPSHOT_EVERY_ITERATION = TINY + ["snapshot_epochs=0.2"]
FINAL_ITERATION = 10    # TINY: 2 epochs of 5 iterations


def kill_instants(duration, points):
    """`points` instants spread over (0, duration): the middles of equal slices."""
    return [duration * (i + 0.5) / points for i in range(points)]


def children(pid):
    """The pids of a process's children (its worker processes); none for a process that
    has ended, even while its tasks are listed."""
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def descendants(pid):
    found = []
    for child in children(pid):
        found += [child] + descendants(child)
    return found


def running(pid):
    """Whether process pid runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def run_and_kill(command, after, kill_when=None):
    """Start command, SIGKILL it `after` seconds later (or as soon as kill_when() is true);
    returns whether it was killed (False: it ended first). Its descendants must end with it:
    a killed command may leave no worker or `caffe train` running on."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + after
    family = set()
    while process.poll() is None and time.monotonic() < deadline:
        family.update(descendants(process.pid))
        if kill_when is not None and kill_when():
            break
        time.sleep(0.002 if kill_when is not None else 0.02)
    if process.poll() is not None:
        return False
    family.update(descendants(process.pid))
    process.kill()
    process.wait()
    until = time.monotonic() + 20
    while any(running(pid) for pid in family) and time.monotonic() < until:
        time.sleep(0.05)
    assert not [pid for pid in family if running(pid)], "processes outlived the killed command"
    return True


def timed(command):
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return time.monotonic() - started


# --------------------------------------------------------------------------- make_lmdb

@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return write_tiny_raw(tmp_path_factory.mktemp("raw") / "h36m", frames=8)


def make_lmdb(raw, out, *extra):
    return [sys.executable, "-m", "data_prep.make_lmdb",
            *lmdb_arguments(raw, out, *extra, workers=2)]


def folder_contents(folder):
    """Every LMDB's records and every other file's bytes of a dataset folder."""
    contents = {}
    for path in sorted(Path(folder).iterdir()):
        if (path / "data.mdb").exists():
            with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
                contents[path.name] = dict(txn.cursor())
        elif path.is_file():
            contents[path.name] = path.read_bytes()
    return contents


@pytest.fixture(scope="module")
def uninterrupted(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "ds"
    duration = timed(make_lmdb(raw, out))
    return folder_contents(out), duration


@pytest.mark.slow
def test_make_lmdb_killed_anywhere_then_rerun_gives_the_same_dataset(raw, uninterrupted,
                                                                     tmp_path, kill_points):
    whole, duration = uninterrupted
    for number, instant in enumerate(kill_instants(duration, kill_points)):
        out = tmp_path / f"ds{number}"
        if run_and_kill(make_lmdb(raw, out), instant) and not out.exists():
            # nothing half-built under --out: it is absent (then built by the rerun) or
            # complete (killed after its rename; a rerun would ask for --force)
            assert subprocess.run(make_lmdb(raw, out), cwd=REPO).returncode == 0
        assert folder_contents(out) == whole
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], \
            "a rerun leaves no temporary folder of the killed build"


@pytest.mark.slow
def test_make_lmdb_force_killed_anywhere_keeps_the_old_or_the_new_dataset(raw, uninterrupted,
                                                                          tmp_path, kill_points):
    """The old output is a copy with a marker file: after a kill, --out holds the old
    dataset or the new one, whole, never neither."""
    whole, duration = uninterrupted
    out = tmp_path / "ds"
    assert subprocess.run(make_lmdb(raw, out), cwd=REPO).returncode == 0
    for instant in kill_instants(duration, kill_points):
        (out / "old-marker").write_text("old")
        old = folder_contents(out)
        if run_and_kill(make_lmdb(raw, out, "--force"), instant):
            assert folder_contents(out) in (old, whole)
        rerun = subprocess.run(make_lmdb(raw, out, "--force"), cwd=REPO)
        assert rerun.returncode == 0 and folder_contents(out) == whole


# ---------------------------------------------------------------------------- training

def train_command(lmdb_dir, run, *extra):
    return [sys.executable, "tools/train.py", "--lmdb", str(lmdb_dir), "--run", str(run),
            "--quiet", "--set", *SNAPSHOT_EVERY_ITERATION, *extra]


def new_snapshot_file(run, suffix):
    """A kill_when: true as soon as a snapshot file with `suffix` appears that was not there
    when the command started (Caffe is then writing it: the caffemodel first, then the
    solverstate)."""
    seen = set((Path(run) / "snapshots").glob(f"*{suffix}"))
    return lambda: bool(set((Path(run) / "snapshots").glob(f"*{suffix}")) - seen)


def check_finished_run(run, uninterrupted_losses):
    """The resumed run reached the last iteration with complete snapshots, and its log has a
    loss line for every iteration (those after the lambda_2D switch included)."""
    folder = RunFolder(Path(run))
    state = folder.latest_state()
    assert state is not None and state[0] == FINAL_ITERATION and complete_snapshot(state[1])
    assert complete_model(folder.latest_weights())
    assert folder.latest_weights().name.endswith(f"_iter_{FINAL_ITERATION}.caffemodel")
    log = folder.log_path.read_text()
    assert [it for it, _ in train_losses(log)] == [it for it, _ in uninterrupted_losses]
    assert "lambda_2D = 0.1" in log and "lambda_2D = 0.01" in log


@pytest.mark.slow
def test_training_killed_anywhere_resumes_to_the_same_end(lmdb_dir, tmp_path, kill_points):
    """`make train` killed at spread instants and during snapshot writes, then run again
    (as often as it takes) until it ends: the same final iteration as an uninterrupted run,
    the logs of every part kept, evaluation's weights complete at every moment."""
    whole = tmp_path / "whole"
    duration = timed(train_command(lmdb_dir, whole))
    losses = train_losses(RunFolder(whole).log_path.read_text())
    assert losses[-1][0] == FINAL_ITERATION
    for number, instant in enumerate(kill_instants(duration, kill_points)):
        run = tmp_path / f"run{number}"
        run_and_kill(train_command(lmdb_dir, run), instant)
        _assert_usable_after_kill(run)
        assert subprocess.run(train_command(lmdb_dir, run), cwd=REPO,
                              capture_output=True).returncode == 0
        check_finished_run(run, losses)
    # kills while Caffe writes a snapshot, as soon as a new file appears; wider layers make
    # the files (10 MB) take long enough to write that some kills cut one short
    run = tmp_path / "snapshot-kills"
    wide = ("fc_2d_width=512", "fc_3d_width=512")
    for suffix in (".caffemodel", ".solverstate"):
        run_and_kill(train_command(lmdb_dir, run, *wide), duration * 3,
                     kill_when=new_snapshot_file(run, suffix))
        _assert_usable_after_kill(run)
    assert subprocess.run(train_command(lmdb_dir, run, *wide), cwd=REPO,
                          capture_output=True).returncode == 0
    check_finished_run(run, losses)


def _assert_usable_after_kill(run):
    """What a kill leaves: no lock held, and any snapshot that resume or evaluation would
    take is complete."""
    folder = RunFolder(Path(run))
    if not folder.config_path.exists():
        return
    state = folder.latest_state()
    if state is not None:
        assert complete_snapshot(state[1])
    if any(folder.snapshots.glob("*.caffemodel")):
        try:
            assert complete_model(folder.latest_weights())
        except Exception as error:   # none complete yet: a clear RunError, not a partial one
            assert "no complete caffemodel" in str(error)


@pytest.mark.slow
def test_a_kill_after_the_last_snapshot_keeps_its_log(lmdb_dir, tmp_path):
    """Killed after Caffe's last snapshot but before the part log was appended (found by the
    kill test above): the rerun, which finds the run finished, still appends it."""
    from tools.train import main as train_main
    run = tmp_path / "run"
    arguments = ["--lmdb", str(lmdb_dir), "--run", str(run), "--quiet", "--set", *TINY]
    assert train_main(arguments) == 0
    folder = RunFolder(run)
    log = folder.log_path.read_text()
    folder.log_path.rename(folder.log_path.with_name("train.part.log"))   # what the kill left
    assert train_main(arguments) == 0
    assert folder.log_path.read_text() == log
    assert not folder.log_path.with_name("train.part.log").exists()


@pytest.mark.parametrize("appended, part_removed", [(None, False), (0, False), (7, False),
                                                     (19, False), (19, True)])
def test_a_part_log_is_appended_once_whatever_a_kill_left(tmp_path, appended, part_removed):
    """The states a kill inside append_once can leave: nothing done yet (appended None, no
    note), or the note written and 0, 7 or all 19 of the part's bytes appended, the part
    still there or (only after all of it was appended) removed. The next call leaves the
    log with the part's lines once."""
    from solver.training import append_once
    log, part = tmp_path / "train.log", tmp_path / "train.part.log"
    before, lines = b"iteration 0\n", b"iteration 5\nkilled\n"
    log.write_bytes(before + (lines[:appended] if appended is not None else b""))
    part.write_bytes(lines)
    if appended is not None:
        (tmp_path / "train.log.appending").write_text(str(len(before)))
    if part_removed:
        part.unlink()
    append_once(part, log)
    assert log.read_bytes() == before + lines
    assert sorted(path.name for path in tmp_path.iterdir()) == ["train.log"]
    append_once(part, log)       # nothing left to do
    assert log.read_bytes() == before + lines
