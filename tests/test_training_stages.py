"""The solver of section 4, and a tiny two-stage `caffe train` run of the full variant."""
import math

import numpy as np
import pytest

import caffe
from config import PAPER
from prototxt.pose_net import generated_files, write_files
from solver.pose_solver import make_solver, stage_iterations, write_solvers
from tools.train_stages import train_two_stages


def test_solver_follows_section_4():
    # 1000 images, batch 128: 8 iterations per epoch
    solver = make_solver(PAPER, "train.prototxt", "snap/h36m", train_size=1000, stage=1)
    assert solver.type == "SGD" and solver.base_lr == pytest.approx(0.01)
    assert solver.lr_policy == "step" and solver.gamma == pytest.approx(0.5)
    assert solver.stepsize == 4 * 8                     # halved every 4 epochs
    assert solver.momentum == pytest.approx(0.9) and solver.weight_decay == pytest.approx(0.001)
    assert solver.max_iter == 16 * 8                    # stage 1 ends at the lambda_2D switch
    assert make_solver(PAPER, "t", "s", 1000, stage=2).max_iter == 28 * 8
    assert stage_iterations(PAPER, 1024) == (128, 224)
    assert stage_iterations(PAPER, 1025) == (16 * 9, 28 * 9)   # a partial batch is an iteration
    with pytest.raises(ValueError, match="train_size must be positive"):
        make_solver(PAPER, "t", "s", 0)


def test_fractional_epochs_and_the_test_pass():
    # 1000 images, batch 32: 32 iterations per epoch (the last one partial)
    cfg = PAPER.replace(batch_size=32, epochs=1.5, lambda_2d_switch_epoch=0.75,
                        lr_step_epochs=0.5, snapshot_epochs=0.25, test_epochs=0.5,
                        test_images=100)
    assert stage_iterations(cfg, 1000) == (24, 48)
    solver = make_solver(cfg, "t", "s", 1000, stage=2, test_net="test", test_size=500)
    assert (solver.stepsize, solver.snapshot, solver.test_interval) == (16, 8, 16)
    assert list(solver.test_iter) == [4]                # ceil(100 / 32) batches of the first 100
    everything = make_solver(cfg.replace(test_images=0), "t", "s", 1000, test_net="t",
                             test_size=500)
    assert list(everything.test_iter) == [16]           # 0: the whole test split, ceil(500 / 32)
    assert list(make_solver(cfg.replace(test_images=900), "t", "s", 1000, test_net="t",
                            test_size=500).test_iter) == [16]   # never more than the split
    # the paper's test losses come every 4 epochs (section 5)
    assert make_solver(PAPER, "t", "s", 1000, test_net="t", test_size=10).test_interval == 32


def test_tiny_two_stage_run_and_deploy(tmp_path):
    """Random data, batch 2, the paper's full network: both stages run, the loss is finite,
    and the deploy net loads the final weights and returns a (17, 3) pose."""
    cfg = PAPER.replace(batch_size=2, epochs=2, lambda_2d_switch_epoch=1, lr_step_epochs=1,
                        snapshot_epochs=1, display_iters=1)
    write_files(generated_files(cfg), tmp_path / "nets")
    stage1, stage2 = write_solvers(cfg, "full", train_size=4, out_dir=tmp_path / "solver",
                                   net_dir=tmp_path / "nets", snapshot_prefix=tmp_path / "snap" / "tiny")
    losses = train_two_stages(stage1, stage2, tmp_path / "logs")
    assert [it for it, _ in losses[1]] == [0, 1, 2]
    assert [it for it, _ in losses[2]] == [2, 3, 4]       # stage 2 continues the iterations
    assert all(math.isfinite(loss) for curve in losses.values() for _, loss in curve)
    stage2_log = (tmp_path / "logs" / "stage2.log").read_text()
    assert "Resuming from" in stage2_log
    assert "loss_2D = " in stage2_log and "(* 0.01 = " in stage2_log   # lambda_2D switched
    assert "(* 0.1 = " in (tmp_path / "logs" / "stage1.log").read_text()

    deploy = caffe.Net(str(tmp_path / "nets" / "full" / "deploy.prototxt"),
                       str(tmp_path / "snap" / "tiny_iter_4.caffemodel"), caffe.TEST)
    deploy.blobs["data"].data[...] = np.random.default_rng(0).normal(0, 50, (1, 3, 225, 225))
    pose = deploy.forward()["pose_3D"]
    assert pose.shape == (1, 17, 3) and np.isfinite(pose).all()
