"""The 2D-path probe (evaluation/path_probe.py, tools/probe_2d_path.py): a full run's MPJPE
as trained, with probs_2D held at its mean and with fc1_3D held at its mean.

The model is the tiny network's deploy net with random weights (BatchNorm's statistics set to
mean 0, variance 1), so that both inputs of the 3D heads vary from frame to frame. The
checks compare the probe with evaluate_run on models whose numbers are known another way:
heads that ignore one input lose nothing when it is held, and holding probs_2D at its mean
(computed here from the crops, with pycaffe) is the same as a model whose fc_probs_2D layer
has the mean folded into its bias.
"""
import json

import numpy as np
import pytest

from config import PAPER, apply_overrides
from data_prep.dataset import Dataset
from evaluation.evaluate import EvaluationError, evaluate_run
from evaluation.path_probe import probe_2d_path, probe_text
from solver.run_folder import prepare_run
from tests.test_faults_tools import error_line, tool
from tests.tiny_dataset import COUNT, CROP, INPUT, TINY

HEADS = [f"fc2_3D_root{joint}" for joint in PAPER.root_joints]
FC1_3D_WIDTH = 16   # TINY's fc_3d_width: the first columns of the heads' weights


@pytest.fixture(scope="module")
def runs(lmdb_dir, tmp_path_factory):
    """{"full": a RunFolder, "baseline": another} of the tiny dataset, not trained."""
    root = tmp_path_factory.mktemp("path-probe")
    cfg = apply_overrides(PAPER, TINY)
    return {variant: prepare_run(root / variant, cfg, variant, lmdb_dir)
            for variant in ("full", "baseline")}


def random_model(folder, path, seed=5, change=None):
    """A caffemodel of the run's deploy net with random weights (change(net) edits them
    first); returns its path. The weights have He's scale, so that the frames' features
    differ at the top of the network as they do at its input."""
    import caffe
    rng = np.random.default_rng(seed)
    net = caffe.Net(str(folder.deploy_path), caffe.TEST)
    for name, blobs in net.params.items():
        if net.layer_dict[name].type == "BatchNorm":
            blobs[0].data[...], blobs[1].data[...], blobs[2].data[...] = 0, 1, 1
            continue
        weight, *rest = blobs   # He's scale: the activations keep their spread through
        weight.data[...] = rng.normal(0, np.sqrt(2 / np.prod(weight.data.shape[1:])),
                                      weight.data.shape)
        for blob in rest:
            blob.data[...] = rng.normal(0, 0.1, blob.data.shape)
    if change:
        change(net)
    net.save(str(path))
    return path


def frame_weighted(folder, weights):
    """evaluate_run's MPJPE (frame-weighted) and mean pose's of the model."""
    results, _ = evaluate_run(folder, weights, batch_size=4, quiet=True)
    return results["mpjpe"]["frame_weighted"], results["mean_pose_mpjpe"]["frame_weighted"]


def test_heads_blind_to_the_2d_path_lose_nothing_when_it_is_held(runs, tmp_path):
    folder = runs["full"]

    def blind(net):
        for head in HEADS:
            net.params[head][0].data[:, FC1_3D_WIDTH:] = 0
    weights = random_model(folder, tmp_path / "blind.caffemodel", change=blind)
    results = probe_2d_path(folder, weights, batch_size=3, quiet=True)
    errors = results["mpjpe_mm"]
    trained, floor = frame_weighted(folder, weights)
    assert results["frames"] == COUNT and results["variant"] == "full"
    assert errors["as_trained"] == pytest.approx(trained, rel=1e-5)
    assert errors["mean_pose"] == pytest.approx(floor, rel=1e-9)
    assert errors["probs_2D_at_mean"] == pytest.approx(trained, rel=1e-5)
    assert results["rise_mm"]["probs_2D_at_mean"] == pytest.approx(0, abs=1e-3)
    # the heads see fc1_3D: holding it changes what they predict
    assert abs(errors["fc1_3D_at_mean"] - trained) > 1
    assert results["rise_mm"]["fc1_3D_at_mean"] == pytest.approx(
        errors["fc1_3D_at_mean"] - trained)


def test_heads_blind_to_fc1_3D_lose_nothing_when_it_is_held(runs, tmp_path):
    folder = runs["full"]

    def blind(net):
        for head in HEADS:
            net.params[head][0].data[:, :FC1_3D_WIDTH] = 0
    weights = random_model(folder, tmp_path / "blind.caffemodel", change=blind)
    errors = probe_2d_path(folder, weights, batch_size=4, quiet=True)["mpjpe_mm"]
    trained, _ = frame_weighted(folder, weights)
    assert errors["fc1_3D_at_mean"] == pytest.approx(trained, rel=1e-5)
    assert abs(errors["probs_2D_at_mean"] - trained) > 1


