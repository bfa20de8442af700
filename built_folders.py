"""Folders and files the toolkit builds, and how it replaces them without losing anything: a
build goes into a temporary folder beside its output and is swapped in whole when complete;
--force replaces only a folder that carries the marker file of what the toolkit built there (a
dataset's manifest.json, a synthetic tree's metadata.json, a run's config.json, a smoke run's
summary.json), never anything else; and one build at a time holds an output's lock, which
names the process holding it to a second one.

Folders: data_prep/make_lmdb.py (through data_prep/dataset.DatasetWriter), make_synth.py,
solver/run_folder.py and solver/smoke.py.

A single file is written whole the same way: into a temporary file beside it, renamed over
it when complete, so that a kill or a full disk at any instant leaves the old file or the new
one, never a part:

    write_whole(path, text_or_bytes)
    with whole_file(path) as tmp:          # for writers that take a path (numpy, OpenCV, h5py)
        np.savez_compressed(tmp, **arrays)

(setup/gpu_bundle.py keeps its own rename: setup/ runs before the venv exists and imports
nothing of the project.)
"""
import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path


class FolderError(ValueError):
    """A folder the toolkit will not touch, or one another process is building: a one-line
    message naming it and the fix."""


def _json_with(path, keys):
    """Whether `path` is a JSON object holding every one of `keys`."""
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and all(key in content for key in keys)


# what the toolkit builds: {kind: (marker file, the keys its JSON always holds)}
MARKERS = {
    "dataset": ("manifest.json", ("format_version", "splits")),         # data_prep/dataset.py
    "synthetic dataset": ("metadata.json", ("generator", "stems")),     # data_prep/make_synth.py
    "run": ("config.json", ("variant", "dataset", "config")),           # solver/run_folder.py
    "smoke run": ("summary.json", ("losses", "snapshot")),              # solver/smoke.py
}


def is_built(path, kind):
    """Whether the folder `path` is a `kind` (MARKERS) that the toolkit built."""
    marker, keys = MARKERS[kind]
    return Path(path).is_dir() and _json_with(Path(path) / marker, keys)


def check_replaceable(path, kind, force):
    """FolderError unless a `kind` may be written to `path`: nothing there, or an empty
    folder; with force also a `kind` the toolkit built (MARKERS). Anything else (a raw
    dataset, a home folder, a file) is refused with its path."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return
    marker = MARKERS[kind][0]
    if not is_built(path, kind) or path.is_symlink():
        raise FolderError(f"{path} exists and is not a {kind} this toolkit built (no {marker} "
                          f"of its own): nothing there is replaced, not even with --force; "
                          f"choose another output folder, or move it away first")
    if not force:
        raise FolderError(f"{path} exists; pass --force to replace it (a {kind} this toolkit "
                          "built)")


def temporary_sibling(out):
    """A new empty folder beside `out` (.<name>.tmp-XXXX): where its build goes."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))


def remove_stale(out):
    """Remove the temporary folders that an interrupted build of `out` left beside it; where
    a kill fell between replace()'s two renames (no `out`, the old one set aside), the old
    one goes back. Call it holding out's lock (build_lock): then no build is using them."""
    out = Path(out)
    for stale in sorted(out.parent.glob(f".{out.name}.tmp-*")):
        if stale.name.endswith("-old") and not out.exists():
            stale.rename(out)
        else:
            shutil.rmtree(stale, ignore_errors=True)


def temporary_file(path):
    """Where a file is written before it is renamed to `path`: .<name>.tmp<suffix> beside it.
    Hidden, so that the readers' globs pass it over; path's suffix kept at the end, since
    some writers choose the format by it or append their own to any other name (numpy's
    savez adds .npz, matplotlib and OpenCV pick the image format)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{path.suffix}")


def put_in_place(tmp, path):
    """Rename the complete temporary file `tmp` over `path`, its data on the disk first
    (fsync), so that even a crash of the machine leaves the old file or the new one whole. A
    symbolic link is renamed as it is."""
    if not os.path.islink(tmp):
        handle = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
    os.replace(tmp, path)


@contextlib.contextmanager
def whole_file(path):
    """Yield the temporary path (temporary_file) to write `path` to; renamed over `path` when
    the block ends without an error (put_in_place), removed when it raises (a full disk, a
    failed writer). A temporary file a killed writer left is removed first: some writers
    refuse an existing file."""
    path = Path(path)
    tmp = temporary_file(path)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        put_in_place(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_whole(path, content):
    """Write `content` (str: in the locale's encoding, as Path.write_text; or bytes) to `path`
    whole (whole_file)."""
    with whole_file(path) as tmp:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content)


RENAME_EXCHANGE = 2   # renameat2 flag: swap two paths atomically (Linux 3.15, glibc 2.28)


def exchange(first, second):
    """Swap two paths in one step, so that a kill at any instant leaves each name holding a
    complete folder; False where the system or filesystem cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_cwd = -100   # AT_FDCWD: the paths are taken as they are
    return renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second),
                     RENAME_EXCHANGE) == 0


def replace(work, out):
    """Move the complete folder `work` to `out`, replacing what was there (checked by
    check_replaceable first): a kill at any instant leaves `out` either the old folder or
    the new one."""
    work, out = Path(work), Path(out)
    if not out.exists():
        work.rename(out)
    elif exchange(work, out):
        shutil.rmtree(work, ignore_errors=True)   # the old folder, swapped out
    else:
        # no atomic exchange here: the old folder moves aside first, and remove_stale puts it
        # back where a kill left no `out`
        aside = work.with_name(work.name + "-old")
        out.rename(aside)
        work.rename(out)
        shutil.rmtree(aside, ignore_errors=True)


def lock_path(out):
    """The lock file of `out`: beside it (so that the folder itself can be swapped)."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


@contextlib.contextmanager
def build_lock(out, what="being built"):
    """Hold out's lock while the block runs; FolderError at once, naming the process that
    holds it, when another one does ("<out> is <what> by process N": "being built", "in use"). The lock file is removed when the block ends however it
    ends, and the kernel drops the lock of a killed process (its file then stays until the
    next holder removes it)."""
    path = lock_path(Path(out).resolve())
    made = [folder for folder in reversed(path.parents) if not folder.exists()]
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")
        except OSError as err:
            raise FolderError(f"cannot write {path} (the lock of {out}): {err.strerror}; "
                              "choose a folder you can write to") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise FolderError(f"{out} is {what} by {holder}: wait for it to end (or end "
                              "it), then run again") from None
        # the holder before us may have removed the file after we opened it: lock the file
        # that is at the path now
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        handle.close()
        for folder in reversed(made):   # the folders made for the lock, where still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
