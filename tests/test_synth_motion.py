"""The procedural motion generator of the synthetic Human3.6M (data_prep/synth/motion.py)."""
import functools

import numpy as np
import pytest

from data_prep.h36m import ACTIONS, FPS, J32, PARENTS_32, SUBJECTS
from data_prep.synth.motion import bone_offsets, body_for_subject, generate_motion

FRAMES = 1000           # 20 s: long enough for several episodes of every action
SIDES = ("Right", "Left")


def side_joints(*parts):
    """((right joints), (left joints)) by JOINTS_32 name without the side."""
    return tuple(tuple(J32[side + part] for part in parts) for side in SIDES)


FOOT_POINTS = [joint for side in side_joints("Foot", "ToeBase", "ToeSite") for joint in side]
PELVIS, MID_SPINE, THORAX = J32["Hip"], J32["Spine1"], J32["Neck"]
HEAD, HEAD_TOP = J32["Head"], J32["HeadSite"]
(RIGHT_WRIST,), (LEFT_WRIST,) = side_joints("Hand")
(RIGHT_HIP,), (LEFT_HIP,) = side_joints("UpLeg")
ARMS = side_joints("Arm", "ForeArm", "Hand")        # shoulder, elbow, wrist
LEGS = side_joints("UpLeg", "Leg", "Foot")          # hip, knee, ankle


@functools.lru_cache(maxsize=None)
def motion(action, seed=0, subject="S1"):
    poses = generate_motion(action, FRAMES, body_for_subject(subject),
                            np.random.default_rng(seed), fps=FPS)
    poses.setflags(write=False)
    return poses


def interior_angles(poses, a, b, c):
    """(n,) angle at joint b between the bones to a and to c, in degrees."""
    first, second = poses[:, a] - poses[:, b], poses[:, c] - poses[:, b]
    cosine = np.sum(first * second, -1) / (np.linalg.norm(first, axis=-1)
                                           * np.linalg.norm(second, axis=-1))
    return np.degrees(np.arccos(np.clip(cosine, -1, 1)))


def wrist_to_head(poses):
    """(n,) distance from the nearer wrist to the head centre."""
    return np.minimum(np.linalg.norm(poses[:, LEFT_WRIST] - poses[:, HEAD], axis=-1),
                      np.linalg.norm(poses[:, RIGHT_WRIST] - poses[:, HEAD], axis=-1))


def root_travel(poses):
    return np.linalg.norm(np.diff(poses[:, PELVIS, :2], axis=0), axis=-1).sum()


def arm_extension(poses):
    """(n,) the straighter arm's shoulder-to-wrist distance over its full length."""
    ratios = [np.linalg.norm(poses[:, w] - poses[:, s], axis=-1)
              / (np.linalg.norm(poses[:, e] - poses[:, s], axis=-1)
                 + np.linalg.norm(poses[:, w] - poses[:, e], axis=-1)) for s, e, w in ARMS]
    return np.maximum(*ratios)


def test_shape_dtype_and_single_frame():
    poses = motion("Walking")
    assert poses.shape == (FRAMES, 32, 3) and poses.dtype == np.float64
    assert np.all(np.isfinite(poses))
    one = generate_motion("Posing", 1, body_for_subject("S5"), np.random.default_rng(3))
    assert one.shape == (1, 32, 3)


def test_deterministic_for_a_seed_and_different_for_another():
    again = generate_motion("Discussion", FRAMES, body_for_subject("S1"),
                            np.random.default_rng(0), fps=FPS)
    np.testing.assert_array_equal(again, motion("Discussion"))
    assert np.abs(motion("Discussion", seed=1) - motion("Discussion")).max() > 100


def test_errors():
    body = body_for_subject("S1")
    with pytest.raises(ValueError, match="Walking"):
        generate_motion("Dancing", 10, body, np.random.default_rng(0))
    with pytest.raises(ValueError):
        generate_motion("Walking", 0, body, np.random.default_rng(0))


