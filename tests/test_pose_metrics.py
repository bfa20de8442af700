"""Evaluation metrics: MPJPE, P-MPJPE, scale recovery, the mean pose, per-action summaries."""
import numpy as np
import pytest

from config import PAPER
from data_prep.h36m import ACTIONS, JOINTS_17, PARENTS_17
from evaluation.metrics import (PAPER_TABLE1, PAPER_TABLE2, bone_lengths, format_table1,
                                mean_pose, mpjpe, p_mpjpe, procrustes_align, recover_scale,
                                root_align, summarize)

# Offsets (mm) of each joint from its parent: a standing person facing -z, y up.
OFFSETS = {
    "Pelvis": (0, 900, 0), "RHip": (-130, 0, 0), "RKnee": (0, -450, 0), "RFoot": (0, -440, 0),
    "LHip": (130, 0, 0), "LKnee": (0, -450, 0), "LFoot": (0, -440, 0), "Spine": (0, 230, 0),
    "Thorax": (0, 250, 20), "Neck/Nose": (0, 110, -60), "Head": (0, 110, 40),
    "LShoulder": (150, -10, 0), "LElbow": (30, -280, 0), "LWrist": (10, -250, 30),
    "RShoulder": (-150, -10, 0), "RElbow": (-30, -280, 0), "RWrist": (-10, -250, 30),
}


def skeleton():
    pose = np.zeros((17, 3))
    for joint, parent in enumerate(PARENTS_17):
        offset = np.array(OFFSETS[JOINTS_17[joint]], dtype=float)
        pose[joint] = offset if parent < 0 else pose[parent] + offset
    return pose


def skeleton_bone_lengths():
    """{child joint name: length} of the skeleton, like the manifest's "bone_lengths_mm"."""
    lengths = bone_lengths(skeleton())
    return {name: float(lengths[joint]) for joint, name in enumerate(JOINTS_17) if joint > 0}


def rotation(axis, degrees):
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    angle = np.radians(degrees)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def test_bone_lengths_of_the_skeleton():
    lengths = bone_lengths(skeleton())
    assert lengths.shape == (17,)
    assert lengths[0] == 0
    for joint in range(1, 17):
        assert lengths[joint] == pytest.approx(np.linalg.norm(OFFSETS[JOINTS_17[joint]]))
    assert bone_lengths(np.stack([skeleton()] * 4)).shape == (4, 17)


def test_root_align_puts_the_root_at_the_origin():
    aligned = root_align(skeleton()[None] + [10.0, -5.0, 3.0])
    np.testing.assert_allclose(aligned[:, 0], 0)
    np.testing.assert_allclose(aligned, root_align(skeleton()[None]))


def test_mpjpe_ignores_a_global_translation():
    gt = skeleton()[None]
    np.testing.assert_allclose(mpjpe(gt + [100.0, -40.0, 7.0], gt), [0], atol=1e-9)


def test_mpjpe_of_one_joint_moved_by_5_mm():
    gt = np.stack([skeleton(), skeleton()])
    pred = gt.copy()
    pred[1, 13] += [3.0, 4.0, 0.0]
    np.testing.assert_allclose(mpjpe(pred, gt, include_root=False), [0, 5 / 16])
    np.testing.assert_allclose(mpjpe(pred, gt), [0, 5 / 17])   # the literature's default


def test_mpjpe_of_the_root_moved_counts_on_every_other_joint():
    gt = skeleton()[None]
    pred = gt.copy()
    pred[0, 0] += [3.0, 4.0, 0.0]       # after root alignment every other joint is 5 mm off
    np.testing.assert_allclose(mpjpe(pred, gt, include_root=False), [5.0])
    np.testing.assert_allclose(mpjpe(pred, gt), [5.0 * 16 / 17])


def test_mpjpe_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        mpjpe(np.zeros((2, 17, 3)), np.zeros((3, 17, 3)))


def test_p_mpjpe_undoes_a_similarity_transform():
    gt = skeleton()[None]
    pred = 1.7 * gt @ rotation([1, 2, 3], 30).T + [250.0, -80.0, 4000.0]
    np.testing.assert_allclose(p_mpjpe(pred, gt), [0], atol=1e-8)
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-8)
    assert mpjpe(pred, gt)[0] > 50


def test_procrustes_recovers_the_known_scale():
    gt = skeleton()[None]
    pred = 1.7 * gt @ rotation([0, 1, 0], 30).T + [5.0, 6.0, 7.0]
    aligned = procrustes_align(gt, pred)         # align gt onto pred: scale 1.7
    centred = aligned - aligned.mean(axis=1, keepdims=True)
    gt_centred = gt - gt.mean(axis=1, keepdims=True)
    assert np.linalg.norm(centred) / np.linalg.norm(gt_centred) == pytest.approx(1.7)
    np.testing.assert_allclose(aligned, pred, atol=1e-8)


def test_p_mpjpe_allows_no_reflection():
    gt = skeleton()[None]
    mirrored = gt * [-1.0, 1.0, 1.0]             # left and right swapped by a mirror
    assert p_mpjpe(mirrored, gt)[0] > 1.0
    aligned = procrustes_align(mirrored, gt)
    centred = aligned[0] - aligned[0].mean(axis=0)
    source = mirrored[0] - mirrored[0].mean(axis=0)
    transform, *_ = np.linalg.lstsq(source, centred, rcond=None)
    assert np.linalg.det(transform) > 0          # a proper rotation times a positive scale


