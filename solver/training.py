"""Training a run folder on the CPU, one GPU or several; every training command goes through here.

    train(run, cfg, variant, dataset_dir, gpus=())   # prepare the run folder, then train_run
    train_run(folder, gpus=())      # its solver to the end, resuming from the newest snapshot
    run_solver(solver_path, log_path, gpus=(), snapshot=None)   # one `caffe train`

CPU or one GPU: `caffe train -solver S [-snapshot X] [-gpu N]`, the log as Caffe writes it.

Several GPUs: `caffe train -gpu 0,1` refuses nets with Python layers ("PythonLayer does not
support CLI Multi-GPU, use train.py"), so this does what BVLC's python/train.py does: one
process per GPU (started fresh, never forked from a process that touched CUDA), sharing an
NCCL id made here. Process r sets its device, solver count N, rank r and multiprocess mode,
builds the solver from the same file, restores the snapshot, then joins Caffe's NCCL: rank 0's
weights are broadcast, and the gradients are all-reduced layer by layer during backward
(layer_wise_reduce, Caffe's default) and scaled by 1/N. Rank 0 alone tests and snapshots (as
in `caffe train`), writes log_path with the same lines `caffe train` writes (the loss parser,
Fig. 4 and the training summary read it) and snapshots at the end as `caffe train` does; rank r
> 0 logs to <log>.rank<r>.log. A failing rank stops all of them, since NCCL would wait for it
forever.

Batch: every GPU runs the net's batch and the update averages their gradients, so the
effective batch is N times the net's. tools/train.py gives the training nets batch_size / N
each, so that the paper's 128 stays 128 images per update on any number of GPUs. BatchNorm's
statistics are computed per GPU over batch_size / N images. The data layer shards its stream
by solver rank (layers/h36m_data.py): an epoch shows every image once across the GPUs.

The worker also runs as a single process on the CPU (`run_processes(..., gpus=())`): the
same code without NCCL, which the tests compare with `caffe train`.
"""
import argparse
import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from built_folders import write_whole
from solver.caffe_cli import (CaffeError, diverged_at, failure_excerpt, run_caffe,
                              train_losses, unwritten_snapshot)
from solver.devices import check_gpus, describe
from solver.progress import OPTIMIZATION_STOPPED, TrainingProgress, follow_log
from solver.run_folder import RunError, locked, prepare_run

# how often (s) the launcher looks at its workers, and a worker at its parent
POLL_SECONDS = 0.5


def train(run, cfg, variant, dataset_dir, gpus=(), force=False, quiet=False):
    """Prepare the run folder (solver/run_folder.py) and train it to the end; returns the
    RunFolder. A rerun resumes an interrupted run and leaves a finished one as it is."""
    check_gpus(gpus)
    with locked(run):   # its lock file beside the run: a folder we cannot write is refused
        check_writable(run)
        folder = prepare_run(run, cfg, variant, dataset_dir, gpus, force=force)
        train_run(folder, gpus, quiet=quiet)
    return folder


def check_writable(run):
    """RunError naming the first place that training writes to, where it exists, that this
    process may not write: the run folder, its snapshots/ and logs/, and the log appended in
    place. Checked before anything is written, so that a read-only run (even a finished one,
    whose nets prepare_run rewrites) is refused and left as it is."""
    run = Path(run)
    for path in (run, run / "snapshots", run / "logs", run / "logs" / "train.log"):
        needed = os.W_OK | os.X_OK if path.is_dir() else os.W_OK
        if path.exists() and not os.access(path, needed):
            raise RunError(f"cannot write {path} ({_why_not_writable(path)}): training writes "
                           "its nets, snapshots and log in the run folder; make it writable, "
                           "or give a run folder you can write to (--run)")


def _why_not_writable(path):
    """Why os.access refused to write `path`: its file system, or its permissions."""
    try:
        read_only = os.statvfs(path).f_flag & os.ST_RDONLY
    except OSError:
        read_only = False
    return "a read-only file system" if read_only else "no permission to write it"


