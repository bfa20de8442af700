"""An experiment's run list (evaluation/queue.py) as a Slurm job array, and its table as a job
that depends on it.

    scripts = write_scripts(experiment, indices, SlurmOptions(gpus_per_task=1, time="4:00:00"))
    lines = submit(experiment, indices, options)   # sbatch where Slurm is, else how to

Two batch scripts go into <out>/slurm/:

  tasks.sbatch   a job array with one task per run that has not finished (--array of their
                 indices in runs.json); a task runs `tools/experiment.py task <out>
                 $SLURM_ARRAY_TASK_ID`, which picks its run from the list, trains it (resuming
                 from its newest snapshot) and evaluates it. --requeue: a task preempted, or
                 requeued by `scontrol requeue`, starts again and resumes from its snapshot;
                 its output (task-<array id>_<index>.out) is appended to, not replaced.
  table.sbatch   `tools/experiment.py summary <out>`: the table from the finished runs,
                 submitted with --dependency=afterany:<array id>, so that it runs when every
                 task has ended, however it ended, and says which runs are missing.

GPUs, CPUs, the time limit and how many tasks run at once come from SlurmOptions; flags (the
partition, the account, memory, anything else) go on both sbatch command lines. The scripts
name this repository's folder and venv by their absolute paths: on a cluster these must be on
a file system the nodes share, as must the datasets and the experiment folder. Nothing here
schedules anything: the array and the dependency are Slurm's.
"""
import dataclasses
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from built_folders import write_whole
from config import whole_number
from evaluation.queue import REPO, TASK_TOOL

# the table job reads results and draws figures: minutes at most
SUMMARY_TIME = "0:30:00"


class SlurmError(RuntimeError):
    """sbatch refused a script; the message holds its words."""


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """Per array task: GPUs (0: the CPU), CPU cores (the data loader's workers), the time
    limit (Slurm's [days-]hours:minutes:seconds); max_running: tasks running at once (None:
    as many as Slurm gives); flags: more sbatch words for both jobs."""
    gpus_per_task: int = 1
    cpus_per_task: int = 8
    time: str = "4:00:00"
    max_running: int | None = None
    flags: tuple = ()


def add_slurm_arguments(parser):
    """--slurm and the --slurm-* options of the tools that carry out a run list."""
    defaults = SlurmOptions()
    parser.add_argument("--slurm", action="store_true",
                        help="instead of training here, submit the runs that have not finished "
                             "as a Slurm job array (one task per run) and the table as a job "
                             "after it (--dependency=afterany); without sbatch on PATH, print "
                             "the sbatch commands")
    parser.add_argument("--slurm-gpus", type=whole_number(0), default=defaults.gpus_per_task,
                        metavar="N", help="GPUs per array task, 0 for the CPU (default: "
                                          "%(default)s)")
    parser.add_argument("--slurm-cpus", type=whole_number(1), default=defaults.cpus_per_task,
                        metavar="N", help="CPU cores per array task, for the data loader's "
                                          "workers (default: %(default)s)")
    parser.add_argument("--slurm-time", default=defaults.time, metavar="TIME",
                        help="time limit per array task, Slurm's [days-]hours:minutes:seconds; "
                             "enough for one run (default: %(default)s)")
    parser.add_argument("--slurm-max-running", type=whole_number(1), metavar="N",
                        help="array tasks running at once (default: as many as Slurm gives)")
    parser.add_argument("--slurm-flags", default="", metavar="WORDS",
                        help="more sbatch options for both jobs, as one string, e.g. "
                             "--slurm-flags=\"--partition=gpu --account=proj --mem=64G\"")


def slurm_options(args):
    """The SlurmOptions of the parsed arguments, or None without --slurm; ValueError for
    words of --slurm-flags that do not parse."""
    if not args.slurm:
        return None
    try:
        flags = tuple(shlex.split(args.slurm_flags))
    except ValueError as error:
        raise ValueError(f"--slurm-flags {args.slurm_flags!r}: {error}") from None
    return SlurmOptions(args.slurm_gpus, args.slurm_cpus, args.slurm_time,
                        args.slurm_max_running, flags)


def array_spec(indices, max_running=None):
    """Slurm's --array value for the indices: "0-3,7,9-10", with "%N" for max_running."""
    indices = sorted(set(indices))
    ranges, start = [], None
    for position, index in enumerate(indices):
        if start is None:
            start = index
        if position + 1 == len(indices) or indices[position + 1] != index + 1:
            ranges.append(f"{start}" if start == index else f"{start}-{index}")
            start = None
    return ",".join(ranges) + (f"%{max_running}" if max_running else "")


def job_name(experiment):
    """The array's job name: the experiment folder's name."""
    return Path(experiment.out).resolve().name


def script_folder(experiment):
    return Path(experiment.out).resolve() / "slurm"


