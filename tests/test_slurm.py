"""A run list as a Slurm job array against a real Slurm (evaluation/slurm.py): a single-node
cluster on this machine (setup/slurm_for_tests.py: Debian's slurm-wlm and munge, installed
here if missing; the test is skipped, with the reason, where they cannot be), a two-run Table 2
on the tiny dataset on the CPU submitted by tools/ablation.py --slurm, one task requeued while
it trains. Checked: both runs finish, the table is built by the job that depends on the array,
and the requeued task resumes from its snapshot. The fixture stops the daemons whatever
happens."""
import json
import re
import sys
import time

import pytest

from evaluation.queue import read_experiment, run_state
from solver.run_folder import RunFolder
from tests.conftest import REPOSITORY
from tests.tiny_dataset import TINY
from tools.ablation import main as ablation_main

sys.path.insert(0, str(REPOSITORY / "setup"))
import slurm_for_tests  # noqa: E402  (setup/ has no package; its scripts import each other)
from caffe_sources import SetupError  # noqa: E402

pytestmark = pytest.mark.slow

# the runs: 500 iterations of the tiny net (100 epochs of 5; seconds), a snapshot every 50, so
# that one can be requeued between its first snapshot and its end
LONG = ["epochs=100", "snapshot_epochs=10", "lr_step_epochs=25", "lambda_2d_switch_epoch=50",
        "test_epochs=50", "display_iters=50"]
REQUEUE_AFTER = 50           # the iteration of the snapshot the requeued task resumes from
WAIT_SECONDS = 600           # for the whole array and its table, on a busy machine
POLL_SECONDS = 0.5


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node cluster (slurm_for_tests.LocalSlurm), stopped at the end."""
    try:
        slurm_for_tests.install_packages()
    except SetupError as error:
        pytest.skip(f"no Slurm here: {error}")
    with slurm_for_tests.LocalSlurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


def job_state(slurm, job):
    """JobState of a job (or array task "id_index") as scontrol shows it."""
    shown = slurm.command("scontrol", "show", "job", job, check=False).stdout
    found = re.search(r"JobState=(\S+)", shown)
    return found.group(1) if found else None


def wait_until(condition, what, slurm):
    """Poll condition() until it holds; fail naming `what` (with the queue) after
    WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            queue = slurm.command("squeue", check=False).stdout
            pytest.fail(f"no {what} after {WAIT_SECONDS} s; squeue:\n{queue}")
        time.sleep(POLL_SECONDS)


def test_a_job_array_trains_the_list_resumes_a_requeued_task_and_builds_the_table(
        slurm, lmdb_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    out = tmp_path / "ablation"
    started = time.monotonic()
    assert ablation_main(["--lmdb", str(lmdb_dir), "--out", str(out), "--variants",
                          "multi-reg", "full", "--slurm", "--slurm-gpus", "0", "--slurm-cpus",
                          "1", "--slurm-time", "20:00", "--quiet",
                          "--set", *TINY, *LONG]) == 0
    printed = capsys.readouterr().out
    submitted = re.search(r"submitted array job (\d+) \(tasks 0-1\) and table job (\d+)",
                          printed)
    assert submitted, printed
    array, table = submitted.groups()
    first = read_experiment(out).runs[0]

    # task 0, once it has a snapshot and before its end: requeued, as a preemption would
    def snapshotted():
        state = RunFolder(first.folder).latest_state() if first.folder.exists() else None
        return state is not None and state[0] >= REQUEUE_AFTER
    wait_until(snapshotted, "snapshot of task 0", slurm)
    assert job_state(slurm, f"{array}_0") == "RUNNING"
    slurm.command("scontrol", "requeue", f"{array}_0")
    # Slurm holds a requeued job back for a while (its begin time moves on by about two
    # minutes): let it start again at once
    wait_until(lambda: job_state(slurm, f"{array}_0") == "PENDING", "requeued task", slurm)
    slurm.command("scontrol", "update", f"jobid={array}_0", "StartTime=now")

    wait_until(lambda: job_state(slurm, table) in ("COMPLETED", "FAILED", "CANCELLED"),
               "table job", slurm)
    elapsed = time.monotonic() - started
    slurm_folder = out / "slurm"
    table_output = (slurm_folder / f"table-{table}.out").read_text()
    assert job_state(slurm, table) == "COMPLETED", table_output
    for index in (0, 1):
        assert job_state(slurm, f"{array}_{index}") == "COMPLETED"

    # both runs finished and evaluated; the table built by the job after the array
    experiment = read_experiment(out)
    assert all(run_state(run).done for run in experiment.runs)
    document = json.loads((out / "table2.json").read_text())
    assert list(document["mpjpe_mm"]) == ["multi-reg", "full"]
    assert "TABLE2 full (Multi-reg+2D-cls)" in table_output and "MISSING" not in table_output

    # the requeued task ran twice, the second time resuming from its snapshot
    task_output = (slurm_folder / f"task-{array}_0.out").read_text()
    assert "restart 0" in task_output and "restart 1" in task_output, task_output
    resumed = re.search(r"resuming from (\d+)", task_output.split("restart 1")[1])
    assert resumed and int(resumed.group(1)) >= REQUEUE_AFTER, task_output
    assert "Resuming from" in (first.folder / "logs" / "train.log").read_text()
    assert "restart 1" not in (slurm_folder / f"task-{array}_1.out").read_text()
    print(f"slurm test: array {array} and table {table} done in {elapsed:.0f} s; "
          f"task 0 resumed from iteration {resumed.group(1)}", file=sys.stderr)

