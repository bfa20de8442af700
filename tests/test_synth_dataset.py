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

from data_prep.h36m import (JOINTS_17_FROM_32, PARENTS_17, VIDEO_EXTRA_FRAMES, sequence_name,
                            sequence_paths)
from data_prep.make_synth import main as make_synth
from data_prep.synth.motion import body_for_subject
from tests.h36m_facts import INTRINSIC_FACTS, formula_projection, video_frames

SUBJECT, ACTIONS, FRAMES, SCALE = "S5", ["Walking", "Phoning"], 4, 0.2
CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
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


def read_pose(path, dims, frames=FRAMES):
    pose = cdflib.CDF(str(path))["Pose"]
    assert pose.shape == (1, frames, 32 * dims)
    return pose.reshape(frames, 32, dims)


def video_frame_count(path):
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return count


def synth(root, *args):
    """make_synth into root with small defaults, one worker, quiet; returns its metadata."""
    assert make_synth(["--out", str(root), "--frames", str(FRAMES), "--scale", str(SCALE),
                       "--workers", "1", "--quiet", *args]) == 0
    return json.loads((root / "metadata.json").read_text())


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
    assert sequence_name("S1", "Photo", 2) == "TakingPhoto"
    extra = json.loads((dataset / "metadata.json").read_text())["faults"]["video_extra_frames"]
    for stem, camera, paths in recordings(dataset):
        for path in paths.values():
            assert path.is_file(), path
        read_pose(paths["d3_world"], 3)
        read_pose(paths["d3_mono"], 3)
        read_pose(paths["d2"], 2)
        capture = cv2.VideoCapture(str(paths["video"]))
        # the video is longer than the poses, as every real one is
        assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == FRAMES + extra[SUBJECT][stem][camera["id"]]
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
    (out / "metadata.json").write_text('{"generator": "make_synth", "stems": {}}')
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
    expected = retarget_to_h36m(read_bvh(folder / "wave.bvh"), body_for_subject("S9"))[:6]
    # the same motion, moved as a whole to a place in the capture area
    shift = world - expected
    np.testing.assert_allclose(shift, shift[:1, :1].repeat(6, 0).repeat(32, 1), atol=1e-6)
    assert shift[0, 0, 2] == pytest.approx(0)
    (tmp_path / "empty").mkdir()
    result = run_cli("--out", str(tmp_path / "x"), "--bvh", str(tmp_path / "empty"))
    assert result.returncode == 2 and "no .bvh files there" in result.stderr


# ---- the real tree's layout facts and faults: stems, longer videos, half-posed S9
# recordings, S7's frame size, the dataset's projection, `_ALL` files, S11's broken video

FAULT_SUBJECTS, FAULT_ACTIONS = ["S9", "S11"], ["Greeting", "Directions"]
HALF_POSED_STEM = ("S9", "Greeting")          # a video about twice as long as its poses
BROKEN = ("S11", "Directions", "54138969")    # the video many copies hold corrupt


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """(root, metadata) of a default tree (faults written) holding a half-posed recording,
    the broken video and `_ALL` files."""
    root = tmp_path_factory.mktemp("faulty") / "h36m"
    return root, synth(root, "--subjects", *FAULT_SUBJECTS, "--actions", *FAULT_ACTIONS)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """(root, metadata) of the same tree made with --clean."""
    root = tmp_path_factory.mktemp("clean") / "h36m"
    return root, synth(root, "--subjects", *FAULT_SUBJECTS, "--actions", *FAULT_ACTIONS,
                       "--clean")


def fault_recordings(root):
    """(subject, stem, camera id, paths) of every recording and camera of a faulty/clean tree."""
    for subject in FAULT_SUBJECTS:
        for action in FAULT_ACTIONS:
            for subaction in (1, 2):
                stem = sequence_name(subject, action, subaction)
                for camera_id in CAMERA_IDS:
                    yield subject, stem, camera_id, sequence_paths(root, subject, stem, camera_id)


def test_recordings_are_written_under_their_real_stems(tmp_path):
    root = tmp_path / "stems"
    meta = synth(root, "--subjects", "S1", "S5", "--actions", "Discussion", "Photo",
                 "--frames", "2", "--scale", "0.1", "--clean")
    expected = {"S1": ["Discussion 1", "Discussion", "TakingPhoto 1", "TakingPhoto"],
                "S5": ["Discussion 2", "Discussion 3", "Photo", "Photo 2"]}
    assert meta["stems"] == expected
    for subject, stems in expected.items():
        for folder, pattern in (("Videos", "*.mp4"), ("MyPoseFeatures/D2_Positions", "*.cdf"),
                                ("MySegmentsMat/ground_truth_bs", "*.mat")):
            names = {p.name.split(".")[0] for p in (root / subject / folder).glob(pattern)}
            assert names == set(stems), (subject, folder)
        written = {p.stem for p in (root / subject / "MyPoseFeatures/D3_Positions").glob("*")}
        assert written == set(stems)


