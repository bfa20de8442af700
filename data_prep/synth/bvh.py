"""BVH motion files as input to the synthetic Human3.6M: a reader, forward kinematics, and a
retargeting onto Human3.6M's 32-joint skeleton (world, millimetres, z up, feet on the floor,
50 fps) with the proportions of the subject it is rendered as.

BVH conventions used here (Biovision's, as CMU, Mixamo, LaFAN1 and most exporters write them):
- A joint's frame is its parent's frame translated by OFFSET and then rotated by its rotation
  channels. A joint with position channels (the root in most files; every joint in LaFAN1 and
  Bandai Namco's files) is translated by them instead of its OFFSET, along the axes they give,
  as Blender's and LaFAN1's own readers do: those files repeat the OFFSET there, and adding
  both would make every bone twice as long.
- The rotation of a joint is the product of the per-axis rotations in the order the CHANNELS
  line lists them (intrinsic): "Zrotation Xrotation Yrotation" means R = Rz @ Rx @ Ry.
- Angles are in degrees; the file's units and axes (y up, as every convention read here) are
  kept by the reader and by `world_positions`; only `retarget_to_h36m` converts them.

Joint names of the public motion capture releases read (see `h36m_sources`): CMU's two BVH
releases (MotionBuilder style: Hips, LHipJoint, LeftUpLeg, LeftLeg, LeftFoot, LeftToeBase,
LowerBack, Spine, Spine1, Neck, Neck1, Head, LeftShoulder, LeftArm, LeftForeArm, LeftHand;
3ds Max style: Hips, LeftHip, LeftKnee, LeftAnkle, LeftToe, Chest, Chest2, lowerneck, Neck,
Head, LeftCollar, LeftShoulder (the shoulder joint there), LeftElbow, LeftWrist), Mixamo's
(mixamorig:Hips, mixamorig:LeftUpLeg...), LaFAN1's (LeftToe, Spine2), Bandai Namco Research
Motion dataset's (joint_Root above Hips, UpperLeg_L, LowerLeg_L, Foot_L, Toes_L, Chest,
Shoulder_L, UpperArm_L, LowerArm_L, Hand_L), Reallusion Character Creator's as iClone exports
them (RL_BoneRoot above CC_Base_Hip, CC_Base_Pelvis, CC_Base_L_Thigh, CC_Base_L_Calf,
CC_Base_L_Foot, CC_Base_L_ToeBase, CC_Base_Spine01, CC_Base_NeckTwist01, CC_Base_Head,
CC_Base_L_Clavicle, CC_Base_L_Upperarm, CC_Base_L_Forearm, CC_Base_L_Hand), Biovision's and
Poser/DAZ's.
"""
import dataclasses
import math
import re
from pathlib import Path

import numpy as np

from data_prep import h36m
from data_prep.h36m import J32
from data_prep.synth.motion import BodyShape, bone_offsets
from data_prep.synth.skeleton import axis_rotation, forward_kinematics

ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
END_SITE_SUFFIX = "_End"

# Length units a BVH is commonly written in, as millimetres per unit. CMU's converted BVH use
# inches / 0.45 (the ASF files' length scale).
UNIT_CANDIDATES_MM = {"m": 1000.0, "cm": 10.0, "mm": 1.0, "inch": 25.4, "cmu": 25.4 / 0.45}
TYPICAL_HEIGHT_MM = 1700.0
# A guessed unit is trusted if it makes the figure this tall; otherwise the figure is scaled to
# TYPICAL_HEIGHT_MM.
PLAUSIBLE_HEIGHT_MM = (1200.0, 2300.0)
# The largest OFFSET or channel value read: a kilometre in millimetres, or 2,777 turns in
# degrees. Beyond it a value is a broken export, and its arithmetic would overflow.
MAX_VALUE = 1e6
# Seconds per frame read: 10,000 frames a second to one. Resampling a file to 50 fps makes up
# to 50 frames of each of its frames, and a longer frame time many more.
FRAME_TIME_RANGE = (1e-4, 1.0)
# Where the retargeted motion may reach, in millimetres from the origin: a unit scaled to a
# figure whose OFFSETs are all but zero can carry its positions that far.
MAX_RETARGETED_MM = 1e7


class BvhError(ValueError):
    """What is wrong with a BVH file, naming it and (where known, 1-based) the line: str()
    reads 'malformed BVH file <path>, line <n>: ...', `one_line` '<path>:<n>: ...'. It
    pickles back from a worker process as it is (its arguments are what __init__ takes)."""

    def __init__(self, path, line, message):
        super().__init__(path, line, message)
        self.path, self.line, self.message = path, line, message

    def __str__(self):
        where = f"{self.path}, line {self.line}" if self.line is not None else self.path
        return f"malformed BVH file {where}: {self.message}"

    @property
    def one_line(self):
        """'<path>:<line>: <message>' (or '<path>: <message>'), as compilers name a place."""
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


@dataclasses.dataclass(frozen=True)
class BvhMotion:
    """A parsed BVH file. End Sites are joints too (named '<parent>_End', no channels), so
    `names`, `parents`, `offsets` and `channels` all have one entry per joint, in file order
    (every parent precedes its children)."""
    names: tuple          # J joint names
    parents: tuple        # J parent indices, -1 for the root
    offsets: np.ndarray   # (J, 3) OFFSET of each joint in its parent's frame, file units
    channels: tuple       # J tuples of channel names, in file order
    frames: np.ndarray    # (F, total channels) values as in the file (degrees, file units)
    frame_time: float     # seconds per frame
    path: str = ""        # where it was read from, for error messages

    @property
    def channel_starts(self):
        """Column of each joint's first channel in `frames`."""
        return tuple(np.cumsum([0] + [len(c) for c in self.channels[:-1]]).tolist())


