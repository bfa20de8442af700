"""Procedural 3D motion of the synthetic Human3.6M: world joint positions of the 32-joint skeleton.

Every sequence is built the same way:
  1. an action function plans the motion: pelvis path and facing (yaw), spine and head angles,
     world targets for the ankles (feet planted on the floor or swinging), and targets for the
     wrists in the pelvis frame (hand at the mouth, pointing, waving, hanging and swinging...);
  2. two-bone inverse kinematics turns the ankle and wrist targets into hip/knee and
     shoulder/elbow rotations, with the knee bending only backwards and the elbow only one way;
  3. forward kinematics over PARENTS_32 places the joints, so every bone keeps exactly the
     body's length in every frame.
World frame: millimetres, z up, floor at z = 0. Body frame: x forward, y left, z up.
"""
import dataclasses

import numpy as np

from data_prep.h36m import ACTIONS, J32, PARENTS_32
from data_prep.synth import stable_seed
from data_prep.synth.skeleton import forward_kinematics, rot_x, rot_y, rot_z

RIGHT, LEFT = 0, 1          # index of a side in the (n, 2, ...) arrays of a plan
SIDE_SIGN = (-1.0, 1.0)     # y sign of each side in the body frame (y points left)
SIDE_NAMES = ("Right", "Left")  # how JOINTS_32 names each side
ROOT_HALF = 1300.0          # mm: the pelvis stays within +-1.3 m so that the whole body,
                            # arms stretched out, stays in the +-1.8 m capture area
MIN_ELBOW_INTERIOR = np.radians(30.0)   # a fully bent elbow still leaves this angle
MIN_KNEE_INTERIOR = np.radians(35.0)
NECK_DIRECTION = np.array([0.4, 0.0, np.sqrt(1 - 0.4 ** 2)])
HEAD_DIRECTION = np.array([-0.3, 0.0, np.sqrt(1 - 0.3 ** 2)])
SPINE_ANGLES = ("lean", "side", "twist", "chest_lean", "chest_twist", "head_yaw", "head_pitch")


@dataclasses.dataclass(frozen=True)
class BodyShape:
    """Segment lengths (mm) of the 32-joint skeleton; the rest pose stands upright, arms down."""
    hip_half_width: float = 130.0   # pelvis centre (Hip) sideways to each hip joint (UpLeg)
    thigh: float = 445.0            # hip joint (UpLeg) to knee (Leg)
    shin: float = 440.0             # knee (Leg) to ankle (Foot)
    ankle_height: float = 75.0      # ankle above the floor when the foot is flat
    foot: float = 150.0             # ankle (Foot) to ball of the foot (ToeBase), forward and down
    toe: float = 65.0               # ball of the foot (ToeBase) to the toe tip (ToeSite)
    lower_spine: float = 235.0      # pelvis (Hip/Spine) up to mid-spine (Spine1)
    upper_spine: float = 250.0      # mid-spine (Spine1) up to the neck base (Neck), where the
                                    # clavicle joints (Left/RightShoulder) also sit
    neck: float = 115.0             # neck base (Neck) up to the head centre (Head)
    head: float = 115.0             # head centre (Head) up to the top of the head (HeadSite)
    shoulder_offset: float = 150.0  # neck base (Shoulder) sideways to each shoulder joint (Arm)
    upper_arm: float = 280.0        # shoulder (Arm) to elbow (ForeArm)
    forearm: float = 250.0          # elbow (ForeArm) to wrist (Hand)
    hand: float = 90.0              # wrist (WristEnd) to the finger tips (WristSite)
    thumb: float = 45.0             # wrist (HandThumb) to the thumb tip (ThumbSite)

    @property
    def leg(self):
        """Hip joint to ankle with the knee straight."""
        return self.thigh + self.shin

    @property
    def arm(self):
        """Shoulder to wrist with the elbow straight."""
        return self.upper_arm + self.forearm

    @property
    def standing_height(self):
        """Floor to the top of the head, standing straight."""
        return (self.ankle_height + self.leg + self.lower_spine + self.upper_spine
                + self.neck * NECK_DIRECTION[2] + self.head * HEAD_DIRECTION[2])


def body_for_subject(subject):
    """The body of a subject: the same for a name in every process (seeded from SHA-256 of the
    name), adult proportions 1.6-1.82 m tall, each segment varied by a few percent more."""
    rng = np.random.default_rng(stable_seed("body", subject))
    scale = rng.uniform(0.96, 1.085)
    base = BodyShape()
    lengths = {field.name: getattr(base, field.name) * scale * rng.uniform(0.97, 1.03)
               for field in dataclasses.fields(BodyShape)}
    return BodyShape(**lengths)


def side_joints(side, *parts):
    """Indices of one side's joints by their JOINTS_32 names without the side, e.g.
    side_joints(LEFT, "UpLeg", "Leg") for the left hip joint and knee."""
    return tuple(J32[SIDE_NAMES[side] + part] for part in parts)


def bone_offsets(body):
    """(32, 3) offset of each joint from its parent, in the parent's frame of the rest pose;
    its norm is the bone's length (0 for the duplicate joints of the real skeleton)."""
    offsets = np.zeros((32, 3))
    ball_forward = np.sqrt(max(body.foot ** 2 - body.ankle_height ** 2, 1.0))
    for side in (RIGHT, LEFT):
        sign = SIDE_SIGN[side]
        up_leg, knee, ankle, ball, tip = side_joints(side, "UpLeg", "Leg", "Foot", "ToeBase",
                                                     "ToeSite")
        offsets[up_leg] = (0.0, sign * body.hip_half_width, 0.0)
        offsets[knee] = (0.0, 0.0, -body.thigh)
        offsets[ankle] = (0.0, 0.0, -body.shin)
        offsets[ball] = (ball_forward, 0.0, -body.ankle_height)
        offsets[tip] = (body.toe, 0.0, 0.0)
    # Spine sits on the pelvis as in the real data; it carries the lower-back rotation
    offsets[J32["Spine1"]] = (0.0, 0.0, body.lower_spine)
    offsets[J32["Neck"]] = (0.0, 0.0, body.upper_spine)
    # the head centre sits forward of the neck base and the top of the head back over it, so
    # that turning the head moves both
    offsets[J32["Head"]] = body.neck * NECK_DIRECTION
    offsets[J32["HeadSite"]] = body.head * HEAD_DIRECTION
    thumb_direction = np.array([0.5, 0.0, -0.866])
    for side in (LEFT, RIGHT):
        sign = SIDE_SIGN[side]
        clavicle, shoulder, elbow, wrist, thumb_tip, finger_tip = side_joints(
            side, "Shoulder", "Arm", "ForeArm", "Hand", "ThumbSite", "WristSite")
        offsets[clavicle] = (0.0, 0.0, body.upper_spine)
        offsets[shoulder] = (0.0, sign * body.shoulder_offset, 0.0)
        offsets[elbow] = (0.0, 0.0, -body.upper_arm)
        offsets[wrist] = (0.0, 0.0, -body.forearm)
        # HandThumb and WristEnd duplicate the wrist, their sites lie a few cm beyond it
        offsets[thumb_tip] = body.thumb * thumb_direction
        offsets[finger_tip] = (0.0, 0.0, -body.hand)
    return offsets


