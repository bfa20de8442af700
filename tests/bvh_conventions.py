"""Small BVH files in the conventions public motion capture comes in, for the retargeting
tests (tests/test_synth_bvh.py): CMU's two BVH releases (MotionBuilder and 3ds Max style),
Mixamo, LaFAN1, the Bandai Namco Research Motion dataset and Reallusion Character Creator
(iClone). Each is a made-up figure with the convention's joint names, hierarchy quirks,
channels and frame rate, not a real file:

- CMU MotionBuilder style: 120 fps, a first T-pose frame, 'LHipJoint' and 'LowerBack' at the
  pelvis, the clavicle joint 'LeftShoulder' on the thorax, zero-length 'LThumb';
- CMU 3ds Max style: 120 fps, a first T-pose frame, arms hanging in the rest pose, 'lowerneck'
  at the thorax and 'Neck' above it, 'LeftCollar' the clavicle and 'LeftShoulder' the
  shoulder joint, arm joints with their own channel order;
- Mixamo: 30 fps, every name behind 'mixamorig:', 'HeadTop_End' and 'LeftToe_End' joints;
- LaFAN1: 30 fps, six channels on every joint (positions repeating the OFFSETs), a rest pose
  with every bone along its parent's x axis, stood upright by the rotations of every frame;
- Bandai Namco: 30 fps, a 'joint_Root' root on the floor above 'Hips', six channels on every
  joint, '_L'/'_R' names, End Sites of no length, bones along x as LaFAN1's;
- Reallusion Character Creator (as iClone exports it): 60 fps, a first T-pose frame, every
  name behind 'CC_Base_', 'CC_Base_Pelvis' (the legs' parent) beside the spine under the root
  'CC_Base_Hip', 'Calf' for the knee, 'NeckTwist01' at the thorax, twist bones beside the limb
  bones.

A figure is a tree of (name, offset, children) nodes as tests/conftest.py's BvhFiles writes
them; left is +x, forward +z, y up, centimetres. A frame is given by the pelvis position and
{joint: {axis: degrees}}; position channels of other joints repeat their OFFSETs."""
import dataclasses

from tests.conftest import BvhFiles

# Channels as CMU writes them: root position and rotation, then rotations.
CMU_ROOT = "Xposition Yposition Zposition Zrotation Yrotation Xrotation"
CMU_JOINT = "Zrotation Yrotation Xrotation"
# CMU's 3ds Max style files write their arm joints' rotations in this order
CMU_MAX_ARM = "Zrotation Xrotation Yrotation"
# Mixamo: root position and rotation, then rotations (the order varies between exports)
MIXAMO_ROOT = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"
MIXAMO_JOINT = "Zrotation Xrotation Yrotation"
# LaFAN1's and Bandai Namco's: position and rotation on every joint
LAFAN_ALL = "Xposition Yposition Zposition Zrotation Yrotation Xrotation"
BANDAI_ALL = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"
END = "End Site"    # the name of an End Site node in a figure's tree
# Frames of motion after any T-pose frame: 25 at 120 fps last 0.2 s, 11 frames at 50 fps.
MOTION_FRAMES = 25
PELVIS_HEIGHT = 90.0   # cm: the pelvis above the floor, standing


@dataclasses.dataclass(frozen=True)
class Convention:
    """One convention's figure, its frames and what the tests compare."""
    name: str
    skeleton: tuple        # (name, offset, children) tree
    root_channels: str
    joint_channels: str    # every joint's but the root's, unless in `channels`
    fps: float
    pelvis: str            # the joint whose position channels move the figure
    t_pose: dict           # angles of a first T-pose frame; None: the file has none
    pose: object           # frame index -> {joint: {axis: degrees}} of the motion
    # ((BVH joint, BVH joint), (Human3.6M joint, Human3.6M joint)): bones that point the same
    bones: tuple
    channels: dict = dataclasses.field(default_factory=dict)   # joint -> its own channels

    def channels_of(self, name, is_root):
        """The CHANNELS of joint `name`."""
        if is_root:
            return self.root_channels
        return self.channels.get(name, self.joint_channels)