def test_subjects_are_plausible_adults_of_different_heights(repr_in_fresh_process):
    bodies = [body_for_subject(s) for s in SUBJECTS]
    heights = np.array([b.standing_height for b in bodies])
    assert np.all((heights > 1580) & (heights < 1870))
    assert heights.max() / heights.min() > 1.05
    assert repr(body_for_subject("S9")) == repr_in_fresh_process(
        "from data_prep.synth.motion import body_for_subject", 'body_for_subject("S9")')
    # the standing motion really is about as tall as the body
    for subject in ("S5", "S11"):
        top = motion("Waiting", subject=subject)[:, HEAD_TOP, 2]
        assert abs(np.median(top) - body_for_subject(subject).standing_height) < 80


@pytest.mark.parametrize("action", ACTIONS)
def test_bones_keep_the_body_lengths_and_feet_stay_on_the_floor(action):
    poses = motion(action)
    lengths = np.linalg.norm(poses[:, 1:] - poses[:, list(PARENTS_32[1:])], axis=-1)
    expected = np.linalg.norm(bone_offsets(body_for_subject("S1")), axis=-1)[1:]
    assert np.abs(lengths - expected).max() < 1e-6
    feet = poses[:, FOOT_POINTS, 2]
    assert feet.min() > -20
    # some foot touches the floor nearly all the time (only walking has short flights of it)
    assert np.mean(feet.min(1) < 20) > 0.9
    assert np.all(np.abs(poses[..., :2]) < 1800)


@pytest.mark.parametrize("action", ACTIONS)
def test_knees_and_elbows_bend_within_human_limits(action):
    poses = motion(action)
    left_axis = poses[:, LEFT_HIP] - poses[:, RIGHT_HIP]
    left_axis /= np.linalg.norm(left_axis, axis=-1, keepdims=True)
    for hip, knee, ankle in LEGS:
        assert interior_angles(poses, hip, knee, ankle).min() > 30
        thigh, shin = poses[:, knee] - poses[:, hip], poses[:, ankle] - poses[:, knee]
        bend = np.cross(thigh, shin) / (np.linalg.norm(thigh, axis=-1)
                                        * np.linalg.norm(shin, axis=-1))[:, None]
        # a bent knee folds the shin backwards: the bend turns about the body's left axis
        bent = np.linalg.norm(bend, axis=-1) > 0.2
        assert np.all(np.sum(bend * left_axis, -1)[bent] > 0)
    for shoulder, elbow, wrist in ARMS:
        assert interior_angles(poses, shoulder, elbow, wrist).min() > 25


def distance_to_segment(points, start, end):
    """(n,) distance of points (n, 3) from the segments start-end (n, 3)."""
    along = end - start
    t = np.clip(np.sum((points - start) * along, -1) / np.sum(along * along, -1), 0, 1)
    return np.linalg.norm(points - (start + t[:, None] * along), axis=-1)


@pytest.mark.parametrize("action", ACTIONS)
def test_arms_stay_out_of_the_trunk(action):
    poses = motion(action)
    for joint in [joint for _, elbow, wrist in ARMS for joint in (elbow, wrist)]:
        lower_back = distance_to_segment(poses[:, joint], poses[:, PELVIS], poses[:, MID_SPINE])
        upper_back = distance_to_segment(poses[:, joint], poses[:, MID_SPINE], poses[:, THORAX])
        assert np.minimum(lower_back, upper_back).min() > 90


def test_walking_actions_travel_much_farther_than_sitting_or_waiting():
    for walking in ("Walking", "WalkTogether", "WalkDog"):
        for still in ("Sitting", "Waiting"):
            assert root_travel(motion(walking)) > 4 * root_travel(motion(still))
    assert root_travel(motion("Walking")) > 15000          # over 0.75 m/s for 20 s
    assert root_travel(motion("WalkTogether")) < root_travel(motion("Walking"))