# ----------------------------------------------------------------------------------- reading

def read_bvh(path):
    """Parse a BVH file into a BvhMotion. Raises BvhError naming the file and line for
    malformed input: values that are not finite numbers within MAX_VALUE included, and a
    frame time outside FRAME_TIME_RANGE."""
    path = str(path)
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    motion_line = _find_motion_line(lines, path)
    names, parents, offsets, channels = _parse_hierarchy(lines[:motion_line], path)
    frames, frame_time = _parse_motion(lines, motion_line, sum(len(c) for c in channels), path)
    offsets = np.array(offsets, dtype=np.float64).reshape(-1, 3)
    return BvhMotion(tuple(names), tuple(parents), offsets, tuple(channels), frames, frame_time,
                     path)


def _error(path, line_number, message):
    """The BvhError for malformed input, naming file and (1-based) line."""
    return BvhError(path, line_number, message)


def _find_motion_line(lines, path):
    """Index of the line that starts the MOTION section."""
    for index, line in enumerate(lines):
        if line.strip().upper() == "MOTION":
            return index
    raise _error(path, None, "no MOTION section")


def _tokens_with_lines(lines):
    """Whitespace-separated tokens of the hierarchy with their 1-based line numbers; braces
    count as tokens even when glued to a word."""
    tokens = []
    for number, line in enumerate(lines, start=1):
        for token in re.findall(r"[{}]|[^\s{}]+", line):
            tokens.append((token, number))
    return tokens


def _parse_hierarchy(lines, path):
    """Joint names, parents, offsets and channel lists from the lines before MOTION."""
    tokens = _tokens_with_lines(lines)
    if not tokens or tokens[0][0].upper() != "HIERARCHY":
        raise _error(path, tokens[0][1] if tokens else 1, "expected HIERARCHY")
    names, parents, offsets, channels = [], [], [], []
    stack = []              # indices of the joints whose braces are open
    pending = None          # joint declared, its '{' not yet seen
    position = 1

    def take(count, line):
        nonlocal position
        if position + count > len(tokens):
            raise _error(path, line, "hierarchy ends early")
        values = tokens[position:position + count]
        position += count
        return values

    while position < len(tokens):
        word, line = tokens[position]
        position += 1
        keyword = word.upper()
        if keyword in ("ROOT", "JOINT"):
            if keyword == "ROOT" and (names or stack):
                raise _error(path, line, "more than one ROOT is not supported")
            if keyword == "JOINT" and not stack:
                raise _error(path, line, "JOINT outside of any joint")
            (name, _), = take(1, line)
            pending = _add_joint(names, parents, offsets, channels, name,
                                 stack[-1] if stack else -1)
        elif keyword == "END":
            (site, _), = take(1, line)
            if site.upper() != "SITE" or not stack:
                raise _error(path, line, f"unexpected 'End {site}'")
            parent = stack[-1]
            pending = _add_joint(names, parents, offsets, channels,
                                 _end_site_name(names, names[parent]), parent)
        elif word == "{":
            if pending is None:
                raise _error(path, line, "'{' without a joint")
            stack.append(pending)
            pending = None
        elif word == "}":
            if not stack:
                raise _error(path, line, "unbalanced '}'")
            stack.pop()
        elif keyword == "OFFSET":
            if not stack:
                raise _error(path, line, "OFFSET outside of any joint")
            offsets[stack[-1]] = [_value(value, path, at) for value, at in take(3, line)]
        elif keyword == "CHANNELS":
            if not stack:
                raise _error(path, line, "CHANNELS outside of any joint")
            (count, _), = take(1, line)
            if not count.isdigit():
                raise _error(path, line, f"channel count {count!r} is not a number")
            channels[stack[-1]] = _channel_list(take(int(count), line), path)
        else:
            raise _error(path, line, f"unexpected {word!r} in HIERARCHY")
    if stack or pending is not None:
        raise _error(path, len(lines), "unclosed '{' in HIERARCHY")
    if not names:
        raise _error(path, len(lines), "HIERARCHY has no ROOT")
    return names, parents, offsets, channels


def _add_joint(names, parents, offsets, channels, name, parent):
    """Append a joint with a zero offset and no channels; return its index."""
    names.append(name)
    parents.append(parent)
    offsets.append([0.0, 0.0, 0.0])
    channels.append(())
    return len(names) - 1


def _end_site_name(existing_names, parent_name):
    """'<parent>_End', numbered if the parent has several End Sites."""
    name = parent_name + END_SITE_SUFFIX
    number = 2
    while name in existing_names:
        name = f"{parent_name}{END_SITE_SUFFIX}{number}"
        number += 1
    return name


