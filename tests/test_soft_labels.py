"""Soft labels (eq. 1-2) and the soft-label cross-entropy (eq. 3) against hand-computed cases."""
import json

import numpy as np
import pytest

from layers.soft_labels import (cell_centres, soft_label_cross_entropy, soft_label_pairs,
                                 soft_labels)
from tests.gradcheck import assert_layer_gradient, layer_net

# a 16-pixel image cut into 4 x 4 cells of width 4: centres at 2, 6, 10, 14
GRID, IMAGE = 4, 16


def test_cell_centres_in_class_order():
    centres = cell_centres(GRID, IMAGE)
    assert centres.shape == (16, 2)
    np.testing.assert_allclose(centres[0], [2, 2])
    np.testing.assert_allclose(centres[1], [6, 2])      # class = row * Ng + col, x = col
    np.testing.assert_allclose(centres[4], [2, 6])
    np.testing.assert_allclose(centres[15], [14, 14])


def test_joint_at_a_cell_corner_spreads_equally_over_four_cells():
    labels = soft_labels([[4.0, 4.0]], GRID, IMAGE)[0]
    expected = np.zeros(16)
    expected[[0, 1, 4, 5]] = 0.25                     # all four centres at sqrt(8) < 4
    np.testing.assert_allclose(labels, expected)


def test_inverse_distance_weights():
    # (3, 2): centre (2,2) at distance 1, (6,2) at 3; (2,6) at sqrt(17) > 4 and (6,6) at 5 are out
    labels = soft_labels([[3.0, 2.0]], GRID, IMAGE)[0]
    expected = np.zeros(16)
    expected[0], expected[1] = (1 / 1) / (1 + 1 / 3), (1 / 3) / (1 + 1 / 3)
    np.testing.assert_allclose(labels, expected)


def test_a_centre_exactly_one_cell_width_away_is_left_out():
    # width 5, centres at 2.5, 7.5, ...: (5.5, 6.5) lies 3-4-5 from (2.5, 2.5), class 0, which
    # eq. 2's strict inequality leaves out; (7.5, 2.5) at sqrt(20) < 5 is in
    labels = soft_labels([[5.5, 6.5]], 4, 20)[0]
    inverse = {5: 5 ** -0.5, 4: 10 ** -0.5, 1: 20 ** -0.5}
    expected = np.zeros(16)
    for cell, value in inverse.items():
        expected[cell] = value / sum(inverse.values())
    np.testing.assert_allclose(labels, expected, rtol=1e-12)


def test_joint_on_a_centre_and_outside_the_image():
    labels = soft_labels([[6.0, 10.0], [-5.0, 20.0]], GRID, IMAGE)
    assert labels[0, 9] == 1.0 and labels[0].sum() == 1.0        # row 2, col 1
    # clipped to (0, 16): only the centre (2, 14) is within a cell width
    assert labels[1, 12] == 1.0 and labels[1].sum() == 1.0


def test_labels_are_distributions_on_at_most_four_cells():
    joints = np.random.default_rng(0).uniform(-10, 235, size=(500, 2))
    labels = soft_labels(joints, 16, 225)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0)
    assert ((labels > 0).sum(axis=1) <= 4).all()
    assert (labels >= 0).all()


def dense(labels):
    """Dense (..., C) labels as soft_label_cross_entropy's (class, weight) pairs."""
    return np.arange(np.shape(labels)[-1]), labels


def dense_soft_labels(joints, grid_size, image_size):
    """Eq. 1-2 over every cell of the grid, written out directly: the reference for
    soft_labels, which weighs only the 3 x 3 cells around each joint."""
    joints = np.clip(np.asarray(joints, dtype=np.float64), 0, image_size).reshape(-1, 2)
    width = image_size / grid_size
    labels = np.zeros((len(joints), grid_size * grid_size))
    for k, joint in enumerate(joints):
        distances = np.hypot(*(joint - cell_centres(grid_size, image_size)).T)
        if distances.min() < 1e-12 * width:
            labels[k, distances.argmin()] = 1.0
            continue
        inverse = np.where(distances < width, 1.0 / distances, 0.0)
        labels[k] = inverse / inverse.sum()
    return labels


@pytest.mark.parametrize("grid_size, image_size", [(16, 225), (4, 16), (7, 100), (16, 224)])
def test_labels_match_eq_1_over_the_whole_grid(grid_size, image_size):
    rng = np.random.default_rng(grid_size)
    width = image_size / grid_size
    joints = np.concatenate([
        rng.uniform(-20, image_size + 20, size=(400, 2)),            # inside and outside
        (rng.integers(0, grid_size, size=(50, 2)) + 0.5) * width,     # on centres
        rng.integers(0, grid_size + 1, size=(50, 2)) * width,         # on cell corners
        np.column_stack([rng.integers(0, grid_size + 1, 50) * width,  # on cell borders
                         rng.uniform(0, image_size, 50)]),
        [[0, 0], [image_size, image_size], [0, image_size], [image_size, 0]]])
    labels = soft_labels(joints.reshape(-1, 2, 2), grid_size, image_size)
    assert labels.shape == (len(joints) // 2, 2, grid_size * grid_size)
    expected = dense_soft_labels(joints, grid_size, image_size)
    np.testing.assert_allclose(labels.reshape(expected.shape), expected, rtol=1e-12, atol=1e-15)
    assert ((labels > 0).reshape(expected.shape) == (expected > 0)).all()


def test_pairs_and_dense_labels_give_the_same_loss_and_gradient():
    rng = np.random.default_rng(4)
    joints = np.concatenate([rng.uniform(-5, 230, size=(6, 15, 2)),
                             np.full((6, 2, 2), 225 / 32)], axis=1)    # and on a centre
    scores = rng.normal(0, 5, size=(6, 17, 256)).astype(np.float32)
    classes, weights = soft_label_pairs(joints, 16, 225)
    assert classes.shape == weights.shape == (6, 17, 9)
    out = np.full((6, 17, 256), np.nan, dtype=np.float32)
    loss, gradient = soft_label_cross_entropy(scores, classes, weights, out=out)
    assert gradient is out
    expected_loss, expected_gradient = soft_label_cross_entropy(
        scores, *dense(soft_labels(joints, 16, 225)))
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-6, atol=1e-12)


