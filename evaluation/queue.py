"""Experiments as lists of runs, and the queue that trains a list on a machine.

An experiment (Table 1's per-action models, Table 2's variants and seeds) is a list of runs,
each a run folder (solver/run_folder.py) with its variant, dataset and configuration. The list
is written to <experiment>/runs.json, so that whatever trains one run of it (the queue here,
or a Slurm array task, evaluation/slurm.py) picks that run by its index, and a summary step
builds the table from the runs that have finished. The run folder makes every run safe to
run, stop and run again: it holds a lock while it trains, resumes from its newest snapshot
and leaves a finished run alone.

    experiment = Experiment(out, "table2", runs, settings)
    write_experiment(experiment); experiment = read_experiment(out)
    run_state(run)                           # finished and evaluated, or what it lacks
    run_in_process(runs, job)                # on the CPU, one run after another, here
    run_on_gpus(experiment, indices, gpus)   # one run per GPU at a time, each a process

One run's whole job, on any machine, is `python tools/experiment.py task <out> <index>
[--gpus IDS]`: train the run to its end, then evaluate it on its test split (unless its
results are of its final weights already). The GPU queue starts that command for the next
run of the list whenever a GPU is free, shows each run's output on lines of its own, each
beginning with the run's place in the list, its name and its GPU, and writes it to
<out>/logs/<name>.log. A run that fails is reported and the others go on.

Fake GPUs (fake=True, --fake-gpus of the tools): the queue hands out the GPU ids as usual but
each run trains on the CPU. It is the queue's own logic, with real trainings, on a machine
without GPUs: the tests use it, and it shows on a laptop what a GPU machine would do.
"""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from google.protobuf.text_format import ParseError

from built_folders import write_whole
from child_processes import die_with_parent
from config import PAPER, apply_overrides
from solver.devices import DeviceError, check_gpus, describe, parse_gpus
from solver.run_folder import RunError, RunFolder
from solver.training import StoppedEarly

REPO = Path(__file__).resolve().parent.parent
RUN_LIST = "runs.json"
# one run's whole job (train, then evaluate), for the GPU queue and Slurm's array tasks
TASK_TOOL = REPO / "tools" / "experiment.py"
POLL_SECONDS = 0.5
# what ends one run of an in-process queue without stopping the others: the errors the tools
# report in one line (CaffeError, and ValueError's kin: RunError, DeviceError,
# EvaluationError, ConfigError), a full disk
RUN_FAILURES = (RuntimeError, ValueError, OSError)


class QueueError(ValueError):
    """A run list that cannot be read or used, with the fix in the message."""


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of an experiment: its folder's name within the experiment (seed0/full,
    Walking), what it is in words, where it trains, on which dataset, with which
    configuration (Config.to_dict()), and labels the table reads (seed, variant, action)."""
    name: str
    title: str
    folder: Path
    variant: str
    lmdb: Path
    config: dict
    labels: dict = dataclasses.field(default_factory=dict)

    def cfg(self):
        """The run's Config."""
        return apply_overrides(PAPER, self.config)

    def to_json(self, out):
        """runs.json's entry: the folder relative to the experiment's (it moves with it)."""
        return {"name": self.name, "title": self.title,
                "folder": os.path.relpath(Path(self.folder).resolve(), Path(out).resolve()),
                "variant": self.variant, "lmdb": str(Path(self.lmdb).resolve()),
                "config": json.loads(json.dumps(self.config)), "labels": self.labels}

    @classmethod
    def from_json(cls, entry, out):
        """The Run of a runs.json entry of the list in `out`."""
        return cls(name=entry["name"], title=entry["title"], folder=Path(out) / entry["folder"],
                   variant=entry["variant"], lmdb=Path(entry["lmdb"]), config=entry["config"],
                   labels=entry.get("labels", {}))


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A list of runs in the folder `out`; table: which summary builds its table ("table1",
    "table2"); settings: what that summary needs besides the runs (the seeds, the actions)."""
    out: Path
    table: str
    runs: tuple
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def list_path(self):
        return Path(self.out) / RUN_LIST

    def log_path(self, run):
        """Where the GPU queue writes a run's output: <out>/logs/<name, / as ->.log."""
        return Path(self.out) / "logs" / f"{run.name.replace('/', '-')}.log"


def write_experiment(experiment):
    """<out>/runs.json, written whole."""
    document = {"table": experiment.table, "settings": experiment.settings,
                "runs": [run.to_json(experiment.out) for run in experiment.runs]}
    Path(experiment.out).mkdir(parents=True, exist_ok=True)
    write_whole(experiment.list_path, json.dumps(document, indent=2) + "\n")