# ---------------------------------------------------------------- limbs

def two_bone_ik(target, upper, lower, pole, min_interior):
    """Rotations of a limb's root joint (n, 3, 3) and middle joint (n, 3, 3) that put the limb's
    end at target (n, 3), given relative to the root joint in its parent's frame. The rest
    limb points along -z; the middle joint bends about its own y axis, always the same way,
    and sits on the side of `pole` (n, 3): forward for knees, backward/outward for elbows.
    Targets out of reach are pulled in along their direction."""
    distance = np.linalg.norm(target, axis=-1, keepdims=True)
    direction = target / np.maximum(distance, 1e-9)
    shortest = np.sqrt(upper ** 2 + lower ** 2 - 2 * upper * lower * np.cos(min_interior))
    distance = np.clip(distance, shortest, upper + lower)
    cos_root = np.clip((upper ** 2 + distance ** 2 - lower ** 2) / (2 * upper * distance), -1, 1)
    sin_root = np.sqrt(1 - cos_root ** 2)
    pole_across = pole - np.sum(pole * direction, -1, keepdims=True) * direction
    # a pole along the limb gives no side: fall back on any direction across it
    fallback = np.cross(direction, [0.0, 1.0, 0.0]) + np.cross(direction, [1.0, 0.0, 0.0]) * 1e-3
    degenerate = np.linalg.norm(pole_across, axis=-1, keepdims=True) < 1e-6
    pole_across = np.where(degenerate, fallback, pole_across)
    pole_across /= np.linalg.norm(pole_across, axis=-1, keepdims=True)
    upper_direction = cos_root * direction + sin_root * pole_across
    bend_direction = sin_root * direction - cos_root * pole_across
    end = direction * distance
    lower_direction = (end - upper * upper_direction) / lower
    bend = np.arctan2(np.sum(lower_direction * bend_direction, -1),
                      np.sum(lower_direction * upper_direction, -1))
    z_axis = -upper_direction
    root_rotation = np.stack([bend_direction, np.cross(z_axis, bend_direction), z_axis], -1)
    return root_rotation, rot_y(-bend)


# ---------------------------------------------------------------- smooth signals

def smoothstep(x):
    """0 below 0, 1 above 1, a smooth S in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def smooth_noise(rng, n, fps, knot_s, count=1):
    """(n, count) values in [-1, 1] that wander smoothly, a new random value every knot_s."""
    knots = rng.uniform(-1, 1, size=(int(n / fps / knot_s) + 3, count))
    position = np.arange(n) / fps / knot_s + rng.uniform(0, 1)
    index = position.astype(int)
    weight = smoothstep(position - index)[:, None]
    return knots[index] * (1 - weight) + knots[index + 1] * weight


def hold_and_blend(rng, n, fps, hold_s, blend_s, start_on=False):
    """(n,) a 0/1 switch that holds for a random time in hold_s (pairs: (off range, on range)),
    then blends smoothly to the other state over blend_s; used for episodes such as bringing
    a hand to the mouth or sitting down."""
    times, state, t = [0.0], bool(start_on), 0.0
    states = [float(state)]
    while t < n / fps:
        t += rng.uniform(*hold_s[int(state)]) + blend_s
        state = not state
        times.append(t)
        states.append(float(state))
    times, states = np.array(times), np.array(states)
    clock = np.arange(n) / fps
    segment = np.searchsorted(times, clock, side="right") - 1
    into_blend = clock - (times[segment + 1] - blend_s)
    weight = smoothstep(into_blend / blend_s)
    return states[segment] * (1 - weight) + states[segment + 1] * weight


def unit(vector):
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector, axis=-1, keepdims=True)


# ---------------------------------------------------------------- the plan of a motion

@dataclasses.dataclass
class MotionPlan:
    """What an action decides, frame by frame; sides are indexed [RIGHT, LEFT]."""
    root: np.ndarray          # (n, 3) world pelvis position
    yaw: np.ndarray           # (n,) pelvis facing, radians from world +x (the pelvis stays level)
    spine: dict               # (n,) radians by SPINE_ANGLES name: lower back bow/side/twist,
                              # upper back bow/twist, head turn and nod
    ankles: np.ndarray        # (n, 2, 3) world ankle targets
    foot_yaw: np.ndarray      # (n, 2) world heading of each foot
    foot_pitch: np.ndarray    # (n, 2) toes raised (dorsiflexion), radians
    wrists: np.ndarray = None       # (n, 2, 3) wrist targets in the pelvis frame
    elbow_poles: np.ndarray = None  # (n, 2, 3) where the elbows point, pelvis frame


def zero_spine(n):
    return {name: np.zeros(n) for name in SPINE_ANGLES}


def spine_rotations(spine):
    """Local rotations of Spine, Spine1 and Neck (lower back, upper back, head) from the
    plan's angles."""
    lower = rot_z(spine["twist"]) @ rot_y(spine["lean"]) @ rot_x(spine["side"])
    upper = rot_z(spine["chest_twist"]) @ rot_y(spine["chest_lean"])
    neck = rot_z(spine["head_yaw"]) @ rot_y(spine["head_pitch"])
    return lower, upper, neck


def identity_rotations(n):
    return np.broadcast_to(np.eye(3), (n, 32, 3, 3)).copy()


