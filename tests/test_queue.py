"""Tables as lists of runs (evaluation/queue.py, evaluation/table1.py, evaluation/slurm.py,
tools/table1.py, tools/experiment.py): the lists of Table 1 and Table 2, the scripts of a Slurm
job array, the summary of a list whose runs have not all finished, and the queue over fake GPUs
with real trainings on the tiny dataset, one run failing while the other finishes."""
import json
import os
import shutil

import pytest

from config import schedule_config
from data_prep.h36m import ACTIONS
from evaluation.experiments import ablation_experiment, summarize, summary
from evaluation.queue import read_experiment, run_state, task_command, write_experiment
from evaluation.slurm import SlurmOptions, array_spec, submit, write_scripts
from evaluation.table1 import table1_experiment
from tests.test_ablation_seeds import fixed_results
from tests.test_makefile import argument, planned
from tests.tiny_dataset import TINY
from tools.experiment import main as experiment_main
from tools.table1 import main as table1_main


# ------------------------------------------------------------------ the lists

def test_table1_is_one_run_per_action_or_one_for_all(tmp_path):
    cfg = schedule_config("demo")
    experiment = table1_experiment(tmp_path / "t1", cfg, "full", "data/lmdb/synth-h36m",
                                   ACTIONS, "demo")
    assert [run.name for run in experiment.runs] == list(ACTIONS)
    walking = experiment.runs[ACTIONS.index("Walking")]
    assert walking.folder == tmp_path / "t1" / "Walking"
    assert str(walking.lmdb) == "data/lmdb/synth-h36m-Walking"
    assert walking.variant == "full" and walking.cfg() == cfg
    assert experiment.settings["models"] == "one model per action"
    everything = table1_experiment(tmp_path / "all", cfg, "baseline", "data/lmdb/synth-h36m",
                                   ["all"])
    assert [(run.name, str(run.lmdb)) for run in everything.runs] == [("all",
                                                                        "data/lmdb/synth-h36m")]
    assert everything.settings["models"] == "one model for all actions"


def test_table2_is_every_variant_once_per_seed_seed_by_seed(tmp_path):
    cfg = schedule_config("ablation", None, ["random_seed=5"])
    experiment = ablation_experiment(tmp_path / "t2", cfg, "data/lmdb/x", ["baseline", "full"],
                                     seeds=3, schedule="ablation")
    assert [run.name for run in experiment.runs] == [
        f"seed{s}/{v}" for s in range(3) for v in ("baseline", "full")]
    # the seed rule of evaluation/experiments.py: both seeds advanced by the seed index
    assert [(run.cfg().random_seed, run.cfg().data_seed) for run in experiment.runs] == [
        (5, 0), (5, 0), (6, 1), (6, 1), (7, 2), (7, 2)]
    assert experiment.runs[3].folder == tmp_path / "t2" / "seed1" / "full"
    assert experiment.runs[3].labels == {"seed": 1, "variant": "full"}
    assert [seed["random_seed"] for seed in experiment.settings["seeds"]] == [5, 6, 7]
    # written and read back: the same runs (the folders relative to the list's)
    write_experiment(experiment)
    again = read_experiment(tmp_path / "t2")
    assert [(r.name, r.variant, r.cfg()) for r in again.runs] == \
        [(r.name, r.variant, r.cfg()) for r in experiment.runs]
    entry = json.loads((tmp_path / "t2" / "runs.json").read_text())["runs"][3]
    assert entry["folder"] == "seed1/full"
    assert task_command(again, 3, (2,))[-4:] == [str((tmp_path / "t2").resolve()), "3",
                                                 "--gpus", "2"]


def test_table2_of_some_runs_names_the_missing_ones(tmp_path):
    experiment = ablation_experiment(tmp_path / "t2", schedule_config("demo"), "data/lmdb/x",
                                     ["baseline", "2d-cls"], seeds=3)
    write_experiment(experiment)
    missing = {"seed1/2d-cls": "at iteration 5 of 10", "seed2/baseline": "not started"}
    results = {run.name: fixed_results(run.labels["seed"], run.labels["variant"])
               for run in experiment.runs if run.name not in missing}
    lines, complete = summary(experiment, results, missing)
    assert not complete
    assert lines[-3:-1] == ["MISSING seed1/2d-cls: at iteration 5 of 10",
                            "MISSING seed2/baseline: not started"]
    assert lines[-1].startswith("summary: 4 of 6 runs in the table, 2 missing")
    assert "# MPJPE (mm) per action: mean over 3 seeds, of the runs that have finished" in lines
    document = json.loads((tmp_path / "t2" / "table2.json").read_text())
    # each variant's mean over its finished seeds; the difference over the seeds both have
    assert document["mpjpe_mm"]["baseline"]["Average"] == pytest.approx(111.0)   # 110, 112
    assert document["mpjpe_mm"]["2d-cls"]["Average"] == pytest.approx(107.5)     # 105, 110
    difference = document["paired_differences_mm"]["2d-cls - baseline"]
    assert difference["values"] == [-5.0] and difference["seed_indices"] == [0]
    rows = (tmp_path / "t2" / "table2.csv").read_text().splitlines()
    assert rows[-3].endswith(",110.0,112.0,")      # baseline: seeds 0 and 1, not 2
    assert rows[-2].endswith(",105.0,,110.0")      # 2d-cls: seeds 0 and 2
    # nothing finished: no table, every run named
    lines, complete = summary(experiment, {}, {run.name: "not started"
                                               for run in experiment.runs})
    assert not complete and len([line for line in lines if line.startswith("MISSING")]) == 6


