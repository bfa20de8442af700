"""Limits and outputs of the tools, each case run as a user runs it:
the tool as a subprocess, whose refusal is one `error: ...` line on stderr (no traceback, no
C++ stack) and which leaves what existed as it was, without temporary files.

- values that Caffe's 32-bit iteration counts, this machine's cores or its shared memory
  cannot hold are refused naming the key before a run folder is written; an evaluation
  batch larger than the frames is capped (and said), one the memory cannot hold refused;
- prediction refuses images it cannot use meaningfully (a 1 x 1 crop, a 12000 x 12000 PNG);
- evaluate and predict check where their output goes before the work;
- weights of another variant than the run's are refused naming both.

Tests run as root here, and root ignores permission bits, so a read-only folder cannot be
made reliably; an output path under a regular file cannot be created by anyone
(NotADirectoryError), which is the failure a read-only folder gives at the same point:
creating the output.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.tiny_dataset import TINY
from tools.train import main as train_main

REPO = Path(__file__).resolve().parent.parent
INT32_MAX = 2 ** 31 - 1   # Caffe's iteration counts are 32-bit integers


def tool(*args):
    """The finished `python tools/<...>` command run from the repository. PYTHONPATH names
    this checkout: the venv's .pth file names the main one, which a clone's tools must not
    import instead of its own."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "GLOG_minloglevel": "2"}
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)


def error_line(done):
    """The one `error: ...` line of a refused command (asserted: a non-zero status, nothing
    else on stderr)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    return lines[0]


def train_tool(lmdb_dir, run, *overrides):
    """tools/train.py of the tiny network (TINY) with more --set overrides."""
    return tool("tools/train.py", "--lmdb", lmdb_dir, "--run", run, "--quiet",
                "--set", *TINY, *overrides)


@pytest.fixture(scope="module")
def runs(lmdb_dir, tmp_path_factory):
    """A trained baseline run and a trained multi-reg run of the tiny dataset: {variant: run}."""
    root = tmp_path_factory.mktemp("variants")
    trained = {}
    for variant in ("baseline", "multi-reg"):
        trained[variant] = root / variant
        assert train_main(["--variant", variant, "--lmdb", str(lmdb_dir), "--run",
                           str(trained[variant]), "--quiet", "--set", *TINY]) == 0
    return trained


def latest_weights(run):
    """The caffemodel of a run's last snapshot."""
    return max((run / "snapshots").glob("*.caffemodel"),
               key=lambda path: int(re.search(r"_(\d+)\.caffemodel$", path.name).group(1)))


# ------------------------------------------------------------------ item 7: limits

def test_loader_workers_beyond_this_machine_are_refused_before_a_run_folder(lmdb_dir,
                                                                          tmp_path):
    """loader_workers=100000 reached Caffe, which aborted with a C++ stack (the loader's own
    message lost) in a run folder it had written."""
    run = tmp_path / "run"
    line = error_line(train_tool(lmdb_dir, run, "loader_workers=100000",
                                 "loader_processes=true"))
    assert "loader_workers=100000" in line and "per core" in line
    assert list(tmp_path.iterdir()) == []   # no run folder, no lock or temporary file


def test_loader_slots_beyond_the_free_shared_memory_are_refused(lmdb_dir, tmp_path):
    """Worker processes' batch slots go into /dev/shm, else the temporary folder: a batch
    whose slots need twice the room of either is refused, naming the keys and the folders."""
    free = max(os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
               for folder in ("/dev/shm", tempfile.gettempdir()) if os.path.isdir(folder))
    image_bytes = 3 * 225 * 225 * 4
    slots = 4                                 # max(loader_prefetch 4, the automatic workers)
    batch = 2 * free // (slots * image_bytes) + 1
    run = tmp_path / "run"
    line = error_line(train_tool(lmdb_dir, run, f"batch_size={batch}",
                                 "loader_processes=true", "loader_prefetch=4"))
    assert f"batch_size={batch}" in line and "loader_prefetch=4" in line
    assert "batch slots" in line
    assert "/dev/shm" in line or not os.path.isdir("/dev/shm")
    assert list(tmp_path.iterdir()) == []


def test_epochs_beyond_caffes_iteration_count_are_refused_naming_the_key(lmdb_dir, tmp_path):
    """epochs=1e12 gave `Value out of range: 5000000000000` without the key and left a run
    folder without config.json. The refusal names the largest number of epochs; that many
    are taken (max_iter within int32), one more is refused."""
    run = tmp_path / "run"
    line = error_line(train_tool(lmdb_dir, run, "epochs=1e12"))
    assert "epochs=1e+12" in line and "32-bit" in line
    assert not run.exists()
    most = int(re.search(r"choose epochs <= (\d+)", line).group(1))
    link = tmp_path / "h36m.prototxt"
    refused = tool("tools/make_solver.py", "--lmdb", lmdb_dir, "--run", run, "--link", link,
                   "--set", *TINY, f"epochs={most + 1}")
    assert "choose epochs <=" in error_line(refused) and not run.exists()
    taken = tool("tools/make_solver.py", "--lmdb", lmdb_dir, "--run", run, "--link", link,
                 "--set", *TINY, f"epochs={most}")
    assert taken.returncode == 0, taken.stderr
    max_iter = int(re.search(r"max_iter: (\d+)", (run / "solver.prototxt").read_text())[1])
    assert most <= max_iter <= INT32_MAX and (run / "config.json").exists()