def train_run(folder, gpus=(), quiet=False):
    """Run the folder's solver on gpus (() = the CPU) from its newest .solverstate to
    max_iter, showing progress from Caffe's log (unless quiet) and appending the log to
    logs/train.log (and logs/train.rank<r>.log of the other ranks). A TrainingError when the
    run ends short of max_iter (StoppedEarly, Diverged, SnapshotNotWritten, a failure) or its
    log could not be appended."""
    solver, cfg = folder.solver(), folder.config()
    part = folder.log_path.with_name("train.part.log")
    # of a run killed before it could (even after its last snapshot, which ends the run); one
    # left where it cannot be appended stops here: this run would overwrite it
    error = _keep_part_logs(part, folder.log_path, gpus)
    if error is not None:
        raise RunError(f"{_not_appended(part, folder.log_path, error)}: {_write_fix(error)}, "
                       "then run the same command again")
    state = folder.latest_state()
    if state and state[0] >= solver.max_iter:
        print(f"train: {folder.path} already finished at iteration {state[0]}")
        return
    print(f"train: {folder.variant()} to iteration {solver.max_iter} on {describe(gpus)}"
          + (f", resuming from {state[0]}" if state else "") + f"; log {folder.log_path}",
          flush=True)
    progress = TrainingProgress(solver.max_iter, cfg.batch_size,
                                start_iteration=state[0] if state else 0, quiet=quiet)
    try:
        run_solver(folder.solver_path, part, gpus, snapshot=state[1] if state else None,
                  progress=progress)
        stop = _short_of_the_end(folder, part, solver.max_iter)
    except KeyboardInterrupt:   # Caffe was stopped as at SIGINT (caffe_cli.stop_at_sigint)
        stop = StoppedEarly(folder, solver.max_iter, "Ctrl-C")
    except CaffeError as error:
        stop = _explained(folder, part, error)   # from the part log, before it is appended
    except BaseException:   # anything else that ended it: its log is kept all the same
        _keep_part_logs(part, folder.log_path, gpus)
        raise
    error = _keep_part_logs(part, folder.log_path, gpus)
    if error is not None:
        stop = stop or TrainingError(f"training reached iteration {solver.max_iter}")
        stop.log_note = (f"{_not_appended(part, folder.log_path, error)} ({_write_fix(error)}; "
                         "the same command appends it then)")
    if stop is not None:
        raise stop
    curve = train_losses(folder.log_path.read_text())
    if curve:
        print(f"train: iterations {curve[0][0]}-{curve[-1][0]}, loss {curve[0][1]:.4f} -> "
              f"{curve[-1][1]:.4f}; run folder {folder.path}")


class TrainingError(CaffeError):
    """A training that ended short of max_iter, or whose log could not be appended; log_note:
    what became of its log then, added to the message."""
    log_note = None

    def __str__(self):
        message = super().__str__()
        return message if self.log_note is None else f"{message}; {self.log_note}"


class StoppedEarly(TrainingError):
    """Training ended short of max_iter without an error: Caffe's stop at SIGINT, having
    snapshotted the iteration it reached (`cause`: "Ctrl-C" of this process, passed on to
    Caffe, or what Caffe's log says). tools/train.py exits 130, as an interrupted command."""

    def __init__(self, folder, max_iter, cause):
        state = folder.latest_state()
        self.iteration = state[0] if state else 0
        where = (f"at iteration {state[0]} of {max_iter}; run the same command again to "
                 f"resume from its snapshot {state[1]}" if state else
                 f"before its first snapshot (of {max_iter} iterations); run the same command "
                 "again to start it anew")
        super().__init__(f"training stopped early ({cause}) {where}")


INTERRUPTED = 130   # the exit status of a command ended by SIGINT (128 + 2), as a shell reports it