def set_spine(local, spine):
    """Put the plan's spine angles into local rotations (n, 32, 3, 3), in place."""
    local[:, J32["Spine"]], local[:, J32["Spine1"]], local[:, J32["Neck"]] = spine_rotations(spine)


def pose_body(offsets, local, root):
    """World positions (n, 32, 3) and rotations (n, 32, 3, 3) of the body from bone_offsets,
    local rotations (n, 32, 3, 3) and the pelvis position (n, 3)."""
    return forward_kinematics(PARENTS_32, local.swapaxes(0, 1), [root, *offsets[1:]])


def trunk_landmarks(body, spine):
    """Places on the trunk in the pelvis frame (pelvis at the origin, facing +x), for aiming
    the hands: shoulders (n, 2, 3), hips (2, 3), head centre, mouth, ears (n, 2, 3), a point
    in front of the eyes, and the chest and head rotations (n, 3, 3)."""
    n = len(spine["lean"])
    local = identity_rotations(n)
    set_spine(local, spine)
    positions, rotations = pose_body(bone_offsets(body), local, np.zeros((n, 3)))
    # the head turns with the Neck joint, whose child Head is the head's centre
    head, head_rotation = positions[:, J32["Head"]], rotations[:, J32["Neck"]]

    def in_head(x, y, z):
        """A point given in the head's frame, relative to its centre."""
        return head + head_rotation @ np.array([x, y, z])

    return {
        "shoulders": positions[:, [J32["RightArm"], J32["LeftArm"]]],
        "hips": np.array([[0.0, -body.hip_half_width, 0.0], [0.0, body.hip_half_width, 0.0]]),
        "head": head,
        "mouth": in_head(0.75 * body.head, 0.0, -0.45 * body.head),
        "ears": np.stack([in_head(0.0, -0.7 * body.head, -0.1 * body.head),
                          in_head(0.0, 0.7 * body.head, -0.1 * body.head)], 1),
        "before_eyes": in_head(2.0 * body.head, 0.0, 0.0),
        "chest": positions[:, J32["Neck"]],
        "chest_rotation": rotations[:, J32["Spine1"]],
        "head_rotation": head_rotation,
    }


def assemble(body, plan):
    """World joint positions (n, 32, 3) of a plan: IK for the limbs, then forward kinematics."""
    n = len(plan.root)
    offsets = bone_offsets(body)
    local = identity_rotations(n)
    root_rotation = rot_z(plan.yaw)
    local[:, J32["Hip"]] = root_rotation
    set_spine(local, plan.spine)
    landmarks = trunk_landmarks(body, plan.spine)
    chest = landmarks["chest_rotation"]
    for side in (RIGHT, LEFT):
        up_leg, knee, ankle = side_joints(side, "UpLeg", "Leg", "Foot")
        hip = offsets[up_leg]
        target = np.einsum("nji,nj->ni", root_rotation, plan.ankles[:, side] - plan.root) - hip
        foot_rotation = rot_z(plan.foot_yaw[:, side]) @ rot_y(-plan.foot_pitch[:, side])
        # the knee points where the foot points, a little outwards
        foot_forward = np.einsum("nji,nj->ni", root_rotation, foot_rotation[:, :, 0])
        pole = foot_forward + np.array([0.0, 0.15 * SIDE_SIGN[side], 0.0])
        local[:, up_leg], local[:, knee] = two_bone_ik(target, body.thigh, body.shin, pole,
                                                       MIN_KNEE_INTERIOR)
        shank = root_rotation @ local[:, up_leg] @ local[:, knee]
        local[:, ankle] = np.swapaxes(shank, -1, -2) @ foot_rotation
    for side in (RIGHT, LEFT):
        shoulder, elbow = side_joints(side, "Arm", "ForeArm")
        relative = plan.wrists[:, side] - landmarks["shoulders"][:, side]
        target = np.einsum("nji,nj->ni", chest, relative)
        pole = np.einsum("nji,nj->ni", chest, plan.elbow_poles[:, side])
        local[:, shoulder], local[:, elbow] = two_bone_ik(target, body.upper_arm, body.forearm,
                                                          pole, MIN_ELBOW_INTERIOR)
    positions, _ = pose_body(offsets, local, plan.root)
    return positions


# ---------------------------------------------------------------- legs and pelvis paths

def pelvis_height(body, root_xy, yaw, ankles, planted, nominal):
    """(n,) pelvis height: `nominal` (n,) or lower where a planted foot would be out of reach
    of its leg, so that planted feet stay on the floor."""
    height = np.array(nominal, dtype=np.float64)
    reach = 0.995 * body.leg
    for side in (RIGHT, LEFT):
        hip_xy = root_xy + SIDE_SIGN[side] * body.hip_half_width * np.stack(
            [-np.sin(yaw), np.cos(yaw)], -1)
        across = np.linalg.norm(ankles[:, side, :2] - hip_xy, axis=-1)
        reachable = body.ankle_height + np.sqrt(np.maximum(reach ** 2 - across ** 2, 0.0))
        height = np.where(planted[:, side], np.minimum(height, reachable), height)
    return height


def standing_height(body):
    """Pelvis height standing at ease, knees almost straight."""
    return body.ankle_height + 0.975 * body.leg


def feet_for_pose(body, xy, yaw, forward=30.0, spread=20.0):
    """World ankle xy (.., 2, 2) and foot headings (.., 2) for a pelvis pose standing at ease."""
    feet, headings = [], []
    for sign in SIDE_SIGN:
        side = sign * (body.hip_half_width + spread)
        feet.append(xy + np.stack([forward * np.cos(yaw) - side * np.sin(yaw),
                                   forward * np.sin(yaw) + side * np.cos(yaw)], -1))
        headings.append(yaw + sign * 0.12)    # toes turned out a little
    return np.stack(feet, -2), np.stack(headings, -1)