def test_videos_are_longer_than_the_poses_by_the_cameras_real_range(faulty):
    root, meta = faulty
    extra = meta["faults"]["video_extra_frames"]
    for subject, stem, camera_id, paths in fault_recordings(root):
        if (subject, stem) == HALF_POSED_STEM or (subject, stem, camera_id) == BROKEN:
            continue
        least, _, most = VIDEO_EXTRA_FRAMES[camera_id]
        longer = video_frame_count(paths["video"]) - FRAMES
        assert least <= longer <= most and longer == extra[subject][stem][camera_id]
        read_pose(paths["d3_mono"], 3)                # the poses keep their count
        read_pose(paths["d2"], 2)
        with h5py.File(paths["mask"], "r") as f:      # one mask per pose frame
            assert f["Masks"].shape == (FRAMES, 1)


def test_the_extra_video_frames_show_the_person_moving_on(tmp_path, monkeypatch):
    import data_prep.make_synth as make_synth_module
    drawn = []

    def recording_render(background, joints_2d, *args):
        drawn.append(np.array(joints_2d))
        return real_render(background, joints_2d, *args)

    real_render = make_synth_module.render_person
    monkeypatch.setattr(make_synth_module, "render_person", recording_render)
    root = tmp_path / "moving"
    meta = synth(root, "--subjects", "S5", "--actions", "Walking")
    stem = sequence_name("S5", "Walking", 1)
    camera_id = "55011271"                  # its videos have 2 to 8 more frames than poses
    extra = meta["faults"]["video_extra_frames"]["S5"][stem][camera_id]
    # the recording's cameras are drawn in CAMERA_IDS' order, each video frame by frame
    start = sum(FRAMES + meta["faults"]["video_extra_frames"]["S5"][stem][c]
                for c in CAMERA_IDS[:CAMERA_IDS.index(camera_id)])
    joints = np.stack(drawn[start:start + FRAMES + extra])
    d2 = read_pose(sequence_paths(root, "S5", stem, camera_id)["d2"], 2)
    np.testing.assert_array_equal(joints[:FRAMES], d2)
    steps = np.abs(np.diff(joints[FRAMES - 1:], axis=0)).max(axis=(1, 2))
    assert (steps > 0.01).all()             # new poses, not the last one again
    frames = video_frames(sequence_paths(root, "S5", stem, camera_id)["video"])
    assert len(frames) == FRAMES + extra and all(frame.mean() > 20 for frame in frames)


def test_a_half_posed_s9_recording_has_videos_about_twice_as_long(faulty):
    root, meta = faulty
    assert meta["faults"]["half_posed"] == [{"subject": "S9", "stem": "Greeting"}]
    extra = meta["faults"]["video_extra_frames"]["S9"]["Greeting"]
    for camera_id in CAMERA_IDS:
        paths = sequence_paths(root, "S9", "Greeting", camera_id)
        least, _, most = VIDEO_EXTRA_FRAMES[camera_id]
        frames = video_frame_count(paths["video"])
        assert 2 * FRAMES + least <= frames <= 2 * FRAMES + most
        assert frames == FRAMES + extra[camera_id]
        read_pose(paths["d2"], 2)                     # poses for the first half only
        with h5py.File(paths["mask"], "r") as f:
            assert f["Masks"].shape == (FRAMES, 1)
    other = sequence_paths(root, "S9", "Greeting 1", "54138969")["video"]
    assert video_frame_count(other) <= FRAMES + 2


def test_s7_videos_are_1000x1002_from_every_camera(tmp_path):
    root = tmp_path / "s7"
    meta = synth(root, "--subjects", "S7", "--actions", "Walking", "--frames", "1",
                 "--scale", "1.0")
    assert meta["frame_sizes"]["S7"] == {camera_id: [1000, 1002] for camera_id in CAMERA_IDS}
    stem = sequence_name("S7", "Walking", 1)
    for camera_id in CAMERA_IDS:
        paths = sequence_paths(root, "S7", stem, camera_id)
        capture = cv2.VideoCapture(str(paths["video"]))
        size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        capture.release()
        assert size == (1000, 1002)
        with h5py.File(paths["mask"], "r") as f:
            assert f[f["Masks"][0, 0]][:].T.shape == (1002, 1000)
        # at full size the 2D poses are the dataset's projection itself
        mono, d2 = read_pose(paths["d3_mono"], 3, 1), read_pose(paths["d2"], 2, 1)
        assert np.abs(d2 - formula_projection(mono, camera_id)).max() < 1e-3