def command_status(work, errors):
    """The exit status of a training command's work() (tools/train.py, tools/experiment.py):
    the status work returns (an int; None counts as 0); 130 when training stopped early or Ctrl-C came (its
    message says how to go on); 1 after a one-line error for the exception types `errors`
    and for an OSError no check foresaw (a full disk, a read-only file)."""
    try:
        status = work()
    except StoppedEarly as err:   # it says how to go on
        print(f"error: {err}", file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:     # before or after Caffe ran: nothing half-written is taken
        print("error: interrupted (Ctrl-C); run the same command again to go on from the "
              "newest snapshot", file=sys.stderr)
        return INTERRUPTED
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {err.filename or 'a file'}: {err.strerror or err}; fix that, then run "
              "the same command again", file=sys.stderr)
        return 1
    return 0 if status is None else status


class SnapshotNotWritten(TrainingError):
    """Caffe could not write a snapshot (caffe_cli.unwritten_snapshot): a full disk, or a file
    size limit. The file it cut short is removed: of no use, and it takes room."""

    def __init__(self, folder, snapshot):
        if snapshot.is_file():   # not what a link leads to: only a file Caffe made
            snapshot.unlink()
        state = folder.latest_state()
        resume = (f"it resumes from the snapshot of iteration {state[0]}" if state else
                  "it starts anew (no snapshot was written before)")
        try:
            room = f"{_size(shutil.disk_usage(snapshot.parent).free)} free there now"
        except OSError:
            room = "its free space unknown"
        fix = "make room there"
        # a file size limit (ulimit -f), which Caffe inherits, stops a snapshot the same way
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            room += f"; the file size limit (ulimit -f) is {_size(limit)}"
            fix += " or raise that limit"
        super().__init__(
            f"could not write the snapshot {snapshot.name} in {snapshot.parent}: the disk is "
            f"full or the file cannot be written ({room}); {fix}, then run the same command "
            f"again: {resume}. Log: {folder.log_path}")


