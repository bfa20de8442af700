"""BVH motion files as input to the synthetic Human3.6M: a reader, forward kinematics, and a
retargeting onto Human3.6M's 32-joint skeleton (world, millimetres, z up, feet on the floor,
50 fps).

BVH conventions used here (Biovision's, as CMU, Mixamo and most exporters write them):
- A joint's frame is its parent's frame translated by OFFSET (plus the position channels, for
  the joints that have them, the root in practice) and then rotated by its rotation channels.
- The rotation of a joint is the product of the per-axis rotations in the order the CHANNELS
  line lists them (intrinsic): "Zrotation Xrotation Yrotation" means R = Rz @ Rx @ Ry.
- Angles are in degrees; the file's units and axes (usually y up) are kept by the reader and
  by `world_positions`; only `retarget_to_h36m` converts them.
"""
import dataclasses
import math
import re
from pathlib import Path

import numpy as np

from data_prep import h36m
from data_prep.h36m import J32
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
                translation[:, "XYZ".index(axis)] += frames[:, column]
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
    """(J, 3) positions of the rest pose: all channels zero (offsets only)."""
    zero_frame = np.zeros((1, sum(len(c) for c in motion.channels)))
    return _forward_kinematics(motion, zero_frame)[0]


# ------------------------------------------------------------------------------ retargeting

def _side_names(templates):
    """Candidate names for both sides: {side} becomes left/right, {s} becomes l/r. Returns
    {'Left': (...), 'Right': (...)}, lower case."""
    return {side: tuple(t.format(side=side.lower(), s=side[0].lower()) for t in templates)
            for side in ("Left", "Right")}


# Accepted BVH names (compared in lower case, any 'namespace:' prefix dropped) per Human3.6M
# joint of one side, first match wins. CMU ('LeftUpLeg', 'LThumb', 'LeftFingerBase'), Mixamo
# ('LeftHandThumb1', 'LeftToe_End'), Biovision ('LeftCollar', 'LeftUpArm', 'LeftLowLeg') and
# Poser/DAZ ('lThigh', 'lShin', 'lShldr') names. CMU's 'LHipJoint' is not the hip joint: it
# sits at the pelvis, and the hip joint is its child 'LeftUpLeg'.
SIDE_JOINT_NAMES = {
    "UpLeg": _side_names(("{side}upleg", "{side}hip", "{s}hip", "{side}thigh", "{s}thigh",
                          "{s}upleg", "{side}upperleg")),
    "Leg": _side_names(("{side}leg", "{side}lowleg", "{side}knee", "{s}knee", "{side}shin",
                        "{s}shin", "{s}lowleg", "{side}lowerleg")),
    "Foot": _side_names(("{side}foot", "{side}ankle", "{s}foot", "{s}ankle")),
    "ToeBase": _side_names(("{side}toebase", "{side}toe", "{side}toes", "{s}toe", "{s}toebase",
                            "{s}toes")),
    "Shoulder": _side_names(("{side}shoulder", "{side}collar", "{s}collar", "{side}clavicle",
                             "{s}clavicle")),
    "Arm": _side_names(("{side}arm", "{side}uparm", "{s}uparm", "{side}upperarm", "{s}shldr",
                        "{s}humerus")),
    "ForeArm": _side_names(("{side}forearm", "{side}lowarm", "{s}lowarm", "{side}lowerarm",
                            "{s}forearm", "{side}elbow", "{s}elbow")),
    "Hand": _side_names(("{side}hand", "{side}wrist", "{s}hand", "{s}wrist")),
    "HandThumb": _side_names(("{s}thumb", "{side}thumb", "{side}handthumb1", "{side}handthumb",
                              "{side}thumb1")),
    "WristEnd": _side_names(("{side}fingerbase", "{side}handmiddle1", "{side}handindex1",
                             "{side}handindex", "{side}fingers")),
}
NECK_NAMES = ("neck", "lowerneck", "neck1", "neck01")
HEAD_NAMES = ("head",)
HEAD_TOP_NAMES = ("headtop_end", "head_end", "headend", "headtop", "head_top")

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