def _channel_list(tokens, path):
    """Validated channel names, in file order."""
    known = {c.upper(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}
    result = []
    for word, line in tokens:
        if word.upper() not in known:
            raise _error(path, line, f"unknown channel {word!r} (known: "
                                     f"{', '.join(POSITION_CHANNELS + ROTATION_CHANNELS)})")
        result.append(known[word.upper()])
    return tuple(result)


def _number(text, path, line):
    try:
        return float(text)
    except ValueError:
        raise _error(path, line, f"{text!r} is not a number") from None


def _value(text, path, line):
    """An OFFSET or channel value: a finite number within MAX_VALUE (float() also reads
    'nan', 'inf' and '1e308', which would make the poses NaN)."""
    value = _number(text, path, line)
    if not abs(value) <= MAX_VALUE:
        raise _error(path, line, f"value {text!r} is not a finite number within "
                                 f"+-{MAX_VALUE:g}")
    return value


def _frame_time(text, path, line):
    """The Frame Time: a number of seconds within FRAME_TIME_RANGE."""
    frame_time = _number(text, path, line)
    low, high = FRAME_TIME_RANGE
    if not low <= frame_time <= high:
        raise _error(path, line, f"frame time {text!r} is not a number of seconds from {low:g} "
                                 f"to {high:g} (10,000 frames a second to one)")
    return frame_time


def _parse_motion(lines, motion_line, channel_count, path):
    """(frames (F, channel_count), frame_time) from the lines after MOTION."""
    header = {}
    index = motion_line + 1
    for key in ("FRAMES:", "FRAME TIME:"):
        while index < len(lines) and not lines[index].strip():
            index += 1
        if index >= len(lines) or not lines[index].strip().upper().startswith(key):
            raise _error(path, min(index, len(lines) - 1) + 1, f"expected '{key.title()}' line")
        header[key] = (lines[index].strip()[len(key):].strip(), index + 1)
        index += 1
    count_text, count_line = header["FRAMES:"]
    if not count_text.isdigit():
        raise _error(path, count_line, f"frame count {count_text!r} is not a whole number")
    frame_time = _frame_time(header["FRAME TIME:"][0], path, header["FRAME TIME:"][1])
    rows = []
    for number, line in enumerate(lines[index:], start=index + 1):
        values = line.split()
        if not values:
            continue
        if len(values) != channel_count:
            raise _error(path, number, f"frame has {len(values)} values, the hierarchy declares "
                                       f"{channel_count} channels")
        rows.append([_value(v, path, number) for v in values])
    if len(rows) != int(count_text):
        raise _error(path, count_line, f"'Frames: {count_text}' but {len(rows)} frame lines")
    return np.array(rows, dtype=np.float64).reshape(len(rows), channel_count), frame_time


# --------------------------------------------------------------------------- kinematics

def _local_transforms(motion, frames):
    """Per joint: rotation (F, 3, 3) and translation (F, 3) relative to the parent's frame."""
    count = frames.shape[0]
    rotations, translations = [], []
    for offset, channels, start in zip(motion.offsets, motion.channels, motion.channel_starts):
        rotation = np.broadcast_to(np.eye(3), (count, 3, 3))
        translation = np.broadcast_to(offset, (count, 3)).copy()
        for column, channel in enumerate(channels, start=start):
            axis = channel[0]
            if channel.endswith("rotation"):
                # Later channels are applied first to the vector: R = R_first @ ... @ R_last.
                rotation = rotation @ axis_rotation(axis, np.deg2rad(frames[:, column]))
            else:
                # the joint's place in its parent's frame, instead of its OFFSET (module doc)
                translation[:, "XYZ".index(axis)] = frames[:, column]
        rotations.append(rotation)
        translations.append(translation)
    return rotations, translations


def _forward_kinematics(motion, frames):
    """World positions (F, J, 3) of all joints for the given channel values."""
    rotations, translations = _local_transforms(motion, frames)
    return forward_kinematics(motion.parents, rotations, translations)[0]


def world_positions(motion):
    """Forward kinematics: (F, J, 3) world positions of every joint (End Sites included), in
    the file's units and axes."""
    return _forward_kinematics(motion, motion.frames)


def rest_positions(motion):
    """(J, 3) positions of the rest pose: every joint at its OFFSET, no rotation. Position
    channels are left out too: set to zero they would put their joints on their parents."""
    no_rotation = [np.eye(3)[None]] * len(motion.names)
    offsets = [motion.offsets[0][None], *motion.offsets[1:]]
    return forward_kinematics(motion.parents, no_rotation, offsets)[0][0]


# ------------------------------------------------------------------------------ retargeting

def _side_names(templates):
    """Candidate names for both sides: {side} becomes left/right, {s} becomes l/r. Returns
    {'Left': (...), 'Right': (...)}, as `_normalised` writes names."""
    return {side: tuple(t.format(side=side.lower(), s=side[0].lower()) for t in templates)
            for side in ("Left", "Right")}


# Accepted BVH names (as `_normalised` writes them: lower case, no 'namespace:' prefix, no
# separators) per Human3.6M joint of one side, first match wins. CMU MotionBuilder style
# ('LeftUpLeg', 'LThumb', 'LeftFingerBase'), CMU 3ds Max style ('LeftHip', 'LeftKnee',
# 'LeftAnkle', 'LeftToe', 'LeftElbow', 'LeftWrist', 'LFingers'), Mixamo ('LeftHandThumb1'),
# LaFAN1 ('LeftToe'), Bandai Namco ('UpperLeg_L', 'Toes_L', 'Shoulder_L', 'LowerArm_L'),
# Reallusion Character Creator ('CC_Base_L_Calf', 'CC_Base_L_Upperarm'; see NAME_PREFIXES),
# Biovision ('LeftCollar', 'LeftUpArm', 'LeftLowLeg') and Poser/DAZ ('lThigh', 'lShin',
# 'lShldr') names. CMU's 'LHipJoint' is not the hip joint: it sits at the pelvis, and the hip
# joint is its child 'LeftUpLeg' (or 'LeftHip').
SIDE_JOINT_NAMES = {
    "UpLeg": _side_names(("{side}upleg", "{side}hip", "{s}hip", "{side}thigh", "{s}thigh",
                          "{s}upleg", "{side}upperleg", "upperleg{s}", "thigh{s}", "hip{s}")),
    "Leg": _side_names(("{side}leg", "{side}lowleg", "{side}knee", "{s}knee", "{side}shin",
                        "{s}shin", "{s}lowleg", "{side}lowerleg", "lowerleg{s}", "knee{s}",
                        "shin{s}", "{s}calf", "{side}calf")),
    "Foot": _side_names(("{side}foot", "{side}ankle", "{s}foot", "{s}ankle", "foot{s}",
                         "ankle{s}")),
    "ToeBase": _side_names(("{side}toebase", "{side}toe", "{side}toes", "{s}toe", "{s}toebase",
                            "{s}toes", "toes{s}", "toe{s}", "toebase{s}")),
    # the clavicle: a collar or clavicle first, as 3ds Max style files name their shoulder
    # joint '<Side>Shoulder' (see `_arm_source`)
    "Shoulder": _side_names(("{side}collar", "{s}collar", "{side}clavicle", "{s}clavicle",
                             "shoulder{s}", "clavicle{s}", "collar{s}", "{side}shoulder")),
    "Arm": _side_names(("{side}arm", "{side}uparm", "{s}uparm", "{side}upperarm", "{s}shldr",
                        "{s}humerus", "upperarm{s}", "{s}upperarm")),
    "ForeArm": _side_names(("{side}forearm", "{side}lowarm", "{s}lowarm", "{side}lowerarm",
                            "{s}forearm", "{side}elbow", "{s}elbow", "lowerarm{s}", "forearm{s}",
                            "elbow{s}")),
    "Hand": _side_names(("{side}hand", "{side}wrist", "{s}hand", "{s}wrist", "hand{s}",
                         "wrist{s}")),
    "HandThumb": _side_names(("{s}thumb", "{side}thumb", "{side}handthumb1", "{side}handthumb",
                              "{side}thumb1", "thumb{s}")),
    "WristEnd": _side_names(("{side}fingerbase", "{side}handmiddle1", "{side}handindex1",
                             "{side}handindex", "{side}fingers", "{s}fingers")),
}
# The pelvis; a file without one of these names has it at its root (Bandai Namco's files have
# a 'joint_Root' on the floor above their 'Hips').
PELVIS_NAMES = ("hips", "pelvis", "hip")
# The thorax (Human3.6M's Neck): CMU's 3ds Max style files have 'lowerneck' there and 'Neck'
# half way up the neck, the other conventions 'Neck' at the thorax (Character Creator's
# 'NeckTwist01').
NECK_NAMES = ("lowerneck", "neck", "neck1", "neck01", "necktwist01")
HEAD_NAMES = ("head",)
HEAD_TOP_NAMES = ("headtopend", "headend", "headtop")
# Characters dropped from names before comparing: 'UpperLeg_L', 'upperleg.L' and 'Upper Leg L'
# are one name.
NAME_SEPARATORS = re.compile(r"[\s_.\-]+")
# Rig prefixes dropped after the separators (as `_normalised` writes them): Reallusion
# Character Creator names every body joint 'CC_Base_<name>' ('CC_Base_L_Thigh' is 'lthigh').
NAME_PREFIXES = ("ccbase",)

# Human3.6M joint -> (kind, side) for the joints found by name: Human3.6M names them
# <side><kind> (RightUpLeg, LeftHandThumb...). 'Site' joints are the tip of the chain that
# starts at their Human3.6M parent's source.
_H36M_SIDE_JOINTS = {J32[side + kind]: (kind, side)
                     for side in ("Right", "Left") for kind in SIDE_JOINT_NAMES}
# Joints placed at a BVH End Site if the file has one, so an End Site without length has to be
# filled in instead. Checked in this order: a toe's check comes before its tip's, which looks
# at the toe's source.
_H36M_SITES = tuple(J32[name] for name in (
    "RightToeBase", "LeftToeBase", "RightToeSite", "LeftToeSite", "HeadSite", "LeftThumbSite",
    "LeftWristSite", "RightThumbSite", "RightWristSite"))
# Without these the figure cannot be posed; the rest are filled in when missing.
ESSENTIAL_H36M = tuple(J32[name] for name in (
    "RightUpLeg", "RightLeg", "RightFoot", "LeftUpLeg", "LeftLeg", "LeftFoot", "Neck", "Head",
    "LeftArm", "LeftForeArm", "LeftHand", "RightArm", "RightForeArm", "RightHand"))
# Fill-ins for joints without a counterpart: continue the Human3.6M parent's bone beyond the
# parent by this fraction of its length. A missing toe therefore lies a little below the ankle,
# as the bone direction is all a chain of joints tells.
FILL_FRACTION = {J32[name]: fraction for name, fraction in (
    ("RightToeBase", 0.15), ("LeftToeBase", 0.15), ("RightToeSite", 0.5), ("LeftToeSite", 0.5),
    ("HeadSite", 0.6), ("LeftHandThumb", 0.2), ("RightHandThumb", 0.2), ("LeftThumbSite", 0.5),
    ("RightThumbSite", 0.5), ("LeftWristEnd", 0.3), ("RightWristEnd", 0.3),
    ("LeftWristSite", 0.5), ("RightWristSite", 0.5))}
# Missing clavicles: the shoulders sit on the thorax (Neck), as they do in Human3.6M's own data.
FILL_AT_THORAX = (J32["LeftShoulder"], J32["RightShoulder"])
_COINCIDENT = 1e-6  # relative to the figure's size: closer joints count as the same point
# A frame is a T-pose when both arms (shoulder joint to wrist) lie within this angle of the
# horizontal line through the shoulder joints, pointing outwards. CMU's BVH releases start with
# one whose arms hang 5 degrees below it; arms lowered further than this are not a T-pose.
T_POSE_TOLERANCE_DEG = 20.0
# A frame is at rest when its lowest joint moves slower than this, in mm/s: a foot planted on
# the floor, not one swinging (metres a second) or landing. The floor is found at those frames.
REST_SPEED_MM_S = 100.0


def _normalised(name):
    """A name as compared: lower case, without a 'namespace:' prefix (Mixamo writes
    'mixamorig:Hips'), without separators (NAME_SEPARATORS) and without a rig prefix
    (NAME_PREFIXES)."""
    name = NAME_SEPARATORS.sub("", name.rsplit(":", 1)[-1]).lower()
    for prefix in NAME_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def _find_joint(motion, candidates, exclude=()):
    """Index of the first joint (in file order) whose name is the first matching candidate,
    leaving out the joints in `exclude`; None if none matches."""
    normalised = [_normalised(n) for n in motion.names]
    for candidate in candidates:
        for joint, name in enumerate(normalised):
            if name == candidate and joint not in exclude:
                return joint
    return None


def _children(motion, joint):
    return [j for j, p in enumerate(motion.parents) if p == joint]


def _chain_tip(motion, joint):
    """The last joint of the unbranched chain below `joint`; None if the chain branches or
    `joint` has no children (a tip cannot be told apart then)."""
    current = joint
    while True:
        children = _children(motion, current)
        if not children:
            return None if current == joint else current
        if len(children) > 1:
            return None
        current = children[0]


def _ancestors(motion, joint):
    """Ancestors of `joint`, nearest first, root last."""
    result = []
    while motion.parents[joint] >= 0:
        joint = motion.parents[joint]
        result.append(joint)
    return result


def _mid_spine_joint(motion, rest, hips, neck):
    """The BVH joint strictly between hips and neck closest to half way along the spine (by
    rest-pose bone length); None if there is none."""
    chain = [neck] + _ancestors(motion, neck)
    chain = chain[:chain.index(hips) + 1][::-1] if hips in chain else chain[::-1]
    lengths = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(rest[chain], axis=0),
                                                              axis=1))])
    between = [(abs(lengths[k] - lengths[-1] / 2), joint)
               for k, joint in enumerate(chain) if 0 < lengths[k] < lengths[-1]]
    return min(between)[1] if between else None


