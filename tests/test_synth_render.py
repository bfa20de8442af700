"""Tests of the synthetic Human3.6M renderer (data_prep/synth/render.py)."""
import dataclasses

import numpy as np
import pytest

from data_prep.h36m import JOINTS_17_FROM_32, PARENTS_32, SUBJECTS
from data_prep.synth.render import (appearance_for_subject, make_background, random_light,
                                    render_person)

WIDTH, HEIGHT = 320, 400
FOCAL = 700.0
DISTANCE = 4000.0   # mm from the camera to the person's hip

# A person standing upright facing the camera, camera frame (x right, y down, z forward), mm
# relative to the hip. Their left side (joints 6-10, 16-23) is on the image's right.
LEFT_HALF = {0: (0, 0, 0), 11: (0, -230, 0), 12: (0, -480, 0), 13: (0, -560, 0),
             14: (0, -650, -20), 15: (0, -770, 0),
             6: (130, 0, 0), 7: (130, 450, 0), 8: (130, 850, 0), 9: (130, 900, -120),
             10: (130, 900, -200), 16: (40, -500, 0), 17: (170, -470, 0), 18: (200, -190, 0),
             19: (210, 60, 0), 20: (210, 100, -30), 21: (210, 130, -40), 22: (215, 120, 0),
             23: (215, 160, 0)}
MIRRORED = {1: 6, 2: 7, 3: 8, 4: 9, 5: 10, **{right: right - 8 for right in range(24, 32)}}


def standing_pose():
    """(32, 3) camera-frame joints in mm of the standing person."""
    joints = np.zeros((32, 3))
    for index, position in LEFT_HALF.items():
        joints[index] = position
    for right, left in MIRRORED.items():
        joints[right] = joints[left] * [-1, 1, 1]
    return joints + [0, 0, DISTANCE]


def project(joints):
    """Pinhole projection into the test image: (32, 2) pixels and (32,) depths."""
    centre = np.array([WIDTH / 2, HEIGHT / 2])
    return joints[:, :2] / joints[:, 2:] * FOCAL + centre, joints[:, 2].copy()


def background():
    return make_background(WIDTH, HEIGHT, np.random.default_rng(0))


def render(joints, appearance=None, light=1.0, image=None):
    points, depth = project(joints)
    return render_person(background() if image is None else image, points, depth,
                         appearance or appearance_for_subject("S1"), FOCAL, light)


def test_skeleton_layout_is_the_one_the_renderer_assumes():
    # The test pose relies on these parents; a change in h36m.py would make it meaningless.
    assert PARENTS_32[17] == 16 and PARENTS_32[25] == 24 and PARENTS_32[15] == 14


def test_image_shape_type_and_background_untouched_outside_mask():
    scene = background()
    original = scene.copy()
    image, mask = render(standing_pose(), image=scene)
    assert image.shape == scene.shape and image.dtype == np.uint8
    assert mask.shape == scene.shape[:2] and mask.dtype == bool
    assert np.array_equal(scene, original), "the background must not be modified"
    assert np.array_equal(image[~mask], scene[~mask])
    # The person is drawn over the mask (nearly all its pixels differ from the background).
    assert np.mean(np.any(image[mask] != scene[mask], axis=-1)) > 0.95


def test_mask_covers_evaluation_joints_and_is_empty_far_away():
    points, _ = project(standing_pose())
    _, mask = render(standing_pose())
    for joint in JOINTS_17_FROM_32:
        x, y = np.round(points[joint]).astype(int)
        if 0 <= x < WIDTH and 0 <= y < HEIGHT:
            assert mask[y, x], f"joint {joint} at {(x, y)} is not in the mask"
    margin = 50
    assert not mask[:, :margin].any() and not mask[:, -margin:].any()
    top = int(points[15, 1]) - 40
    assert not mask[:top].any()
    # A plausible silhouette size: a person ~1.7 m tall and ~0.5 m wide at 4 m.
    assert 0.03 < mask.mean() < 0.2


def forearm_across_torso(depth_offset):
    """The standing pose with the right forearm bent across the chest, its wrist
    depth_offset mm nearer (negative) or farther (positive) than the torso."""
    joints = standing_pose()
    joints[26] = (-230, -250, DISTANCE)
    joints[27] = (90, -300, DISTANCE + depth_offset)
    joints[28:32] = joints[27] + [40, 0, 0]
    joints[30] = joints[27] + [60, -10, 0]
    return joints


def test_near_parts_occlude_far_ones():
    appearance = dataclasses.replace(appearance_for_subject("S1"), skin=(40, 140, 240),
                                     shirt=(200, 60, 30), right_tint=(0, 0, 0))
    in_front, _ = render(forearm_across_torso(-300), appearance)
    behind, _ = render(forearm_across_torso(+300), appearance)
    torso_only, _ = render(standing_pose(), appearance)
    # The middle of the forearm, over the chest.
    points, _ = project(forearm_across_torso(-300))
    x, y = np.round((points[26] + points[27]) / 2).astype(int)
    assert np.array_equal(behind[y, x], torso_only[y, x]), "a far arm must stay hidden"

    def nearer_to(pixel, colour, other):
        pixel = pixel.astype(float)
        return np.linalg.norm(pixel / pixel.sum() - np.divide(colour, sum(colour))) < \
            np.linalg.norm(pixel / pixel.sum() - np.divide(other, sum(other)))
    assert nearer_to(in_front[y, x], appearance.skin, appearance.shirt)
    assert nearer_to(behind[y, x], appearance.shirt, appearance.skin)


