"""make_synth's faults: --force replaces only a tree it
built; BVH values that no motion has are refused naming the file and line, and an error in a
worker (or a worker's death) ends the build with one line, never a hang; two builds of one
--out at once, and kills of a --force build at any instant, lose nothing and leave nothing
behind. The tool runs as a user runs it, in a process of its own."""
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_prep.synth import bvh
from tests.test_kill import descendants, kill_instants, run_and_kill

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--subjects", "S1", "--actions", "Walking", "--frames", "4", "--scale", "0.2"]
# long enough that a test can act while the build runs (a few seconds)
LONGER = ["--subjects", "S1", "--actions", "Walking", "--frames", "30", "--scale", "0.2"]
NOT_HUNG_S = 60      # an uninterrupted LONGER build takes a few seconds


def make_synth(out, *extra, workers=2):
    return [sys.executable, "-m", "data_prep.make_synth", "--out", str(out), "--quiet",
            "--workers", str(workers), *extra]


def run(command):
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          timeout=NOT_HUNG_S)


def tree(folder):
    """{path under folder: bytes} of every file in it."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def beside(out):
    """The names in out's parent folder that belong to out: itself, its lock and the
    temporary folders of its builds."""
    out = Path(out)
    return sorted(p.name for p in out.parent.iterdir()
                  if p.name in (out.name, out.name + ".lock")
                  or p.name.startswith(f".{out.name}.tmp-"))


def one_error_line(stderr):
    """The one line a failed run writes on stderr, `error: ...` (no traceback)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An uninterrupted SMALL build (seed 0), and how long it took."""
    out = tmp_path_factory.mktemp("built") / "synth"
    started = time.monotonic()
    result = run(make_synth(out, *SMALL))
    assert result.returncode == 0, result.stderr
    return tree(out), time.monotonic() - started


# ------------------------------------------------------- 1. --force and what it may replace

@pytest.mark.parametrize("contents", [
    {"thesis.tex": "seven years of work"},                              # a folder of the user's
    {"metadata.json": '{"author": "someone"}', "data.bin": "x"},        # another tool's metadata
    {"manifest.json": '{"format_version": 1, "splits": {}}'},           # make_lmdb's dataset
], ids=["user-folder", "foreign-metadata", "lmdb-dataset"])
def test_force_replaces_only_a_synthetic_tree_this_toolkit_built(tmp_path, contents):
    out = tmp_path / "folder"
    out.mkdir()
    for name, text in contents.items():
        (out / name).write_text(text)
    before = tree(out)
    result = run(make_synth(out, *SMALL, "--force"))
    assert result.returncode == 2
    assert f"{out} exists and is not a synthetic dataset this toolkit built" in result.stderr
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


# ------------------------------------------------------------------------- 4. motion files

def motion_text(bvh_files, frame_time=1 / 50, root_x=lambda i: 0):
    """Lines of a valid BVH clip of ten frames (the CMU skeleton), the root at x root_x(i)."""
    skeleton = bvh_files.cmu_skeleton()
    order = bvh_files.joint_order(skeleton)
    rows = [bvh_files.frame_row(order, root_position=(root_x(i), 95, 0),
                                angles={"LeftArm": (30 + 5 * i, 0, 0)}) for i in range(10)]
    return bvh_files.text(skeleton, rows, frame_time).splitlines()


def corrupted(lines, where, old, new):
    """`lines` with the first `old` in the line `where` picks replaced by `new`; returns
    (lines, the 1-based number of that line)."""
    index = where(lines)
    assert old in lines[index]
    lines = list(lines)
    lines[index] = lines[index].replace(old, new, 1)
    return lines, index + 1


def third_frame(lines):
    return lines.index("Frame Time: 0.02") + 3


def frame_time_line(lines):
    return lines.index("Frame Time: 0.02")


def spine_offset(lines):
    return next(i for i, line in enumerate(lines) if line.strip() == "OFFSET 0 15 0")


# values that float() reads but no motion has
UNREAD_VALUES = {
    "nan": (third_frame, "0 95 0", "nan 95 0"),
    "inf": (third_frame, "0 95 0", "inf 95 0"),
    "1e308": (third_frame, "0 95 0", "1e308 95 0"),
    "-1e300": (third_frame, "0 95 0", "0 -1e300 0"),
    "nan-offset": (spine_offset, "OFFSET 0 15 0", "OFFSET 0 nan 0"),
    "frame-time-nan": (frame_time_line, "0.02", "nan"),
    "frame-time-5s": (frame_time_line, "0.02", "5"),
}
# and frame times the reader refused already, in a worker's traceback
BAD_VALUES = {**UNREAD_VALUES, "frame-time-0": (frame_time_line, "0.02", "0"),
              "frame-time-negative": (frame_time_line, "0.02", "-0.02")}


@pytest.mark.parametrize("where, old, new", UNREAD_VALUES.values(), ids=UNREAD_VALUES)
def test_the_reader_refuses_values_no_motion_has_naming_file_and_line(bvh_files, where, old,
                                                                      new):
    lines, number = corrupted(motion_text(bvh_files), where, old, new)
    path = bvh_files.write("\n".join(lines) + "\n", "bad.bvh")
    with pytest.raises(ValueError) as error:
        bvh.read_bvh(path)
    assert f"{path}, line {number}: " in str(error.value)
    assert error.value.one_line.startswith(f"{path}:{number}: ")
    # a worker's error comes back to the main process pickled: it must come back whole
    again = pickle.loads(pickle.dumps(error.value))
    assert type(again) is type(error.value) and str(again) == str(error.value)
    assert again.one_line == error.value.one_line


@pytest.mark.parametrize("where, old, new", BAD_VALUES.values(), ids=BAD_VALUES)
def test_make_synth_refuses_a_bad_motion_file_in_one_line(tmp_path, bvh_files, where, old,
                                                          new):
    lines, number = corrupted(motion_text(bvh_files), where, old, new)
    path = bvh_files.write("\n".join(lines) + "\n", "bvh/bad.bvh")
    out = tmp_path / "synth"
    result = run(make_synth(out, *SMALL, "--bvh", str(path.parent)))
    assert result.returncode == 1
    assert one_error_line(result.stderr).startswith(f"error: {path}:{number}: ")
    assert not out.exists() and beside(out) == []


def tiny_offsets(line):
    """An OFFSET line with its values times 1e-200; any other line as it is."""
    head, _, values = line.partition("OFFSET ")
    if not _:
        return line
    return head + "OFFSET " + " ".join(f"{float(v) * 1e-200:g}" for v in values.split())


def test_a_motion_scaled_beyond_any_studio_is_refused_naming_the_file(bvh_files):
    """OFFSETs all but zero make a figure 1.7e-198 units tall, which the unit guess scales
    up by 1e201: its root, 95 units above the floor, would be 1e203 mm up."""
    lines = [tiny_offsets(line) for line in motion_text(bvh_files)]
    path = bvh_files.write("\n".join(lines) + "\n", "tiny.bvh")
    motion = bvh.read_bvh(path)
    with pytest.raises(ValueError) as error:
        bvh.retarget_to_h36m(motion)
    assert str(path) in str(error.value) and error.value.one_line.startswith(f"{path}: ")


def test_an_error_in_a_worker_reaches_the_user_in_one_line(tmp_path, bvh_files):
    """A valid clip whose root walks 13.5 m along x: placed in the studio, the person passes
    a camera. Workers find it (each recording is placed at random): one line naming the
    file, not a worker's traceback."""
    lines = motion_text(bvh_files, root_x=lambda i: 150 * i)
    path = bvh_files.write("\n".join(lines) + "\n", "bvh/far.bvh")
    out = tmp_path / "synth"
    result = run(make_synth(out, *SMALL[:4], "--frames", "10", "--scale", "0.2",
                            "--bvh", str(path.parent)))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: {path}: ") and "camera" in line
    assert not out.exists() and beside(out) == []


