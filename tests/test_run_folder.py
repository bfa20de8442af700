"""The solver of section 4 over the whole schedule, the run folder, and the design card's
commands in sequence: `make lmdb`, `caffe train -solver solver/h36m.prototxt`,
`python tools/evaluate.py`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import PAPER, schedule_config
from solver.caffe_cli import train_losses
from solver.pose_solver import make_solver
from solver.run_folder import RunError, RunFolder, default_run, prepare_run
from solver.schedule import lambda_2d_schedule, schedule
from tests.tiny_dataset import TINY

REPO = Path(__file__).resolve().parents[1]



def test_solver_follows_section_4():
    # 1000 images, batch 128: 8 iterations per epoch
    solver = make_solver(PAPER, "train.prototxt", "snap/h36m", train_size=1000)
    assert solver.type == "SGD" and solver.base_lr == pytest.approx(0.01)
    assert solver.lr_policy == "step" and solver.gamma == pytest.approx(0.5)
    assert solver.stepsize == 4 * 8                     # halved every 4 epochs
    assert solver.momentum == pytest.approx(0.9) and solver.weight_decay == pytest.approx(0.001)
    assert solver.max_iter == 28 * 8                    # one run for the whole schedule
    assert lambda_2d_schedule(PAPER, 1000) == [[0, 0.1], [16 * 8, 0.01]]
    assert schedule(PAPER, 1025).max_iter == 28 * 9     # a partial batch is an iteration
    with pytest.raises(ValueError, match="train_size must be positive"):
        make_solver(PAPER, "t", "s", 0)


def test_fractional_epochs_and_the_test_pass():
    # 1000 images, batch 32: 32 iterations per epoch (the last one partial)
    cfg = PAPER.replace(batch_size=32, epochs=1.5, lambda_2d_switch_epoch=0.75,
                        lr_step_epochs=0.5, snapshot_epochs=0.25, test_epochs=0.5,
                        test_images=100)
    assert lambda_2d_schedule(cfg, 1000) == [[0, 0.1], [24, 0.01]]
    solver = make_solver(cfg, "t", "s", 1000, test_net="test", test_size=500)
    assert (solver.max_iter, solver.stepsize, solver.snapshot, solver.test_interval) == \
        (48, 16, 8, 16)
    assert list(solver.test_iter) == [4]                # ceil(100 / 32) batches of the first 100
    everything = make_solver(cfg.replace(test_images=0), "t", "s", 1000, test_net="t",
                             test_size=500)
    assert list(everything.test_iter) == [16]           # 0: the whole test split, ceil(500 / 32)
    assert list(make_solver(cfg.replace(test_images=900), "t", "s", 1000, test_net="t",
                            test_size=500).test_iter) == [16]   # never more than the split
    # the paper's test losses come every 4 epochs (section 5)
    assert make_solver(PAPER, "t", "s", 1000, test_net="t", test_size=10).test_interval == 32
    assert lambda_2d_schedule(cfg.replace(lambda_2d_switch_epoch=0), 1000) == [[0, 0.01]]


def test_a_run_folder_is_kept_for_the_same_config_and_refused_for_another(lmdb_dir, tmp_path):
    cfg = schedule_config("paper", overrides=TINY)
    run = tmp_path / "run"
    folder = prepare_run(run, cfg, "full", lmdb_dir)
    for name in ("train.prototxt", "test.prototxt", "deploy.prototxt", "solver.prototxt",
                 "config.json"):
        assert (run / name).is_file()
    described = json.loads((run / "config.json").read_text())
    assert described["dataset"] == str(lmdb_dir.resolve()) and described["train_size"] == 10
    assert folder.solver().max_iter == 10 and folder.schedule().lambda_2d_switch == 5
    assert '[[0, 0.1], [5, 0.01]]' in (run / "train.prototxt").read_text()
    marker = run / "snapshots" / "iter_iter_5.solverstate"
    marker.write_text("kept")
    prepare_run(run, cfg, "full", lmdb_dir)              # the same: kept as it is
    assert marker.read_text() == "kept"
    with pytest.raises(RunError, match="differs in config.base_lr, variant"):
        prepare_run(run, cfg.replace(base_lr=0.5), "baseline", lmdb_dir)
    assert marker.exists() and RunFolder(run).variant() == "full"
    prepare_run(run, cfg.replace(base_lr=0.5), "baseline", lmdb_dir, force=True)
    assert not marker.exists() and RunFolder(run).variant() == "baseline"
    with pytest.raises(RunError, match="config crop_size 240 but .* was built with 250"):
        prepare_run(tmp_path / "other", cfg.replace(crop_size=240, input_size=200), "full",
                    lmdb_dir)
    built = cfg.jpeg_quality
    with pytest.raises(RunError, match=f"config jpeg_quality 80 but .* built with {built}: "
                                       f"give `--set jpeg_quality={built}`"):
        prepare_run(tmp_path / "other", cfg.replace(jpeg_quality=80), "full", lmdb_dir)
    assert not (tmp_path / "other").exists()


def test_evaluate_without_a_run_needs_the_solver_link(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunError, match="no solver/h36m.prototxt: name a run folder"):
        default_run()


@pytest.mark.slow
def test_the_design_cards_commands_in_sequence(lmdb_dir, tmp_path):
    """`make solver` (which `make lmdb` runs the first time), then the two commands verbatim,
    from a folder laid out as the repository's root; evaluate finds and scores the weights
    that `caffe train` wrote, and the lambda_2D switch happened inside that one run."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("GLOG_minloglevel", None)

    def command(*args):
        return subprocess.run(list(args), cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)

    made = command(sys.executable, str(REPO / "tools" / "make_solver.py"), "--lmdb",
                   str(lmdb_dir), "--run", "runs/h36m", "--set", *TINY)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "solver" / "h36m.prototxt").is_symlink()
    trained = command("caffe", "train", "-solver", "solver/h36m.prototxt")
    assert trained.returncode == 0, trained.stderr[-2000:]
    log = trained.stdout + trained.stderr
    assert [it for it, _ in train_losses(log)] == list(range(11))
    assert "lambda_2D = 0.1" in log and "lambda_2D = 0.01" in log   # the switch, in one run
    assert (tmp_path / "runs" / "h36m" / "snapshots" / "iter_iter_10.caffemodel").exists()
    evaluated = command(sys.executable, str(REPO / "tools" / "evaluate.py"), "--quiet")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "iter_iter_10.caffemodel" in evaluated.stdout
    results = json.loads((tmp_path / "runs" / "h36m" / "results.json").read_text())
    assert results["frames"] == 10 and results["weights"].endswith("iter_iter_10.caffemodel")


