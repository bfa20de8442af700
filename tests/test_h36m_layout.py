"""Human3.6M facts: file names, the camera model, and the synthetic studio's placement."""
import numpy as np
import pytest

from data_prep.h36m import (ACTIONS, CAMERAS, J32, JOINTS_17, JOINTS_17_FROM_32, JOINTS_32,
                            PARENTS_17, PARENTS_32, SUBJECTS, project, sequence_name,
                            sequence_paths)
from data_prep.synth.studio import studio_cameras


def test_sequence_names_follow_the_real_disks():
    # the stems of the dataset's metadata.xml: not a rule ("X 1" / "X"), and S1 spells two
    # actions its own way
    assert sequence_name("S5", "Directions", 1) == "Directions 1"
    assert sequence_name("S5", "Directions", 2) == "Directions 2"
    assert sequence_name("S11", "WalkDog", 2) == "WalkDog"
    assert sequence_name("S1", "WalkDog", 1) == "WalkingDog 1"
    assert sequence_name("S1", "Photo", 2) == "TakingPhoto"
    assert sequence_name("S1", "Eating", 1) == "Eating 2"
    assert [sequence_name("S5", "Discussion", n) for n in (1, 2)] == ["Discussion 2",
                                                                       "Discussion 3"]
    assert [sequence_name("S6", "Waiting", n) for n in (1, 2)] == ["Waiting 3", "Waiting"]
    assert [sequence_name("S11", "Phoning", n) for n in (1, 2)] == ["Phoning 3", "Phoning 2"]
    assert [sequence_name("S9", "SittingDown", n) for n in (1, 2)] == ["SittingDown",
                                                                        "SittingDown 1"]
    for subject in SUBJECTS:                 # 30 distinct files per subject
        stems = {sequence_name(subject, action, n) for action in ACTIONS for n in (1, 2)}
        assert len(stems) == 30, subject
    with pytest.raises(ValueError, match="unknown action 'Dancing'"):
        sequence_name("S5", "Dancing", 1)
    paths = sequence_paths("/h36m", "S9", "Sitting 1", "54138969")
    assert str(paths["video"]) == "/h36m/S9/Videos/Sitting 1.54138969.mp4"
    assert str(paths["d2"]) == "/h36m/S9/MyPoseFeatures/D2_Positions/Sitting 1.54138969.cdf"
    assert str(paths["mask"]).endswith("MySegmentsMat/ground_truth_bs/Sitting 1.54138969.mat")


def test_joint_tables_agree():
    assert len(JOINTS_32) == len(PARENTS_32) == 32
    assert len(JOINTS_17) == len(PARENTS_17) == len(JOINTS_17_FROM_32) == 17
    # every 17-joint parent is an ancestor in the 32-joint tree, except that the evaluation
    # skeleton hangs the shoulders off the thorax where the 32 tree has them off Spine1
    rewired = {JOINTS_17.index("LShoulder"), JOINTS_17.index("RShoulder")}
    for child, parent in enumerate(PARENTS_17):
        if parent < 0:
            continue
        ancestor, chain = PARENTS_32[JOINTS_17_FROM_32[child]], set()
        while ancestor >= 0:
            chain.add(ancestor)
            ancestor = PARENTS_32[ancestor]
        if child in rewired:
            assert JOINTS_17[parent] == "Thorax" and 12 in chain
        else:
            assert JOINTS_17_FROM_32[parent] in chain, JOINTS_17[child]


def test_joint_names_index_the_32_joints():
    assert len(J32) == 32 and all(JOINTS_32[index] == name for name, index in J32.items())
    # the raw names of the 17 evaluation joints, as h36m.py's comment on J32 gives them
    raw = ("Hip", "RightUpLeg", "RightLeg", "RightFoot", "LeftUpLeg", "LeftLeg", "LeftFoot",
           "Spine1", "Neck", "Head", "HeadSite", "LeftArm", "LeftForeArm", "LeftHand",
           "RightArm", "RightForeArm", "RightHand")
    assert tuple(J32[name] for name in raw) == JOINTS_17_FROM_32


def test_projection_hand_computed():
    camera = CAMERAS["55011271"]
    np.testing.assert_allclose(project([0, 0, 4000.0], camera), camera.center)
    # x = 0.1, y = 0: r2 = 0.01, radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3, tangential = p2 x
    k1, k2, k3 = camera.radial
    p1, p2 = camera.tangential
    r2 = 0.01
    factor = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3 + p2 * 0.1
    expected = [camera.focal[0] * (0.1 * factor + p2 * r2) + camera.center[0],
                camera.focal[1] * (p1 * r2) + camera.center[1]]
    np.testing.assert_allclose(project([400.0, 0, 4000.0], camera), expected)
    np.testing.assert_allclose(project([400.0, 0, 4000.0], camera, scale=0.5),
                               np.array(expected) * 0.5)


def test_studio_cameras_look_at_the_capture_area():
    for camera_id, placed in studio_cameras(scale=0.5).items():
        np.testing.assert_allclose(placed.rotation @ placed.rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(placed.rotation) == pytest.approx(1)
        distance = np.linalg.norm(placed.position[:2])
        assert 4000 <= distance <= 6000 and 1300 <= placed.position[2] <= 1800
        centre = placed.to_camera([0, 0, 900])
        assert centre[0] == pytest.approx(0, abs=1e-9) and centre[2] > 4000
        pixel = project(centre, placed.camera)
        np.testing.assert_allclose(pixel, placed.camera.center, atol=1e-6)
        head, feet = placed.to_camera([0, 0, 1700]), placed.to_camera([0, 0, 0])
        assert project(head, placed.camera)[1] < project(feet, placed.camera)[1]   # z up
        assert placed.camera.width == 500 and placed.camera.height == 500   # even, for mp4
    assert studio_cameras(scale=1.0)["54138969"].camera.height == 1002


def test_studio_frame_sizes_are_the_subjects_scaled_to_even_sizes():
    for subject in ("S1", "S9"):
        sizes = {cid: (p.camera.width, p.camera.height)
                 for cid, p in studio_cameras(1.0, subject).items()}
        assert sizes == {"54138969": (1000, 1002), "55011271": (1000, 1000),
                         "58860488": (1000, 1000), "60457274": (1000, 1002)}
    for scale, size in ((1.0, (1000, 1002)), (0.75, (750, 752)), (0.5, (500, 500)),
                        (0.2, (200, 200))):
        # S7's videos are all 1000x1002; scaled, 1002 rows round to the nearest even number
        for placed in studio_cameras(scale, "S7").values():
            assert (placed.camera.width, placed.camera.height) == size
    # the intrinsics scale with the image, whatever its size
    s7 = studio_cameras(0.5, "S7")["55011271"].camera
    usual = studio_cameras(0.5)["55011271"].camera
    assert (s7.focal, s7.center) == (usual.focal, usual.center)
    np.testing.assert_allclose(usual.focal, np.array(CAMERAS["55011271"].focal) * 0.5)