def joints(node, is_root=True):
    """(name, offset, is_root) of the joints with channels, in file order."""
    name, offset, children = node
    if name == END:
        return []
    return [(name, offset, is_root)] + [j for child in children for j in joints(child, False)]


def frame_row(convention, pelvis_position, angles):
    """One frame's values: the pelvis's position channels at `pelvis_position`, the other
    joints' at their OFFSETs, rotations from `angles` ({joint: {axis: degrees}})."""
    values = []
    for name, offset, is_root in joints(convention.skeleton):
        place = pelvis_position if name == convention.pelvis else offset
        for channel in convention.channels_of(name, is_root).split():
            axis = channel[0]
            if channel.endswith("position"):
                values.append(place["XYZ".index(axis)])
            else:
                values.append(angles.get(name, {}).get(axis, 0.0))
    return values


def _hierarchy(convention, node, depth=0):
    """HIERARCHY lines of `node` with each joint's channels."""
    name, offset, children = node
    pad = "  " * depth
    head = END if name == END else f"{'ROOT' if depth == 0 else 'JOINT'} {name}"
    lines = [pad + head, pad + "{", f"{pad}  OFFSET {' '.join(f'{v:g}' for v in offset)}"]
    if name != END:
        channels = convention.channels_of(name, depth == 0).split()
        lines.append(f"{pad}  CHANNELS {len(channels)} {' '.join(channels)}")
    for child in children:
        lines += _hierarchy(convention, child, depth + 1)
    return lines + [pad + "}"]


def pelvis_path(index):
    """Where the pelvis is at motion frame `index`: walking forward and sideways, bobbing."""
    return (0.8 * index, PELVIS_HEIGHT + 0.5 * (index % 3), 1.5 * index)


def frames(convention):
    """Rows of the file: a T-pose frame where the convention has one, then MOTION_FRAMES
    frames of motion."""
    rows = []
    if convention.t_pose is not None:
        rows.append(frame_row(convention, pelvis_path(0), convention.t_pose))
    for index in range(MOTION_FRAMES):
        rows.append(frame_row(convention, pelvis_path(index), convention.pose(index)))
    return rows