def stepping_stance(rng, n, fps, body, hold_s=(3.0, 6.0), step=350.0, turn=1.2, sway=40.0,
                    move_s=1.2, start=None):
    """Standing with the weight shifting, now and then stepping to a new spot and facing.
    Returns a MotionPlan without arms; spine angles zero."""
    if start is None:
        start = (*rng.uniform(-800, 800, 2), rng.uniform(-np.pi, np.pi))
    poses, times, t = [np.array(start, dtype=np.float64)], [0.0], 0.0
    while t < n / fps:
        t += rng.uniform(*hold_s) + move_s
        x, y, yaw = poses[-1]
        yaw += rng.uniform(-turn, turn)
        # an arm stretched out sideways reaches 0.8 m beyond the pelvis
        x, y = np.clip(np.array([x, y]) + rng.uniform(-step, step, 2), -ROOT_HALF + 400,
                       ROOT_HALF - 400)
        poses.append(np.array([x, y, yaw]))
        times.append(t)
    poses, times = np.array(poses), np.array(times)
    clock = np.arange(n) / fps
    segment = np.searchsorted(times, clock, side="right") - 1
    move_start = times[segment + 1] - move_s
    blend = smoothstep((clock - move_start) / move_s)[:, None]
    pose = poses[segment] * (1 - blend) + poses[segment + 1] * blend
    feet_from, yaw_from = feet_for_pose(body, poses[segment, :2], poses[segment, 2])
    feet_to, yaw_to = feet_for_pose(body, poses[segment + 1, :2], poses[segment + 1, 2])
    ankles = np.empty((n, 2, 3))
    foot_yaw = np.empty((n, 2))
    planted = np.empty((n, 2), dtype=bool)
    for side in (RIGHT, LEFT):
        # the right foot steps in the first half of the move, the left one in the second
        start_s = move_start + side * move_s / 2
        step_blend = smoothstep((clock - start_s) / (move_s / 2))
        ankles[:, side, :2] = (feet_from[:, side] * (1 - step_blend[:, None])
                               + feet_to[:, side] * step_blend[:, None])
        ankles[:, side, 2] = body.ankle_height + 80.0 * np.sin(np.pi * step_blend)
        foot_yaw[:, side] = yaw_from[:, side] * (1 - step_blend) + yaw_to[:, side] * step_blend
        planted[:, side] = (step_blend <= 0) | (step_blend >= 1)
    yaw = pose[:, 2]
    weight_shift = sway * smooth_noise(rng, n, fps, 2.5)[:, 0]
    xy = pose[:, :2] + weight_shift[:, None] * np.stack([-np.sin(yaw), np.cos(yaw)], -1)
    height = pelvis_height(body, xy, yaw, ankles, planted, np.full(n, standing_height(body)))
    return MotionPlan(np.column_stack([xy, height]), yaw, zero_spine(n), ankles, foot_yaw,
                      np.zeros((n, 2)))


def walking_gait(rng, n, fps, body, speed, speed_jitter=0.1, pace_knot_s=3.0):
    """Walking round an ellipse in the capture area at `speed` mm/s, varied by `speed_jitter`
    (fraction): feet planted on the floor in stance, swung forward over it. Returns the plan
    without arms, and the gait phase (n,) in cycles (the right foot lands at whole numbers)."""
    major = rng.uniform(900, 1250)
    minor = rng.uniform(550, major)
    centre = rng.uniform(-(ROOT_HALF - major), ROOT_HALF - major, 2)
    tilt, turning = rng.uniform(0, np.pi), rng.choice([-1.0, 1.0])
    around = np.linspace(0, 2 * np.pi, 721)
    ellipse = np.stack([major * np.cos(around), turning * minor * np.sin(around)], -1)
    path = centre + ellipse @ rot_z(np.array(tilt))[:2, :2].T
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=-1))])
    lap = arc[-1]
    step_vector = np.diff(path, axis=0, append=path[1:2])
    heading = np.unwrap(np.arctan2(step_vector[:, 1], step_vector[:, 0]))
    heading_per_lap = heading[-1] - heading[0]

    def along(length):
        """Path point (.., 2) and heading (..) at arc length `length`, lap after lap."""
        laps, within = np.divmod(length, lap)
        point = np.stack([np.interp(within, arc, path[:, 0]), np.interp(within, arc, path[:, 1])],
                         -1)
        return point, np.interp(within, arc, heading) + laps * heading_per_lap

    pace = speed * (1 + speed_jitter * smooth_noise(rng, n, fps, pace_knot_s)[:, 0])
    travelled = rng.uniform(0, lap) + np.cumsum(pace) / fps
    stride = body.leg * (0.75 + 0.55 * speed / 1000.0)
    phase = travelled / stride
    ankles = np.empty((n, 2, 3))
    foot_yaw = np.empty((n, 2))
    foot_pitch = np.empty((n, 2))
    planted = np.empty((n, 2), dtype=bool)
    for side, lag in ((RIGHT, 0.0), (LEFT, 0.5)):
        cycle, into = np.divmod(phase + lag, 1.0)
        # the foot lands where the pelvis will be 30% of a stride later (mid-stance)
        landing = (cycle - lag + 0.3) * stride
        swing = smoothstep((into - 0.6) / 0.4)
        point, foot_heading = along(landing + swing * stride)
        side_offset = SIDE_SIGN[side] * (body.hip_half_width + 10.0)
        ankles[:, side, :2] = point + side_offset * np.stack([-np.sin(foot_heading),
                                                              np.cos(foot_heading)], -1)
        ankles[:, side, 2] = body.ankle_height + 0.09 * body.leg * np.sin(np.pi * swing)
        foot_yaw[:, side] = foot_heading + SIDE_SIGN[side] * 0.08
        foot_pitch[:, side] = 0.3 * np.sin(np.pi * swing)
        planted[:, side] = into < 0.6
    xy, yaw = along(travelled)
    yaw = yaw + 0.05 * np.sin(2 * np.pi * phase)    # the pelvis turns with each step
    height = pelvis_height(body, xy, yaw, ankles, planted,
                           np.full(n, body.ankle_height + 0.985 * body.leg))
    plan = MotionPlan(np.column_stack([xy, height]), yaw, zero_spine(n), ankles, foot_yaw,
                      foot_pitch)
    return plan, phase


