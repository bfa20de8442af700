"""3D targets (section 4, eq. 4) and multi-root averaging (eq. 7) against hand-computed cases."""
import json

import numpy as np
import pytest

from config import PAPER
from layers.pose_3d import (full_pose, multi_root_average, multi_root_average_backward,
                            normalize_pose, root_relative, root_targets)
from tests.gradcheck import assert_layer_gradient, layer_net

ROOTS = list(PAPER.root_joints)


def random_poses(batch=4, joints=17, seed=0):
    return np.random.default_rng(seed).normal(0, 300, size=(batch, joints, 3))


def test_normalize_pose_hand_computed():
    pose = np.array([[0.0, 0, 0], [2, 0, 0]])
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(normalize_pose(pose), [[-s, 0, 0], [s, 0, 0]])


def test_normalize_pose_zero_mean_unit_frobenius_and_scale_invariant():
    poses = random_poses()
    normalized = normalize_pose(poses)
    np.testing.assert_allclose(normalized.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=(1, 2)), 1)
    np.testing.assert_allclose(normalize_pose(3.7 * poses + 100), normalized, atol=1e-12)
    with pytest.raises(ValueError, match="no scale"):
        normalize_pose(np.ones((17, 3)))


def test_root_relative_drops_the_root_and_full_pose_restores_it():
    pose = np.array([[1.0, 2, 3], [4, 6, 8], [0, 0, 1]])
    relative = root_relative(pose, 1)
    np.testing.assert_allclose(relative, [[-3, -4, -5], [-4, -6, -7]])
    np.testing.assert_allclose(full_pose(relative, 1), pose - pose[1])


def test_root_targets_shapes_and_values():
    poses = random_poses()
    targets = root_targets(poses, ROOTS)
    assert len(targets) == 6 and all(t.shape == (4, 48) for t in targets)
    normalized = normalize_pose(poses)
    # head for root 9 (neck): joint 0's target is pelvis - neck of the normalized pose
    np.testing.assert_allclose(targets[1].reshape(4, 16, 3)[:, 0], normalized[:, 0] - normalized[:, 9])


def test_multi_root_average_hand_computed():
    # 3 joints on the x axis, roots 0 and 2
    head_root0 = [[1.0, 0, 0, 2, 0, 0]]            # joints 1, 2 relative to joint 0
    head_root2 = [[-2.0, 0, 0, -1, 0, 0]]          # joints 0, 1 relative to joint 2
    out = multi_root_average([head_root0, head_root2], [0, 2], 3)
    np.testing.assert_allclose(out[0], [[-1, 0, 0], [0, 0, 0], [1, 0, 0]])
    # a head predicting all joints at its root contributes a zero pose: the average halves
    out = multi_root_average([head_root0, np.zeros((1, 6))], [0, 2], 3)
    np.testing.assert_allclose(out[0], [[-0.5, 0, 0], [0, 0, 0], [0.5, 0, 0]])


def test_multi_root_average_of_exact_targets_is_the_normalized_pose():
    poses = random_poses()
    out = multi_root_average(root_targets(poses, ROOTS), ROOTS, 17)
    np.testing.assert_allclose(out, normalize_pose(poses), atol=1e-12)


def test_multi_root_backward_is_the_transpose():
    rng = np.random.default_rng(5)
    heads = [rng.standard_normal((2, 48)) for _ in ROOTS]
    upstream = rng.standard_normal((2, 17, 3))
    grads = multi_root_average_backward(upstream, ROOTS, 17)
    # <g, A x> == <A^T g, x> for the linear map A
    lhs = np.sum(upstream * multi_root_average(heads, ROOTS, 17))
    rhs = sum(np.sum(g * h) for g, h in zip(grads, heads))
    assert lhs == pytest.approx(rhs)


def test_root_targets_layer_matches_the_functions():
    poses = random_poses(batch=3)
    net = layer_net("layers.pose_3d", "RootTargets", [poses.shape],
                    json.dumps({"roots": ROOTS}), n_tops=6)
    net.blobs["bottom0"].data[...] = poses
    net.forward()
    for i, target in enumerate(root_targets(poses.astype(np.float32), ROOTS)):
        np.testing.assert_allclose(net.blobs[f"top{i}"].data, target, atol=1e-6)


def test_multi_root_average_layer_forward_and_gradient():
    rng = np.random.default_rng(6)
    heads = [rng.standard_normal((2, 48)) for _ in ROOTS]
    params = json.dumps({"roots": ROOTS, "num_joints": 17})
    net = layer_net("layers.pose_3d", "MultiRootAverage", [h.shape for h in heads], params)
    for i, head in enumerate(heads):
        net.blobs[f"bottom{i}"].data[...] = head
    net.forward()
    np.testing.assert_allclose(net.blobs["top0"].data, multi_root_average(heads, ROOTS, 17),
                               atol=1e-6)
    assert_layer_gradient("layers.pose_3d", "MultiRootAverage", heads, params, max_checks=40)


def test_layers_reject_bad_configuration():
    with pytest.raises(Exception, match="one top per root"):
        layer_net("layers.pose_3d", "RootTargets", [(2, 17, 3)], json.dumps({"roots": ROOTS}))
    with pytest.raises(Exception, match="missing keys \\['num_joints'\\]"):
        layer_net("layers.pose_3d", "MultiRootAverage", [(2, 48)] * 6, json.dumps({"roots": ROOTS}))
    with pytest.raises(Exception, match="not \\(N, 48\\)"):
        layer_net("layers.pose_3d", "MultiRootAverage", [(2, 51)] * 6,
                  json.dumps({"roots": ROOTS, "num_joints": 17}))