@pytest.mark.slow
def test_an_evaluation_batch_beyond_the_frames_is_capped_and_said(runs, tmp_path):
    """--batch 100000 for 4 frames tried to allocate 56.6 GiB; the batch is the 4 frames."""
    out = tmp_path / "out"
    done = tool("tools/evaluate.py", "--run", runs["baseline"], "--batch", 100000,
                "--limit", 4, "--quiet", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "evaluate: batches of 4 frames, not 100000" in done.stderr
    assert json.loads((out / "results.json").read_text())["frames"] == 4


@pytest.mark.slow
def test_an_evaluation_batch_beyond_the_memory_is_refused(runs, monkeypatch):
    """With little memory available, a batch the machine cannot hold is refused before the
    loader allocates it, with the largest batch that fits, which is taken."""
    import evaluation.evaluate as evaluate
    from solver.run_folder import RunFolder
    monkeypatch.setattr(evaluate, "available_memory", lambda: 20 * 2 ** 20)
    folder = RunFolder(runs["baseline"])
    with pytest.raises(evaluate.EvaluationError, match="this machine has 20 MiB") as refused:
        evaluate.evaluate_run(folder, batch_size=10, quiet=True)
    most = int(re.search(r"at most (\d+) frames \(--batch\)", str(refused.value))[1])
    assert 1 <= most < 10
    results, _ = evaluate.evaluate_run(folder, batch_size=most, quiet=True)
    assert results["frames"] == 10


# ------------------------------------------------------------------ item 8: images

def crop_file(path, height, width):
    """A uniform grey image file (small on disk whatever its size)."""
    cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("height, width", [(12000, 12000), (1, 1)])
def test_predict_refuses_images_it_cannot_use(runs, tmp_path, height, width):
    """A 12000 x 12000 PNG (below Pillow's bomb limit) took 27 s and 8.5 GB; a 1 x 1 image got
    a pose printed without a word. Both are refused naming the file and its size, no pose."""
    image = crop_file(tmp_path / "crop.png", height, width)
    done = tool("tools/predict.py", image, "--run", runs["baseline"])
    line = error_line(done)
    assert str(image) in line and f"{width} x {height} pixels" in line
    assert "joint" not in done.stdout


# ------------------------------------------------------------------ item 9: outputs

@pytest.mark.slow
def test_evaluate_checks_its_output_folder_before_the_work(runs, tmp_path):
    """An output folder under a regular file: evaluate evaluated everything and only then
    failed with a traceback; now it refuses first (no table printed), nothing left behind."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    out = blocker / "results"
    done = tool("tools/evaluate.py", "--run", runs["baseline"], "--limit", 2, "--quiet",
                "--out", out)
    assert str(out) in error_line(done) and "--out" in error_line(done)
    assert done.stdout == ""
    assert sorted(tmp_path.iterdir()) == [blocker]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["a-file/pose.png", "pose.txt"])
def test_predict_checks_its_drawing_path_before_the_work(runs, tmp_path, name):
    """--out under a regular file, or of a format no one draws: predict printed the pose,
    then failed with a traceback; now it refuses before the pose, nothing left behind."""
    (tmp_path / "a-file").write_text("not a folder\n")
    image = crop_file(tmp_path / "crop.png", 300, 200)
    before = sorted(tmp_path.iterdir())
    done = tool("tools/predict.py", image, "--run", runs["baseline"], "--out", tmp_path / name)
    assert str(tmp_path / name) in error_line(done) and "--out" in error_line(done)
    assert done.stdout == ""
    assert sorted(tmp_path.iterdir()) == before


# ------------------------------------------------------------------ item 10: weights

@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_weights_of_another_variant_are_refused_naming_both(runs, tmp_path, command):
    """A multi-reg model's layers are a superset of a baseline net's: its weights were taken
    without a word. The refusal names the file, the run's net and both variants."""
    run, weights = runs["baseline"], latest_weights(runs["multi-reg"])
    before = sorted(path.name for path in run.iterdir())
    if command == "evaluate":
        done = tool("tools/evaluate.py", "--run", run, "--weights", weights, "--limit", 2,
                    "--quiet")
    else:
        done = tool("tools/predict.py", crop_file(tmp_path / "crop.png", 300, 200), "--run",
                    run, "--weights", weights)
    line = error_line(done)
    assert str(weights) in line and str(run / "deploy.prototxt") in line
    assert "a baseline net" in line and "a multi-reg model" in line
    assert "fc2_3D_root9" in line
    assert done.stdout == ""
    assert sorted(path.name for path in run.iterdir()) == before


def test_a_loader_that_fails_inside_caffe_says_why(lmdb_dir, tmp_path, monkeypatch):
    """A train net written without the run folder's checks (by hand, or a run whose /dev/shm
    filled since): Caffe ended at the data layer's exception with a C++ stack and without the
    exception; the layer says it first, so Caffe's failure names the loader's reason. (Caffe's
    Python imports this checkout's layers: PYTHONPATH, as in tool().)"""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    from config import load_config
    from prototxt.pose_net import write_net
    from solver.caffe_cli import CaffeError, run_caffe
    from solver.pose_solver import make_solver
    free = max(os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
               for folder in ("/dev/shm", tempfile.gettempdir()) if os.path.isdir(folder))
    batch = 2 * free // (4 * 3 * 225 * 225 * 4) + 1   # 4 slots of twice the room
    cfg = load_config(None, [*TINY, f"batch_size={batch}", "loader_processes=true"])
    net = write_net(tmp_path / "train.prototxt", cfg, "full", "train", data=lmdb_dir,
                    train_size=10)
    solver = tmp_path / "solver.prototxt"
    solver.write_text(str(make_solver(cfg, net, tmp_path / "iter", 10)))
    with pytest.raises(CaffeError, match=r"OSError: BatchLoader: no room for \d+ MiB of batch "
                                         "slots"):
        run_caffe(["train", "-solver", solver], tmp_path / "train.log")
