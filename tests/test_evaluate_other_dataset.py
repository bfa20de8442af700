"""A run's model evaluated on another dataset's test split (tools/evaluate.py --test-lmdb,
`make evaluate TEST_LMDB=...`), with the run's own training statistics: its torso bone
lengths recover the scale, its mean pixel centres the input, its mean pose is the baseline,
beside the other dataset's own (train-split) mean pose.

The model is the tiny network's deploy net with every weight 0 and the root head's bias a
chosen pose, so it predicts that pose for any image and its errors can be computed here by
hand, with numpy over the samples' poses. The other dataset's people are 0.7 times the size of
the run's, so that the run's bone lengths and the other dataset's give other results.
"""
import json

import numpy as np
import pytest

from config import PAPER, apply_overrides
from data_prep.dataset import Dataset, DatasetWriter
from data_prep.h36m import JOINTS_17, PARENTS_17
from evaluation.evaluate import EvaluationError, evaluate_run, predict_split
from solver.run_folder import RunFolder, prepare_run
from tests.test_faults_tools import error_line, tool
from tests.test_makefile import argument, planned
from tests.tiny_dataset import CROP, INPUT, JPEG_QUALITY, TINY, tiny_samples

# the pose the constant model predicts (mm, before eq. 7 centres it and the scale recovery)
NETWORK_POSE = np.random.default_rng(3).normal(0, 200, size=(17, 3))
OTHER_SIZE = 0.7   # the other dataset's people relative to the run's


def other_samples(count, seed, actions):
    """Samples of people OTHER_SIZE times the tiny dataset's, actions cycling through
    `actions` (another dataset's labels need not be Human3.6M's)."""
    return [sample._replace(joints_3d=(sample.joints_3d * OTHER_SIZE).astype(np.float32),
                            row={**sample.row, "action": actions[i % len(actions)]})
            for i, sample in enumerate(tiny_samples(count, seed))]


def write_dataset(folder, train, test, crop_size=CROP):
    """A dataset folder of the given train and test Samples, their crops cut to crop_size."""
    with DatasetWriter(folder, crop_size, JPEG_QUALITY) as writer:
        for split, samples in (("train", train), ("test", test)):
            writer.split(split).add([s._replace(crop=s.crop[:crop_size, :crop_size])
                                     for s in samples], JPEG_QUALITY)
        writer.commit({"source": "tests/test_evaluate_other_dataset.py"})
    return folder


def constant_model(folder, pose, path):
    """A caffemodel of the run's deploy net that predicts `pose` (17, 3) for every image:
    every weight 0 (every activation 0), the root head's bias the root-relative pose."""
    import caffe
    net = caffe.Net(str(folder.deploy_path), caffe.TEST)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = 0
    net.params["fc2_3D_root0"][1].data[...] = (pose[1:] - pose[0]).ravel()
    net.save(str(path))
    return path


@pytest.fixture(scope="module")
def transfer(lmdb_dir, tmp_path_factory):
    """{"run", "weights", "other", "other_train", "other_test", "small"}: a baseline run of
    the tiny dataset with the constant model, another dataset (named real-motion) with its
    samples, and a dataset of 200 x 200 crops."""
    root = tmp_path_factory.mktemp("other-dataset")
    folder = prepare_run(root / "run", apply_overrides(PAPER, TINY), "baseline", lmdb_dir)
    other_train = other_samples(8, seed=31, actions=["Walking", "Standing"])
    other_test = other_samples(6, seed=21, actions=["Standing", "Walking", "Walking"])
    return {"run": folder.path, "weights": constant_model(folder, NETWORK_POSE,
                                                          root / "constant.caffemodel"),
            "other": write_dataset(root / "real-motion", other_train, other_test),
            "other_train": other_train, "other_test": other_test,
            "small": write_dataset(root / "small-crops", other_train, other_test, 200)}


# ------------------------------------------------------------------ by hand

def poses_of(samples):
    """The samples' 3D poses as the dataset stores them (float32), in float64."""
    return np.array([s.joints_3d for s in samples], dtype=np.float32).astype(np.float64)


def bone(poses, joint):
    """Length of the bone from `joint` to its parent in each pose."""
    return np.linalg.norm(poses[..., joint, :] - poses[..., PARENTS_17[joint], :], axis=-1)


