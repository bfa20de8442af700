"""What the builders do to folders that exist: --force replaces only what this
toolkit built (built_folders.py's markers), never a raw dataset or any other folder; a full
disk or a file size limit ends a build with one line naming the folder, nothing of it left
behind; two builds of one folder: the second stops at once, naming the first's process; a
split emptied by skips is refused with the skips' reasons printed. Each runs the command as a
user does, in a process of its own."""
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from built_folders import build_lock, check_replaceable, FolderError, lock_path
from data_prep.h36m import sequence_paths
from tests.tiny_raw import lmdb_arguments, write_tiny_raw

REPO = Path(__file__).resolve().parent.parent
FRAMES = 4


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return write_tiny_raw(tmp_path_factory.mktemp("raw") / "h36m", FRAMES)


def tree(folder):
    """{relative path: bytes} of every file under folder (what must stay as it was)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def make_lmdb(raw, out, *extra, limit_file_size=None):
    """make_lmdb's command on the tiny tree, as a user runs it; limit_file_size: a ulimit -f
    (bytes) for it."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))
    return subprocess.run([sys.executable, "-m", "data_prep.make_lmdb",
                           *lmdb_arguments(raw, out, *extra)], cwd=REPO, capture_output=True,
                          text=True, timeout=300,
                          preexec_fn=limit if limit_file_size else None)


def one_error_line(result):
    """The command failed with one `error:` line and no traceback; returns that line."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


# ---------------------------------------------------------------- 1. --force never deletes
#                                                                    what it did not build

@pytest.mark.slow
@pytest.mark.parametrize("where", ["the raw tree", "its parent", "an unrelated folder"])
def test_make_lmdb_force_never_replaces_a_folder_it_did_not_build(raw, tmp_path, where):
    """`make_lmdb --root R --out R --force` replaced the raw tree R by the LMDBs; so did an
    --out of R's parent or of any folder. Now refused with the path, everything kept."""
    root = tmp_path / "h36m"
    shutil.copytree(raw, root)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("months of work")
    out = {"the raw tree": root, "its parent": tmp_path, "an unrelated folder": other}[where]
    before = tree(tmp_path)
    result = make_lmdb(root, out, "--force")
    line = one_error_line(result)
    assert str(out) in line and "not a dataset this toolkit built" in line
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_make_lmdb_force_replaces_a_dataset_it_built(raw, tmp_path):
    out = tmp_path / "ds"
    assert make_lmdb(raw, out).returncode == 0
    (out / "left over").write_text("x")
    assert make_lmdb(raw, out, "--force").returncode == 0
    assert not (out / "left over").exists()
    assert json.loads((out / "manifest.json").read_text())["splits"]["train"]["count"] > 0


