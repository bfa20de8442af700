"""The BVH reader, its forward kinematics and the retargeting to Human3.6M's 32 joints, on small
BVH files written by the tests themselves: one per convention of the public motion capture
releases (tests/bvh_conventions.py), moved onto a synthetic subject's body."""
import re

import numpy as np
import pytest

from data_prep import make_synth
from data_prep.h36m import J32, PARENTS_32, bone_lengths
from data_prep.synth import bvh
from data_prep.synth.motion import BodyShape, body_for_subject, bone_offsets
from tests import bvh_conventions
from tests.conftest import BvhFiles

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


# The file's own proportions (source_proportions=True): the BVH joints' places, in millimetres.

def test_retarget_converts_axes_scales_and_grounds(cmu_motion):
    source_fps = 1 / cmu_motion.frame_time
    out = bvh.retarget_to_h36m(cmu_motion, fps=source_fps, source_proportions=True,
                               target_height_mm=1690)
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
    out = bvh.retarget_to_h36m(cmu_motion, fps=120, source_proportions=True,
                               target_height_mm=1690)
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
    guessed = bvh.retarget_to_h36m(cmu_motion, fps=120, source_proportions=True)
    given = bvh.retarget_to_h36m(cmu_motion, fps=120, source_proportions=True,
                                 target_height_mm=1690)
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
    out = bvh.retarget_to_h36m(motion, fps=50, source_proportions=True, target_height_mm=1690)
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
    out = bvh.retarget_to_h36m(motion, fps=50, source_proportions=True, target_height_mm=1700)
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
    # the joints the file has, and the names it would take
    assert "Its joints: Hips, Spine, Head." in str(error.value)
    assert "leftupleg, lefthip" in str(error.value)


# ---------------------------------------------------- the conventions of public motion capture

def angles_between(a, b):
    """Angles (radians) between vectors (..., 3), accurate for small angles too."""
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


def square_to(vectors, up):
    """vectors (..., 3) without their part along up."""
    up = up / np.linalg.norm(up, axis=-1, keepdims=True)
    return vectors - np.sum(vectors * up, axis=-1, keepdims=True) * up


def convention_motion(bvh_files, convention, rows=None):
    path = bvh_files.write(bvh_conventions.text(convention, rows), f"{convention.name}.bvh")
    return bvh.read_bvh(path)


def subject_bone_lengths(body):
    """The length of each of the 32 bones of a body, as the procedural motion has them."""
    return np.linalg.norm(bone_offsets(body), axis=-1)


CONVENTION_IDS = [c.name for c in bvh_conventions.CONVENTIONS]
# Human3.6M joints every convention has a BVH joint for (the others may be End Sites or filled)
NAMED_JOINTS = {"Hip", "Spine1", "Neck", "Head"} | {
    side + part for side in ("Left", "Right")
    for part in ("UpLeg", "Leg", "Foot", "Arm", "ForeArm", "Hand")}