def _pelvis(motion):
    """The BVH joint at the pelvis: by name (PELVIS_NAMES), else the root."""
    pelvis = _find_joint(motion, PELVIS_NAMES)
    return 0 if pelvis is None else pelvis


def _arm_source(motion, side, elbow):
    """The BVH shoulder joint (Human3.6M's <side>Arm): by name, else the elbow's parent. 3ds
    Max style files name it '<Side>Shoulder', which other conventions give the clavicle."""
    arm = _find_joint(motion, SIDE_JOINT_NAMES["Arm"][side])
    if arm is None and elbow is not None and motion.parents[elbow] >= 0:
        arm = motion.parents[elbow]
    return arm


def h36m_sources(motion):
    """For each of the 32 Human3.6M joints, the index of the BVH joint it is placed at, or None
    where it is filled in. Raises BvhError naming the file, the essential joints missing with
    the names accepted for them, and the joints the file has."""
    sources = [None] * len(h36m.JOINTS_32)
    pelvis = _pelvis(motion)
    sources[J32["Hip"]] = pelvis
    for target, (kind, side) in _H36M_SIDE_JOINTS.items():
        if kind not in ("Arm", "Shoulder"):
            sources[target] = _find_joint(motion, SIDE_JOINT_NAMES[kind][side])
    for side in ("Right", "Left"):
        arm = _arm_source(motion, side, sources[J32[side + "ForeArm"]])
        sources[J32[side + "Arm"]] = arm
        sources[J32[side + "Shoulder"]] = _find_joint(
            motion, SIDE_JOINT_NAMES["Shoulder"][side], exclude=(arm,))
    sources[J32["Neck"]] = _find_joint(motion, NECK_NAMES)
    sources[J32["Head"]] = _find_joint(motion, HEAD_NAMES)
    missing = [t for t in ESSENTIAL_H36M if sources[t] is None]
    if missing:
        raise _unmapped_error(motion, missing)
    rest = rest_positions(motion)
    sources[J32["Spine1"]] = _mid_spine_joint(motion, rest, pelvis, sources[J32["Neck"]])
    for side in ("Right", "Left"):
        toe, foot = J32[side + "ToeBase"], J32[side + "Foot"]
        if sources[toe] is None:  # a foot's End Site (Biovision writes one) marks the toes
            sources[toe] = _chain_tip(motion, sources[foot])
    head_top = _find_joint(motion, HEAD_TOP_NAMES)
    sources[J32["HeadSite"]] = (head_top if head_top is not None
                                else _chain_tip(motion, sources[J32["Head"]]))
    for site in (J32[name] for name in ("RightToeSite", "LeftToeSite", "LeftThumbSite",
                                        "LeftWristSite", "RightThumbSite", "RightWristSite")):
        parent_source = sources[h36m.PARENTS_32[site]]
        sources[site] = None if parent_source is None else _chain_tip(motion, parent_source)
    return _drop_degenerate_sites(sources, rest)