def text(convention, rows=None):
    """The whole BVH file of a convention (its `frames` unless `rows` are given)."""
    rows = frames(convention) if rows is None else rows
    lines = ["HIERARCHY"] + _hierarchy(convention, convention.skeleton)
    lines += ["MOTION", f"Frames: {len(rows)}", f"Frame Time: {1 / convention.fps:.10g}"]
    lines += [" ".join(f"{v:.10g}" for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def merge(*poses):
    """Angles of several poses added axis by axis."""
    result = {}
    for pose in poses:
        for joint, axes in pose.items():
            for axis, degrees in axes.items():
                result.setdefault(joint, {}).setdefault(axis, 0.0)
                result[joint][axis] += degrees
    return result


def limb_motion(index, names, arms_down):
    """A frame of motion for joints named by role: the pelvis turning and tilting, a step of
    the legs, the spine and head bending, arms lowered by `arms_down` (the rotation about z
    that brings a T-pose's arms down, per side) and swinging, elbows bent."""
    swing = 3.0 * index
    return {
        names["pelvis"]: {"Y": 2.0 * index, "X": 4.0},
        names["left_hip"]: {"X": -20.0 + swing, "Z": 5.0},
        names["left_knee"]: {"X": 30.0 - swing},
        names["right_hip"]: {"X": 15.0 - swing, "Z": -5.0},
        names["right_knee"]: {"X": 10.0 + swing},
        names["left_ankle"]: {"X": 10.0},
        names["spine"]: {"X": 8.0, "Y": index},
        names["neck"]: {"X": 12.0, "Y": -2.0 * index},
        names["left_arm"]: {"Z": arms_down[0], "Y": 10.0 + swing},
        names["right_arm"]: {"Z": arms_down[1], "Y": -swing},
        names["left_elbow"]: {"Y": 30.0},
        names["right_elbow"]: {"Y": -20.0 - swing},
    }


def _bones(names):
    """The bones compared, from BVH names by role to Human3.6M joints (h36m.J32)."""
    pairs = []
    for side, letter in (("Left", "left"), ("Right", "right")):
        pairs += [
            (("pelvis", f"{letter}_hip"), ("Hip", f"{side}UpLeg")),
            ((f"{letter}_hip", f"{letter}_knee"), (f"{side}UpLeg", f"{side}Leg")),
            ((f"{letter}_knee", f"{letter}_ankle"), (f"{side}Leg", f"{side}Foot")),
            ((f"{letter}_ankle", f"{letter}_toe"), (f"{side}Foot", f"{side}ToeBase")),
            ((f"{letter}_toe_from", f"{letter}_toe_tip"), (f"{side}ToeBase", f"{side}ToeSite")),
            (("thorax", f"{letter}_arm"), ("Neck", f"{side}Arm")),
            ((f"{letter}_arm", f"{letter}_elbow"), (f"{side}Arm", f"{side}ForeArm")),
            ((f"{letter}_elbow", f"{letter}_wrist"), (f"{side}ForeArm", f"{side}Hand")),
        ]
    pairs += [(("pelvis", "mid_spine"), ("Hip", "Spine1")),
              (("mid_spine", "thorax"), ("Spine1", "Neck")),
              (("thorax", "head"), ("Neck", "Head")),
              (("head_from", "head_top"), ("Head", "HeadSite"))]
    return tuple(((names[a], names[b]), (h_a, h_b)) for (a, b), (h_a, h_b) in pairs)


# --------------------------------------------------------------- CMU, MotionBuilder style

def _cmu_mb():
    """tests/conftest.py's CMU figure: a T-pose in its rest pose."""
    names = {"pelvis": "Hips", "mid_spine": "Spine", "thorax": "Neck", "head": "Head",
             "head_from": "Head", "head_top": "Head_End", "spine": "Spine", "neck": "Neck1"}
    for side in ("Left", "Right"):
        letter = side.lower()
        names.update({f"{letter}_hip": f"{side}UpLeg", f"{letter}_knee": f"{side}Leg",
                      f"{letter}_ankle": f"{side}Foot", f"{letter}_toe": f"{side}ToeBase",
                      f"{letter}_toe_from": f"{side}ToeBase",
                      f"{letter}_toe_tip": f"{side}ToeBase_End", f"{letter}_arm": f"{side}Arm",
                      f"{letter}_elbow": f"{side}ForeArm", f"{letter}_wrist": f"{side}Hand"})
    return Convention(
        "cmu-motionbuilder", BvhFiles.cmu_skeleton(), CMU_ROOT, CMU_JOINT, 120.0, "Hips",
        t_pose={}, pose=lambda i: limb_motion(i, names, (-60.0, 60.0)), bones=_bones(names))


# ---------------------------------------------------------------------- CMU, 3ds Max style

def _cmu_max_side(side, letter, x):
    """One side's leg and arm of the 3ds Max style figure (arms hanging in the rest pose)."""
    leg = (f"{letter}HipJoint", (0, 0, 0), [
        (f"{side}Hip", (9 * x, -4, 1), [
            (f"{side}Knee", (2 * x, -42, 0), [
                (f"{side}Ankle", (2 * x, -41, 0), [
                    (f"{side}Toe", (0, -6, 12), [(END, (0, 0, 5), [])])])])])])
    arm = (f"{side}Collar", (0, 0, 0), [
        (f"{side}Shoulder", (16 * x, 3, -1), [
            (f"{side}Elbow", (0, -28, 0), [
                (f"{side}Wrist", (0, -25, 0), [
                    (f"{letter.lower()}hand", (0, 0, 0), [
                        (f"{letter}Fingers", (0, -5, 0), [(END, (0, -4, 0), [])])]),
                    (f"{letter}Thumb", (0, 0, 0), [(END, (0, -3, 3), [])])])])])])
    return leg, arm


def _cmu_max():
    """CMU's 3ds Max style figure: arms hanging at rest, raised by its T-pose frame."""
    left_leg, left_arm = _cmu_max_side("Left", "L", 1)
    right_leg, right_arm = _cmu_max_side("Right", "R", -1)
    spine = ("lowerback", (0, 0, 0), [
        ("Chest", (0, 15, -1), [
            ("Chest2", (0, 15, 0), [
                ("lowerneck", (0, 0, 0), [
                    ("Neck", (0, 9, 1), [
                        ("Head", (0, 9, 0), [(END, (0, 17, 0), [])])])]),
                left_arm, right_arm])])])
    skeleton = ("Hips", (0, 0, 0), [left_leg, right_leg, spine])
    names = {"pelvis": "Hips", "mid_spine": "Chest", "thorax": "lowerneck", "head": "Head",
             "head_from": "Head", "head_top": "Head_End", "spine": "Chest", "neck": "Neck"}
    for side in ("Left", "Right"):
        letter = side.lower()
        names.update({f"{letter}_hip": f"{side}Hip", f"{letter}_knee": f"{side}Knee",
                      f"{letter}_ankle": f"{side}Ankle", f"{letter}_toe": f"{side}Toe",
                      f"{letter}_toe_from": f"{side}Toe", f"{letter}_toe_tip": f"{side}Toe_End",
                      f"{letter}_arm": f"{side}Shoulder", f"{letter}_elbow": f"{side}Elbow",
                      f"{letter}_wrist": f"{side}Wrist"})
    arm_joints = [n for n, _, _ in joints(skeleton)
                  if any(part in n for part in ("Collar", "Shoulder", "Elbow", "Wrist", "hand",
                                                "Fingers", "Thumb"))]
    # the rest pose hangs the arms: the T-pose frame raises them, the motion a little
    t_pose = {"LeftShoulder": {"Z": 90.0}, "RightShoulder": {"Z": -90.0}}
    return Convention(
        "cmu-3dsmax", skeleton, CMU_ROOT, CMU_JOINT, 120.0, "Hips", t_pose=t_pose,
        pose=lambda i: limb_motion(i, names, (15.0, -15.0)), bones=_bones(names),
        channels={name: CMU_MAX_ARM for name in arm_joints})


# ---------------------------------------------------------------------------------- Mixamo

def _mixamo():
    """A Mixamo figure: a T-pose at rest, every name in the 'mixamorig:' namespace."""
    def side(name, x):
        leg = (f"mixamorig:{name}UpLeg", (9 * x, -6, 0), [
            (f"mixamorig:{name}Leg", (0, -42, 0), [
                (f"mixamorig:{name}Foot", (0, -41, 0), [
                    (f"mixamorig:{name}ToeBase", (0, -6, 12), [
                        (f"mixamorig:{name}Toe_End", (0, 0, 5), [(END, (0, 0, 0), [])])])])])])
        arm = (f"mixamorig:{name}Shoulder", (6 * x, 9, 0), [
            (f"mixamorig:{name}Arm", (10 * x, 0, 0), [
                (f"mixamorig:{name}ForeArm", (27 * x, 0, 0), [
                    (f"mixamorig:{name}Hand", (25 * x, 0, 0), [
                        (f"mixamorig:{name}HandThumb1", (2 * x, 0, 3), [
                            (f"mixamorig:{name}HandThumb2", (2 * x, 0, 2),
                             [(END, (2 * x, 0, 1), [])])]),
                        (f"mixamorig:{name}HandIndex1", (9 * x, 0, 2), [(END, (4 * x, 0, 0), [])]),
                        (f"mixamorig:{name}HandMiddle1", (9 * x, 0, 0),
                         [(END, (4 * x, 0, 0), [])])])])])])
        return leg, arm
    left_leg, left_arm = side("Left", 1)
    right_leg, right_arm = side("Right", -1)
    spine = ("mixamorig:Spine", (0, 10, 0), [
        ("mixamorig:Spine1", (0, 12, 0), [
            ("mixamorig:Spine2", (0, 13, 0), [
                ("mixamorig:Neck", (0, 15, 0), [
                    ("mixamorig:Head", (0, 10, 2), [
                        ("mixamorig:HeadTop_End", (0, 18, 0), [(END, (0, 0, 0), [])])])]),
                left_arm, right_arm])])])
    skeleton = ("mixamorig:Hips", (0, 0, 0), [spine, left_leg, right_leg])
    names = {"pelvis": "Hips", "mid_spine": "Spine1", "thorax": "Neck", "head": "Head",
             "head_from": "Head", "head_top": "HeadTop_End", "spine": "Spine1", "neck": "Neck"}
    for side_name in ("Left", "Right"):
        letter = side_name.lower()
        names.update({f"{letter}_hip": f"{side_name}UpLeg", f"{letter}_knee": f"{side_name}Leg",
                      f"{letter}_ankle": f"{side_name}Foot",
                      f"{letter}_toe": f"{side_name}ToeBase",
                      f"{letter}_toe_from": f"{side_name}ToeBase",
                      f"{letter}_toe_tip": f"{side_name}Toe_End",
                      f"{letter}_arm": f"{side_name}Arm", f"{letter}_elbow": f"{side_name}ForeArm",
                      f"{letter}_wrist": f"{side_name}Hand"})
    names = {role: "mixamorig:" + name for role, name in names.items()}
    return Convention(
        "mixamo", skeleton, MIXAMO_ROOT, MIXAMO_JOINT, 30.0, "mixamorig:Hips", t_pose=None,
        pose=lambda i: limb_motion(i, names, (-60.0, 60.0)), bones=_bones(names))


# ------------------------------------------------------------- bones along x: LaFAN1, Bandai
# A rest pose with every bone along its parent's x axis stands upright with these rotations
# (about z, degrees): the pelvis turns x up, the legs turn down from it, the clavicles turn the
# arms out sideways (a T-pose; the motion lowers them) and the feet turn the toes forward.

def _upright(names):
    """The rotations that stand a figure with bones along x upright, by joint name."""
    return {names["pelvis"]: {"Z": 90.0}, names["left_hip"]: {"Z": 180.0},
            names["right_hip"]: {"Z": 180.0}, names["left_clavicle"]: {"Z": -90.0},
            names["right_clavicle"]: {"Z": 90.0}}


def _along_x(names, pelvis_offset, root=None):
    """A figure with bones along x named by role (`names`); under `root` if given.
    Offsets sideways are along -y for the left: the pelvis frame turns y to -x."""
    def leg(letter, sign):
        return (names[f"{letter}_hip"], (-3, -9 * sign, 0), [
            (names[f"{letter}_knee"], (42, 0, 0), [
                (names[f"{letter}_ankle"], (41, 0, 0), [
                    # the ankle's frame points x down: (6, 0, 12) is 6 down and 12 forward
                    (names[f"{letter}_toe"], (6, 0, 12), [(END, names["toe_end"], [])])])])])

    def arm(letter, sign):
        return (names[f"{letter}_clavicle"], (11, -3 * sign, 0), [
            (names[f"{letter}_arm"], (13, 0, 0), [
                (names[f"{letter}_elbow"], (28, 0, 0), [
                    (names[f"{letter}_wrist"], (25, 0, 0), [(END, names["hand_end"], [])])])])])
    spine = (names["neck"], (14, 0, 0), [
        (names["head"], (10, 0, 0), [(END, names["head_end"], [])])])
    chain = [spine, arm("left", 1), arm("right", -1)]
    for joint in reversed(names["spine_chain"]):
        chain = [(joint, (12, 0, 0), chain)]
    pelvis = (names["pelvis"], pelvis_offset, chain + [leg("left", 1), leg("right", -1)])
    return pelvis if root is None else (root, (0, 0, 0), [pelvis])


def _along_x_names(names):
    """Role names for the comparisons: End Sites by their reader names."""
    roles = dict(names)
    for letter in ("left", "right"):
        roles[f"{letter}_toe_from"] = names[f"{letter}_toe"]
        roles[f"{letter}_toe_tip"] = names[f"{letter}_toe"] + "_End"
    roles["head_from"], roles["head_top"] = names["head"], names["head"] + "_End"
    return roles


def _lafan():
    """A LaFAN1 figure: bones along x, six channels on every joint."""
    names = {"pelvis": "Hips", "spine_chain": ("Spine", "Spine1", "Spine2"), "neck": "Neck",
             "head": "Head", "thorax": "Neck", "mid_spine": "Spine1", "spine": "Spine1",
             "toe_end": (0, 0, 5), "hand_end": (8, 0, 0), "head_end": (15, 0, 0)}
    for side in ("Left", "Right"):
        letter = side.lower()
        names.update({f"{letter}_hip": f"{side}UpLeg", f"{letter}_knee": f"{side}Leg",
                      f"{letter}_ankle": f"{side}Foot", f"{letter}_toe": f"{side}Toe",
                      f"{letter}_clavicle": f"{side}Shoulder", f"{letter}_arm": f"{side}Arm",
                      f"{letter}_elbow": f"{side}ForeArm", f"{letter}_wrist": f"{side}Hand"})
    roles = _along_x_names(names)
    upright = _upright(names)
    return Convention(
        "lafan1", _along_x(names, (0, 0, 0)), LAFAN_ALL, LAFAN_ALL, 30.0, "Hips", t_pose=None,
        pose=lambda i: merge(upright, limb_motion(i, roles, (-60.0, 60.0))),
        bones=_bones(roles))


def _bandai():
    """A Bandai Namco figure: under 'joint_Root', bones along x, End Sites of no length."""
    names = {"pelvis": "Hips", "spine_chain": ("Spine", "Chest"), "neck": "Neck",
             "head": "Head", "thorax": "Neck", "mid_spine": "Chest", "spine": "Chest",
             "toe_end": (0, 0, 0), "hand_end": (0, 0, 0), "head_end": (0, 0, 0)}
    for side, letter in (("L", "left"), ("R", "right")):
        names.update({f"{letter}_hip": f"UpperLeg_{side}", f"{letter}_knee": f"LowerLeg_{side}",
                      f"{letter}_ankle": f"Foot_{side}", f"{letter}_toe": f"Toes_{side}",
                      f"{letter}_clavicle": f"Shoulder_{side}",
                      f"{letter}_arm": f"UpperArm_{side}", f"{letter}_elbow": f"LowerArm_{side}",
                      f"{letter}_wrist": f"Hand_{side}"})
    roles = _along_x_names(names)
    # End Sites of no length: the toe tips continue the foot, the head top the neck
    for letter in ("left", "right"):
        roles[f"{letter}_toe_from"], roles[f"{letter}_toe_tip"] = (names[f"{letter}_ankle"],
                                                                   names[f"{letter}_toe"])
    roles["head_from"], roles["head_top"] = names["neck"], names["head"]
    upright = _upright(names)
    # the file's OFFSET of Hips is not where its position channels put it (Bandai's are not)
    return Convention(
        "bandai-namco", _along_x(names, (1, 93, -450), root="joint_Root"), BANDAI_ALL,
        BANDAI_ALL, 30.0, "Hips", t_pose=None,
        pose=lambda i: merge(upright, limb_motion(i, roles, (-60.0, 60.0))),
        bones=_bones(roles))


# ----------------------------------------------------------- Reallusion Character Creator

def _character_creator():
    """A Character Creator figure: a T-pose at rest, 'CC_Base_' names, twist bones."""
    def side(letter, x):
        leg = (f"CC_Base_{letter}_Thigh", (9 * x, -6, 0), [
            (f"CC_Base_{letter}_Calf", (0, -42, 0), [
                (f"CC_Base_{letter}_Foot", (0, -41, 0), [
                    (f"CC_Base_{letter}_ToeBase", (0, -6, 12), [(END, (0, 0, 5), [])])]),
                (f"CC_Base_{letter}_CalfTwist01", (0, -20, 0), [(END, (0, -5, 0), [])])]),
            (f"CC_Base_{letter}_ThighTwist01", (0, -20, 0), [(END, (0, -5, 0), [])])])
        arm = (f"CC_Base_{letter}_Clavicle", (6 * x, 9, 0), [
            (f"CC_Base_{letter}_Upperarm", (10 * x, 0, 0), [
                (f"CC_Base_{letter}_Forearm", (27 * x, 0, 0), [
                    (f"CC_Base_{letter}_Hand", (25 * x, 0, 0), [(END, (8 * x, 0, 0), [])])]),
                (f"CC_Base_{letter}_UpperarmTwist01", (12 * x, 0, 0), [(END, (3 * x, 0, 0), [])])
            ])])
        return leg, arm
    left_leg, left_arm = side("L", 1)
    right_leg, right_arm = side("R", -1)
    spine = ("CC_Base_Waist", (0, 5, 0), [
        ("CC_Base_Spine01", (0, 10, 0), [
            ("CC_Base_Spine02", (0, 12, 0), [
                ("CC_Base_NeckTwist01", (0, 20, 0), [
                    ("CC_Base_NeckTwist02", (0, 5, 0), [
                        ("CC_Base_Head", (0, 5, 2), [(END, (0, 18, 0), [])])])]),
                left_arm, right_arm])])])
    skeleton = ("CC_Base_Hip", (0, 0, 0), [
        ("CC_Base_Pelvis", (0, 0, 0), [left_leg, right_leg]), spine])
    names = {"pelvis": "CC_Base_Pelvis", "mid_spine": "CC_Base_Spine02",
             "thorax": "CC_Base_NeckTwist01", "head": "CC_Base_Head",
             "head_from": "CC_Base_Head", "head_top": "CC_Base_Head_End",
             "spine": "CC_Base_Spine01", "neck": "CC_Base_NeckTwist02"}
    for side_name, letter in (("L", "left"), ("R", "right")):
        names.update({f"{letter}_hip": f"CC_Base_{side_name}_Thigh",
                      f"{letter}_knee": f"CC_Base_{side_name}_Calf",
                      f"{letter}_ankle": f"CC_Base_{side_name}_Foot",
                      f"{letter}_toe": f"CC_Base_{side_name}_ToeBase",
                      f"{letter}_toe_from": f"CC_Base_{side_name}_ToeBase",
                      f"{letter}_toe_tip": f"CC_Base_{side_name}_ToeBase_End",
                      f"{letter}_arm": f"CC_Base_{side_name}_Upperarm",
                      f"{letter}_elbow": f"CC_Base_{side_name}_Forearm",
                      f"{letter}_wrist": f"CC_Base_{side_name}_Hand"})
    # the root 'CC_Base_Hip' turns the whole figure; the bones start at 'CC_Base_Pelvis'
    moved = dict(names, pelvis="CC_Base_Hip")
    return Convention(
        "character-creator", skeleton, CMU_ROOT, CMU_JOINT, 60.0, "CC_Base_Hip", t_pose={},
        pose=lambda i: limb_motion(i, moved, (-60.0, 60.0)), bones=_bones(names))


CONVENTIONS = (_cmu_mb(), _cmu_max(), _mixamo(), _lafan(), _bandai(), _character_creator())
