"""A diverged training: Caffe's solver stops at the first non-finite loss (patch
04) before the update, and the training path reports it, keeps the last good snapshot and
moves the ones holding the diverged weights out of reach of resume and evaluation."""
import pytest
from google.protobuf import text_format

from solver.caffe_cli import diverged_at, train_losses
from solver.run_folder import RunFolder
from solver.training import Diverged, train_run
from tests.tiny_dataset import TINY
from tools.train import main as train_main

SNAPSHOT_EVERY_ITERATION = TINY + ["snapshot_epochs=0.2"]


def test_the_stop_line_is_read_from_the_log():
    line = ("F1126 20:05:31.614074 14628 solver.cpp:238] Non-finite loss (-nan) at iteration "
            "17: training diverged and was stopped before updating the weights")
    assert diverged_at("I1126 Iteration 16, loss = 0.5\n" + line) == (17, "-nan")
    assert diverged_at("I1126 Iteration 16, loss = nan\n") is None   # Caffe's own line only


@pytest.mark.slow
def test_training_stops_at_the_first_non_finite_loss_and_keeps_the_last_good_snapshot(
        lmdb_dir, tmp_path):
    """A finished tiny run is cut back to its snapshot of iteration 5 and resumed with a
    learning rate that makes the update of iteration 5 explode (the run's solver edited, as
    train_run takes it): the snapshot of iteration 6
    (written after that update) holds the diverged weights and the loss of iteration 6 is
    not finite."""
    run = tmp_path / "run"
    command = ["--lmdb", str(lmdb_dir), "--run", str(run), "--quiet",
               "--set", *SNAPSHOT_EVERY_ITERATION]
    assert train_main(command) == 0
    folder = RunFolder(run)
    for path in folder.snapshots.glob("*_iter_*"):
        if int(path.stem.rsplit("_", 1)[1]) > 5:
            path.unlink()
    solver = folder.solver()
    solver.base_lr = 1e12
    folder.solver_path.write_text(text_format.MessageToString(solver))

    with pytest.raises(Diverged) as raised:   # tools/train.py prints it and exits 1
        train_run(folder, quiet=True)
    error = str(raised.value)
    assert "training diverged" in error and "at iteration 6" in error
    assert "the last good snapshot, of iteration 5, is kept" in error
    assert sorted(p.name for p in (folder.snapshots / "diverged").iterdir()) == [
        "iter_iter_6.caffemodel", "iter_iter_6.solverstate"]
    assert folder.latest_state()[0] == 5
    assert folder.latest_weights().name == "iter_iter_5.caffemodel"
    log = folder.log_path.read_text()
    assert diverged_at(log)[0] == 6
    # nothing was trained or snapshotted past the non-finite loss
    after = log.split("Non-finite loss")[1]
    assert "Snapshotting" not in after and not train_losses(after)
    assert not list(folder.snapshots.glob("*_iter_7.*"))