def scaled_prediction(train_poses):
    """NETWORK_POSE as the net outputs it (zero-mean, eq. 7), scaled so that its torso bones
    sum to the training poses' mean torso bones (section 4)."""
    pose = NETWORK_POSE - NETWORK_POSE.mean(axis=0)
    torso = [JOINTS_17.index(name) for name in PAPER.torso_bones]
    target = sum(bone(train_poses, joint).mean() for joint in torso)
    return pose * target / sum(bone(pose, joint) for joint in torso)


def mean_pose(train_poses):
    """The training poses' mean root-aligned pose."""
    return (train_poses - train_poses[:, :1]).mean(axis=0)


def frame_errors(pose, truth):
    """Per frame, the mean over the 17 joints of the distance of the root-aligned poses."""
    return np.linalg.norm((pose - pose[0]) - (truth - truth[:, :1]), axis=-1).mean(axis=1)


def test_a_constant_model_on_another_dataset_against_numbers_by_hand(lmdb_dir, transfer):
    results, poses = evaluate_run(RunFolder(transfer["run"]), transfer["weights"], batch_size=4,
                                  quiet=True, test_lmdb=transfer["other"])
    run_train, other_train = poses_of(tiny_samples()), poses_of(transfer["other_train"])
    truth = poses_of(transfer["other_test"])
    predicted = scaled_prediction(run_train)
    ours = frame_errors(predicted, truth)
    run_floor = frame_errors(mean_pose(run_train), truth)
    own_floor = frame_errors(mean_pose(other_train), truth)

    np.testing.assert_allclose(poses["truth_mm"], truth, rtol=1e-6)
    np.testing.assert_allclose(poses["predictions_mm"], np.broadcast_to(predicted, truth.shape),
                               rtol=1e-4, atol=1e-3)
    assert results["frames"] == 6 and results["lmdb"] == str(transfer["other"])
    assert results["mpjpe"]["frame_weighted"] == pytest.approx(ours.mean(), rel=1e-5)
    walking = [i for i, s in enumerate(transfer["other_test"]) if s.row["action"] == "Walking"]
    assert results["mpjpe"]["per_action"]["Walking"] == pytest.approx(ours[walking].mean(),
                                                                       rel=1e-5)
    assert results["mpjpe"]["frames"] == {"Walking": 4, "Standing": 2}
    assert results["mean_pose_mpjpe"]["frame_weighted"] == pytest.approx(run_floor.mean())
    other = results["other_dataset"]
    assert other["own_mean_pose_mpjpe"]["frame_weighted"] == pytest.approx(own_floor.mean())
    assert other["mpjpe_ratio"]["to_run_mean_pose"] == pytest.approx(
        ours.mean() / run_floor.mean(), rel=1e-5)
    assert other["mpjpe_ratio"]["to_own_mean_pose"] == pytest.approx(
        ours.mean() / own_floor.mean(), rel=1e-5)
    assert (other["name"], other["training_lmdb"]) == ("real-motion", str(lmdb_dir))
    # the other dataset's statistics would have given other numbers: the checks above tell
    assert abs(frame_errors(scaled_prediction(other_train), truth).mean() / ours.mean() - 1) > 0.05
    assert abs(own_floor.mean() / run_floor.mean() - 1) > 0.05


class RecordingNet:
    """A stand-in for the deploy net: keeps every input batch, predicts zeros."""

    class Blob:
        def reshape(self, *shape):
            self.data = np.zeros(shape, np.float32)

    def __init__(self):
        self.blobs, self.inputs = {"data": self.Blob()}, []

    def forward(self):
        self.inputs.append(self.blobs["data"].data.copy())
        return {"pose_3D": np.zeros((len(self.inputs[-1]), 17, 3), np.float32)}


def test_the_input_is_centred_with_the_runs_mean_pixel(lmdb_dir, transfer):
    """The model was trained on crops minus its dataset's mean pixel: the other dataset's
    crops reach it minus that one, not their own."""
    run_data, other_data = Dataset(lmdb_dir), Dataset(transfer["other"])
    assert np.abs(run_data.mean_bgr - other_data.mean_bgr).max() > 5
    net = RecordingNet()
    predict_split(net, other_data, "test", [0, 3, 5], 3, INPUT, quiet=True,
                  mean_bgr=run_data.mean_bgr)
    offset = (CROP - INPUT) // 2
    with other_data.open("test") as reader:
        images = [image for _, image, _, _ in reader.records([0, 3, 5])]
    expected = [image[offset:offset + INPUT, offset:offset + INPUT].astype(np.float32)
                .transpose(2, 0, 1) - run_data.mean_bgr[:, None, None] for image in images]
    np.testing.assert_allclose(net.inputs[0], expected, atol=1e-3)