@pytest.mark.parametrize("convention", bvh_conventions.CONVENTIONS, ids=CONVENTION_IDS)
@pytest.mark.parametrize("subject", ["S9", "S11"])
def test_each_convention_moves_the_subject_as_the_actor_moved(bvh_files, convention, subject):
    """Every limb bone of the subject points where the file's bone points, frame by frame;
    the trunk leans, turns and bends its head as the file's does (pelvis to thorax, thorax
    to head top, the hip and shoulder lines square to the trunk), with the hips and shoulders
    where the subject has them; every bone is as long as the subject's own: the motion, not
    the file's proportions."""
    motion = convention_motion(bvh_files, convention)
    body = body_for_subject(subject)
    out = bvh.retarget_to_h36m(motion, body, fps=1 / motion.frame_time)
    dropped = 0 if convention.t_pose is None else 1
    assert out.shape == (len(motion.frames) - dropped, 32, 3)
    world = bvh.y_up_to_z_up(bvh.world_positions(motion))[dropped:]
    for (source_from, source_to), (target_from, target_to) in convention.bones:
        if J32[target_to] in bvh.FRAME_PLACED:   # the trunk: checked below
            continue
        source = (world[:, motion.names.index(source_to)]
                  - world[:, motion.names.index(source_from)])
        target = out[:, J32[target_to]] - out[:, J32[target_from]]
        assert angles_between(source, target).max() < 1e-9, (source_from, source_to)
    named = {target_to: source_to for (_, source_to), (_, target_to) in convention.bones}
    named["Hip"] = convention.bones[0][0][0]
    source = {joint: world[:, motion.names.index(name)] for joint, name in named.items()}
    up = source["Neck"] - source["Hip"]
    for (low, high), along in ((("Hip", "Neck"), up),
                               (("Neck", "HeadSite"), source["HeadSite"] - source["Neck"]),
                               (("RightUpLeg", "LeftUpLeg"),
                                square_to(source["LeftUpLeg"] - source["RightUpLeg"], up)),
                               (("RightArm", "LeftArm"),
                                square_to(source["LeftArm"] - source["RightArm"], up))):
        target = out[:, J32[high]] - out[:, J32[low]]
        assert angles_between(along, target).max() < 1e-9, (low, high)
    lengths = bone_lengths(out, PARENTS_32)
    np.testing.assert_allclose(lengths, np.broadcast_to(subject_bone_lengths(body), lengths.shape),
                               rtol=0, atol=1e-9)
    # joints Human3.6M has at one place stay there: Spine on the pelvis, the clavicle joints on
    # the thorax, HandThumb and WristEnd on the wrist
    for joint, same_as in (("Spine", "Hip"), ("LeftShoulder", "Neck"), ("RightShoulder", "Neck"),
                           ("LeftHandThumb", "LeftHand"), ("RightWristEnd", "RightHand")):
        np.testing.assert_array_equal(out[:, J32[joint]], out[:, J32[same_as]])


@pytest.mark.parametrize("convention", bvh_conventions.CONVENTIONS, ids=CONVENTION_IDS)
def test_each_convention_names_its_joints(bvh_files, convention):
    """The Human3.6M joints land on the BVH joints the convention means: the thorax, the
    shoulder and hip joints, elbows and wrists (not a clavicle or a hip 'joint' at the
    pelvis)."""
    motion = convention_motion(bvh_files, convention)
    sources = bvh.h36m_sources(motion)
    # where each compared bone ends, and the first one's start: the pelvis
    expected = {target: source for (_, source), (_, target) in convention.bones}
    expected["Hip"] = convention.bones[0][0][0]
    for target in NAMED_JOINTS:
        assert motion.names[sources[J32[target]]] == expected[target], target


def test_position_channels_replace_the_offset(bvh_files):
    """Bandai Namco's (and LaFAN1's) files give every joint position channels repeating its
    OFFSET, and their Hips an OFFSET that is not where its channels put it: the channels are
    the place, as Blender and LaFAN1's own reader read them."""
    convention = next(c for c in bvh_conventions.CONVENTIONS if c.name == "bandai-namco")
    still = bvh_conventions.frame_row(convention, (5, 90, 7), {})
    motion = convention_motion(bvh_files, convention, [still])
    world = bvh.world_positions(motion)[0]
    np.testing.assert_allclose(world[motion.names.index("Hips")], [5, 90, 7])
    np.testing.assert_allclose(world[motion.names.index("Spine")], [5 + 12, 90, 7])
    np.testing.assert_allclose(bvh.rest_positions(motion)[motion.names.index("Spine")],
                               [1 + 12, 93, -450])


def test_the_pelvis_path_scales_with_the_leg_length(bvh_files):
    """The pelvis moves as the actor's, times the subject's leg length over the actor's (84
    units, thigh and shin, in the CMU figure)."""
    convention = bvh_conventions.CONVENTIONS[0]
    motion = convention_motion(bvh_files, convention)
    body = body_for_subject("S11")
    out = bvh.retarget_to_h36m(motion, body, fps=1 / motion.frame_time)
    pelvis = bvh.y_up_to_z_up(bvh.world_positions(motion))[1:, 0]
    ratio = body.leg / 84.0
    np.testing.assert_allclose(out[:, J32["Hip"]] - out[0, J32["Hip"]],
                               ratio * (pelvis - pelvis[0]), atol=1e-9)


