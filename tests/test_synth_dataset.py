"""The synthetic dataset, read back as a user would: cdflib, h5py, OpenCV."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cdflib
import cv2
import h5py
import numpy as np
import pytest

from data_prep.h36m import JOINTS_17_FROM_32, PARENTS_17, sequence_name, sequence_paths
from data_prep.make_synth import main as make_synth

SUBJECT, ACTIONS, FRAMES, SCALE = "S5", ["Walking", "Phoning"], 4, 0.2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "h36m"
    assert make_synth(["--out", str(root), "--subjects", SUBJECT, "--actions", *ACTIONS,
                       "--frames", str(FRAMES), "--scale", str(SCALE), "--workers", "1",
                       "--quiet"]) == 0
    return root


def recordings(root):
    meta = json.loads((root / "metadata.json").read_text())
    for action in ACTIONS:
        for subaction in (1, 2):
            stem = sequence_name(SUBJECT, action, subaction)
            for camera_id, camera in meta["cameras"].items():
                yield stem, camera, sequence_paths(root, SUBJECT, stem, camera_id)


def read_pose(path, dims):
    pose = cdflib.CDF(str(path))["Pose"]
    assert pose.shape == (1, FRAMES, 32 * dims)
    return pose.reshape(FRAMES, 32, dims)


def distorted_projection(points, camera):
    """Human3.6M's camera model, written out independently of data_prep.h36m.project."""
    x, y = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
    r2 = x * x + y * y
    k1, k2, k3 = camera["radial"]
    p1, p2 = camera["tangential"]
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    xd = x * (radial + p1 * y + p2 * x) + p2 * r2
    yd = y * (radial + p1 * y + p2 * x) + p1 * r2
    return np.stack([camera["focal"][0] * xd + camera["center"][0],
                     camera["focal"][1] * yd + camera["center"][1]], axis=-1)


def test_layout_and_shapes(dataset):
    assert sorted(p.name for p in dataset.iterdir()) == [SUBJECT, "metadata.json"]
    s1_style = sequence_name("S1", "Photo", 2)
    assert s1_style == "TakingPhoto 1"
    for stem, camera, paths in recordings(dataset):
        for path in paths.values():
            assert path.is_file(), path
        read_pose(paths["d3_world"], 3)
        read_pose(paths["d3_mono"], 3)
        read_pose(paths["d2"], 2)
        capture = cv2.VideoCapture(str(paths["video"]))
        assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == FRAMES
        assert capture.get(cv2.CAP_PROP_FPS) == 50
        assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) \
            == (camera["width"], camera["height"])
        with h5py.File(paths["mask"], "r") as f:
            assert f["Masks"].shape == (FRAMES, 1)
            assert f[f["Masks"][0, 0]][:].T.shape == (camera["height"], camera["width"])
        assert paths["mask"].read_bytes()[:19] == b"MATLAB 7.3 MAT-file"


def test_skeleton_is_rigid_and_the_17_joints_are_a_body(dataset):
    for stem, _, paths in recordings(dataset):
        world = read_pose(paths["d3_world"], 3)[:, list(JOINTS_17_FROM_32)]
        bones = np.array([np.linalg.norm(world[:, j] - world[:, p], axis=-1)
                          for j, p in enumerate(PARENTS_17) if p >= 0])
        assert (bones > 30).all(), stem                               # no collapsed bone
        np.testing.assert_allclose(bones, bones[:, :1].repeat(FRAMES, 1), atol=1e-6)
        assert (world[:, 10, 2] > world[:, 0, 2] + 300).all()         # head above pelvis
        assert (world[:, [3, 6], 2] < world[:, [2, 5], 2]).all()      # feet below knees


def test_mono_is_world_in_camera_frame_and_2d_is_its_projection(dataset):
    for stem, camera, paths in recordings(dataset):
        world = read_pose(paths["d3_world"], 3)
        mono = read_pose(paths["d3_mono"], 3)
        rotation = np.array(camera["rotation_world_to_camera"])
        np.testing.assert_allclose(mono, (world - camera["position_mm"]) @ rotation.T, atol=1e-6)
        assert (mono[..., 2] > 1000).all()
        pixels = read_pose(paths["d2"], 2)
        assert np.abs(pixels - distorted_projection(mono, camera)).max() < 0.5


def test_masks_cover_the_projected_joints_and_not_the_corners(dataset):
    for stem, camera, paths in recordings(dataset):
        pixels = read_pose(paths["d2"], 2)[:, list(JOINTS_17_FROM_32)]
        with h5py.File(paths["mask"], "r") as f:
            masks = np.stack([f[f["Masks"][i, 0]][:].T for i in range(FRAMES)]).astype(bool)
        cols = np.clip(np.round(pixels[..., 0]).astype(int), 0, camera["width"] - 1)
        rows = np.clip(np.round(pixels[..., 1]).astype(int), 0, camera["height"] - 1)
        inside = (pixels[..., 0] >= 0) & (pixels[..., 0] < camera["width"]) & \
                 (pixels[..., 1] >= 0) & (pixels[..., 1] < camera["height"])
        covered = masks[np.arange(FRAMES)[:, None], rows, cols]
        assert covered[inside].all(), stem
        assert 0.002 < masks.mean() < 0.5