def _unmapped_error(motion, missing):
    """The BvhError for a file without the essential joints `missing` (Human3.6M indices)."""
    found = [name for name, channels in zip(motion.names, motion.channels) if channels]
    wanted = "; ".join(f"{h36m.JOINTS_32[t]} ({_accepted_names(t)})" for t in missing)
    return BvhError(
        motion.path or "BVH motion", None,
        f"cannot map its skeleton to Human3.6M's: no joint for {wanted}. Its joints: "
        f"{', '.join(found) or 'none'}. Names are compared in lower case, without a "
        f"'namespace:' prefix, a 'CC_Base_' prefix, spaces, '_', '.' or '-'")


def _accepted_names(target):
    """The names accepted for an essential Human3.6M joint, as one text."""
    if target in _H36M_SIDE_JOINTS:
        kind, side = _H36M_SIDE_JOINTS[target]
        names = ", ".join(SIDE_JOINT_NAMES[kind][side])
        return names + (", or the elbow's parent" if kind == "Arm" else "")
    return ", ".join(NECK_NAMES if target == J32["Neck"] else HEAD_NAMES)


def _drop_degenerate_sites(sources, rest):
    """Sites whose BVH End Site has no length (some exporters write OFFSET 0 0 0) are filled in
    instead: a site on top of its parent says nothing about where the bone ends."""
    size = np.ptp(rest, axis=0).max()
    for site in _H36M_SITES:
        parent_source = sources[h36m.PARENTS_32[site]]
        if sources[site] is not None and parent_source is not None and np.linalg.norm(
                rest[sources[site]] - rest[parent_source]) <= _COINCIDENT * size:
            sources[site] = None
    return sources