def _python():
    """The interpreter of this venv (the scripts run the tools with it)."""
    return str(Path(sys.executable).absolute())


def tasks_script(experiment, indices, options):
    """tasks.sbatch's text: the array of the runs at `indices`."""
    out, folder = Path(experiment.out).resolve(), script_folder(experiment)
    gpus = ",".join(str(g) for g in range(options.gpus_per_task))
    header = [
        "#!/bin/bash",
        f"# {experiment.table}: one array task per run of {out / 'runs.json'}, picked by the "
        "task's index (written by evaluation/slurm.py)",
        f"#SBATCH --job-name={job_name(experiment)}",
        f"#SBATCH --array={array_spec(indices, options.max_running)}",
        f"#SBATCH --time={options.time}",
        f"#SBATCH --cpus-per-task={options.cpus_per_task}",
        *([f"#SBATCH --gres=gpu:{options.gpus_per_task}"] if options.gpus_per_task else []),
        # preempted or requeued: the task starts again and the run resumes from its snapshot
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={folder / 'task-%A_%a.out'}",
        f"#SBATCH --chdir={REPO}",
    ]
    command = [_python(), str(TASK_TOOL), "task", str(out)]
    # Slurm numbers the task's GPUs from 0 (CUDA_VISIBLE_DEVICES holds the node's ids)
    tail = ' "$SLURM_ARRAY_TASK_ID"' + (f" --gpus {gpus}" if gpus else "")
    return "\n".join([*header, 'echo "=== $(date +%F\\ %T) task $SLURM_ARRAY_TASK_ID of job '
                      '$SLURM_ARRAY_JOB_ID on $(hostname), restart ${SLURM_RESTART_COUNT:-0}"',
                      "exec " + shlex.join(command) + tail, ""])


def summary_script(experiment):
    """table.sbatch's text: the table from whatever runs have finished."""
    out, folder = Path(experiment.out).resolve(), script_folder(experiment)
    return "\n".join([
        "#!/bin/bash",
        f"# {experiment.table} from the finished runs of {out / 'runs.json'}, after the "
        "array (written by evaluation/slurm.py)",
        f"#SBATCH --job-name={job_name(experiment)}-table",
        f"#SBATCH --time={SUMMARY_TIME}",
        "#SBATCH --cpus-per-task=1",
        f"#SBATCH --output={folder / 'table-%j.out'}",
        f"#SBATCH --chdir={REPO}",
        "exec " + shlex.join([_python(), str(TASK_TOOL), "summary", str(out)]),
        ""])


def write_scripts(experiment, indices, options):
    """Write tasks.sbatch and table.sbatch into <out>/slurm/; returns their paths."""
    folder = script_folder(experiment)
    folder.mkdir(parents=True, exist_ok=True)
    tasks, table = folder / "tasks.sbatch", folder / "table.sbatch"
    write_whole(tasks, tasks_script(experiment, indices, options))
    write_whole(table, summary_script(experiment))
    return tasks, table


def sbatch_command(script, options, after=None):
    """The sbatch command line of a script, depending on the job `after` when given."""
    return ["sbatch", "--parsable", *([f"--dependency=afterany:{after}"] if after else []),
            *options.flags, str(script)]


def submit(experiment, indices, options):
    """Write the scripts and submit them with sbatch where it is on PATH (the array, then the
    table job depending on it), else say how; returns the lines to print. SlurmError when
    sbatch refuses one."""
    tasks, table = write_scripts(experiment, indices, options)
    lines = [f"slurm: {len(indices)} run(s) of {len(experiment.runs)} as a job array: {tasks}",
             f"slurm: the table after it: {table}"]
    if shutil.which("sbatch") is None:
        later = shlex.join(sbatch_command(table, options, after="ARRAY"))
        return lines + [
            "slurm: sbatch is not on this machine; on the cluster (the same paths), submit:",
            f"  array=$({shlex.join(sbatch_command(tasks, options))} | cut -d';' -f1)",
            "  " + later.replace("afterany:ARRAY", 'afterany:"$array"')]
    array_id = _sbatch(sbatch_command(tasks, options))
    table_id = _sbatch(sbatch_command(table, options, after=array_id))
    folder = script_folder(experiment)
    return lines + [
        f"slurm: submitted array job {array_id} (tasks {array_spec(indices)}) and table job "
        f"{table_id} (after it)",
        f"slurm: watch with `squeue -j {array_id},{table_id}`; task output in "
        f"{folder}/task-{array_id}_<index>.out, the table's in {folder}/table-{table_id}.out"]


def _sbatch(command):
    """Run one sbatch --parsable; the job id it printed ("id" or "id;cluster")."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        words = (done.stderr or done.stdout).strip().replace("\n", "; ")
        raise SlurmError(f"{shlex.join(command)} failed (exit {done.returncode}): {words}")
    return done.stdout.strip().split(";")[0]