def test_same_seed_gives_identical_files(dataset, tmp_path):
    again = tmp_path / "again"
    assert make_synth(["--out", str(again), "--subjects", SUBJECT, "--actions", *ACTIONS,
                       "--frames", str(FRAMES), "--scale", str(SCALE), "--workers", "2",
                       "--quiet"]) == 0
    digest = lambda root: {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
                           for p in sorted(root.rglob("*")) if p.is_file()}
    assert digest(again) == digest(dataset)
    other = tmp_path / "other"
    assert make_synth(["--out", str(other), "--subjects", SUBJECT, "--actions", "Walking",
                       "--frames", str(FRAMES), "--scale", str(SCALE), "--seed", "7",
                       "--workers", "1", "--quiet"]) == 0
    stem = sequence_name(SUBJECT, "Walking", 1)
    first = sequence_paths(dataset, SUBJECT, stem, "54138969")["d3_world"]
    assert not np.array_equal(cdflib.CDF(str(first))["Pose"],
                              cdflib.CDF(str(sequence_paths(other, SUBJECT, stem, "54138969")
                                             ["d3_world"]))["Pose"])


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "data_prep.make_synth", *args, "--quiet"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)


@pytest.mark.parametrize("args, message", [
    (["--actions", "Dancing"], "unknown action(s) Dancing"),
    (["--frames", "0"], "--frames must be at least 1"),
    (["--subjects", "S2"], "unknown subject(s) S2"),
])
def test_bad_arguments_are_refused(tmp_path, args, message):
    out = tmp_path / "d"
    result = run_cli("--out", str(out), *args)
    assert result.returncode == 2 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force_and_unwritable_path(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("already built")
    result = run_cli("--out", str(out), "--actions", "Walking", "--subjects", "S9")
    assert result.returncode == 2 and "exists; pass --force" in result.stderr
    assert (out / "keep.txt").read_text() == "already built"
    # a path below a regular file cannot be created, whoever runs the test (root included)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("--out", str(blocker / "d"), "--actions", "Walking", "--subjects", "S9",
                     "--frames", "2")
    assert result.returncode == 1 and "cannot write" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "d"]


def test_32_joint_tree_is_rigid_and_sided(dataset):
    from data_prep.h36m import PARENTS_32
    for stem, _, paths in recordings(dataset):
        world = read_pose(paths["d3_world"], 3)
        bones = np.array([np.linalg.norm(world[:, j] - world[:, p], axis=-1)
                          for j, p in enumerate(PARENTS_32) if p >= 0])
        np.testing.assert_allclose(bones, bones[:, :1].repeat(FRAMES, 1), atol=1e-6)
        # the left leg (6-10) hangs off the left hip, the right leg (1-5) off the right one
        left_foot_to_left_hip = np.linalg.norm(world[:, 8] - world[:, 6], axis=-1)
        left_foot_to_right_hip = np.linalg.norm(world[:, 8] - world[:, 1], axis=-1)
        assert (left_foot_to_left_hip < left_foot_to_right_hip).mean() > 0.5, stem


def test_motion_from_bvh_files(tmp_path, bvh_files):
    """--bvh DIR: the motion of a BVH file (written here) becomes the dataset's 3D poses."""
    from data_prep.synth.bvh import read_bvh, retarget_to_h36m
    skeleton = bvh_files.cmu_skeleton()
    order = bvh_files.joint_order(skeleton)
    rows = [bvh_files.frame_row(order, angles={"LeftArm": (30 + 10 * i, 0, 0),
                                               "Hips": (0, 9 * i, 0)})
            for i in range(10)]
    folder = bvh_files.write(bvh_files.text(skeleton, rows, 1 / 50), "bvh/wave.bvh").parent
    out = tmp_path / "from-bvh"
    assert make_synth(["--out", str(out), "--subjects", "S9", "--actions", "Greeting",
                       "--frames", "6", "--scale", "0.2", "--bvh", str(folder), "--workers", "1",
                       "--quiet"]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["bvh"] == ["wave.bvh"]
    stem = sequence_name("S9", "Greeting", 1)
    world = cdflib.CDF(str(sequence_paths(out, "S9", stem, "54138969")["d3_world"]))["Pose"]
    world = world.reshape(6, 32, 3)
    expected = retarget_to_h36m(read_bvh(folder / "wave.bvh"))[:6]
    # the same motion, moved as a whole to a place in the capture area
    shift = world - expected
    np.testing.assert_allclose(shift, shift[:1, :1].repeat(6, 0).repeat(32, 1), atol=1e-6)
    assert shift[0, 0, 2] == pytest.approx(0)
    (tmp_path / "empty").mkdir()
    result = run_cli("--out", str(tmp_path / "x"), "--bvh", str(tmp_path / "empty"))
    assert result.returncode == 2 and "no .bvh files there" in result.stderr
