"""tools/train.py (the whole schedule, resume, progress) and tools/evaluate.py, tools/predict.py
(results, subsets beside the full results, clear errors) on the tiny dataset and a narrow
network."""
import json
import shutil

import numpy as np
import pytest

from evaluation.evaluate import EvaluationError, evaluate_run, write_results
from solver.caffe_cli import train_losses
from solver.run_folder import RunFolder
from tests.tiny_dataset import TINY
from tools.evaluate import main as evaluate_main
from tools.train import main as train_main

# trains narrow networks end to end: seconds each
pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def trained(lmdb_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    assert run_train(run, lmdb_dir) == 0
    return run


def run_train(run, lmdb_dir, variant="full", *extra):
    return train_main(["--variant", variant, "--lmdb", str(lmdb_dir), "--run", str(run),
                       "--quiet", "--set", *TINY, *extra])


def iterations(run):
    return [it for it, _ in train_losses((run / "logs" / "train.log").read_text())]


def test_one_run_for_the_schedule_and_resume_after_an_interruption(lmdb_dir, trained,
                                                                   tmp_path):
    # 10 images, batch 2: 5 iterations per epoch; lambda_2D switches at 5, the run ends at 10
    assert iterations(trained) == list(range(11))
    log = (trained / "logs" / "train.log").read_text()
    assert "lambda_2D = 0.1" in log and "lambda_2D = 0.01" in log
    assert RunFolder(trained).latest_weights().name == "iter_iter_10.caffemodel"
    assert json.loads((trained / "config.json").read_text())["config"]["batch_size"] == 2

    # interrupted after iteration 5: only its snapshot is left; the rerun resumes from it and
    # ends where the uninterrupted run ended, lambda_2D switched by the snapshot's count
    # (the losses differ: the data layer's stream starts again from its first batch)
    cut = tmp_path / "cut"
    assert run_train(cut, lmdb_dir) == 0
    for path in (cut / "snapshots").glob("iter_iter_10.*"):
        path.unlink()
    (cut / "logs" / "train.log").unlink()
    assert run_train(cut, lmdb_dir) == 0
    resumed = (cut / "logs" / "train.log").read_text()
    assert "Resuming from" in resumed and iterations(cut)[-1] == 10
    after = resumed.split("Resuming from")[1]
    assert "lambda_2D = 0.01" in after and "lambda_2D = 0.1" not in after
    # a finished run is left alone
    before = (cut / "logs" / "train.log").read_text()
    assert run_train(cut, lmdb_dir) == 0
    assert (cut / "logs" / "train.log").read_text() == before


def test_progress_is_shown_unless_quiet(lmdb_dir, tmp_path, capsys):
    assert train_main(["--lmdb", str(lmdb_dir), "--run", str(tmp_path / "run"),
                       "--set", *TINY, "epochs=1"]) == 0
    err = capsys.readouterr().err
    assert "iteration 5/5 (100%)" in err and "loss" in err
    assert run_train(tmp_path / "quiet", lmdb_dir, "full", "epochs=1") == 0
    assert "iteration" not in capsys.readouterr().err


def test_a_rerun_with_another_config_is_refused(lmdb_dir, trained, capsys):
    before = (trained / "config.json").read_text()
    assert run_train(trained, lmdb_dir, "full", "base_lr=0.5") == 1
    assert "differs in config.base_lr" in capsys.readouterr().err
    assert (trained / "config.json").read_text() == before


def test_evaluation_writes_results_and_refuses_mismatched_weights(lmdb_dir, trained, tmp_path):
    folder = RunFolder(trained)
    results, poses = evaluate_run(folder, batch_size=4, quiet=True)
    assert results["frames"] == 10
    assert set(results["mpjpe"]["per_action"]) == {"Eating", "Walking"}
    assert np.isfinite(results["mpjpe"]["frame_weighted"])
    assert results["p_mpjpe"]["frame_weighted"] <= results["mpjpe"]["frame_weighted"] + 1e-6
    write_results(results, tmp_path / "out", poses)
    assert (tmp_path / "out" / "results.csv").read_text().startswith("action,frames,mpjpe_mm")
    with np.load(tmp_path / "out" / "predictions.npz") as stored:   # read back, key order
        assert stored["predictions_mm"].shape == stored["truth_mm"].shape == (10, 17, 3)
        assert list(stored["actions"]) == ["Eating", "Walking"] * 5
        assert list(stored["indices"]) == list(range(10))
        np.testing.assert_allclose(stored["predictions_mm"], poses["predictions_mm"])

    other = tmp_path / "baseline-run"
    assert run_train(other, lmdb_dir, "baseline") == 0
    with pytest.raises(EvaluationError, match="does not match .*layer fc_probs_2D missing"):
        evaluate_run(folder, RunFolder(other).latest_weights(), quiet=True)
    with pytest.raises(EvaluationError, match="has no 'val' split"):
        evaluate_run(folder, split="val", quiet=True)


def test_a_subset_is_written_beside_the_full_results(trained, capsys):
    assert evaluate_main(["--run", str(trained), "--quiet"]) == 0
    full = (trained / "results.json").read_text()
    assert json.loads(full)["protocol"]["description"] == \
        "mean over all 17 joints (root included), root-aligned; every frame, all cameras"
    assert evaluate_main(["--run", str(trained), "--limit", "4", "--quiet"]) == 0
    assert (trained / "results.json").read_text() == full
    subset = json.loads((trained / "eval-first4" / "results.json").read_text())
    assert subset["frames"] == 4 and subset["protocol"]["limit"] == 4
    out = capsys.readouterr().out
    assert "# protocol: mean over all 17 joints" in out and "the first 4 of them" in out
    assert "MPJPE Average(frame-weighted)" in out
    assert evaluate_main(["--run", str(trained), "--set", "batch_size=4", "--quiet"]) == 1
    assert "evaluate --set batch_size: 'batch_size' changes nothing there" in \
        capsys.readouterr().err


def test_protocols_select_frames_and_joints(trained, capsys):
    """every-5th takes frames 0 and 5 of the tiny recording; 16 joints give 17/16 of the
    17-joint MPJPE frame by frame; another camera's frames are none here."""
    folder = RunFolder(trained)
    everything, _ = evaluate_run(folder, quiet=True)
    fifth, poses = evaluate_run(folder, subset="every-5th", quiet=True)
    assert fifth["frames"] == 2 and list(poses["indices"]) == [0, 5]
    assert fifth["protocol"]["subset"] == "every-5th"
    sixteen, _ = evaluate_run(folder, cfg=folder.config().replace(evaluation_joints=16),
                              quiet=True)
    assert sixteen["mpjpe"]["frame_weighted"] == pytest.approx(
        everything["mpjpe"]["frame_weighted"] * 17 / 16)
    assert sixteen["mean_pose_mpjpe"]["frame_weighted"] == pytest.approx(
        everything["mean_pose_mpjpe"]["frame_weighted"] * 17 / 16)
    assert "the 16 non-root joints" in sixteen["protocol"]["description"]
    with pytest.raises(EvaluationError, match="no test frames for the protocol"):
        evaluate_run(folder, camera="55011271", quiet=True)
    assert evaluate_main(["--run", str(trained), "--subset", "every-64th", "--joints", "16",
                          "--camera", "54138969", "--quiet"]) == 0
    written = json.loads((trained / "eval-every-64th-cam54138969-16joints" /
                          "results.json").read_text())
    assert (written["frames"], written["protocol"]["joints"]) == (1, 16)
    assert "every 64th frame, camera 54138969" in capsys.readouterr().out


def test_predict_prints_and_draws_a_pose(trained, tmp_path, capsys):
    import cv2
    from tools.predict import main as predict_main
    image = tmp_path / "crop.png"
    cv2.imwrite(str(image), np.full((300, 200, 3), 90, np.uint8))
    assert predict_main([str(image), "--run", str(trained), "--out",
                         str(tmp_path / "pose.png")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("joint ")]
    assert len(lines) == 17 and lines[0].split()[2:5] == ["0.0", "0.0", "0.0"]   # pelvis
    assert cv2.imread(str(tmp_path / "pose.png")).shape[0] > 100
    with pytest.raises(SystemExit):
        predict_main([str(tmp_path / "missing.png"), "--run", str(trained)])


def test_a_snapshot_cut_short_is_passed_over_and_a_killed_runs_log_kept(lmdb_dir, trained,
                                                                       tmp_path):
    """A kill while Caffe writes the last snapshot leaves its caffemodel cut short: evaluation
    and resume take the snapshot before it, and the rerun trains to the end again; the log a
    killed run left in train.part.log is appended, not overwritten."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    last = run / "snapshots" / "iter_iter_10.caffemodel"
    last.write_bytes(last.read_bytes()[:len(last.read_bytes()) // 2])
    folder = RunFolder(run)
    assert folder.latest_weights().name == "iter_iter_5.caffemodel"
    assert folder.latest_state()[0] == 5
    (run / "logs" / "train.part.log").write_text("the log of a killed run\n")
    assert run_train(run, lmdb_dir) == 0
    log = (run / "logs" / "train.log").read_text()
    assert "the log of a killed run" in log and "Resuming from" in log
    assert not (run / "logs" / "train.part.log").exists()
    assert folder.latest_weights().name == "iter_iter_10.caffemodel"
    (run / "snapshots" / "iter_iter_5.solverstate").write_bytes(b"\x08")   # cut short
    assert folder.latest_state()[0] == 10


def learned_net(state):
    from caffe.proto import caffe_pb2
    message = caffe_pb2.SolverState()
    message.ParseFromString(state.read_bytes())
    return message.learned_net


def test_a_run_moved_with_its_dataset_evaluates_and_resumes_where_it_lies_now(lmdb_dir,
                                                                               tmp_path):
    """A run and its dataset side by side (runs/, data/lmdb/ of a repository), trained, cut
    after iteration 5, and the whole tree moved: the old place is gone, as on another machine.
    Caffe's .solverstate names its caffemodel by the old absolute path."""
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(lmdb_dir, old / "data" / "lmdb")
    assert run_train(old / "runs" / "tiny", old / "data" / "lmdb") == 0
    for path in (old / "runs" / "tiny" / "snapshots").glob("iter_iter_10.*"):
        path.unlink()
    state = old / "runs" / "tiny" / "snapshots" / "iter_iter_5.solverstate"
    assert learned_net(state) == str(state.with_suffix(".caffemodel").resolve())
    old.rename(new)
    run, data = new / "runs" / "tiny", (new / "data" / "lmdb").resolve()

    # evaluation finds the dataset by its path relative to the run
    assert evaluate_main(["--run", str(run), "--limit", "4", "--quiet"]) == 0
    assert json.loads((run / "eval-first4" / "results.json").read_text())["lmdb"] == str(data)
    # the rerun resumes from iteration 5 with the weights beside the state, to the end
    assert run_train(run, data) == 0
    assert "Resuming from" in (run / "logs" / "train.log").read_text()
    assert iterations(run)[-1] == 10
    moved_state = run / "snapshots" / "iter_iter_5.solverstate"
    assert learned_net(moved_state) == str(moved_state.with_suffix(".caffemodel").resolve())
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == str(data) and config["dataset_relative"] == "../../data/lmdb"
    assert "/old/" not in (run / "solver.prototxt").read_text()


def test_a_run_whose_dataset_moved_elsewhere_is_given_it_and_refuses_another(lmdb_dir,
                                                                             trained,
                                                                             tmp_path, capsys):
    run, elsewhere, rebuilt = tmp_path / "run", tmp_path / "moved-lmdb", tmp_path / "rebuilt"
    shutil.copytree(trained, run)
    shutil.copytree(lmdb_dir, elsewhere)
    shutil.copytree(lmdb_dir, rebuilt)
    manifest = json.loads((rebuilt / "manifest.json").read_text())
    manifest["splits"]["train"]["stride"] = 2    # as a rebuild with other settings reports
    (rebuilt / "manifest.json").write_text(json.dumps(manifest))
    config = json.loads((run / "config.json").read_text())
    config.update(dataset=str(tmp_path / "gone"), dataset_relative="../gone")
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()

    assert evaluate_main(["--run", str(run), "--limit", "2", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"dataset {tmp_path / 'gone'}: no manifest.json" in err
    assert f"the dataset of the run in {run / 'config.json'}; moved? give the dataset's " \
        "folder with --lmdb" in err
    assert evaluate_main(["--run", str(run), "--limit", "2", "--quiet",
                          "--lmdb", str(elsewhere)]) == 0
    assert evaluate_main(["--run", str(run), "--limit", "2", "--quiet",
                          "--lmdb", str(rebuilt)]) == 1
    assert f"dataset {rebuilt} is not the one the run was prepared for" in \
        capsys.readouterr().err

    # training: the same dataset moved is taken (the finished run left as it is, config.json
    # naming the new place); a rebuilt one is another configuration
    assert run_train(run, elsewhere) == 0
    assert "already finished at iteration 10" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["dataset"] == str(elsewhere.resolve())
    assert run_train(run, rebuilt) == 1
    assert "another configuration (differs in dataset_fingerprint)" in capsys.readouterr().err