def test_a_dataset_of_other_joints_is_refused_naming_both(lmdb_dir, transfer, tmp_path):
    other = tmp_path / "other-parents"
    write_dataset(other, transfer["other_train"], transfer["other_test"])
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["parents"] = [-1] + [0] * 16   # a skeleton the model was not trained on
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EvaluationError, match=f"{other} has other parents than the run's "
                                              f"dataset {lmdb_dir}"):
        evaluate_run(RunFolder(transfer["run"]), transfer["weights"], quiet=True, test_lmdb=other)


# ------------------------------------------------------------------ the tool and make

@pytest.mark.slow
def test_the_tool_writes_beside_the_runs_own_results_and_leaves_them(transfer):
    run, weights, other = transfer["run"], transfer["weights"], transfer["other"]
    own = tool("tools/evaluate.py", "--run", run, "--weights", weights, "--quiet")
    assert own.returncode == 0, own.stderr
    before = (run / "results.json").read_bytes()
    assert "other_dataset" not in json.loads(before)

    done = tool("tools/evaluate.py", "--run", run, "--weights", weights, "--test-lmdb", other,
                "--quiet")
    assert done.returncode == 0, done.stderr
    assert (run / "results.json").read_bytes() == before
    out = run / "eval-on-real-motion"
    written = json.loads((out / "results.json").read_text())
    assert written["lmdb"] == str(other) and written["frames"] == 6
    assert written["other_dataset"]["fingerprint"] == Dataset(other).fingerprint
    assert (out / "predictions.npz").exists()
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].split(",")[4:6] == ["mean_pose_mpjpe_mm", "own_mean_pose_mpjpe_mm"]
    assert [row.split(",")[0] for row in rows[1:]] == ["Walking", "Standing"]
    lines = done.stdout.splitlines()
    assert f"test split of real-motion ({other})" in lines[0]
    assert lines[3].split()[2:5] == ["ours_mm", "run_mean", "data_mean"]
    ratio = next(line for line in lines if "of the run's training mean pose" in line)
    ours = written["mpjpe"]["frame_weighted"]
    assert ratio.startswith(f"MPJPE {ours:.1f} mm (frame-weighted) = ")
    assert f"of real-motion's own mean pose (" \
           f"{written['other_dataset']['own_mean_pose_mpjpe']['frame_weighted']:.1f} mm)" in ratio
    assert f"results in {out / 'results.json'}" in lines[-1]

    # a subset goes to a folder of its own, the protocol named after the dataset
    assert tool("tools/evaluate.py", "--run", run, "--weights", weights, "--test-lmdb", other,
                "--limit", 2, "--quiet").returncode == 0
    assert json.loads((run / "eval-on-real-motion-first2" / "results.json").read_text()
                      )["frames"] == 2
    # the run folder as --out would replace the run's own results: refused
    line = error_line(tool("tools/evaluate.py", "--run", run, "--weights", weights,
                           "--test-lmdb", other, "--out", run, "--quiet"))
    assert "would replace the run's own results.json" in line
    assert (run / "results.json").read_bytes() == before


@pytest.mark.slow
def test_a_dataset_of_another_crop_size_is_refused_in_one_line(lmdb_dir, transfer):
    run, small = transfer["run"], transfer["small"]
    line = error_line(tool("tools/evaluate.py", "--run", run, "--weights", transfer["weights"],
                           "--test-lmdb", small, "--quiet"))
    assert f"{small} holds 200 x 200 crops, the run's dataset {lmdb_dir} 250 x 250" in line
    assert not (run / "eval-on-small-crops").exists()
    missing = error_line(tool("tools/evaluate.py", "--run", run, "--test-lmdb",
                              small.parent / "nowhere", "--quiet"))
    assert "no manifest.json" in missing and "(--test-lmdb)" in missing


def test_make_evaluate_passes_test_lmdb_whole():
    run, other = "runs/my run", "/data/MPI INF 3DHP/lmdb"
    assert argument(planned("evaluate", RUN=run, TEST_LMDB=other), "tools/evaluate.py",
                    "--test-lmdb") == other
    assert not any("--test-lmdb" in words for words in planned("evaluate", RUN=run))
