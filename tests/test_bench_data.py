"""benchmarks/data_speed.py (make bench-data): the loader is measured as training loads, and the report's lines
(no timings are asserted: speed belongs in the benchmark)."""
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from config import PAPER
from layers.h36m_data import layer_params
from prototxt.pose_net import net_text
import json

import pytest

from benchmarks.data_speed import (GOALS, full_size_tree, loader_settings,
                                   motion_frames_per_second, report_rows)


def train_net_loader(data):
    """The BatchLoader arguments of the train net's H36MData layer reading `data`."""
    net = caffe_pb2.NetParameter()
    text_format.Parse(net_text(PAPER, "full", "train", data=data), net)
    layer = next(layer for layer in net.layer if layer.type == "Python"
                 and layer.python_param.layer == "H36MData")
    return layer_params(layer.python_param.param_str, train=True)


def test_the_loader_figure_uses_the_training_settings(tmp_path):
    training = train_net_loader(str(tmp_path))
    settings = loader_settings()
    assert settings == {key: training[key]
                        for key in ("batch_size", "workers", "processes", "prefetch")}


def test_report_rows_name_the_goals():
    rounds = [{"decode_frames_per_s": 3000.0, "build_frames_per_s": 600.0,
               "build_vs_decode": 0.2}] * 3
    report = {"decode_only_frames_per_s": 3000.0, "lmdb_build_frames_per_s": 600.0,
              "build_vs_decode": 0.2, "build_rounds": rounds,
              "loader_images_per_s": 2500.0, "loader_other_kind_images_per_s": 1800.0,
              "loader_settings": {"batch_size": 128, "workers": 2, "processes": True,
                                  "prefetch": 4},
              "training_images_per_s": 20.0, "training_batch": 32, "loader_vs_training": 125.0,
              "synth_motion_frames_per_s": 4321.4}
    lines = [" ".join(row) for row in report_rows(report)]
    assert "20% of decoding (goal >= 80%; rounds 20%, 20%, 20%)" in lines[1]
    assert "batch 128, 2 worker processes" in lines[2] and "goal >= 2000" in lines[2]
    assert "the same with worker threads" in lines[3]
    assert "(goal >= 10x)" in lines[4]
    assert "synthetic motion" in lines[5] and "4321 frames/s" in lines[5]
    assert GOALS == {"build_vs_decode": 0.8, "loader_images_per_s": 2000,
                     "loader_vs_training": 10}
    # the build at the real frame size: two more lines after the default tree's
    report["full_size"] = {"decode_only_frames_per_s": 1000.0, "lmdb_build_frames_per_s": 450.0,
                           "build_vs_decode": 0.45, "build_rounds": [
                               {"decode_frames_per_s": 1000.0, "build_frames_per_s": 450.0,
                                "build_vs_decode": 0.45}] * 2}
    lines = [" ".join(row) for row in report_rows(report)]
    assert lines[2] == "video decoding only at the real frame size (1000x1000) 1000 frames/s " \
                       "median of 2 rounds"
    assert lines[3] == "LMDB build at the real frame size (1000x1000) 450 frames/s 45% of " \
                       "decoding (goal >= 80%; rounds 45%, 45%)"
    assert "goal >= 2000" in lines[4]


def write_metadata(root, **made):
    root.mkdir()
    (root / "metadata.json").write_text(json.dumps(made))


def test_the_full_size_tree_is_checked_before_it_is_used(tmp_path):
    subset = (["S1", "S9"], ["Walking", "Sitting"])
    write_metadata(tmp_path / "full", scale=1.0, subjects=["S1", "S5", "S9"],
                   actions=["Walking", "Sitting", "Eating"])
    assert full_size_tree(tmp_path / "full", *subset) == tmp_path / "full"
    write_metadata(tmp_path / "half", scale=0.5, subjects=["S1", "S9"],
                   actions=["Walking", "Sitting"])
    with pytest.raises(ValueError, match="half holds a synthetic tree of scale 0.5, not the "
                                         "subset at the real frame size .*: remove it"):
        full_size_tree(tmp_path / "half", *subset)
    write_metadata(tmp_path / "part", scale=1.0, subjects=["S1"], actions=["Walking"])
    with pytest.raises(ValueError, match="scale 1.0, without S9 Sitting, not the subset"):
        full_size_tree(tmp_path / "part", *subset)
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="other: no readable metadata.json of make_synth"):
        full_size_tree(tmp_path / "other", *subset)


def test_the_motion_rate_is_a_rate_of_the_frames_asked_for(monkeypatch):
    from benchmarks import data_speed
    made = []

    def fake_motion(action, frames, body, rng):
        made.append((action, frames))

    ticks = iter([0.0, 0.5, 1.0, 1.25, 2.0, 3.0])   # runs of 0.5, 0.25 and 1.0 s
    monkeypatch.setattr(data_speed, "generate_motion", fake_motion)
    monkeypatch.setattr(data_speed.time, "perf_counter", lambda: next(ticks))
    assert motion_frames_per_second(frames=1000, repeats=3) == 4000.0   # the best: 0.25 s
    assert made == [("Walking", 1000)] * 3