# ------------------------------------------------------------------ the Slurm scripts

def test_the_job_array_script_picks_a_run_by_the_task_index(tmp_path):
    experiment = table1_experiment(tmp_path / "t1", schedule_config("demo"), "full",
                                   tmp_path / "lmdb", ["Eating", "Walking", "Posing"], "demo")
    write_experiment(experiment)
    options = SlurmOptions(gpus_per_task=2, cpus_per_task=12, time="1-02:00:00",
                           max_running=4, flags=("--partition=gpu",))
    tasks, table = write_scripts(experiment, [0, 2], options)
    lines = tasks.read_text().splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in ("#SBATCH --job-name=t1", "#SBATCH --array=0,2%4", "#SBATCH --time=1-02:00:00",
                 "#SBATCH --cpus-per-task=12", "#SBATCH --gres=gpu:2", "#SBATCH --requeue",
                 "#SBATCH --open-mode=append",
                 f"#SBATCH --output={(tmp_path / 't1' / 'slurm').resolve()}/task-%A_%a.out"):
        assert line in lines
    command = lines[-1]
    assert command.startswith("exec ") and command.endswith(
        f'tools/experiment.py task {(tmp_path / "t1").resolve()} "$SLURM_ARRAY_TASK_ID" '
        "--gpus 0,1")
    summary = table.read_text().splitlines()
    assert "#SBATCH --job-name=t1-table" in summary
    assert summary[-1].endswith(f"tools/experiment.py summary {(tmp_path / 't1').resolve()}")
    # on the CPU: no GPUs asked for, none named
    cpu = write_scripts(experiment, [1], SlurmOptions(gpus_per_task=0))[0].read_text()
    assert "--gres" not in cpu and "--gpus" not in cpu and "#SBATCH --array=1\n" in cpu
    assert array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"


def test_without_sbatch_the_commands_are_printed(tmp_path, monkeypatch):
    experiment = table1_experiment(tmp_path / "t1", schedule_config("demo"), "full",
                                   tmp_path / "lmdb", ["Eating"])
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    lines = submit(experiment, [0], SlurmOptions(flags=("--account=my project",)))
    assert "sbatch is not on this machine" in lines[2]
    assert lines[3].startswith("  array=$(sbatch --parsable '--account=my project' ")
    assert lines[4] == (f"  sbatch --parsable --dependency=afterany:\"$array\" "
                        f"'--account=my project' {(tmp_path / 't1' / 'slurm').resolve()}"
                        "/table.sbatch")


def test_make_passes_the_queue_and_slurm_settings():
    table1 = planned("table1", ACTIONS="Eating Walking", GPUS="0,1", SCHEDULE="demo")
    assert argument(table1, "tools/table1.py", "--gpus") == "0,1"
    assert argument(table1, "tools/table1.py", "--out") == "runs/table1-full-demo"
    assert argument(table1, "tools/table1.py", "--lmdb-prefix") == "data/lmdb/synth-h36m"
    slurm = planned("table1", ACTIONS="all", SLURM="1", GPUS="0", SLURM_TIME="2:00:00",
                    SLURM_FLAGS="--partition=gpu --account=proj")
    words = next(w for w in slurm if any(x.endswith("tools/table1.py") for x in w))
    assert "--gpus" not in words and "--slurm" in words
    assert words[words.index("--actions") + 1] == "all"
    assert argument(slurm, "tools/table1.py", "--out") == "runs/table1-full-paper-all"
    assert argument(slurm, "tools/table1.py", "--slurm-time") == "2:00:00"
    assert "--slurm-flags=--partition=gpu --account=proj" in words
    ablation = planned("ablation", SLURM="1", SLURM_GPUS_PER_TASK="0")
    assert argument(ablation, "tools/ablation.py", "--slurm-gpus") == "0"
    assert "--slurm" not in next(w for w in planned("ablation", SLURM="0")
                                 if any(x.endswith("tools/ablation.py") for x in w))


# ------------------------------------------------------------------ the queue, end to end

