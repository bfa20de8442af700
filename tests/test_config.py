"""The configuration: the paper's values, overrides from a file and key=value, validation."""
import json

import pytest

from config import PAPER, SCHEDULES, load_config
from data_prep.h36m import PARENTS_17


def test_paper_values():
    assert (PAPER.batch_size, PAPER.base_lr, PAPER.lr_gamma, PAPER.lr_step_epochs, PAPER.epochs) \
        == (128, 0.01, 0.5, 4, 28)
    assert (PAPER.momentum, PAPER.weight_decay, PAPER.dropout_ratio) == (0.9, 0.001, 0.3)
    assert (PAPER.lambda_2d, PAPER.lambda_2d_late, PAPER.lambda_2d_switch_epoch, PAPER.lambda_3d) \
        == (0.1, 0.01, 16, 0.5)
    assert (PAPER.grid_size, PAPER.input_size, PAPER.crop_size, PAPER.num_joints) == (16, 225, 250, 17)
    assert len(PAPER.root_joints) == 6


def test_every_joint_is_a_root_or_the_neighbour_of_one():
    neighbours = {j: {PARENTS_17[j]} | {c for c, p in enumerate(PARENTS_17) if p == j}
                  for j in range(17)}
    covered = set(PAPER.root_joints).union(*(neighbours[r] for r in PAPER.root_joints))
    assert covered >= set(range(17))


def test_overrides_from_file_then_command_line(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"batch_size": 32, "root_joints": [0, 9]}))
    cfg = load_config(path, ["batch_size=16", "base_lr=0.02", "conv_channels=8,8,8,8,8"])
    assert cfg.batch_size == 16 and cfg.base_lr == 0.02
    assert cfg.root_joints == (0, 9) and cfg.conv_channels == (8, 8, 8, 8, 8)
    assert PAPER.batch_size == 128                       # the paper's values stay as they are


@pytest.mark.parametrize("overrides, message", [
    (["batchsize=3"], "unknown keys \\['batchsize'\\]"),
    (["batch_size"], "is not key=value"),
    (["dropout_ratio=1.5"], "dropout_ratio must be in"),
    (["root_joints=0,0"], "root_joints must be distinct"),
    (["lambda_2d_switch_epoch=40"], "within the epochs"),
    (["test_epochs=0"], "must be positive"),
    (["test_images=-1"], "test_images must be >= 0"),
    (["base_lr=inf"], "base_lr must be a finite number, got inf"),
    (["lambda_3d=nan"], "lambda_3d must be a finite number, got nan"),
    (["batch_size=two"], "batch_size='two' is not of type int"),
    (["data_seed=-1"], "pca_std and data_seed must be >= 0"),
])
def test_bad_overrides_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_unreadable_config_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read .*bad.json"):
        load_config(bad)


def test_epoch_fields_take_fractions_and_schedules_only_shrink_the_training():
    assert load_config(None, ["epochs=1.5", "lambda_2d_switch_epoch=0.5"]).epochs == 1.5
    demo = PAPER.replace(**SCHEDULES["demo"])
    assert demo.epochs < PAPER.epochs and demo.batch_size < PAPER.batch_size
    # the network and the losses are the paper's
    for field in ("conv_channels", "conv_kernels", "root_joints", "dropout_ratio", "lambda_2d",
                  "lambda_2d_late", "lambda_3d", "grid_size", "input_size", "base_lr"):
        assert getattr(demo, field) == getattr(PAPER, field), field
    assert SCHEDULES["paper"] == {}