def test_a_first_t_pose_frame_is_dropped_and_120_fps_resampled_to_50(bvh_files):
    """CMU's clips: a T-pose frame, then the motion at 120 fps. The motion's 25 frames last
    0.2 s: 11 frames at 50 fps, frame k at the motion's frame 2.4 k."""
    convention = bvh_conventions.CONVENTIONS[0]
    motion = convention_motion(bvh_files, convention)
    assert motion.frame_time == pytest.approx(1 / 120)
    body = body_for_subject("S9")
    out = bvh.retarget_to_h36m(motion, body)
    assert out.shape == (11, 32, 3)
    world = bvh.y_up_to_z_up(bvh.world_positions(motion))
    for frame, source_frame in ((0, 1), (5, 1 + 12), (10, 1 + 24)):
        for (source_from, source_to), (target_from, target_to) in convention.bones:
            if J32[target_to] in bvh.FRAME_PLACED:   # the trunk's joints: placed by frames
                continue
            source = (world[source_frame, motion.names.index(source_to)]
                      - world[source_frame, motion.names.index(source_from)])
            target = out[frame, J32[target_to]] - out[frame, J32[target_from]]
            assert angles_between(source, target) < 1e-6, (frame, source_from, source_to)
    lengths = bone_lengths(out, PARENTS_32)
    np.testing.assert_allclose(lengths, np.broadcast_to(subject_bone_lengths(body), lengths.shape),
                               rtol=0, atol=1e-9)


def test_the_t_pose_rule(bvh_files, cmu_motion):
    """Frame 0 is dropped when it is a T-pose (arms out along the shoulders, level) and
    frame 1 is not; a clip that stays in a T-pose, or has one frame, keeps it."""
    mapped = bvh.map_to_h36m(cmu_motion)   # all three frames hold the arms out
    assert bvh.t_pose_frames(mapped).all()
    assert not bvh.starts_with_t_pose(mapped)
    assert not bvh.starts_with_t_pose(mapped[:1])
    assert bvh.starts_with_t_pose(bvh.map_to_h36m(
        convention_motion(bvh_files, bvh_conventions.CONVENTIONS[1])))
    # arms 30 degrees below the shoulders' line are not a T-pose; 10 degrees are
    for degrees, t_pose in ((30, False), (10, True)):
        rows = [bvh_files.frame_row(bvh_files.joint_order(bvh_files.cmu_skeleton()),
                                    angles={"LeftArm": (-degrees, 0, 0),
                                            "RightArm": (degrees, 0, 0)})]
        path = bvh_files.write(bvh_files.text(bvh_files.cmu_skeleton(), rows, 1 / 120))
        assert bvh.t_pose_frames(bvh.map_to_h36m(bvh.read_bvh(path)))[0] == t_pose


def test_the_floor_is_under_the_feet_at_rest():
    """One floor for the clip, under the lowest point of the frames that stand still: a frame
    whose foot dips below it, or a jump, does not move it."""
    body = BodyShape()
    standing = bvh.body_rest_pose(body)
    standing[:, 2] -= standing[:, 2].min()
    clip = np.repeat(standing[None], 40, axis=0)
    clip[20, :, 2] -= 90.0                                   # a capture's dip, one frame
    clip[30:36, :, 2] += 300.0 * np.sin(np.linspace(0, np.pi, 6))[:, None]   # a jump
    clip[..., 2] += 55.0
    assert bvh.floor_height(clip, 50) == pytest.approx(55.0)
    # without a frame at rest: the lowest point of the clip
    moving = clip + np.arange(40)[:, None, None] * np.array([20.0, 0.0, 0.0])
    assert bvh.floor_height(moving, 50) == pytest.approx(55.0 - 90.0)


def test_the_file_proportions_need_asking_for(cmu_motion):
    with pytest.raises(ValueError, match="source_proportions=True"):
        bvh.retarget_to_h36m(cmu_motion, target_height_mm=1690)