def test_left_and_right_limbs_have_different_colours():
    joints = standing_pose()
    points, _ = project(joints)
    image, _ = render(joints)
    for left_start, left_end, right_start, right_end in ((6, 7, 1, 2), (17, 18, 25, 26),
                                                         (18, 19, 26, 27)):
        left = np.round((points[left_start] + points[left_end]) / 2).astype(int)
        right = np.round((points[right_start] + points[right_end]) / 2).astype(int)
        difference = np.abs(image[left[1], left[0]].astype(int) -
                            image[right[1], right[0]].astype(int)).sum()
        assert difference > 40, (left_start, right_start, difference)


def test_subjects_look_different_and_appearance_is_stable(repr_in_fresh_process):
    appearances = [appearance_for_subject(subject) for subject in SUBJECTS]
    clothes = {(a.shirt, a.trousers) for a in appearances}
    assert len(clothes) == len(SUBJECTS)
    assert len({a.thigh_radius for a in appearances}) == len(SUBJECTS), "builds differ too"
    assert repr(appearance_for_subject("S9")) == repr_in_fresh_process(
        "from data_prep.synth.render import appearance_for_subject",
        'appearance_for_subject("S9")')
    image_1, _ = render(standing_pose(), appearance_for_subject("S1"))
    image_5, _ = render(standing_pose(), appearance_for_subject("S5"))
    assert not np.array_equal(image_1, image_5)


def test_backgrounds_vary_with_the_random_state_and_lighting_changes_the_person():
    first = make_background(WIDTH, HEIGHT, np.random.default_rng(1))
    second = make_background(WIDTH, HEIGHT, np.random.default_rng(2))
    assert first.shape == (HEIGHT, WIDTH, 3) and first.dtype == np.uint8
    assert np.abs(first.astype(int) - second).mean() > 10
    assert first.std() > 5, "the background should be textured, not flat"
    light = random_light(np.random.default_rng(3))
    # an overall brightness times a colour cast: every channel its own gain
    assert light.shape == (3,) and len(set(light)) == 3
    assert np.all((light > 0.6) & (light < 1.4))
    bright, mask = render(standing_pose(), light=1.2)
    dark, _ = render(standing_pose(), light=0.6)
    assert bright[mask].mean() > dark[mask].mean() + 10


def test_rendering_is_deterministic():
    first = render(standing_pose())
    second = render(standing_pose())
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    assert np.array_equal(make_background(50, 40, rng_a), make_background(50, 40, rng_b))


@pytest.mark.parametrize("shift", [(140.0, 0.0), (-150.0, 150.0), (0.0, -330.0), (1e7, -1e7)])
def test_parts_outside_the_image_do_not_crash(shift):
    points, depth = project(standing_pose())
    scene = background()
    image, mask = render_person(scene, points + shift, depth, appearance_for_subject("S7"),
                                FOCAL)
    assert image.shape == scene.shape and np.array_equal(image[~mask], scene[~mask])
    if abs(shift[0]) < 1000:
        assert mask.any(), "the part still inside the image must be drawn"
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert border.any(), "the person should be cut by the image border"


def test_joints_behind_the_camera_and_tiny_images_do_not_crash():
    joints = standing_pose() - [0, 0, DISTANCE - 300]   # the legs and head near the camera
    joints[:6, 2] = -100.0                              # the right leg behind it
    points, depth = project(joints)
    points[3] = np.nan
    image, mask = render_person(background(), points, depth, appearance_for_subject("S6"),
                                FOCAL)
    assert mask.any(), "the parts in front of the camera are drawn"
    # parts on a joint behind the camera are left out, as if the joint were missing
    missing = points.copy()
    missing[:6] = np.nan
    without, without_mask = render_person(background(), missing, depth,
                                          appearance_for_subject("S6"), FOCAL)
    assert np.array_equal(image, without) and np.array_equal(mask, without_mask)
    tiny = make_background(3, 2, np.random.default_rng(0))
    image, mask = render_person(tiny, points / 100, depth, appearance_for_subject("S6"),
                                FOCAL / 100)
    assert np.array_equal(image[~mask], tiny[~mask])


def test_missing_joints_are_skipped_not_drawn_to_infinity():
    points, depth = project(standing_pose())
    points[3] = np.nan   # the right ankle: its shin and foot are left out
    image, mask = render_person(background(), points, depth, appearance_for_subject("S8"),
                                FOCAL)
    assert mask.any() and not mask[:, :50].any() and not mask[-20:].any()


def test_a_person_at_the_lens_of_a_large_camera_does_not_crash():
    size = 2500
    joints = standing_pose() - [0, 0, DISTANCE - 15]   # the hip 15 mm from the camera
    points = joints[:, :2] / np.maximum(joints[:, 2:], 1.0) * 1500 + size / 2
    scene = np.zeros((size, size, 3), np.uint8)
    image, mask = render_person(scene, points, joints[:, 2], appearance_for_subject("S9"), 1500)
    assert image.shape == scene.shape and mask.mean() > 0.5
