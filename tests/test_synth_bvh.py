"""The BVH reader, its forward kinematics and the retargeting to Human3.6M's 32 joints, on small
BVH files written by the tests themselves."""
import re

import numpy as np
import pytest

from data_prep.synth import bvh

# Three frames: rest, the left thigh swung 90 degrees about z, the whole body turned about y.
POSES = [
    {},
    {"LeftUpLeg": (90, 0, 0)},
    {"Hips": (0, 90, 0)},
]


@pytest.fixture
def cmu_motion(bvh_files):
    skeleton = bvh_files.cmu_skeleton()
    order = bvh_files.joint_order(skeleton)
    rows = [bvh_files.frame_row(order, angles=pose) for pose in POSES]
    return bvh.read_bvh(bvh_files.write(bvh_files.text(skeleton, rows, 1 / 120)))


def index(motion, name):
    return motion.names.index(name)


# ------------------------------------------------------------------------------------ parsing

def test_parsing_reads_hierarchy_channels_and_frames(cmu_motion, bvh_files):
    motion = cmu_motion
    # 31 joints with channels and 7 End Sites.
    assert len(motion.names) == 38
    assert motion.names[0] == "Hips" and motion.parents[0] == -1
    assert motion.parents[index(motion, "LeftUpLeg")] == index(motion, "LHipJoint")
    assert motion.parents[index(motion, "LThumb")] == index(motion, "LeftHand")
    assert motion.parents[index(motion, "LeftToeBase_End")] == index(motion, "LeftToeBase")
    assert motion.parents[index(motion, "Head_End")] == index(motion, "Head")
    np.testing.assert_array_equal(motion.offsets[index(motion, "RightUpLeg")], [-10, -5, 0])
    np.testing.assert_array_equal(motion.offsets[index(motion, "LeftToeBase_End")], [0, 0, 5])
    assert motion.channels[0] == tuple(bvh_files.ROOT_CHANNELS.split())
    assert motion.channels[index(motion, "LeftLeg")] == tuple(bvh_files.JOINT_CHANNELS.split())
    assert motion.channels[index(motion, "Head_End")] == ()
    assert motion.frames.shape == (3, 6 + 30 * 3)
    assert motion.frame_time == pytest.approx(1 / 120)
    assert motion.frames[1, motion.channel_starts[index(motion, "LeftUpLeg")]] == 90


# ------------------------------------------------------------------------- forward kinematics

def test_rest_pose_is_the_sum_of_offsets(cmu_motion):
    positions = bvh.world_positions(cmu_motion)
    assert positions.shape == (3, 38, 3)
    np.testing.assert_allclose(positions[0, index(cmu_motion, "LeftFoot")], [10, 6, 0])
    np.testing.assert_allclose(positions[0, index(cmu_motion, "Head_End")], [0, 169, 0])
    np.testing.assert_allclose(positions[0, index(cmu_motion, "RightHand")], [-68, 140, 0])


def test_rotation_about_z_swings_the_child_offset(cmu_motion):
    positions = bvh.world_positions(cmu_motion)[1]
    # Rz(90) takes the knee offset (0, -42, 0) to (42, 0, 0); the hip is at (10, 90, 0).
    np.testing.assert_allclose(positions[index(cmu_motion, "LeftLeg")], [52, 90, 0], atol=1e-9)
    np.testing.assert_allclose(positions[index(cmu_motion, "LeftFoot")], [94, 90, 0], atol=1e-9)
    # Other limbs are untouched.
    np.testing.assert_allclose(positions[index(cmu_motion, "RightFoot")], [-10, 6, 0], atol=1e-9)


def test_root_rotation_about_y_turns_the_whole_body(cmu_motion):
    positions = bvh.world_positions(cmu_motion)[2]
    # Ry(90) takes (x, y, z) to (z, y, -x): the left hip (10, -5, 0) goes to (0, -5, -10).
    np.testing.assert_allclose(positions[index(cmu_motion, "LeftUpLeg")], [0, 90, -10],
                               atol=1e-9)
    np.testing.assert_allclose(positions[index(cmu_motion, "LeftHand")], [0, 140, -68],
                               atol=1e-9)