def test_cross_entropy_matches_its_definition():
    rng = np.random.default_rng(3)
    scores = rng.normal(0, 20, size=(5, 3, 16))          # large scores: the shift must hold
    labels = soft_labels(rng.uniform(0, IMAGE, size=(5, 3, 2)), GRID, IMAGE)
    loss, gradient = soft_label_cross_entropy(scores.astype(np.float32), *dense(labels))
    scores = scores.astype(np.float32).astype(np.float64)
    softmax = np.exp(scores - scores.max(axis=-1, keepdims=True))
    softmax /= softmax.sum(axis=-1, keepdims=True)
    # the loss within float32 precision (its top blob is float32); scores of 60 shift inexactly
    assert loss == pytest.approx(-np.sum(labels * np.log(softmax)) / 5, rel=1e-7)
    assert gradient.dtype == np.float32
    np.testing.assert_allclose(gradient, (softmax - labels) / 5, rtol=1e-5, atol=1e-9)


def test_cross_entropy_against_hand_computed_values():
    # uniform scores: softmax 1/C everywhere, so each joint's loss is log C
    labels = soft_labels(np.array([[[4.0, 4.0], [3.0, 2.0]]] * 3), GRID, IMAGE)   # (3, 2, 16)
    loss, gradient = soft_label_cross_entropy(np.zeros((3, 2, 16)), *dense(labels))
    assert loss == pytest.approx(2 * np.log(16))
    np.testing.assert_allclose(gradient, (1 / 16 - labels) / 3)
    # a score of s on the labelled cell of a one-hot label: loss = -log(e^s / (e^s + C - 1))
    one_hot = np.zeros((1, 1, 16))
    one_hot[0, 0, 9] = 1
    scores = np.zeros((1, 1, 16))
    scores[0, 0, 9] = 2.0
    loss, _ = soft_label_cross_entropy(scores, *dense(one_hot))
    assert loss == pytest.approx(-np.log(np.e ** 2 / (np.e ** 2 + 15)))


def soft_label_layer_inputs(seed=0, batch=3, joints=2):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((batch, joints, GRID * GRID))
    positions = rng.uniform(0, IMAGE, size=(batch, joints, 2))
    return scores, positions


PARAMS = json.dumps({"grid_size": GRID, "image_size": IMAGE})


def test_layer_forward_matches_the_functions():
    scores, positions = soft_label_layer_inputs()
    net = layer_net("layers.soft_labels", "SoftLabelLoss", [scores.shape, positions.shape], PARAMS)
    net.blobs["bottom0"].data[...] = scores
    net.blobs["bottom1"].data[...] = positions
    net.forward()
    expected, _ = soft_label_cross_entropy(
        scores.astype(np.float32), *soft_label_pairs(positions.astype(np.float32), GRID, IMAGE))
    assert net.blobs["top0"].data[0] == pytest.approx(expected, rel=1e-5)


def test_layer_gradient():
    scores, positions = soft_label_layer_inputs(seed=1)
    assert_layer_gradient("layers.soft_labels", "SoftLabelLoss", [scores, positions], PARAMS,
                          check_bottoms=[0], max_checks=None)


def test_layer_flat_shapes_are_accepted():
    scores, positions = soft_label_layer_inputs(seed=2)
    flat = [scores.reshape(3, -1), positions.reshape(3, -1)]
    assert_layer_gradient("layers.soft_labels", "SoftLabelLoss", flat, PARAMS, check_bottoms=[0])


@pytest.mark.parametrize("param_str, message", [
    ('{"grid_size": 4}', "missing keys \\['image_size'\\]"),
    ('{"grid_size": 4, "image_size": 16, "ng": 3}', "unknown keys \\['ng'\\]"),
])
def test_layer_rejects_bad_param_str(param_str, message):
    with pytest.raises(Exception, match=message):
        layer_net("layers.soft_labels", "SoftLabelLoss", [(2, 2, 16), (2, 2, 2)], param_str)


def test_layer_rejects_mismatched_shapes():
    with pytest.raises(Exception, match="not \\(N, Nj, 16\\)"):
        layer_net("layers.soft_labels", "SoftLabelLoss", [(2, 2, 15), (2, 2, 2)], PARAMS)
    with pytest.raises(Exception, match="do not match 2 joints"):
        layer_net("layers.soft_labels", "SoftLabelLoss", [(2, 2, 16), (2, 3, 2)], PARAMS)