def test_make_solver_and_smoke_refuse_to_replace_other_folders(tmp_path, lmdb_dir):
    """tools/make_solver.py --force and tools/smoke_train.py --force likewise: a folder
    without a run's config.json (or a smoke run's summary.json) is not theirs to replace."""
    other = tmp_path / "home"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    before = tree(other)
    solver = subprocess.run([sys.executable, "tools/make_solver.py", "--lmdb", str(lmdb_dir),
                             "--run", str(other), "--schedule", "demo", "--force",
                             "--link", str(tmp_path / "h36m.prototxt")],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert str(other) in one_error_line(solver)
    smoke = subprocess.run([sys.executable, "tools/smoke_train.py", "--out", str(other),
                            "--force"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert str(other) in one_error_line(smoke)
    assert tree(other) == before


def test_what_may_be_replaced(tmp_path):
    """built_folders.check_replaceable: nothing there or an empty folder always; a folder
    with the kind's own marker only with force; a marker of another kind, a marker that is
    not the toolkit's JSON, a file or a link never."""
    check_replaceable(tmp_path / "new", "dataset", force=False)
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", "dataset", force=False)
    built = tmp_path / "built"
    built.mkdir()
    (built / "manifest.json").write_text(json.dumps({"format_version": 2, "splits": {}}))
    with pytest.raises(FolderError, match="pass --force"):
        check_replaceable(built, "dataset", force=False)
    check_replaceable(built, "dataset", force=True)
    with pytest.raises(FolderError, match="not a run this toolkit built"):
        check_replaceable(built, "run", force=True)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"name": "a web app"}')
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(built)
    for path in (foreign, tmp_path / "file", tmp_path / "link"):
        with pytest.raises(FolderError, match="not a dataset this toolkit built"):
            check_replaceable(path, "dataset", force=True)


# ---------------------------------------------------------------- 2. a full disk

@pytest.fixture
def small_filesystem(tmp_path):
    """A 2 MiB tmpfs (a full disk within seconds), where this process may mount one (root);
    else the test is skipped with the reason (the file-size limit test runs everywhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_full_disk_ends_the_build_with_one_line_and_nothing_left(raw, small_filesystem):
    """Before: "error: [Errno 28] No space left on device" naming no path, the temporary
    folder left behind and the disk left full."""
    out = small_filesystem / "ds"
    result = make_lmdb(raw, out)
    line = one_error_line(result)
    assert str(small_filesystem) in line and "free space there" in line
    assert list(small_filesystem.iterdir()) == []
    assert shutil.disk_usage(small_filesystem).used < 64 * 1024


@pytest.mark.slow
def test_a_file_size_limit_ends_the_build_with_one_line_and_nothing_left(raw, tmp_path):
    """Before: a traceback ending in `lmdb.Error: mdb_txn_commit: Input/output error`."""
    out = tmp_path / "ds"
    result = make_lmdb(raw, out, limit_file_size=256 * 1024)
    line = one_error_line(result)
    assert str(out) in line and "ulimit -f" in line
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 5. two builds at once

@pytest.mark.slow
def test_a_second_build_of_one_folder_stops_at_once_and_the_first_completes(raw, tmp_path):
    """Before: the second deleted the first's temporary folder as stale, and the first
    failed with FileNotFoundError."""
    out = tmp_path / "ds"
    first = subprocess.Popen([sys.executable, "-m", "data_prep.make_lmdb",
                              *lmdb_arguments(raw, out)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".ds.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.poll() is None, "the first build ended before the second could start"
    second = make_lmdb(raw, out, "--force")
    assert f"process {first.pid}" in one_error_line(second)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]   # no lock, no leftovers


def test_the_lock_names_its_holder_and_goes_with_it(tmp_path):
    out = tmp_path / "ds"
    with build_lock(out):
        assert lock_path(out).read_text() == f"process {os.getpid()}"
        holder = subprocess.run(
            [sys.executable, "-c", "import sys; from built_folders import build_lock\n"
             "with build_lock(sys.argv[1]): pass", str(out)],
            cwd=REPO, capture_output=True, text=True)
        assert f"is being built by process {os.getpid()}" in holder.stderr
    assert not lock_path(out).exists()
    with pytest.raises(RuntimeError), build_lock(out):
        raise RuntimeError("a failed build")
    assert not lock_path(out).exists()


# ---------------------------------------------------------------- 10. an empty split

@pytest.mark.slow
def test_an_emptied_split_is_refused_with_the_reasons_that_emptied_it(raw, tmp_path):
    """Every test video unreadable: the build is refused, and before the refusal the skips
    that emptied the split are printed (before: only "no samples in the test split")."""
    root = tmp_path / "h36m"
    shutil.copytree(raw, root)
    for camera in ("54138969", "55011271", "58860488", "60457274"):
        for stem in ("Walking 1", "Walking"):
            video = sequence_paths(root, "S9", stem, camera)["video"]
            if video.exists():
                video.write_bytes(b"not a video")
    out = tmp_path / "ds"
    result = make_lmdb(root, out)
    assert "no samples in the test split" in one_error_line(result)
    assert "lmdb test: 0 crops" in result.stdout
    assert "S9/Walking 1.55011271" in result.stdout and "video" in result.stdout
    assert not out.exists() and not list(tmp_path.glob(".ds.*"))