def _one_bone(bvh_files, order, values):
    """Root with rotations in `order` and an End Site at (0, 1, 0); one frame of `values`."""
    text = "\n".join([
        "HIERARCHY", "ROOT Hips", "{", "  OFFSET 0 0 0",
        f"  CHANNELS 3 {' '.join(axis + 'rotation' for axis in order)}",
        "  End Site", "  {", "    OFFSET 0 1 0", "  }", "}",
        "MOTION", "Frames: 1", "Frame Time: 0.01", " ".join(str(v) for v in values), ""])
    motion = bvh.read_bvh(bvh_files.write(text, f"{order}.bvh"))
    return bvh.world_positions(motion)[0, 1]


def test_channel_order_is_the_rotation_order(bvh_files):
    # Z=90, X=90 listed Z X Y: R = Rz Rx. Rx(90) takes (0,1,0) to (0,0,1); Rz keeps it.
    np.testing.assert_allclose(_one_bone(bvh_files, "ZXY", [90, 90, 0]), [0, 0, 1], atol=1e-12)
    # Same angles listed X Y Z: R = Rx Rz. Rz(90) takes (0,1,0) to (-1,0,0); Rx keeps it.
    np.testing.assert_allclose(_one_bone(bvh_files, "XYZ", [90, 0, 90]), [-1, 0, 0], atol=1e-12)


# ------------------------------------------------------------------------------- retargeting

EXPECTED_SOURCES = {
    0: "Hips", 1: "RightUpLeg", 2: "RightLeg", 3: "RightFoot", 4: "RightToeBase",
    5: "RightToeBase_End", 6: "LeftUpLeg", 7: "LeftLeg", 8: "LeftFoot", 9: "LeftToeBase",
    10: "LeftToeBase_End", 12: "Spine", 13: "Neck", 14: "Head", 15: "Head_End",
    16: "LeftShoulder", 17: "LeftArm", 18: "LeftForeArm", 19: "LeftHand", 20: "LThumb",
    21: "LThumb_End", 22: "LeftFingerBase", 23: "LeftHandIndex1_End", 24: "RightShoulder",
    25: "RightArm", 26: "RightForeArm", 27: "RightHand", 28: "RThumb", 29: "RThumb_End",
    30: "RightFingerBase", 31: "RightHandIndex1_End",
}


def test_cmu_names_map_to_the_expected_h36m_joints(cmu_motion):
    sources = bvh.h36m_sources(cmu_motion)
    named = {t: cmu_motion.names[s] for t, s in enumerate(sources) if s is not None}
    assert named == EXPECTED_SOURCES
    mapped = bvh.map_to_h36m(cmu_motion)
    world = bvh.world_positions(cmu_motion)
    for target, name in EXPECTED_SOURCES.items():
        np.testing.assert_array_equal(mapped[:, target], world[:, index(cmu_motion, name)])
    # Joint 11 (not evaluated) lies half way between the pelvis and the mid-spine.
    np.testing.assert_allclose(mapped[:, 11], (mapped[:, 0] + mapped[:, 12]) / 2)


def test_retarget_converts_axes_scales_and_grounds(cmu_motion):
    source_fps = 1 / cmu_motion.frame_time
    out = bvh.retarget_to_h36m(cmu_motion, target_height_mm=1690, fps=source_fps)
    assert out.shape == (3, 32, 3)
    world = bvh.world_positions(cmu_motion)
    # Height 169 units -> 1690 mm: 10 mm per unit; y up -> z up is (x, y, z) -> (x, -z, y).
    for target, name in EXPECTED_SOURCES.items():
        relative = world[:, index(cmu_motion, name)] - world[:, 0]
        expected = 10 * np.stack([relative[:, 0], -relative[:, 2], relative[:, 1]], axis=-1)
        np.testing.assert_allclose(out[:, target] - out[:, 0], expected, atol=1e-9)
    # The feet are on the floor: toe tips of the rest pose at z = 0, the lowest point overall.
    assert out[..., 2].min() == pytest.approx(0)
    assert out[0, 5, 2] == pytest.approx(0) and out[0, 10, 2] == pytest.approx(0)
    # z is up: the head is above the hips, standing height 1690 mm in the rest pose.
    assert np.all(out[:, 14, 2] > out[:, 0, 2] + 300)
    assert out[0, 15, 2] == pytest.approx(1690)