def _size(count):
    """A byte count as 512 B, 1.5 MiB or 73.2 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024


def _explained(folder, part, error):
    """The TrainingError that tells what a failed `caffe train` left (its part log still
    there): Diverged, SnapshotNotWritten, or the failure as it is."""
    diverged = _diverged(part)
    if diverged is not None:
        iteration, loss = diverged
        return Diverged(folder, iteration, loss, folder.set_aside_from(iteration))
    log = part.read_text(errors="replace") if part.exists() else ""
    snapshot = unwritten_snapshot(log)
    if snapshot is not None:
        return SnapshotNotWritten(folder, snapshot)
    return TrainingError(str(error))


def _short_of_the_end(folder, part, max_iter):
    """StoppedEarly when a `caffe train` that ended without an error left no snapshot of
    max_iter (Caffe exits 0 when SIGINT stops it); None when it reached it."""
    state = folder.latest_state()
    if state is not None and state[0] >= max_iter:
        return None
    log = part.read_text(errors="replace") if part.exists() else ""
    cause = ("Caffe got SIGINT" if OPTIMIZATION_STOPPED in log else
             "Caffe ended without an error before the last iteration")
    return StoppedEarly(folder, max_iter, cause)


class Diverged(TrainingError):
    """Training stopped at a non-finite loss (Caffe's solver, patch 04); `moved`: the
    snapshots of that iteration and later, whose weights gave it, set aside by train_run. The
    newest one left is the last good state."""

    def __init__(self, folder, iteration, loss, moved):
        state = folder.latest_state()
        kept = (f"the last good snapshot, of iteration {state[0]}, is kept ({state[1]})"
                if state else "no snapshot was made before it")
        aside = (f"; {len(moved)} snapshot file(s) of iteration {iteration} on were moved to "
                 f"{folder.snapshots / 'diverged'}" if moved else "")
        super().__init__(
            f"training diverged: loss {loss} at iteration {iteration}, stopped before that "
            f"update; {kept}{aside}. Log: {folder.log_path}\n  fix: check the data, or train "
            f"anew with a smaller learning rate (--set base_lr=... --force replaces this "
            f"run); the same command again resumes from the last good snapshot")
        self.iteration = iteration


def _diverged(part):
    """(iteration, loss) of the first rank's stop at a non-finite loss in the part logs of a
    failed `caffe train`, or None."""
    for rank in range(_rank_logs(part)):
        if rank_log(part, rank).exists():
            found = diverged_at(rank_log(part, rank).read_text(errors="replace"))
            if found:
                return found
    return None


def _keep_part_logs(part, log, gpus):
    """Append the logs of the `caffe train` that wrote `part` (each rank's) to the run's
    logs, and remove them: a resume never overwrites what a killed run logged. Returns the
    OSError that stopped it (a full disk, a read-only log), or None: what is not appended
    stays, and the next call appends it."""
    try:
        for rank in range(max(1, len(gpus), _rank_logs(part))):
            append_once(rank_log(part, rank), rank_log(log, rank))
    except OSError as error:
        return error
    return None


def _not_appended(part, log, error):
    return f"Caffe's log stays in {part}: appending it to {log} failed ({error.strerror})"


def _write_fix(error):
    """What to do about an OSError of a write, by its errno."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "make room on that disk"
    if error.errno == errno.EFBIG:
        return "raise the file size limit (ulimit -f)"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "make it writable"
    return "fix that"


def append_once(part, log):
    """Append the file `part` to `log` and remove it, so that a kill at any instant leaves
    the part's lines in the log once after the next call: the log's length before the
    append is written beside it first (<log>.appending), and a call that finds that note
    with the part still there cuts the log back to it and appends again; with the part
    gone, the append had finished."""
    part, log = Path(part), Path(log)
    note = log.with_name(log.name + ".appending")
    if note.exists():
        if part.exists() and log.exists():
            with open(log, "r+b") as out:
                out.truncate(int(note.read_text()))   # the note is written whole (renamed)
        note.unlink()
    if not part.exists():
        return
    write_whole(note, str(log.stat().st_size if log.exists() else 0))
    with open(log, "ab") as out:
        out.write(part.read_bytes())
        out.flush()
        os.fsync(out.fileno())
    part.unlink()
    note.unlink()


def _rank_logs(part):
    """How many ranks left a part log beside `part` (a killed run may have had more GPUs)."""
    return 1 + len(list(Path(part).parent.glob(f"{Path(part).stem}.rank*.log")))


def run_solver(solver_path, log_path, gpus=(), snapshot=None, cwd=None, progress=None):
    """Train with solver_path from snapshot (if given) on gpus (() = the CPU); progress: a
    TrainingProgress fed with the log as Caffe writes it."""
    check_gpus(gpus)
    if len(gpus) > 1:
        run_processes(solver_path, log_path, gpus, snapshot, cwd, progress)
        return
    args = ["train", f"-solver={solver_path}"]
    if snapshot is not None:
        args.append(f"-snapshot={snapshot}")
    if gpus:
        args.append(f"-gpu={gpus[0]}")
    run_caffe(args, log_path, cwd=cwd, progress=progress)


def rank_log(log_path, rank):
    """Where rank `rank` logs: log_path itself for rank 0, <stem>.rank<r>.log beside it."""
    log_path = Path(log_path)
    return log_path if rank == 0 else log_path.with_name(f"{log_path.stem}.rank{rank}.log")


def run_processes(solver_path, log_path, gpus, snapshot=None, cwd=None, progress=None):
    """One worker process per GPU (one on the CPU for gpus=()); raises CaffeError naming the
    log of the first rank that failed, after stopping the others."""
    import caffe   # the launcher makes the NCCL id; the workers import caffe themselves
    uid = caffe.NCCL.new_uid().hex() if len(gpus) > 1 else ""
    env = dict(os.environ, GLOG_logtostderr="1", PYTHONUNBUFFERED="1")
    env.pop("GLOG_minloglevel", None)   # the log is what we parse: keep INFO lines
    workers = []
    try:
        for rank in range(max(1, len(gpus))):
            command = [sys.executable, "-m", "solver.training", "--solver", str(solver_path),
                       "--rank", str(rank), "--gpus", ",".join(map(str, gpus)),
                       "--parent", str(os.getpid())]
            if uid:
                command += ["--uid", uid]
            if snapshot is not None:
                command += ["--snapshot", str(snapshot)]
            with open(rank_log(log_path, rank), "w") as log:
                workers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                cwd=cwd, env=env))
        wait_for(workers, log_path, progress)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