def test_walking_turns_the_body():
    poses = motion("Walking")
    across = poses[:, LEFT_HIP, :2] - poses[:, RIGHT_HIP, :2]
    facing = np.unwrap(np.arctan2(across[:, 0], -across[:, 1]))
    assert np.ptp(facing) > np.pi


def test_sitting_pelvis_is_at_chair_height():
    sitting = np.median(motion("Sitting")[:, PELVIS, 2])
    assert 380 < sitting < 560
    assert np.median(motion("Waiting")[:, PELVIS, 2]) > sitting + 350
    knee = interior_angles(motion("Sitting"), *LEGS[0])
    assert 70 < np.median(knee) < 110


def test_sitting_down_goes_between_standing_and_sitting():
    pelvis = motion("SittingDown")[:, PELVIS, 2]
    assert pelvis.min() < 560 and pelvis.max() > 850


def test_phoning_keeps_a_hand_at_the_head():
    assert np.mean(wrist_to_head(motion("Phoning")) < 250) > 0.9
    assert np.mean(wrist_to_head(motion("Walking")) < 250) < 0.05


@pytest.mark.parametrize("action", ["Eating", "Smoking"])
def test_a_hand_goes_to_the_mouth_again_and_again(action):
    near = wrist_to_head(motion(action)) < 250
    assert 0.1 < near.mean() < 0.8
    assert np.count_nonzero(np.diff(near.astype(int)) == 1) >= 2


def test_directions_stretches_an_arm_more_than_waiting():
    assert np.mean(arm_extension(motion("Directions")) > 0.97) > 0.3
    assert np.mean(arm_extension(motion("Waiting")) > 0.97) < 0.05


def test_purchases_bends_forward():
    def torso_tilt(poses):
        spine = poses[:, THORAX] - poses[:, PELVIS]
        return np.degrees(np.arccos(spine[:, 2] / np.linalg.norm(spine, axis=-1)))
    assert np.percentile(torso_tilt(motion("Purchases")), 90) > 25
    assert np.percentile(torso_tilt(motion("Waiting")), 90) < 10


def test_photo_and_greeting_raise_the_hands():
    for action in ("Photo", "Greeting"):
        poses = motion(action)
        raised = (np.maximum(poses[:, LEFT_WRIST, 2], poses[:, RIGHT_WRIST, 2])
                  > poses[:, THORAX, 2])
        assert raised.mean() > 0.3
    waiting = motion("Waiting")
    assert np.mean(np.maximum(waiting[:, LEFT_WRIST, 2], waiting[:, RIGHT_WRIST, 2])
                   > waiting[:, THORAX, 2]) < 0.05


def test_actions_differ_from_each_other():
    def describe(poses):
        """Median and spread of every joint in the pelvis frame (facing +x)."""
        across = poses[:, LEFT_HIP, :2] - poses[:, RIGHT_HIP, :2]
        facing = np.arctan2(across[:, 0], -across[:, 1])
        cos, sin = np.cos(facing), np.sin(facing)
        relative = poses - poses[:, [PELVIS]]
        centred = np.stack([cos[:, None] * relative[..., 0] + sin[:, None] * relative[..., 1],
                            -sin[:, None] * relative[..., 0] + cos[:, None] * relative[..., 1],
                            relative[..., 2]], -1)
        return np.concatenate([np.median(centred, 0).ravel(), np.std(centred, 0).ravel()])
    features = {action: describe(motion(action)) for action in ACTIONS}
    for a in ACTIONS:
        for b in ACTIONS:
            if a < b:
                assert np.abs(features[a] - features[b]).max() > 50, (a, b)


def test_default_frame_rate_is_human36m_s():
    def walking(**fps):
        return generate_motion("Walking", 1000, body_for_subject("S1"), np.random.default_rng(7),
                               **fps)
    default = walking()
    np.testing.assert_array_equal(default, walking(fps=FPS))
    # the rate really shapes the motion: at 25 fps the same 1000 frames walk twice as far
    assert root_travel(walking(fps=25)) > 1.5 * root_travel(default)