def test_a_run_folder_in_use_is_refused(lmdb_dir, tmp_path, capsys):
    from solver.run_folder import locked
    from tools.make_solver import main as solver_main
    from tools.train import main as train_main
    run = tmp_path / "run"
    with locked(run):
        assert train_main(["--lmdb", str(lmdb_dir), "--run", str(run), "--quiet",
                           "--set", *TINY]) == 1
        assert f"is in use by process {os.getpid()}" in capsys.readouterr().err
        assert solver_main(["--lmdb", str(lmdb_dir), "--run", str(run), "--link",
                            str(tmp_path / "link.prototxt"), "--set", *TINY]) == 1
        assert "is in use by" in capsys.readouterr().err
        assert not run.exists()
    # released with the block: the same command now prepares the run
    assert solver_main(["--lmdb", str(lmdb_dir), "--run", str(run), "--link",
                        str(tmp_path / "link.prototxt"), "--set", *TINY]) == 0


def test_caffe_dies_with_the_process_that_started_it(tmp_path):
    """A parent that starts a child as run_caffe does (die_with_parent) is killed with
    SIGKILL: the child, which would otherwise run on as an orphan, ends too."""
    import signal
    import time
    code = ("import subprocess, sys, time\n"
            "from child_processes import die_with_parent\n"
            "child = subprocess.Popen(['sleep', '120'], preexec_fn=die_with_parent)\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(child)


def running(pid):
    """Whether process pid runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