def seated(rng, n, fps, body):
    """Sitting on a chair (pelvis about 450 mm high) that stands somewhere in the area, feet
    flat in front with the knees bent about 90 degrees. Returns the plan without arms and the
    chair's (x, y, yaw)."""
    chair = (*rng.uniform(-900, 900, 2), rng.uniform(-np.pi, np.pi))
    chair_height = rng.uniform(430, 470) * body.leg / 885.0
    drop = chair_height - body.ankle_height
    forward = np.sqrt(max(body.thigh ** 2 + body.shin ** 2 - drop ** 2, 0.0))
    yaw = np.full(n, chair[2])
    xy = np.broadcast_to(np.array(chair[:2]), (n, 2))
    feet, foot_yaw = feet_for_pose(body, xy, yaw, forward=forward, spread=40.0)
    ankles = np.concatenate([feet, np.full((n, 2, 1), body.ankle_height)], -1)
    root = np.column_stack([xy, np.full(n, chair_height)])
    return MotionPlan(root, yaw, zero_spine(n), ankles, foot_yaw, np.zeros((n, 2))), chair


# ---------------------------------------------------------------- arms

def hanging_wrists(body, landmarks, swing=None):
    """Wrist targets (n, 2, 3) with the arms hanging, elbows a little bent, swinging forward by
    `swing` (n, 2) radians; and elbow poles pointing back."""
    shoulders = landmarks["shoulders"]
    n = len(shoulders)
    swing = np.zeros((n, 2)) if swing is None else swing
    reach = 0.93 * body.arm
    outward = np.array(SIDE_SIGN) * 0.1
    direction = np.stack([np.sin(swing), np.broadcast_to(outward, (n, 2)), -np.cos(swing)], -1)
    poles = np.broadcast_to(np.stack([unit([-1.0, s * 0.3, -0.3]) for s in SIDE_SIGN]), (n, 2, 3))
    return shoulders + reach * unit(direction), poles.copy()


def outward_poles(n, down=1.0, back=0.3):
    """Elbow poles (n, 2, 3) pointing out sideways (and down, back), for raised hands."""
    return np.broadcast_to(np.stack([unit([-back, s, -down]) for s in SIDE_SIGN]),
                           (n, 2, 3)).copy()


def blend_targets(rest, active, weight):
    """Per-frame mix of two (n, 3) target tracks by weight (n,)."""
    return rest * (1 - weight[:, None]) + active * weight[:, None]


def arms_crossed(body, landmarks):
    """Wrist targets (n, 2, 3) for arms folded in front of the chest."""
    chest, rotation = landmarks["chest"], landmarks["chest_rotation"]
    return np.stack([chest + rotation @ np.array([0.5 * body.upper_spine + 110.0,
                                                  -s * 0.9 * body.shoulder_offset,
                                                  -0.55 * body.upper_spine])
                     for s in SIDE_SIGN], 1)


# ---------------------------------------------------------------- the actions

def action_walking(rng, n, fps, body):
    """Walking round the area with the arms swinging against the legs."""
    plan, phase = walking_gait(rng, n, fps, body, speed=rng.uniform(1150, 1400))
    plan.spine["chest_twist"] = -0.08 * np.sin(2 * np.pi * phase)
    plan.spine["head_yaw"] = 0.15 * smooth_noise(rng, n, fps, 2.0)[:, 0]
    swing = 0.35 * np.stack([np.cos(2 * np.pi * (phase + 0.5)), np.cos(2 * np.pi * phase)], -1)
    plan.wrists, plan.elbow_poles = hanging_wrists(body, trunk_landmarks(body, plan.spine), swing)
    return plan


def action_walk_together(rng, n, fps, body):
    """Walking slowly beside someone: small arm swing, head turned sideways to talk at times."""
    plan, phase = walking_gait(rng, n, fps, body, speed=rng.uniform(750, 950))
    talk = hold_and_blend(rng, n, fps, ((1.5, 4.0), (1.0, 3.0)), 0.6)
    plan.spine["head_yaw"] = rng.choice([-1.0, 1.0]) * 0.7 * talk
    plan.spine["chest_twist"] = 0.3 * plan.spine["head_yaw"]
    swing = 0.18 * np.stack([np.cos(2 * np.pi * (phase + 0.5)), np.cos(2 * np.pi * phase)], -1)
    plan.wrists, plan.elbow_poles = hanging_wrists(body, trunk_landmarks(body, plan.spine), swing)
    return plan


def action_walk_dog(rng, n, fps, body):
    """Walking at an irregular pace, bent a little, one hand forward and down on a leash."""
    plan, phase = walking_gait(rng, n, fps, body, speed=rng.uniform(800, 1100),
                               speed_jitter=0.45, pace_knot_s=1.5)
    plan.spine["lean"] = 0.12 + 0.05 * smooth_noise(rng, n, fps, 2.0)[:, 0]
    plan.spine["head_pitch"] = 0.3 + 0.1 * smooth_noise(rng, n, fps, 1.5)[:, 0]
    landmarks = trunk_landmarks(body, plan.spine)
    swing = 0.25 * np.stack([np.cos(2 * np.pi * (phase + 0.5)), np.cos(2 * np.pi * phase)], -1)
    plan.wrists, plan.elbow_poles = hanging_wrists(body, landmarks, swing)
    leash = rng.integers(2)
    tug = smooth_noise(rng, n, fps, 0.7, 3) * np.array([80.0, 60.0, 60.0])
    forward_down = np.array([0.55 * body.arm, SIDE_SIGN[leash] * 60.0, -0.7 * body.arm])
    plan.wrists[:, leash] = landmarks["shoulders"][:, leash] + forward_down + tug
    return plan


def action_sitting(rng, n, fps, body):
    """Seated on a chair throughout: hands on the thighs, now and then one hand gestures or
    goes to the chin; the upper body turns, leans and the head looks around a little."""
    plan, _ = seated(rng, n, fps, body)
    plan.spine["lean"] = 0.08 + 0.08 * smooth_noise(rng, n, fps, 4.0)[:, 0]
    plan.spine["twist"] = 0.2 * smooth_noise(rng, n, fps, 5.0)[:, 0]
    plan.spine["head_yaw"] = 0.5 * smooth_noise(rng, n, fps, 3.0)[:, 0]
    plan.spine["head_pitch"] = 0.15 * smooth_noise(rng, n, fps, 3.0)[:, 0]
    landmarks = trunk_landmarks(body, plan.spine)
    plan.wrists, plan.elbow_poles = hands_on_thighs(body, n)
    gesture_side = rng.integers(2)
    gesture = hold_and_blend(rng, n, fps, ((2.0, 6.0), (1.0, 3.0)), 0.8)
    to_chin = landmarks["mouth"] + np.array([0.0, 0.0, -0.8 * body.head])
    plan.wrists[:, gesture_side] = blend_targets(plan.wrists[:, gesture_side], to_chin, gesture)
    # the elbow swings forward and out under the raised hand, clear of the trunk
    chin_pole = np.broadcast_to(unit([0.3, SIDE_SIGN[gesture_side] * 0.6, -1.0]), (n, 3))
    plan.elbow_poles[:, gesture_side] = blend_targets(plan.elbow_poles[:, gesture_side],
                                                      chin_pole, gesture)
    return plan