def test_retarget_keeps_left_and_right(cmu_motion):
    out = bvh.retarget_to_h36m(cmu_motion, target_height_mm=1690, fps=120)
    world = bvh.world_positions(cmu_motion)
    # The BVH's left hand (+x in the file) is Human3.6M's LeftHand (19), the right one 27.
    np.testing.assert_allclose(out[0, 19, 0], 10 * world[0, index(cmu_motion, "LeftHand"), 0])
    assert out[0, 19, 0] > 0 > out[0, 27, 0]
    # No mirroring: the handedness of (left - right, forward, up) is the same as in the file.
    def handedness(left, right, toe, ankle, head, hips):
        return np.sign(np.dot(left - right, np.cross(toe - ankle, head - hips)))
    file_frame = world[0]
    names = ["LeftUpLeg", "RightUpLeg", "LeftToeBase", "LeftFoot", "Head", "Hips"]
    before = handedness(*(file_frame[index(cmu_motion, n)] for n in names))
    after = handedness(*(out[0, j] for j in (6, 1, 9, 8, 14, 0)))
    assert before == after != 0


def test_unit_guess_reads_centimetres(cmu_motion):
    guessed = bvh.retarget_to_h36m(cmu_motion, fps=120)
    given = bvh.retarget_to_h36m(cmu_motion, target_height_mm=1690, fps=120)
    np.testing.assert_allclose(guessed, given)
    # CMU's unit (inch / 0.45): a figure 30 units tall is 1.69 m.
    assert bvh.millimetres_per_unit(30.0) == pytest.approx(25.4 / 0.45)
    # A height no common unit makes plausible is scaled to 1.7 m.
    assert bvh.millimetres_per_unit(7.0) * 7.0 == pytest.approx(1700)


def test_resampling_from_120_to_50_fps(bvh_files):
    skeleton = bvh_files.cmu_skeleton()
    order = bvh_files.joint_order(skeleton)
    # The root moves along x by i^2 units at frame i (not linear, so interpolation shows).
    rows = [bvh_files.frame_row(order, root_position=(i * i, 95, 0)) for i in range(13)]
    motion = bvh.read_bvh(bvh_files.write(bvh_files.text(skeleton, rows, 1 / 120)))
    out = bvh.retarget_to_h36m(motion, target_height_mm=1690, fps=50)
    # 13 frames at 120 fps last 0.1 s: 50 fps samples at 0, 0.02, ..., 0.1.
    assert out.shape == (6, 32, 3)
    source_index = np.arange(6) * 120 / 50  # 0, 2.4, 4.8, 7.2, 9.6, 12
    expected_x = 10 * np.interp(source_index, np.arange(13), np.arange(13) ** 2)
    np.testing.assert_allclose(out[:, 0, 0], expected_x, atol=1e-9)
    assert out[1, 0, 0] == pytest.approx(10 * (0.6 * 4 + 0.4 * 9))


def test_mixamo_names_with_namespace(bvh_files):
    skeleton = bvh_files.cmu_skeleton()
    order = bvh_files.joint_order(skeleton)
    text = bvh_files.text(skeleton, [bvh_files.frame_row(order)], 1 / 30)
    text = re.sub(r"(ROOT|JOINT) (\w+)", r"\1 mixamorig:\2", text)
    motion = bvh.read_bvh(bvh_files.write(text))
    sources = bvh.h36m_sources(motion)
    assert motion.names[sources[19]] == "mixamorig:LeftHand"
    assert motion.names[sources[27]] == "mixamorig:RightHand"


def biovision_skeleton():
    """The classic Biovision names, without toes, thumbs or fingers."""
    def arm(side, x):
        return (f"{side}Collar", (3 * x, 0, 0), [
            (f"{side}UpArm", (12 * x, 0, 0), [
                (f"{side}LowArm", (28 * x, 0, 0), [
                    (f"{side}Hand", (25 * x, 0, 0), [("End Site", (0, 0, 0), [])])])])])

    def leg(side, x):
        return (f"{side}UpLeg", (10 * x, 0, 0), [
            (f"{side}LowLeg", (0, -45, 0), [
                (f"{side}Foot", (0, -45, 0), [("End Site", (0, -5, 10), [])])])])
    chest = ("Chest", (0, 20, 0), [
        ("Neck", (0, 25, 0), [("Head", (0, 10, 0), [("End Site", (0, 20, 0), [])])]),
        arm("Left", 1), arm("Right", -1)])
    return ("Hips", (0, 0, 0), [chest, leg("Left", 1), leg("Right", -1)])