def read_experiment(out):
    """The Experiment whose runs.json is in `out`; QueueError naming the file otherwise."""
    path = Path(out) / RUN_LIST
    try:
        document = json.loads(path.read_text())
        runs = tuple(Run.from_json(entry, out) for entry in document["runs"])
        return Experiment(Path(out), document["table"], runs, document.get("settings", {}))
    except FileNotFoundError:
        raise QueueError(f"{out} holds no run list ({RUN_LIST}): make it with `make table1` "
                         "or `make ablation` (tools/table1.py, tools/ablation.py)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise QueueError(f"{path} is not a run list ({error!r}); make it again with the "
                         "command that wrote it") from None


def run_at(experiment, index):
    """The run at `index` (0-based, as Slurm's array task ids); QueueError out of range."""
    count = len(experiment.runs)
    if not 0 <= index < count:
        listed = f"runs 0 to {count - 1}" if count else "no runs"
        raise QueueError(f"{experiment.list_path} lists {listed}: no run {index}")
    return experiment.runs[index]


def add_queue_arguments(parser):
    """--gpus and --fake-gpus of the tools that carry out a run list."""
    parser.add_argument("--gpus", default="", metavar="IDS",
                        help="the queue: one run per GPU at a time over these GPU ids, e.g. "
                             "0,1,2,3, until the list is done (each run on one GPU; `make "
                             "train GPUS=...` trains one run over several); default: the CPU, "
                             "one run after another")
    parser.add_argument("--fake-gpus", action="store_true",
                        help="with --gpus: hand the GPU ids out as the queue does, but train "
                             "each run on the CPU (the queue's tests; a look at it without "
                             "GPUs)")


def queue_gpus(args):
    """The GPU ids of --gpus, checked against this machine unless --fake-gpus; DeviceError."""
    gpus = parse_gpus(args.gpus)
    if args.fake_gpus and not gpus:
        raise DeviceError("--fake-gpus needs --gpus: the GPU ids the queue hands out")
    if not args.fake_gpus:
        check_gpus(gpus)
    return gpus


# ------------------------------------------------------------------ the state of a run

@dataclasses.dataclass(frozen=True)
class RunState:
    """done: trained to its last iteration and evaluated with its final weights (results:
    its results.json); otherwise note says what it lacks."""
    done: bool
    note: str
    results: dict | None = None


def evaluated_results(folder):
    """results.json of the run folder when it holds the results of the newest weights
    (matched by file name: the folder may have moved), else None."""
    try:
        results = json.loads((folder.path / "results.json").read_text())
        newest = folder.latest_weights()
    except (OSError, ValueError, RunError):
        return None
    weights = results.get("weights") if isinstance(results, dict) else None
    return results if weights and Path(weights).name == newest.name else None


def run_state(run):
    """Where a run of a list stands, from its folder alone."""
    folder = RunFolder(run.folder)
    if not folder.config_path.exists():
        return RunState(False, "not started")
    try:
        description = folder.description()
        ended = folder.solver().max_iter
    except (OSError, ValueError, ParseError) as error:   # a damaged config.json or solver
        return RunState(False, f"unreadable ({one_line(error)})")
    if (description["variant"] != run.variant
            or description["config"] != json.loads(json.dumps(run.config))):
        return RunState(False, "its folder holds a run of another configuration")
    state = folder.latest_state()
    if state is None:
        return RunState(False, f"prepared, no snapshot yet (of {ended} iterations)")
    if state[0] < ended:
        return RunState(False, f"at iteration {state[0]} of {ended}")
    results = evaluated_results(folder)
    if results is None:
        return RunState(False, "trained, not evaluated")
    return RunState(True, "finished and evaluated", results)


def collect(experiment):
    """({run name: results} of the finished runs, {run name: note} of the others)."""
    results, missing = {}, {}
    for run in experiment.runs:
        state = run_state(run)
        if state.done:
            results[run.name] = state.results
        else:
            missing[run.name] = state.note
    return results, missing


# ------------------------------------------------------------------ in this process

def run_in_process(runs, job, prefix="queue"):
    """job(run) for each run in turn (on the CPU, in this process); returns ({run name:
    job's result}, {run name: error} of those that failed). A failed run is reported and
    the next one goes on; Ctrl-C (StoppedEarly, KeyboardInterrupt) stops the whole list."""
    results, failures = {}, {}
    for position, run in enumerate(runs, 1):
        place = f"{prefix}: [{position}/{len(runs)}] {run.title}"
        print(f"{place}: training in {run.folder}", flush=True)
        try:
            results[run.name] = job(run)
        except StoppedEarly:
            raise
        except RUN_FAILURES as error:
            failures[run.name] = one_line(error)
            print(f"{place}: FAILED: {failures[run.name]}", flush=True)
    return results, failures