def test_2d_poses_are_the_datasets_projection_at_full_resolution(dataset):
    meta = json.loads((dataset / "metadata.json").read_text())
    for stem, camera, paths in recordings(dataset):
        mono, d2 = read_pose(paths["d3_mono"], 3), read_pose(paths["d2"], 2)
        full_resolution = d2 / meta["scale"]
        assert np.abs(full_resolution - formula_projection(mono, camera["id"])).max() < 1e-3
        (cx, cy), (fx, fy), radial, p1, p2 = INTRINSIC_FACTS[camera["id"]]
        np.testing.assert_allclose(camera["center"], np.array([cx, cy]) * SCALE, rtol=1e-12)
        np.testing.assert_allclose(camera["focal"], np.array([fx, fy]) * SCALE, rtol=1e-12)
        assert camera["radial"] == list(radial) and camera["tangential"] == [p1, p2]


def test_all_files_lie_beside_the_others_and_the_reader_skips_them(faulty):
    from data_prep.reader import find_sequences, is_all_file
    root, meta = faulty
    expected = set()
    for subject in FAULT_SUBJECTS:
        # the first action's, named as the reader's is_all_file expects: "<Action>_ALL"
        expected |= {f"{subject}/MyPoseFeatures/D3_Positions/Greeting_ALL.cdf"}
        for camera_id in CAMERA_IDS:
            expected |= {f"{subject}/Videos/Greeting_ALL.{camera_id}.mp4",
                         f"{subject}/MyPoseFeatures/D3_Positions_mono/Greeting_ALL.{camera_id}.cdf",
                         f"{subject}/MyPoseFeatures/D2_Positions/Greeting_ALL.{camera_id}.cdf"}
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*_ALL*")}
    assert on_disk == expected == set(meta["faults"]["all_files"])
    assert is_all_file("Greeting_ALL")
    # both recordings' posed frames, one after the other
    world = read_pose(root / "S9/MyPoseFeatures/D3_Positions/Greeting_ALL.cdf", 3, 2 * FRAMES)
    parts = [read_pose(sequence_paths(root, "S9", stem, "54138969")["d3_world"], 3)
             for stem in (sequence_name("S9", "Greeting", 1), sequence_name("S9", "Greeting", 2))]
    np.testing.assert_array_equal(world, np.concatenate(parts))
    assert video_frame_count(root / "S9/Videos/Greeting_ALL.54138969.mp4") == 2 * FRAMES
    sequences, skips = find_sequences(root, FAULT_SUBJECTS)
    assert not any(is_all_file(sequence.stem) for sequence in sequences)
    assert len([skip for skip in skips if "_ALL" in skip.what]) == 2 * len(CAMERA_IDS)


def test_the_broken_s11_video_exists_and_does_not_decode(faulty):
    root, meta = faulty
    subject, stem, broken_camera = BROKEN
    assert meta["faults"]["broken_video"] == [{
        "subject": subject, "stem": stem, "camera": broken_camera,
        "path": f"{subject}/Videos/{stem}.{broken_camera}.mp4"}]
    extra = meta["faults"]["video_extra_frames"][subject][stem]
    for camera_id in CAMERA_IDS:
        paths = sequence_paths(root, subject, stem, camera_id)
        assert all(path.is_file() for path in paths.values())
        capture = cv2.VideoCapture(str(paths["video"]))
        decodes = capture.isOpened() and capture.read()[0]
        capture.release()
        if camera_id == broken_camera:
            assert not decodes
            assert 0 < paths["video"].stat().st_size <= 1024     # a truncated copy
            assert paths["video"].read_bytes()[4:8] == b"ftyp"   # that starts as an mp4 does
        else:
            assert len(video_frames(paths["video"])) == FRAMES + extra[camera_id]


def test_clean_writes_none_of_the_faults_and_the_same_poses(faulty, clean):
    root, meta = clean
    assert meta["faults"] == {"clean": True, "video_extra_frames": {}, "half_posed": [],
                              "broken_video": [], "all_files": []}
    assert not list(root.rglob("*_ALL*"))
    for subject, stem, camera_id, paths in fault_recordings(root):
        assert len(video_frames(paths["video"])) == FRAMES, (subject, stem, camera_id)
        faulty_paths = sequence_paths(faulty[0], subject, stem, camera_id)
        for kind, dims in (("d3_world", 3), ("d3_mono", 3), ("d2", 2)):
            np.testing.assert_array_equal(read_pose(paths[kind], dims),
                                          read_pose(faulty_paths[kind], dims))


def test_extra_frames_are_drawn_within_each_cameras_range_and_median_by_seed():
    from data_prep.h36m import STEMS
    from data_prep.synth.faults import video_extra_frames
    recordings = [(subject, stem) for subject, actions in STEMS.items()
                  for stems in actions.values() for stem in stems]
    for camera_id in CAMERA_IDS:
        least, median, most = VIDEO_EXTRA_FRAMES[camera_id]
        drawn = [video_extra_frames(0, subject, stem, camera_id) for subject, stem in recordings]
        assert set(drawn) == set(range(least, most + 1))        # the whole range
        assert np.median(drawn) == median                       # and the real median
        assert drawn != [video_extra_frames(1, subject, stem, camera_id)
                         for subject, stem in recordings]