def _fill_in(positions, target, size):
    """Place an unmapped joint (in place): continue its Human3.6M parent's bone, taken from the
    nearest ancestor that does not coincide with the parent, by FILL_FRACTION of its length."""
    parent = h36m.PARENTS_32[target]
    origin = h36m.PARENTS_32[parent]
    while origin >= 0 and np.all(np.linalg.norm(positions[:, parent] - positions[:, origin],
                                                axis=-1) <= _COINCIDENT * size):
        origin = h36m.PARENTS_32[origin]
    bone = positions[:, parent] - positions[:, origin] if origin >= 0 else 0.0
    positions[:, target] = positions[:, parent] + FILL_FRACTION[target] * bone


def map_to_h36m(motion):
    """(F, 32, 3) Human3.6M joints in the BVH's own units and axes: mapped joints are exactly
    the BVH joints' positions; the rest are filled in (see `h36m_sources`)."""
    bvh_positions = world_positions(motion)
    sources = h36m_sources(motion)
    return _assemble(bvh_positions, sources)


def _assemble(bvh_positions, sources):
    """Human3.6M joints from BVH joint positions (F, J, 3) and `h36m_sources`."""
    count = bvh_positions.shape[0]
    positions = np.zeros((count, len(h36m.JOINTS_32), 3))
    for target, source in enumerate(sources):
        if source is not None:
            positions[:, target] = bvh_positions[:, source]
    pelvis, spine, mid_spine, neck = J32["Hip"], J32["Spine"], J32["Spine1"], J32["Neck"]
    if sources[mid_spine] is None:  # no joint between pelvis and neck: half way up the spine
        positions[:, mid_spine] = (positions[:, pelvis] + positions[:, neck]) / 2
    # Human3.6M's Spine is not evaluated; half way between pelvis and mid-spine.
    positions[:, spine] = (positions[:, pelvis] + positions[:, mid_spine]) / 2
    for shoulder in FILL_AT_THORAX:
        if sources[shoulder] is None:
            positions[:, shoulder] = positions[:, neck]
    size = max(np.ptp(bvh_positions.reshape(-1, 3), axis=0).max(), 1e-12)
    # In Human3.6M order every parent precedes its children, so fill-ins can chain.
    for target, source in enumerate(sources):
        if source is None and target in FILL_FRACTION:
            _fill_in(positions, target, size)
    return positions