def hands_on_thighs(body, n):
    """Wrist targets (n, 2, 3) resting on the thighs of a seated body, and elbow poles."""
    wrists = np.stack([np.array([0.55 * body.thigh, s * (body.hip_half_width - 10.0), 90.0])
                       for s in SIDE_SIGN])
    poles = np.stack([unit([-1.0, s * 0.5, -0.5]) for s in SIDE_SIGN])
    return (np.broadcast_to(wrists, (n, 2, 3)).copy(), np.broadcast_to(poles, (n, 2, 3)).copy())


def action_sitting_down(rng, n, fps, body):
    """Standing in front of a chair, sitting down onto it (bowing forward on the way), sitting,
    getting up again, as long as the sequence lasts."""
    plan, chair = seated(rng, n, fps, body)
    sitting = hold_and_blend(rng, n, fps, ((1.5, 3.0), (3.0, 6.0)), 1.6)
    facing = np.array([np.cos(chair[2]), np.sin(chair[2])])
    feet_centre = plan.ankles[:, :, :2].mean(1)
    # standing, the pelvis is above the feet; it moves back first, then down onto the seat
    back = smoothstep(1.4 * sitting)
    down = smoothstep(1.4 * sitting - 0.4)
    stand_xy = feet_centre - 30.0 * facing
    xy = stand_xy * (1 - back[:, None]) + plan.root[:, :2] * back[:, None]
    nominal = standing_height(body) * (1 - down) + plan.root[:, 2] * down
    height = pelvis_height(body, xy, plan.yaw, plan.ankles, np.ones((n, 2), bool), nominal)
    plan.root = np.column_stack([xy, height])
    plan.spine["lean"] = 0.7 * np.sin(np.pi * sitting) + 0.05
    plan.spine["head_pitch"] = -0.3 * np.sin(np.pi * sitting)
    landmarks = trunk_landmarks(body, plan.spine)
    hanging, hanging_poles = hanging_wrists(body, landmarks)
    resting, resting_poles = hands_on_thighs(body, n)
    plan.wrists = hanging + (resting - hanging) * sitting[:, None, None]
    plan.elbow_poles = hanging_poles + (resting_poles - hanging_poles) * sitting[:, None, None]
    return plan


def action_phoning(rng, n, fps, body):
    """On the phone: standing (with steps and turns) or walking slowly, one hand at the ear."""
    if rng.uniform() < 0.5:
        plan = stepping_stance(rng, n, fps, body)
        swing = None
    else:
        plan, phase = walking_gait(rng, n, fps, body, speed=rng.uniform(450, 650))
        swing = 0.15 * np.stack([np.cos(2 * np.pi * (phase + 0.5)), np.cos(2 * np.pi * phase)], -1)
    plan.spine["head_yaw"] = 0.3 * smooth_noise(rng, n, fps, 3.0)[:, 0]
    plan.spine["head_pitch"] = 0.15 + 0.1 * smooth_noise(rng, n, fps, 3.0)[:, 0]
    landmarks = trunk_landmarks(body, plan.spine)
    plan.wrists, plan.elbow_poles = hanging_wrists(body, landmarks, swing)
    side = rng.integers(2)
    ear = landmarks["ears"][:, side]
    plan.wrists[:, side] = ear + landmarks["head_rotation"] @ np.array(
        [0.2 * body.head, SIDE_SIGN[side] * 40.0, -0.9 * body.head])
    plan.elbow_poles[:, side] = unit([0.3, SIDE_SIGN[side] * 0.6, -1.0])
    return plan


def action_eating(rng, n, fps, body):
    """Eating, seated (or standing): a hand goes from the table to the mouth again and again."""
    if rng.uniform() < 0.7:
        plan, _ = seated(rng, n, fps, body)
        table_height = 250.0
    else:
        plan = stepping_stance(rng, n, fps, body, hold_s=(6.0, 12.0))
        table_height = -50.0
    plan.spine["lean"] = 0.15 + 0.05 * smooth_noise(rng, n, fps, 3.0)[:, 0]
    plan.spine["head_pitch"] = 0.2 + 0.1 * smooth_noise(rng, n, fps, 2.0)[:, 0]
    landmarks = trunk_landmarks(body, plan.spine)
    plate = np.stack([np.array([0.4 * body.arm + 150.0, s * 150.0, table_height])
                      for s in SIDE_SIGN])
    plan.wrists = np.broadcast_to(plate, (n, 2, 3)).copy()
    plan.elbow_poles = outward_poles(n)
    side = rng.integers(2)
    bite = hold_and_blend(rng, n, fps, ((1.5, 4.0), (0.6, 1.5)), 0.7)
    mouth = landmarks["mouth"] + landmarks["head_rotation"] @ np.array([40.0, 0.0, -60.0])
    plan.wrists[:, side] = blend_targets(plan.wrists[:, side], mouth, bite)
    return plan


def action_greeting(rng, n, fps, body):
    """Greeting: stepping towards someone, waving a raised hand, now and then reaching out."""
    plan = stepping_stance(rng, n, fps, body, hold_s=(2.0, 4.0), step=450.0, turn=0.8)
    plan.spine["head_pitch"] = -0.05 + 0.1 * smooth_noise(rng, n, fps, 2.0)[:, 0]
    landmarks = trunk_landmarks(body, plan.spine)
    plan.wrists, plan.elbow_poles = hanging_wrists(body, landmarks)
    side = rng.integers(2)
    sign = SIDE_SIGN[side]
    clock = np.arange(n) / fps
    wave = hold_and_blend(rng, n, fps, ((1.0, 2.5), (2.0, 4.0)), 0.6, start_on=True)
    waving = landmarks["shoulders"][:, side] + np.stack(
        [np.full(n, 150.0), sign * (200.0 + 110.0 * np.sin(2 * np.pi * 2.0 * clock)),
         np.full(n, 0.65 * body.arm)], -1)
    plan.wrists[:, side] = blend_targets(plan.wrists[:, side], waving, wave)
    plan.elbow_poles[:, side] = blend_targets(plan.elbow_poles[:, side],
                                              np.broadcast_to(unit([0.0, sign, -0.4]), (n, 3)),
                                              wave)
    return plan


