"""tools/train.py (two stages, resume) and tools/evaluate.py (results, clear errors) on a tiny
LMDB dataset and a narrow network."""
import json

import numpy as np
import pytest

from tests.tiny_runs import TINY, write_tiny_lmdb
from solver.caffe_cli import train_losses
from tools.evaluate import EvaluationError, evaluate, latest_weights, write_results
from tools.train import main as train_main


@pytest.fixture(scope="module")
def lmdb_dir(tmp_path_factory):
    return write_tiny_lmdb(tmp_path_factory.mktemp("tiny") / "lmdb")


def run_train(run, lmdb_dir, variant="full"):
    return train_main(["--variant", variant, "--lmdb", str(lmdb_dir), "--run", str(run),
                       "--set", *TINY])


def iterations(run, stage):
    return [it for it, _ in train_losses((run / "logs" / f"stage{stage}.log").read_text())]


def test_two_stages_and_resume_after_an_interruption(lmdb_dir, tmp_path):
    # 10 images, batch 2: 5 iterations per epoch; stage 1 ends at 5, stage 2 at 10
    whole = tmp_path / "whole"
    assert run_train(whole, lmdb_dir) == 0
    assert iterations(whole, 1) == [0, 1, 2, 3, 4, 5]
    assert iterations(whole, 2) == [5, 6, 7, 8, 9, 10]
    assert latest_weights(whole).name == "iter_iter_10.caffemodel"
    assert json.loads((whole / "config.json").read_text())["config"]["batch_size"] == 2

    # interrupted after stage 1: only its snapshot is left; the rerun resumes stage 2 from it
    cut = tmp_path / "cut"
    assert run_train(cut, lmdb_dir) == 0
    for path in (cut / "snapshots").glob("iter_iter_10.*"):
        path.unlink()
    (cut / "logs" / "stage2.log").unlink()
    assert run_train(cut, lmdb_dir) == 0
    assert iterations(cut, 2) == iterations(whole, 2)
    assert "Resuming from" in (cut / "logs" / "stage2.log").read_text()
    # a finished run is left alone
    before = (cut / "logs" / "stage2.log").read_text()
    assert run_train(cut, lmdb_dir) == 0
    assert (cut / "logs" / "stage2.log").read_text() == before


def test_evaluation_writes_results_and_refuses_mismatched_weights(lmdb_dir, tmp_path):
    run = tmp_path / "run"
    assert run_train(run, lmdb_dir) == 0
    results, poses = evaluate(run, latest_weights(run), lmdb_dir, batch_size=4)
    assert results["frames"] == 10
    assert set(results["mpjpe"]["per_action"]) == {"Eating", "Walking"}
    assert np.isfinite(results["mpjpe"]["frame_weighted"])
    assert results["p_mpjpe"]["frame_weighted"] <= results["mpjpe"]["frame_weighted"] + 1e-6
    write_results(results, tmp_path / "out", poses)
    assert (tmp_path / "out" / "results.csv").read_text().startswith("action,frames,mpjpe_mm")
    with np.load(tmp_path / "out" / "predictions.npz") as stored:   # read back, key order
        assert stored["predictions_mm"].shape == stored["truth_mm"].shape == (10, 17, 3)
        assert list(stored["actions"]) == ["Eating", "Walking"] * 5
        np.testing.assert_allclose(stored["predictions_mm"], poses["predictions_mm"])

    other = tmp_path / "baseline-run"
    assert run_train(other, lmdb_dir, variant="baseline") == 0
    with pytest.raises(EvaluationError, match="does not match .*layer fc_probs_2D missing"):
        evaluate(run, latest_weights(other), lmdb_dir)
    with pytest.raises(EvaluationError, match="has no 'val' split"):
        evaluate(run, latest_weights(run), lmdb_dir, split="val")
    with pytest.raises(EvaluationError, match="manifest.json missing"):
        evaluate(run, latest_weights(run), tmp_path / "nowhere")


def test_predict_prints_and_draws_a_pose(lmdb_dir, tmp_path, capsys):
    import cv2
    from tools.predict import main as predict_main
    run = tmp_path / "run"
    assert run_train(run, lmdb_dir) == 0
    image = tmp_path / "crop.png"
    cv2.imwrite(str(image), np.full((300, 200, 3), 90, np.uint8))
    assert predict_main([str(image), "--run", str(run), "--out", str(tmp_path / "pose.png")]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("joint ")]
    assert len(lines) == 17 and lines[0].split()[2:5] == ["0.0", "0.0", "0.0"]   # pelvis
    assert cv2.imread(str(tmp_path / "pose.png")).shape[0] > 100
    with pytest.raises(SystemExit):
        predict_main([str(tmp_path / "missing.png"), "--run", str(run)])


def test_solver_for_an_lmdb_trains_with_caffe_train(lmdb_dir, tmp_path):
    """The researcher's path: `make solver` (pose_solver --lmdb), then `caffe train -solver`."""
    from solver.pose_solver import main as solver_main
    from solver.caffe_cli import run_caffe
    out = tmp_path / "solver"
    prefix = tmp_path / "snaps" / "h36m"
    assert solver_main(["--lmdb", str(lmdb_dir), "--out", str(out), "--snapshot-prefix",
                        str(prefix), "--set", *TINY]) == 0
    train_net = (out / "nets" / "full" / "train.prototxt").read_text()
    assert str(lmdb_dir.resolve()) in train_net and "H36MData" in train_net
    assert "test_iter: 5" in (out / "h36m.prototxt").read_text()   # 10 test images, batch 2
    run_caffe(["train", f"-solver={out / 'h36m.prototxt'}"], tmp_path / "stage1.log")
    log = (tmp_path / "stage1.log").read_text()
    assert [it for it, _ in train_losses(log)] == [0, 1, 2, 3, 4, 5]
    assert (tmp_path / "snaps" / "h36m_iter_5.caffemodel").exists()
    with pytest.raises(SystemExit):
        solver_main(["--lmdb", str(tmp_path / "nowhere"), "--out", str(out)])