def _unit(vectors):
    """Vectors (..., 3) scaled to length 1; zero vectors stay zero."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def t_pose_frames(positions):
    """(F,) True for the frames of Human3.6M joints (F, 32, 3; y up, as read) whose arms are
    stretched out sideways: shoulder joint to wrist within T_POSE_TOLERANCE_DEG of the
    horizontal line through both shoulder joints, pointing away from the body."""
    left_arm, right_arm = positions[:, J32["LeftArm"]], positions[:, J32["RightArm"]]
    across = left_arm - right_arm
    across[:, 1] = 0.0                   # the horizontal direction from right to left
    across = _unit(across)
    left = _unit(positions[:, J32["LeftHand"]] - left_arm)
    right = _unit(positions[:, J32["RightHand"]] - right_arm)
    cosine = math.cos(math.radians(T_POSE_TOLERANCE_DEG))
    return (np.sum(left * across, -1) > cosine) & (np.sum(right * -across, -1) > cosine)


def starts_with_t_pose(positions):
    """Whether frame 0 of Human3.6M joints (F, 32, 3; y up) is a T-pose put before the motion,
    as CMU's BVH releases have: frame 0 is a T-pose (`t_pose_frames`) and frame 1 is not. A
    clip whose actor holds the arms out at its start keeps its first frame."""
    if len(positions) < 2:
        return False
    first, second = t_pose_frames(positions[:2])
    return bool(first and not second)


def y_up_to_z_up(points):
    """BVH axes (y up, right-handed) to Human3.6M's (z up, right-handed): a +90 degree
    rotation about x, (x, y, z) -> (x, -z, y). A rotation, not a mirror, so left stays left."""
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[..., 0], -points[..., 2], points[..., 1]], axis=-1)


# ---------------------------------------------------------------- the subject's proportions

def body_rest_pose(body):
    """(32, 3) joints of `body` standing in its rest pose (motion.bone_offsets, no rotation),
    pelvis at the origin, z up."""
    offsets = bone_offsets(body)
    rest = np.zeros((len(h36m.JOINTS_32), 3))
    for joint in range(1, len(rest)):      # parents precede their children
        rest[joint] = rest[h36m.PARENTS_32[joint]] + offsets[joint]
    return rest


def coincident_joints(rest):
    """For each of the 32 joints of a rest pose, the first joint in JOINTS_32 order at the
    same place: itself, or the joint it duplicates (Spine the pelvis, the clavicle joints the
    thorax, HandThumb and WristEnd the wrist, in Human3.6M's data and in motion.py's bodies)."""
    size = np.ptp(rest, axis=0).max()
    return [int(np.argmax(np.linalg.norm(rest[:joint + 1] - rest[joint], axis=-1)
                          <= _COINCIDENT * size)) for joint in range(len(rest))]


def leg_length(positions):
    """Hip joint to knee to ankle, the mean of both legs, median over the frames of Human3.6M
    joints (F, 32, 3); in their unit. The median: a frame or two of a bad capture does not
    change it."""
    sides = []
    for side in ("Right", "Left"):
        hip, knee, ankle = (positions[:, J32[side + part]] for part in ("UpLeg", "Leg", "Foot"))
        sides.append(np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1))
    return float(np.median((sides[0] + sides[1]) / 2))


# The joints placed by the trunk's frames rather than by their bones' directions: skeletons
# put them where their own conventions say (CMU's hip joints sit below and in front of the
# pelvis, its shoulders above the thorax, its spine bends back), and a bone direction copied
# from there would carry that convention onto the body, whose hips and shoulders lie level
# beside its pelvis and thorax as in Human3.6M's data. {joint: (frame, origin joint)}: the
# pelvis frame places the hips and the trunk (the spine on the line to the thorax), the chest
# frame the shoulders, the head frame the head.
FRAME_PLACED = {
    J32["RightUpLeg"]: ("pelvis", J32["Hip"]), J32["LeftUpLeg"]: ("pelvis", J32["Hip"]),
    J32["Spine1"]: ("pelvis", J32["Hip"]), J32["Neck"]: ("pelvis", J32["Hip"]),
    J32["RightArm"]: ("chest", J32["Neck"]), J32["LeftArm"]: ("chest", J32["Neck"]),
    J32["Head"]: ("head", J32["Neck"]), J32["HeadSite"]: ("head", J32["Neck"]),
}
# each frame's axes: the across axis (right to left joint) and the up axis (from, to)
FRAME_AXES = {
    "pelvis": ((J32["RightUpLeg"], J32["LeftUpLeg"]), (J32["Hip"], J32["Neck"])),
    "chest": ((J32["RightArm"], J32["LeftArm"]), (J32["Hip"], J32["Neck"])),
    "head": ((J32["RightArm"], J32["LeftArm"]), (J32["Neck"], J32["HeadSite"])),
}


def trunk_frames(points):
    """{frame: rotations (..., 3, 3)} of FRAME_AXES for joints `points` (..., 32, 3): columns
    the across axis (made square to up), up x across, and up."""
    frames = {}
    for name, ((right, left), (low, high)) in FRAME_AXES.items():
        up = _unit(points[..., high, :] - points[..., low, :])
        across = points[..., left, :] - points[..., right, :]
        across = _unit(across - np.sum(across * up, axis=-1, keepdims=True) * up)
        frames[name] = np.stack([across, np.cross(up, across), up], axis=-1)
    return frames


def transfer_to_body(positions, body, root_scale):
    """(F, 32, 3) joints of `body` moving as Human3.6M joints `positions` (F, 32, 3; z up):
    the pelvis at root_scale times its place in `positions`, the body's own proportions
    (motion.bone_offsets) everywhere else.

    The trunk (FRAME_PLACED: hips, spine, thorax, shoulders, head) turns and leans with the
    source's pelvis, chest and head frames (`trunk_frames`: the hip and shoulder lines, the
    pelvis-to-thorax and thorax-to-head-top directions), each joint at its rest offset from
    its frame's origin turned as the source's frame is turned from the body's rest frame. Each
    limb bone (thigh, shin, foot, upper arm, forearm, hand) keeps its length and points as the
    source's does, frame by frame: a bone points from the source joint at the place of the
    body's parent joint to the source joint, and where the body's parent duplicates another
    joint (`coincident_joints`), from that one. Joints that duplicate another stay on it. A
    source limb bone without length (two source joints at one place) takes the body's rest
    direction, an assumption: it tells none."""
    rest = body_rest_pose(body)
    same_as = coincident_joints(rest)
    size = np.ptp(positions.reshape(-1, 3), axis=0).max()
    turns = {name: frame @ np.swapaxes(rest_frame, -1, -2)   # source frame times rest's inverse
             for (name, frame), rest_frame in zip(trunk_frames(positions).items(),
                                                  trunk_frames(rest).values())}
    result = np.empty_like(positions)
    result[:, 0] = root_scale * positions[:, 0]
    for joint in range(1, len(rest)):
        parent = h36m.PARENTS_32[joint]
        if same_as[joint] != joint:
            result[:, joint] = result[:, same_as[joint]]
            continue
        if joint in FRAME_PLACED:
            frame, origin = FRAME_PLACED[joint]
            result[:, joint] = result[:, origin] + turns[frame] @ (rest[joint] - rest[origin])
            continue
        bone = rest[joint] - rest[parent]
        length = np.linalg.norm(bone)
        source = positions[:, joint] - positions[:, same_as[parent]]
        direction = _unit(source)
        direction[np.linalg.norm(source, axis=-1) <= _COINCIDENT * size] = bone / length
        result[:, joint] = result[:, parent] + length * direction
    return result


# ------------------------------------------------------------------ the source's proportions

def standing_height(motion):
    """Height of the rest pose of the Human3.6M joints (lowest foot point to head top) along
    the BVH's y axis, in file units."""
    rest = _assemble(rest_positions(motion)[None], h36m_sources(motion))[0]
    return float(np.ptp(rest[:, 1]))


def millimetres_per_unit(height_in_units, target_height_mm=None):
    """Scale from file units to millimetres. With target_height_mm: exactly that height.
    Otherwise the common unit (m, cm, mm, inch, CMU's inch/0.45) that makes the figure closest
    to TYPICAL_HEIGHT_MM, if that height is plausible; else scale to TYPICAL_HEIGHT_MM."""
    if height_in_units <= 0:
        raise ValueError("the BVH rest pose has no height; cannot scale it")
    if target_height_mm is not None:
        if target_height_mm <= 0:
            raise ValueError(f"target_height_mm must be positive, got {target_height_mm}")
        return target_height_mm / height_in_units
    scale = min(UNIT_CANDIDATES_MM.values(),
                key=lambda s: abs(math.log(s * height_in_units / TYPICAL_HEIGHT_MM)))
    low, high = PLAUSIBLE_HEIGHT_MM
    if low <= scale * height_in_units <= high:
        return scale
    return TYPICAL_HEIGHT_MM / height_in_units