def probs_2d_mean(folder, weights):
    """The mean of probs_2D over the test crops (the centre input window minus the mean
    pixel, as at test time), by a pycaffe forward pass of all of them at once."""
    import caffe
    dataset = Dataset(folder.dataset().directory)
    with dataset.open("test") as reader:
        images = [image for _, image, _, _ in reader.records(range(COUNT))]
    offset = (CROP - INPUT) // 2
    batch = np.array([image[offset:offset + INPUT, offset:offset + INPUT].astype(np.float32)
                      .transpose(2, 0, 1) - dataset.mean_bgr[:, None, None]
                      for image in images])
    net = caffe.Net(str(folder.deploy_path), str(weights), caffe.TEST)
    net.blobs["data"].reshape(*batch.shape)
    net.blobs["data"].data[...] = batch
    net.forward()
    return net.blobs["probs_2D"].data.astype(np.float64).mean(axis=0)


def test_holding_probs_2D_is_its_mean_folded_into_fc_probs_2D(runs, tmp_path):
    """probs_2D -> fc_probs_2D is an inner product W p (without bias: BatchNorm follows,
    subtracting its mean statistic mu): with p held at its mean m, weights 0 and a BatchNorm
    mean of mu - W m give the same net, which evaluate_run evaluates."""
    folder = runs["full"]

    def sharpen(net):   # probabilities far from uniform, and a 2D path that moves the poses
        net.params["fc2_2D"][0].data[...] *= 30
        net.params["fc_probs_2D"][0].data[...] *= 100
    weights = random_model(folder, tmp_path / "random.caffemodel", change=sharpen)
    mean = probs_2d_mean(folder, weights).ravel()

    def fold(net):
        sharpen(net)
        matrix = net.params["fc_probs_2D"][0]
        statistic = net.params["fc_probs_2D_bn"][0]   # divided by the factor blob: 1 here
        statistic.data[...] -= matrix.data.astype(np.float64) @ mean
        matrix.data[...] = 0
    folded = random_model(folder, tmp_path / "folded.caffemodel", change=fold)
    results = probe_2d_path(folder, weights, batch_size=4, quiet=True)
    trained, _ = frame_weighted(folder, weights)
    expected, _ = frame_weighted(folder, folded)
    assert results["mpjpe_mm"]["probs_2D_at_mean"] == pytest.approx(expected, rel=1e-4)
    assert abs(expected - trained) > 1   # the fold changed the model: the check above tells
    assert results["mpjpe_mm"]["as_trained"] == pytest.approx(trained, rel=1e-5)


def test_the_first_n_frames(runs, tmp_path):
    folder = runs["full"]
    weights = random_model(folder, tmp_path / "random.caffemodel")
    results = probe_2d_path(folder, weights, batch_size=16, limit=4, quiet=True)
    assert results["frames"] == 4
    whole, _ = evaluate_run(folder, weights, batch_size=4, limit=4, quiet=True)
    assert results["mpjpe_mm"]["as_trained"] == pytest.approx(
        whole["mpjpe"]["frame_weighted"], rel=1e-5)


def test_a_variant_without_the_path_is_refused(runs, tmp_path):
    folder = runs["baseline"]
    weights = random_model(folder, tmp_path / "baseline.caffemodel")
    with pytest.raises(EvaluationError, match="is a baseline run, which has no 2D path into "
                                              "the 3D regression; probe a run of 2d-cls or full"):
        probe_2d_path(folder, weights, quiet=True)


def test_the_printed_table_names_each_case():
    results = {"variant": "full", "run": "runs/x", "frames": 10, "split": "test",
               "protocol": "p", "mpjpe_mm": {"as_trained": 90.0, "probs_2D_at_mean": 101.5,
                                             "fc1_3D_at_mean": 300.25, "mean_pose": 180.0},
               "rise_mm": {"probs_2D_at_mean": 11.5, "fc1_3D_at_mean": 210.25}}
    lines = probe_text(results).splitlines()
    assert lines[2].split()[-1] == "90.0"
    assert lines[3].startswith("fc1_3D only (probs_2D at its mean)")
    assert lines[3].split()[-2:] == ["101.5", "+11.5"]
    assert lines[4].startswith("the 2D path only (fc1_3D at its mean)")
    assert lines[4].split()[-2:] == ["300.2", "+210.2"]
    assert lines[5].split()[-1] == "180.0"


@pytest.mark.slow
def test_the_tool_writes_the_json_and_refuses_a_folder_as_out(runs, tmp_path):
    folder = runs["full"]
    weights = random_model(folder, tmp_path / "random.caffemodel")
    done = tool("tools/probe_2d_path.py", "--run", folder.path, "--weights", weights,
                "--limit", "6", "--quiet")
    assert done.returncode == 0, done.stderr
    written = json.loads((folder.path / "probe_2d_path-first6.json").read_text())
    assert written["frames"] == 6 and written["weights"] == str(weights)
    assert f"{written['mpjpe_mm']['as_trained']:.1f}" in done.stdout
    refused = tool("tools/probe_2d_path.py", "--run", folder.path, "--weights", weights,
                   "--out", tmp_path, "--quiet")
    assert refused.returncode == 1
    assert error_line(refused) == (f"error: cannot write {tmp_path}: it is a folder; name the "
                                   "JSON file (--out)")