def test_p_mpjpe_is_at_most_mpjpe_and_counts_the_root_on_request():
    rng = np.random.default_rng(0)
    gt = skeleton() + rng.normal(0, 30, (5, 17, 3))
    pred = gt + rng.normal(0, 40, (5, 17, 3))
    assert np.all(p_mpjpe(pred, gt, include_root=True) <= mpjpe(pred, gt, include_root=True)
                  + 1e-9)
    aligned = procrustes_align(pred, gt)
    joint_errors = np.linalg.norm(aligned - gt, axis=-1)
    np.testing.assert_allclose(p_mpjpe(pred, gt, include_root=False),
                               joint_errors[:, 1:].mean(axis=1))
    np.testing.assert_allclose(p_mpjpe(pred, gt), joint_errors.mean(axis=1))


def test_recover_scale_of_a_normalised_prediction():
    means = skeleton_bone_lengths()
    means["Spine"] *= 1.3               # the means need not be those of the pose
    small = 0.001 * (skeleton() - skeleton().mean(axis=0))
    scaled = recover_scale(small[None], means)
    torso = [JOINTS_17.index(bone) for bone in PAPER.torso_bones]
    assert bone_lengths(scaled)[0, torso].sum() == pytest.approx(
        sum(means[bone] for bone in PAPER.torso_bones), rel=1e-12)


def test_recover_scale_is_the_identity_when_the_torso_matches():
    means = skeleton_bone_lengths()
    poses = np.stack([skeleton(), skeleton() @ rotation([0, 1, 0], 45).T])
    np.testing.assert_allclose(recover_scale(poses, means), poses, rtol=1e-12)


def test_recover_scale_scales_each_pose_on_its_own():
    means = skeleton_bone_lengths()
    poses = np.stack([0.5 * skeleton(), 2.0 * skeleton()])
    np.testing.assert_allclose(recover_scale(poses, means), [skeleton(), skeleton()])


def test_recover_scale_rejects_a_zero_torso():
    means = {name: 100.0 for name in JOINTS_17[1:]}
    poses = np.stack([skeleton(), np.zeros((17, 3))])
    with pytest.raises(ValueError, match="zero"):
        recover_scale(poses, means)


def test_recover_scale_needs_the_torso_means():
    with pytest.raises(ValueError, match="lacks"):
        recover_scale(skeleton(), {"RHip": 100.0})


def test_mean_pose_of_two_poses():
    first = skeleton() + [100.0, 0.0, 0.0]
    second = 2.0 * skeleton() + [0.0, 0.0, 3000.0]
    expected = (root_align(first) + root_align(second)) / 2
    np.testing.assert_allclose(mean_pose(np.stack([first, second])), expected)
    assert mean_pose(np.stack([first, second])).shape == (17, 3)


def test_summarize_frame_weighted_and_action_wise():
    summary = summarize([10.0, 1.0, 1.0, 1.0], ["Walking", "Eating", "Eating", "Eating"])
    assert summary["per_action"] == {"Eating": 1.0, "Walking": 10.0}
    assert list(summary["per_action"]) == ["Eating", "Walking"]     # the order of ACTIONS
    assert summary["frame_weighted"] == pytest.approx(3.25)
    assert summary["action_wise"] == pytest.approx(5.5)
    assert summary["frames"] == {"Eating": 3, "Walking": 1}


def test_summarize_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        summarize([1.0, 2.0], ["Walking"])


def test_paper_table1_covers_the_actions_and_averages_as_printed():
    assert set(PAPER_TABLE1) == set(ACTIONS) | {"Average"}
    per_action = [PAPER_TABLE1[action] for action in ACTIONS]
    # The plain mean of the 15 printed values is 117.47; the paper prints 117.34.
    assert np.mean(per_action) == pytest.approx(PAPER_TABLE1["Average"], abs=0.15)


def test_paper_table2_full_row_is_table1():
    assert set(PAPER_TABLE2) == {"baseline", "multi-reg", "2d-cls", "full"}
    for action, value in PAPER_TABLE2["full"].items():
        assert PAPER_TABLE1[action] == value
    for action in PAPER_TABLE2["full"]:
        assert PAPER_TABLE2["baseline"][action] > PAPER_TABLE2["full"][action]


def test_format_table1_has_a_greppable_line_per_action():
    summary = summarize([62.3, 62.3, 100.0], ["Walking", "Walking", "Eating"])
    baseline = summarize([200.0, 200.0, 250.0], ["Walking", "Walking", "Eating"])
    table = format_table1(summary, baseline)
    walking = next(line for line in table.splitlines() if line.startswith("MPJPE Walking"))
    assert walking.split()[1:] == ["Walking", "62.3", "200.0", "62.64", "2"]
    assert any(line.startswith("MPJPE Average(action-wise)") and "117.34" in line
               for line in table.splitlines())
    plain = format_table1(summary)
    assert next(line for line in plain.splitlines()
                if line.startswith("MPJPE Eating")).split()[1:] == ["Eating", "100.0", "89.96", "1"]