def test_make_synth_moves_a_clip_onto_each_subject(bvh_files):
    """make_synth's recordings from a BVH clip have the bones of the subject they show."""
    convention = bvh_conventions.CONVENTIONS[2]
    path = bvh_files.write(bvh_conventions.text(convention), "bvh/clip.bvh")
    for subject in ("S9", "S11"):
        job = {"seed": 0, "subject": subject, "action": "Walking", "subaction": 1,
               "motion_frames": 40, "bvh": str(path)}
        poses = make_synth.sequence_motion(job)
        assert poses.shape == (40, 32, 3)
        lengths = bone_lengths(poses, PARENTS_32)
        expected = subject_bone_lengths(body_for_subject(subject))
        np.testing.assert_allclose(lengths, np.broadcast_to(expected, lengths.shape),
                                   rtol=0, atol=1e-9)


# ------------------------------------------------------------------ files that cannot be used

def unmappable_skeleton():
    """A rig with names no convention uses."""
    return ("root", (0, 0, 0), [
        ("bone_001", (0, 10, 0), [("bone_002", (0, 10, 0), [("End Site", (0, 5, 0), [])])]),
        ("bone_003", (5, -5, 0), [("End Site", (0, -40, 0), [])])])


def upper_body_skeleton():
    """A CMU figure cut at the pelvis: no legs."""
    name, offset, children = BvhFiles.cmu_skeleton()
    return (name, offset, [child for child in children if child[0] == "LowerBack"])


@pytest.mark.parametrize("skeleton, missing, found", [
    (unmappable_skeleton, ("LeftUpLeg", "Neck", "RightHand"),
     "Its joints: root, bone_001, bone_002, bone_003."),
    (upper_body_skeleton, ("LeftUpLeg", "RightLeg", "LeftFoot"), "LowerBack, Spine, Spine1"),
])
def test_a_file_it_cannot_map_names_file_joints_and_accepted_names(bvh_files, skeleton, missing,
                                                                   found):
    skeleton = skeleton()
    order = bvh_files.joint_order(skeleton)
    path = bvh_files.write(bvh_files.text(skeleton, [bvh_files.frame_row(order)], 1 / 120),
                           "rig.bvh")
    with pytest.raises(bvh.BvhError) as error:
        bvh.retarget_to_h36m(bvh.read_bvh(path))
    message = error.value.one_line
    assert message.startswith(f"{path}: cannot map its skeleton to Human3.6M's")
    for name in missing:
        assert f"{name} (" in message
    assert found in message
    assert "lowerleg{s}" not in message and "lowerlegr" in message   # the accepted names


@pytest.mark.parametrize("cut, message", [
    (lambda text: text[:text.index("JOINT LeftFoot")], "no MOTION section"),
    (lambda text: text[:text.rindex("\n", 0, len(text) - 1) + 1], "'Frames: 26' but 25"),
])
def test_a_truncated_file_names_the_file(bvh_files, cut, message):
    text = bvh_conventions.text(bvh_conventions.CONVENTIONS[0])
    path = bvh_files.write(cut(text), "cut.bvh")
    with pytest.raises(bvh.BvhError, match=re.escape(message)) as error:
        bvh.read_bvh(path)
    assert error.value.one_line.startswith(f"{path}")


def test_make_synth_refuses_a_file_it_cannot_map_in_one_line(tmp_path, bvh_files, capsys):
    """The check before any work (make_synth.check_motion_files): one line naming the file."""
    skeleton = unmappable_skeleton()
    order = bvh_files.joint_order(skeleton)
    path = bvh_files.write(bvh_files.text(skeleton, [bvh_files.frame_row(order)], 1 / 120),
                           "bvh/rig.bvh")
    out = tmp_path / "synth"
    assert make_synth.main(["--out", str(out), "--subjects", "S9", "--actions", "Walking",
                            "--frames", "4", "--bvh", str(path.parent), "--quiet"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: cannot map its skeleton")
    assert "Its joints: root, bone_001" in lines[0] and not out.exists()


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