def test_missing_joints_are_filled_in_along_the_bones(bvh_files):
    skeleton = biovision_skeleton()
    order = bvh_files.joint_order(skeleton)
    motion = bvh.read_bvh(bvh_files.write(bvh_files.text(skeleton, [bvh_files.frame_row(order)],
                                                         1 / 50)))
    sources = bvh.h36m_sources(motion)
    assert motion.names[sources[12]] == "Chest"
    assert motion.names[sources[19]] == "LeftHand"
    # Without toe joints the foot's End Site is the toe; the hand's End Site has no length,
    # so the hand's sites are filled in.
    assert motion.names[sources[4]] == "RightFoot_End"
    assert sources[5] is None and sources[20] is None and sources[23] is None
    out = bvh.retarget_to_h36m(motion, target_height_mm=1700, fps=50)
    assert out.shape == (1, 32, 3) and np.all(np.isfinite(out))
    forearm = out[0, 19] - out[0, 18]
    # Thumb, wrist end and its site continue the forearm beyond the wrist.
    for joint, fraction in ((20, 0.2), (22, 0.3), (23, 0.3 * 1.5)):
        np.testing.assert_allclose(out[0, joint], out[0, 19] + fraction * forearm, atol=1e-9)
    # The toe tip continues the ankle -> toe bone by half its length, to the floor here.
    np.testing.assert_allclose(out[0, 5], out[0, 4] + 0.5 * (out[0, 4] - out[0, 3]), atol=1e-9)
    assert out[0, 15, 2] > out[0, 14, 2] > out[0, 13, 2] > out[0, 12, 2] > out[0, 0, 2]


def test_missing_essential_joints_are_listed(bvh_files):
    skeleton = ("Hips", (0, 0, 0), [("Spine", (0, 10, 0), [("Head", (0, 10, 0), [])])])
    order = bvh_files.joint_order(skeleton)
    path = bvh_files.write(bvh_files.text(skeleton, [bvh_files.frame_row(order)], 1 / 50),
                           "torso.bvh")
    with pytest.raises(ValueError, match="torso.bvh") as error:
        bvh.retarget_to_h36m(bvh.read_bvh(path))
    for name in ("LeftUpLeg", "RightHand", "Neck"):
        assert name in str(error.value)
    assert "Head (" not in str(error.value)


# --------------------------------------------------------------------------- malformed input

def _valid_text(bvh_files):
    skeleton = bvh_files.cmu_skeleton()
    order = bvh_files.joint_order(skeleton)
    return bvh_files.text(skeleton, [bvh_files.frame_row(order), bvh_files.frame_row(order)],
                          1 / 120)


@pytest.mark.parametrize("corrupt, message", [
    (lambda t: t.split("MOTION")[0], "no MOTION section"),
    (lambda t: t.rstrip("\n") + " 1.5\n", "frame has 97 values"),
    (lambda t: t.replace("Zrotation Yrotation Xrotation", "Zrotation Yrotation Wrotation", 1),
     "unknown channel 'Wrotation'"),
    (lambda t: t.replace("Frames: 2", "Frames: 3"), "'Frames: 3' but 2 frame lines"),
    (lambda t: t.replace("Frame Time:", "Time:"), "Frame Time:"),
    (lambda t: t.replace("OFFSET 0 15 0", "OFFSET 0 fifteen 0"), "'fifteen' is not a number"),
])
def test_malformed_files_name_the_file(bvh_files, corrupt, message):
    path = bvh_files.write(corrupt(_valid_text(bvh_files)), "broken.bvh")
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        bvh.read_bvh(path)
    assert str(path) in str(error.value)


def test_wrong_value_count_names_the_line(bvh_files):
    lines = _valid_text(bvh_files).splitlines()
    lines[-1] += " 7"
    path = bvh_files.write("\n".join(lines) + "\n", "broken.bvh")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line {len(lines)}:"):
        bvh.read_bvh(path)