@pytest.fixture
def two_actions(lmdb_dir, tmp_path):
    """Datasets <prefix>-Eating (the tiny dataset, which holds Eating and Walking) and no
    <prefix>-Walking: Table 1 of these two actions has one run that trains and one that
    fails."""
    prefix = tmp_path / "lmdb" / "tiny"
    prefix.parent.mkdir()
    shutil.copytree(lmdb_dir, f"{prefix}-Eating")
    return prefix


@pytest.mark.slow
def test_the_queue_goes_on_past_a_failed_run(two_actions, tmp_path, capsys):
    out = tmp_path / "table1"
    code = table1_main(["--lmdb-prefix", str(two_actions), "--actions", "Eating", "Walking",
                        "--out", str(out), "--gpus", "3,5", "--fake-gpus", "--set", *TINY])
    printed = capsys.readouterr()
    assert code == 1
    lines = printed.out.splitlines()
    # each run on a "GPU" of its own, its output on lines that name it
    assert any(line.startswith("[1/2] Eating on GPU 3: train: iteration") for line in lines)
    assert "[1/2] Eating on GPU 3: finished" in lines
    failed = next(line for line in lines if line.startswith("[2/2] Walking on GPU 5: FAILED"))
    assert "no manifest.json" in failed and str(out / "logs" / "Walking.log") in failed
    # the table of the run that finished, the missing one named
    document = json.loads((out / "table1.json").read_text())
    assert list(document["mpjpe_mm"]["per_action"]) == ["Eating"]
    eating = json.loads((out / "Eating" / "results.json").read_text())
    assert document["mpjpe_mm"]["per_action"]["Eating"] == pytest.approx(
        eating["mpjpe"]["per_action"]["Eating"])
    assert next(line for line in lines if line.startswith("MPJPE Eating"))
    assert next(line for line in lines if line.startswith("MISSING Walking: failed: "))
    assert "summary: 1 of 2 runs in the table, 1 missing" in printed.out
    assert printed.err.count("\n") == 1 and "not every run has finished" in printed.err

    # the summary alone: from the run folders as they are now
    for path in (out / "Eating" / "snapshots").glob("iter_iter_10.*"):
        path.unlink()   # as if stopped after iteration 5
    assert experiment_main(["summary", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "MISSING Eating: at iteration 5 of 10" in printed
    assert "MISSING Walking: not started" in printed
    assert "summary: 0 of 2 runs in the table, 2 missing" in printed

    # with the missing dataset in place, the same command trains what is missing: Eating
    # resumes from its snapshot, Walking starts; the table then has both rows
    shutil.copytree(f"{two_actions}-Eating", f"{two_actions}-Walking")
    assert table1_main(["--lmdb-prefix", str(two_actions), "--actions", "Eating", "Walking",
                        "--out", str(out), "--gpus", "3,5", "--fake-gpus", "--quiet",
                        "--set", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "MISSING" not in printed
    assert "resuming from 5" in (out / "logs" / "Eating.log").read_text()
    assert all(run_state(run).done for run in read_experiment(out).runs)
    document = json.loads((out / "table1.json").read_text())
    assert list(document["mpjpe_mm"]["per_action"]) == ["Eating", "Walking"]
    assert document["run_of_each_action"]["Walking"] == str((out / "Walking").resolve())
    rows = (out / "table1.csv").read_text().splitlines()
    assert rows[0] == ("action,frames,mpjpe_mm,p_mpjpe_mm,mean_pose_mpjpe_mm,"
                       "paper_mpjpe_mm_real_h36m,run")
    assert rows[3].startswith("Average(frame-weighted),10,")
    assert (out / "figures" / "table1.png").stat().st_size > 0
    assert summarize(out)[1] is True


def test_bad_requests_are_refused_in_one_line(tmp_path, capsys):
    for flags, message in ((["--actions", "all", "Eating"], "--actions all stands alone"),
                           (["--gpus", "0", "--slurm"], "--gpus and --slurm exclude each other"),
                           (["--slurm", "--slurm-cpus", "0"], "need at least 1, got 0"),
                           (["--fake-gpus"], "--fake-gpus needs --gpus")):
        code = None
        try:
            code = table1_main(["--lmdb-prefix", str(tmp_path / "x"), "--out",
                                str(tmp_path / "out"), *flags])
        except SystemExit as exit:
            code = exit.code
        assert code not in (0, None)
        assert message in capsys.readouterr().err
    assert experiment_main(["summary", str(tmp_path)]) == 1
    assert "holds no run list (runs.json)" in capsys.readouterr().err
    os.makedirs(tmp_path / "list")
    (tmp_path / "list" / "runs.json").write_text(json.dumps({"table": "table1", "runs": []}))
    assert experiment_main(["task", str(tmp_path / "list"), "0"]) == 1
    assert "no run 0" in capsys.readouterr().err