def _normalised(name):
    """Lower-case name without a 'namespace:' prefix (Mixamo writes 'mixamorig:Hips')."""
    return name.rsplit(":", 1)[-1].strip().lower()


def _find_joint(motion, candidates):
    """Index of the first joint (in file order) whose name is the first matching candidate;
    None if none matches."""
    normalised = [_normalised(n) for n in motion.names]
    for candidate in candidates:
        if candidate in normalised:
            return normalised.index(candidate)
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


def h36m_sources(motion):
    """For each of the 32 Human3.6M joints, the index of the BVH joint it is placed at, or None
    where it is filled in. Raises BvhError naming the missing essential joints."""
    sources = [None] * len(h36m.JOINTS_32)
    bvh_root = 0  # the root is the pelvis in every convention
    sources[J32["Hip"]] = bvh_root
    for target, (kind, side) in _H36M_SIDE_JOINTS.items():
        sources[target] = _find_joint(motion, SIDE_JOINT_NAMES[kind][side])
    sources[J32["Neck"]] = _find_joint(motion, NECK_NAMES)
    sources[J32["Head"]] = _find_joint(motion, HEAD_NAMES)
    missing = [t for t in ESSENTIAL_H36M if sources[t] is None]
    if missing:
        raise BvhError(
            motion.path or "BVH motion", None, "cannot retarget to Human3.6M: no joint for "
            + "; ".join(f"{h36m.JOINTS_32[t]} (accepted: {', '.join(_accepted_names(t))})"
                        for t in missing))
    rest = rest_positions(motion)
    sources[J32["Spine1"]] = _mid_spine_joint(motion, rest, bvh_root, sources[J32["Neck"]])
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


def _accepted_names(target):
    if target in _H36M_SIDE_JOINTS:
        kind, side = _H36M_SIDE_JOINTS[target]
        return SIDE_JOINT_NAMES[kind][side]
    return NECK_NAMES if target == J32["Neck"] else HEAD_NAMES


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


def y_up_to_z_up(points):
    """BVH axes (y up, right-handed) to Human3.6M's (z up, right-handed): a +90 degree
    rotation about x, (x, y, z) -> (x, -z, y). A rotation, not a mirror, so left stays left."""
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[..., 0], -points[..., 2], points[..., 1]], axis=-1)


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


def _check_extent(path, positions, height, scale):
    """BvhError unless `positions` (file units) stay within MAX_RETARGETED_MM once scaled:
    a figure whose OFFSETs are all but zero scales its motion beyond any studio, up to
    overflow."""
    # Python floats: a product that overflows is inf, without numpy's warning on stderr
    extent = float(np.abs(positions).max()) * scale
    if not extent <= MAX_RETARGETED_MM:
        raise BvhError(path, None, f"its joints reach {extent:.3g} mm from the origin at "
                                   f"{scale:.3g} mm a unit (the figure is {height:.3g} units "
                                   f"tall): beyond {MAX_RETARGETED_MM:g} mm, no person's motion")


def retarget_to_h36m(motion, target_height_mm=None, fps=h36m.FPS):
    """(F', 32, 3) Human3.6M joint positions of a BVH motion: world millimetres, z up, the
    lowest joint of the whole sequence on the floor (z = 0), resampled to `fps`.

    target_height_mm sets the rest-pose standing height; without it the file's unit is
    guessed (see `millimetres_per_unit`). Horizontal position and heading are the file's.
    Raises BvhError naming the file for a motion that cannot be posed or scaled so.
    """
    path = motion.path or "BVH motion"
    if motion.frames.shape[0] == 0:
        raise BvhError(path, None, "no frames to retarget")
    positions = map_to_h36m(motion)
    height = standing_height(motion)
    if height <= 0:
        raise BvhError(path, None, "the rest pose has no height (its OFFSETs leave every "
                                   "joint at one level); cannot scale it")
    scale = millimetres_per_unit(height, target_height_mm)
    _check_extent(path, positions, height, scale)
    positions = y_up_to_z_up(positions) * scale
    positions = resample(positions, 1.0 / motion.frame_time, fps)
    positions[..., 2] -= positions[..., 2].min()
    return positions