class _Ranks:
    """The worker processes as one process for follow_log: running until one fails or all
    have ended."""

    def __init__(self, workers):
        self.workers = workers

    def poll(self):
        codes = [worker.poll() for worker in self.workers]
        failed = [code for code in codes if code not in (None, 0)]
        if failed:
            return failed[0]
        return 0 if all(code == 0 for code in codes) else None


def wait_for(workers, log_path, progress=None):
    """Wait until every worker ended (feeding rank 0's log to progress, if given); on the
    first failure stop the rest and raise."""
    if progress is not None:
        follow_log(log_path, _Ranks(workers), progress, POLL_SECONDS)
    while True:
        codes = [worker.poll() for worker in workers]
        failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            rank = failed[0]
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            log = rank_log(log_path, rank)
            raise CaffeError(f"training rank {rank} failed (exit {codes[rank]}); log: {log}\n"
                             + failure_excerpt(Path(log).read_text(errors="replace")))
        if all(code == 0 for code in codes):
            return
        time.sleep(POLL_SECONDS)


def exit_with_parent(parent):
    """End this worker when the launcher is gone, so that no rank outlives a killed run."""
    def watch():
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def worker(solver_path, rank, gpus, uid, snapshot):
    """One rank: set the device and the solver count and rank, build the solver, join NCCL
    (several GPUs), then train to max_iter; rank 0 through Solve (tests, final snapshot)."""
    import caffe
    if hasattr(caffe, "init_log"):   # the PyPI fork's pycaffe logs to stderr without it
        caffe.init_log(0, True)
    if gpus:
        caffe.set_device(gpus[rank])
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    if hasattr(caffe, "set_solver_rank"):   # the PyPI fork has no ranks (nor a GPU build)
        caffe.set_solver_count(max(1, len(gpus)))
        caffe.set_solver_rank(rank)
    if len(gpus) > 1:
        caffe.set_multiprocess(True)
    solver = caffe.get_solver(str(solver_path))
    if snapshot:
        solver.restore(str(snapshot))   # every rank: iteration and momentum; weights from rank 0
    if len(gpus) > 1:
        nccl = caffe.NCCL(solver, bytes.fromhex(uid))
        nccl.bcast()
        solver.add_callback(nccl)
        if solver.param.layer_wise_reduce:
            solver.net.after_backward(nccl)
    if rank == 0:
        solver.solve()
    else:
        solver.step(solver.param.max_iter - solver.iter)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="One rank of a training run (started by run_processes; not for direct use).")
    parser.add_argument("--solver", type=Path, required=True, help="solver prototxt")
    parser.add_argument("--rank", type=int, required=True, help="this process's solver rank")
    parser.add_argument("--gpus", default="", help="all ranks' GPUs, e.g. 0,1 (empty: the CPU)")
    parser.add_argument("--uid", default="", help="NCCL id (hex) made by the launcher")
    parser.add_argument("--snapshot", type=Path, help=".solverstate to resume from")
    parser.add_argument("--parent", type=int, help="launcher pid: exit when it is gone")
    args = parser.parse_args(argv)
    gpus = tuple(int(g) for g in args.gpus.split(",") if g)
    if len(gpus) > 1 and not args.uid:
        parser.error("several GPUs need the launcher's --uid")
    if not 0 <= args.rank < max(1, len(gpus)):
        parser.error(f"--rank {args.rank} is not one of {max(1, len(gpus))} ranks")
    if args.parent:
        exit_with_parent(args.parent)
    worker(args.solver, args.rank, gpus, args.uid, args.snapshot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