def one_line(error):
    """An error's message on one line (a multi-line message's lines joined)."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())


# ------------------------------------------------------------------ over GPUs

@dataclasses.dataclass
class _Running:
    """A run's task process, its place in the list (position of total), the GPU it holds
    and its output file, read up to offset."""
    position: int
    total: int
    run: Run
    gpu: int
    process: subprocess.Popen
    log: Path
    offset: int
    pending: bytes = b""
    last_error: str | None = None


def task_command(experiment, index, gpus=(), quiet=False):
    """The command that trains and evaluates the run at `index` on gpus (() = the CPU)."""
    command = [sys.executable, str(TASK_TOOL), "task", str(Path(experiment.out).resolve()),
               str(index)]
    if gpus:
        command += ["--gpus", ",".join(map(str, gpus))]
    return command + (["--quiet"] if quiet else [])


def run_on_gpus(experiment, indices, gpus, fake=False, quiet=False, stream=None):
    """Train and evaluate the runs at `indices` in their order, one per GPU of `gpus` at a
    time, each in a process of its own (task_command); fake: each run on the CPU all the
    same. Returns {run name: why} of the runs that failed. Ctrl-C stops the running ones at
    a snapshot (SIGINT, as train does) and raises KeyboardInterrupt once they have ended."""
    stream = stream or sys.stdout
    waiting, running, failures, free = list(indices), [], {}, list(gpus)
    _say(stream, f"queue: {len(waiting)} run(s) over {describe(gpus)}"
                 f"{' (fake: each run on the CPU)' if fake else ''}, one per GPU at a time; "
                 f"output in {Path(experiment.out) / 'logs'}")
    try:
        while waiting or running:
            while waiting and free:
                running.append(_start(experiment, waiting.pop(0), free.pop(0), fake, quiet,
                                      stream))
            for task in list(running):
                if _relay(task, stream):
                    running.remove(task)
                    free.append(task.gpu)
                    _report(task, failures, stream)
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        _stop(running, stream)
        raise
    return failures


def _label(task):
    """The start of each line of a run: its place in the list, its name and its GPU."""
    return f"[{task.position}/{task.total}] {task.run.name} on GPU {task.gpu}"


def _start(experiment, index, gpu, fake, quiet, stream):
    """Start the task of the run at `index` on `gpu`, its output appended to its log."""
    run = experiment.runs[index]
    log = experiment.log_path(run)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = task_command(experiment, index, () if fake else (gpu,), quiet)
    with open(log, "ab") as out:
        out.write(f"=== {datetime.now():%Y-%m-%d %H:%M:%S} on GPU {gpu}"
                  f"{' (fake: the CPU)' if fake else ''}: {' '.join(command)}\n".encode())
        offset = out.tell()
        # a session of its own: Ctrl-C reaches the queue alone, which stops each task once;
        # and a task dies with the queue
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=REPO,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                   start_new_session=True, preexec_fn=die_with_parent)
    task = _Running(index + 1, len(experiment.runs), run, gpu, process, log, offset)
    _say(stream, f"{_label(task)}: started ({run.title}); log {log}")
    return task


def _relay(task, stream):
    """Show the lines the task has written since the last call; True once it has ended
    (everything it wrote shown)."""
    ended = task.process.poll() is not None   # before reading: all it wrote is then read
    with open(task.log, "rb") as log:
        log.seek(task.offset)
        data = log.read()
    task.offset += len(data)
    *lines, task.pending = (task.pending + data).split(b"\n")
    if ended and task.pending:
        lines.append(task.pending)
        task.pending = b""
    for raw in lines:
        for line in raw.decode("utf-8", errors="replace").split("\r"):
            if line.strip():
                if line.startswith("error:"):
                    task.last_error = line.removeprefix("error:").strip()
                _say(stream, f"{_label(task)}: {line.rstrip()}")
    return ended


def _report(task, failures, stream):
    """The line that says how the task ended; a failure is kept in failures."""
    code = task.process.returncode
    if code == 0:
        _say(stream, f"{_label(task)}: finished")
        return
    why = task.last_error or f"exit {code}"
    failures[task.run.name] = f"{why} (log {task.log})"
    _say(stream, f"{_label(task)}: FAILED (exit {code}): {why}; log {task.log}")


def _stop(running, stream):
    """Ctrl-C: SIGINT to every running task (its training snapshots where it is), then wait
    for them, showing what they write; a second Ctrl-C kills them."""
    _say(stream, f"queue: stopping {len(running)} running task(s) at a snapshot (Ctrl-C again "
                 "ends them at once)")
    for task in running:
        if task.process.poll() is None:
            task.process.send_signal(signal.SIGINT)
    try:
        while any(task.process.poll() is None for task in running):
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        for task in running:
            if task.process.poll() is None:
                task.process.kill()
    for task in running:
        task.process.wait()
        _relay(task, stream)


def _say(stream, text):
    stream.write(text + "\n")
    stream.flush()