POSES = {
    # name: where the [right, left] wrists go: a direction from the shoulder (pelvis frame) to
    # reach along with a nearly straight arm, or "hip" for a hand resting on the hip
    "hands_on_hips": ("hip", "hip"),
    "arms_raised": ((0.15, -0.45, 0.85), (0.15, 0.45, 0.85)),
    "arms_out": ((0.1, -0.98, 0.1), (0.1, 0.98, 0.1)),
    "one_arm_up": ((0.1, -0.2, 0.96), "hip"),
    "arms_forward": ((0.95, -0.1, 0.1), (0.95, 0.1, 0.1)),
}


def action_posing(rng, n, fps, body):
    """Holding static poses (hands on hips, arms raised, arms out...) for a few seconds each,
    moving between them and turning in between."""
    plan = stepping_stance(rng, n, fps, body, hold_s=(3.0, 5.0), step=200.0, turn=1.5, sway=10.0)
    landmarks = trunk_landmarks(body, plan.spine)
    shoulders = landmarks["shoulders"]
    names = list(POSES)
    hold_s, move_s = 2.5, 1.0
    count = int(n / fps / (hold_s + move_s)) + 2
    chosen = rng.choice(len(names), size=count)
    on_hip = np.stack([np.array([-30.0, s * (body.hip_half_width + 70.0), 110.0])
                       for s in SIDE_SIGN])
    targets = np.empty((count, n, 2, 3))
    poles = np.empty((count, 2, 3))
    for k, index in enumerate(chosen):
        for side, target in enumerate(POSES[names[index]]):
            if target == "hip":
                targets[k, :, side] = on_hip[side]
            else:
                targets[k, :, side] = shoulders[:, side] + 0.97 * body.arm * unit(target)
        poles[k] = np.stack([unit([-0.3, s, -0.3]) for s in SIDE_SIGN])
    position = np.arange(n) / fps / (hold_s + move_s)
    index = position.astype(int)
    blend = smoothstep((position - index - hold_s / (hold_s + move_s)) * (hold_s + move_s)
                       / move_s)[:, None, None]
    frames = np.arange(n)
    plan.wrists = targets[index, frames] * (1 - blend) + targets[index + 1, frames] * blend
    plan.elbow_poles = poles[index] * (1 - blend) + poles[index + 1] * blend
    return plan


def action_smoking(rng, n, fps, body):
    """Smoking: one arm across the body, the other bringing the cigarette to the mouth now
    and then; weight shifting, a step now and then."""
    plan = stepping_stance(rng, n, fps, body, hold_s=(5.0, 10.0))
    plan.spine["head_yaw"] = 0.3 * smooth_noise(rng, n, fps, 3.0)[:, 0]
    landmarks = trunk_landmarks(body, plan.spine)
    side = rng.integers(2)
    other = 1 - side
    plan.wrists, plan.elbow_poles = hanging_wrists(body, landmarks)
    plan.wrists[:, other] = np.array([0.45 * body.arm, -SIDE_SIGN[other] * 60.0, 200.0])
    plan.elbow_poles[:, other] = unit([-0.3, SIDE_SIGN[other], -0.6])
    held_low = landmarks["shoulders"][:, side] + np.array([0.3 * body.arm, SIDE_SIGN[side] * 40.0,
                                                           -0.75 * body.arm])
    mouth = landmarks["mouth"] + landmarks["head_rotation"] @ np.array([40.0, 0.0, -50.0])
    puff = hold_and_blend(rng, n, fps, ((2.0, 5.0), (0.8, 1.8)), 0.7)
    plan.wrists[:, side] = blend_targets(held_low, mouth, puff)
    plan.elbow_poles[:, side] = unit([0.0, SIDE_SIGN[side] * 0.6, -1.0])
    return plan


def action_waiting(rng, n, fps, body):
    """Waiting: standing with weight shifts, arms crossed or hanging, looking around, a step
    and a turn now and then."""
    plan = stepping_stance(rng, n, fps, body, hold_s=(5.0, 10.0), sway=60.0)
    plan.spine["head_yaw"] = 0.6 * smooth_noise(rng, n, fps, 2.5)[:, 0]
    plan.spine["side"] = 0.04 * smooth_noise(rng, n, fps, 3.0)[:, 0]
    landmarks = trunk_landmarks(body, plan.spine)
    hanging, poles = hanging_wrists(body, landmarks)
    crossed = hold_and_blend(rng, n, fps, ((3.0, 8.0), (3.0, 8.0)), 1.0,
                             start_on=bool(rng.integers(2)))
    folded = arms_crossed(body, landmarks)
    plan.wrists = hanging + (folded - hanging) * crossed[:, None, None]
    plan.elbow_poles = poles + (outward_poles(n) - poles) * crossed[:, None, None]
    return plan


def action_photo(rng, n, fps, body):
    """Taking photos: both hands hold a camera in front of the face while the body turns from
    one subject to the next."""
    plan = stepping_stance(rng, n, fps, body, hold_s=(2.0, 4.0), step=250.0, turn=1.6,
                           sway=15.0)
    plan.spine["chest_twist"] = 0.25 * smooth_noise(rng, n, fps, 2.0)[:, 0]
    plan.spine["chest_lean"] = 0.1 * smooth_noise(rng, n, fps, 3.0)[:, 0]
    landmarks = trunk_landmarks(body, plan.spine)
    hanging, hanging_poles = hanging_wrists(body, landmarks)
    camera = np.stack([landmarks["before_eyes"] + landmarks["head_rotation"] @ np.array(
        [-20.0, s * 70.0, -60.0]) for s in SIDE_SIGN], 1)
    shooting = hold_and_blend(rng, n, fps, ((1.0, 2.0), (3.0, 6.0)), 0.8, start_on=True)
    plan.wrists = hanging + (camera - hanging) * shooting[:, None, None]
    plan.elbow_poles = hanging_poles + (outward_poles(n) - hanging_poles) * shooting[:, None, None]
    return plan