# --------------------------------------------------------------------------- the whole way

def resample(positions, source_fps, target_fps):
    """Linear interpolation of (F, ...) positions sampled at source_fps onto target_fps,
    starting at the first frame and never extrapolating past the last."""
    if target_fps <= 0 or source_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {source_fps} -> {target_fps}")
    count = positions.shape[0]
    duration = (count - 1) / source_fps
    # The small tolerance keeps the last frame when duration * fps is whole up to rounding.
    target_count = int(math.floor(duration * target_fps + 1e-6)) + 1
    source_index = np.arange(target_count) * (source_fps / target_fps)
    before = np.minimum(np.floor(source_index).astype(int), count - 1)
    after = np.minimum(before + 1, count - 1)
    weight = (source_index - before).reshape((-1,) + (1,) * (positions.ndim - 1))
    return (1 - weight) * positions[before] + weight * positions[after]


def floor_height(positions, fps):
    """Height of the floor under joints (F, 32, 3; mm, z up) sampled at `fps`: the median of
    the lowest point of the frames at rest (REST_SPEED_MM_S), where a foot stands on the floor;
    the clip's lowest point where no frame is at rest. One height for the whole clip, as the
    procedural motion's floor: feet leave it in a jump. Not the clip's lowest point: a capture
    whose foot dips below the floor once (CMU's 01_01 does, by 9 cm) would lift every other
    frame off it."""
    lowest = positions[..., 2].min(axis=-1)
    if len(positions) < 2:
        return float(lowest.min())
    lowest_joint = positions[..., 2].argmin(axis=-1)
    velocity = np.gradient(positions, axis=0)[np.arange(len(positions)), lowest_joint] * fps
    at_rest = np.linalg.norm(velocity, axis=-1) < REST_SPEED_MM_S
    return float(np.median(lowest[at_rest])) if at_rest.any() else float(lowest.min())


def _check_extent(path, positions, scale, why):
    """BvhError unless `positions` (file units) stay within MAX_RETARGETED_MM once scaled by
    `scale` mm a unit (`why` says where the scale comes from): a figure whose OFFSETs are all
    but zero scales its motion beyond any studio, up to overflow."""
    # Python floats: a product that overflows is inf, without numpy's warning on stderr
    extent = float(np.abs(positions).max()) * scale
    if not extent <= MAX_RETARGETED_MM:
        raise BvhError(path, None, f"its joints reach {extent:.3g} mm from the origin at "
                                   f"{scale:.3g} mm a unit ({why}): beyond "
                                   f"{MAX_RETARGETED_MM:g} mm, no person's motion")


def _with_source_proportions(path, motion, positions, target_height_mm):
    """Source positions (z up, file units) in millimetres, the file's proportions kept."""
    height = standing_height(motion)
    if height <= 0:
        raise BvhError(path, None, "the rest pose has no height (its OFFSETs leave every "
                                   "joint at one level); cannot scale it")
    scale = millimetres_per_unit(height, target_height_mm)
    _check_extent(path, positions, scale, f"the figure is {height:.3g} units tall")
    return positions * scale


def _on_body(path, positions, body):
    """Source positions (z up, file units) transferred onto `body`, its pelvis's path scaled
    by the ratio of the body's leg length to the source's."""
    source_leg = leg_length(positions)
    if not source_leg > 0:
        raise BvhError(path, None, "its legs have no length (hip joint, knee and ankle at one "
                                   "point); cannot scale its motion to a person's")
    # Python floats: a ratio that overflows is inf, without numpy's warning; the check below
    # refuses it
    ratio = float(body.leg) / source_leg
    _check_extent(path, positions[:, 0], ratio,
                  f"the legs are {source_leg:.3g} units long, the subject's {body.leg:.0f} mm")
    return transfer_to_body(positions, body, ratio)


def retarget_to_h36m(motion, body=None, fps=h36m.FPS, source_proportions=False,
                     target_height_mm=None):
    """(F', 32, 3) Human3.6M joint positions of a BVH motion: world millimetres, z up, the
    floor at z = 0 (`floor_height`), resampled to `fps`, a first T-pose frame dropped
    (`starts_with_t_pose`).

    The motion is transferred onto `body` (a motion.BodyShape; its default shape without one):
    each bone keeps the body's length and points as the source's does, frame by frame, and the
    pelvis moves as the source's, scaled by the ratio of the body's leg length to the
    source's (`transfer_to_body`).

    source_proportions=True keeps the file's skeleton instead (the BVH joints' own places):
    target_height_mm sets its rest-pose standing height; without it the file's unit is guessed
    (`millimetres_per_unit`). Horizontal position and heading are the file's either way.
    Raises BvhError naming the file for a motion that cannot be posed or scaled so.
    """
    path = motion.path or "BVH motion"
    if target_height_mm is not None and not source_proportions:
        raise ValueError("target_height_mm sets the height of the file's own skeleton: it "
                         "needs source_proportions=True (the body sets the height otherwise)")
    if motion.frames.shape[0] == 0:
        raise BvhError(path, None, "no frames to retarget")
    positions = map_to_h36m(motion)
    if starts_with_t_pose(positions):
        positions = positions[1:]
    positions = resample(y_up_to_z_up(positions), 1.0 / motion.frame_time, fps)
    if source_proportions:
        positions = _with_source_proportions(path, motion, positions, target_height_mm)
    else:
        positions = _on_body(path, positions, BodyShape() if body is None else body)
    positions[..., 2] -= floor_height(positions, fps)
    return positions