def spawned_workers(pid):
    """The worker processes of process pid (multiprocessing's spawn children)."""
    found = []
    for child in descendants(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            pass
    return found


def test_a_worker_that_dies_ends_the_build_in_one_line_not_a_hang(tmp_path):
    """Its workers SIGKILLed (as the kernel kills one for memory) while they write: the build
    ends within NOT_HUNG_S with one line, leaving nothing."""
    out = tmp_path / "synth"
    process = subprocess.Popen(make_synth(out, *LONGER), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + NOT_HUNG_S
        # a worker has begun writing files: the world poses come first, the videos after
        while not list(tmp_path.glob(".synth.tmp-*/S1/MyPoseFeatures/D3_Positions/*.cdf")):
            assert process.poll() is None and time.monotonic() < deadline, "no worker wrote"
            time.sleep(0.01)
        workers = spawned_workers(process.pid)
        assert workers
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        try:
            _, stderr = process.communicate(timeout=NOT_HUNG_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make_synth hangs {NOT_HUNG_S} s after its workers died")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 1
    line = one_error_line(stderr)
    assert "worker" in line and str(out) in line
    assert not out.exists() and beside(out) == []


# ----------------------------------------------------------------- 5. two builds at once

def test_a_second_build_of_the_same_out_is_refused_while_the_first_runs(tmp_path):
    reference = tmp_path / "reference"
    assert run(make_synth(reference, *LONGER)).returncode == 0
    out = tmp_path / "synth"
    first = subprocess.Popen(make_synth(out, *LONGER), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + NOT_HUNG_S
        while not list(tmp_path.glob(".synth.tmp-*/S1")):
            assert first.poll() is None and time.monotonic() < deadline, "no build began"
            time.sleep(0.01)
        second = run(make_synth(out, *LONGER))
        assert second.returncode == 1
        line = one_error_line(second.stderr)
        assert str(out) in line and f"by process {first.pid}" in line
        assert first.poll() is None, "the first build ended before the second was checked"
    finally:
        _, first_errors = first.communicate(timeout=NOT_HUNG_S)
    assert first.returncode == 0, first_errors
    assert tree(out) == tree(reference)
    assert beside(out) == ["synth"]


# --------------------------------------------------------- 6. an interrupted --force build

def test_force_killed_anywhere_keeps_the_old_or_the_new_tree(tmp_path, built, kill_points):
    """Killed at spread instants of `make_synth --force`: --out holds the old tree or the new
    one, whole, and the next run leaves no temporary folder of the killed one."""
    whole, duration = built
    out = tmp_path / "synth"
    assert run(make_synth(out, *SMALL, "--seed", "1")).returncode == 0
    for instant in kill_instants(duration, kill_points):
        (out / "old-marker").write_text("old")
        old = tree(out)
        if run_and_kill(make_synth(out, *SMALL, "--force"), instant):
            assert tree(out) in (old, whole)
        rerun = run(make_synth(out, *SMALL, "--force"))
        assert rerun.returncode == 0, rerun.stderr
        assert tree(out) == whole
        assert beside(out) == ["synth"], "a rerun leaves nothing of the killed build"


def test_a_kill_while_the_old_tree_goes_never_leaves_it_half_gone(tmp_path, built):
    """The old tree holds many files, so that removing it takes a while; the kill comes as
    soon as --out stops being the old tree whole: it must then be the new one."""
    whole, _ = built
    out = tmp_path / "synth"
    assert run(make_synth(out, *SMALL, "--seed", "1")).returncode == 0
    extra = out / "extra"
    extra.mkdir()
    count = 20000
    for number in range(count):
        (extra / f"{number:05d}").write_bytes(b"")
    old = tree(out)

    def old_tree_touched():
        try:
            return not (out / "metadata.json").is_file() or len(os.listdir(extra)) < count
        except OSError:
            return True
    run_and_kill(make_synth(out, *SMALL, "--force"), NOT_HUNG_S, kill_when=old_tree_touched)
    assert tree(out) in (old, whole)
    rerun = run(make_synth(out, *SMALL, "--force"))
    assert rerun.returncode == 0 and tree(out) == whole
    assert beside(out) == ["synth"]