def action_purchases(rng, n, fps, body):
    """Shopping: bending forward to reach down and forward with both arms, straightening up
    to hold things in front."""
    plan = stepping_stance(rng, n, fps, body, hold_s=(3.0, 6.0), sway=20.0)
    bend = hold_and_blend(rng, n, fps, ((1.0, 3.0), (1.5, 3.5)), 1.0)
    depth = 0.6 + 0.25 * smooth_noise(rng, n, fps, 4.0)[:, 0]
    plan.spine["lean"] = bend * depth
    plan.spine["head_pitch"] = 0.3 * bend
    yaw = plan.yaw
    # the pelvis moves back over the heels to balance the bow
    plan.root[:, :2] -= (90.0 * plan.spine["lean"])[:, None] * np.stack([np.cos(yaw), np.sin(yaw)],
                                                                         -1)
    landmarks = trunk_landmarks(body, plan.spine)
    holding = np.stack([np.array([0.45 * body.arm, s * 140.0, 300.0]) for s in SIDE_SIGN])
    reach_angle = 0.7 + 0.2 * smooth_noise(rng, n, fps, 2.0)
    reach_down = landmarks["shoulders"] + 0.95 * body.arm * np.stack(
        [np.sin(reach_angle), np.zeros_like(reach_angle), -np.cos(reach_angle)], -1)
    plan.wrists = holding + (reach_down - holding) * bend[:, None, None]
    plan.elbow_poles = outward_poles(n)
    return plan


def action_discussion(rng, n, fps, body):
    """Discussing: standing, turning to the listeners, hands gesturing in front of the body."""
    plan = stepping_stance(rng, n, fps, body, hold_s=(3.0, 7.0), turn=0.9)
    plan.spine["twist"] = 0.2 * smooth_noise(rng, n, fps, 3.0)[:, 0]
    plan.spine["head_yaw"] = 0.4 * smooth_noise(rng, n, fps, 2.0)[:, 0]
    plan.spine["head_pitch"] = 0.1 * smooth_noise(rng, n, fps, 1.5)[:, 0]
    landmarks = trunk_landmarks(body, plan.spine)
    hanging, hanging_poles = hanging_wrists(body, landmarks)
    wander = smooth_noise(rng, n, fps, 0.8, 6).reshape(n, 2, 3)
    sides = np.array(SIDE_SIGN)[None, :]
    gesture = landmarks["shoulders"] + np.stack(
        [0.45 * body.arm + 0.2 * body.arm * wander[..., 0],
         sides * (0.05 + 0.2 * wander[..., 1]) * body.arm,
         -0.35 * body.arm + 0.25 * body.arm * wander[..., 2]], -1)
    activity = np.stack([hold_and_blend(rng, n, fps, ((1.0, 3.0), (1.5, 4.0)), 0.6)
                         for _ in range(2)], -1)[..., None]
    plan.wrists = hanging + (gesture - hanging) * activity
    plan.elbow_poles = hanging_poles + (outward_poles(n) - hanging_poles) * activity
    return plan


def action_directions(rng, n, fps, body):
    """Giving directions: turning to point with a straight arm in one direction after another,
    alternating arms, the head looking where the hand points."""
    plan = stepping_stance(rng, n, fps, body, hold_s=(3.0, 6.0), turn=1.0)
    hold_s, move_s = 2.0, 1.0
    count = int(n / fps / (hold_s + move_s)) + 2
    azimuth = rng.uniform(-0.6, 0.6, count)          # relative to the pelvis facing
    elevation = rng.uniform(-0.3, 0.4, count)
    arm = rng.integers(2, size=count)
    pointing = rng.uniform(size=count) < 0.75        # the rest are pauses with the arms down
    position = np.arange(n) / fps / (hold_s + move_s)
    index = position.astype(int)
    blend = smoothstep((position - index) * (hold_s + move_s) / move_s - hold_s / move_s)
    look = azimuth[index] * (1 - blend) + azimuth[index + 1] * blend
    plan.spine["twist"] = 0.4 * look
    plan.spine["head_yaw"] = 0.5 * look
    landmarks = trunk_landmarks(body, plan.spine)
    plan.wrists, plan.elbow_poles = hanging_wrists(body, landmarks)
    for side in (RIGHT, LEFT):
        # each arm points at its own side of the facing, the azimuth pushed out to that side
        side_azimuth = azimuth + SIDE_SIGN[side] * 0.5
        direction = np.stack([np.cos(elevation) * np.cos(side_azimuth),
                              np.cos(elevation) * np.sin(side_azimuth), np.sin(elevation)], -1)
        active = (pointing & (arm == side)).astype(float)
        weight = active[index] * (1 - blend) + active[index + 1] * blend
        aim = direction[index] * (1 - blend[:, None]) + direction[index + 1] * blend[:, None]
        extended = landmarks["shoulders"][:, side] + 0.995 * body.arm * unit(aim)
        plan.wrists[:, side] = blend_targets(plan.wrists[:, side], extended, weight)
    return plan


ACTION_PLANNERS = {
    "Directions": action_directions, "Discussion": action_discussion, "Eating": action_eating,
    "Greeting": action_greeting, "Phoning": action_phoning, "Photo": action_photo,
    "Posing": action_posing, "Purchases": action_purchases, "Sitting": action_sitting,
    "SittingDown": action_sitting_down, "Smoking": action_smoking, "Waiting": action_waiting,
    "WalkDog": action_walk_dog, "Walking": action_walking, "WalkTogether": action_walk_together,
}
assert set(ACTION_PLANNERS) == set(ACTIONS)


def generate_motion(action, n_frames, body, rng, fps=50):
    """World joint positions (n_frames, 32, 3) in mm (z up, floor at z = 0, JOINTS_32 order)
    of one procedural recording of `action` by a person of shape `body`; the same rng state
    gives the same motion."""
    if action not in ACTION_PLANNERS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    plan = ACTION_PLANNERS[action](rng, int(n_frames), fps, body)
    return assemble(body, plan)
