"""The gradient-check helper: passes correct backwards, catches wrong ones."""
import json

import numpy as np
import pytest

from tests.gradcheck import GradientCheckError, assert_layer_gradient, check_layer_gradient

TOY = "tests.toy_layers"


def test_correct_gradient_passes_and_matches_hand_computed_derivative():
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=np.float32)
    report = check_layer_gradient(TOY, "Square", [x], max_checks=None)
    assert report.ok, report.summary()
    assert report.checked == x.size
    # with max_checks=None every element was compared, within Caffe's criterion
    assert report.max_error < 1e-3


def test_deliberately_wrong_gradient_is_caught():
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=np.float32)
    report = check_layer_gradient(TOY, "SquareWrongGradient", [x], max_checks=None)
    assert not report.ok
    # the wrong backward is x * dtop instead of 2 x * dtop: for every non-tiny element the
    # finite difference is twice the layer's answer
    worst = report.mismatches[0]
    assert worst.blob == "bottom 0"
    assert worst.numeric == pytest.approx(2 * worst.analytic, rel=1e-2)
    with pytest.raises(GradientCheckError, match="SquareWrongGradient.*beyond tolerance"):
        assert_layer_gradient(TOY, "SquareWrongGradient", [x])


def test_two_bottoms_and_param_str():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 4, 3))
    report = assert_layer_gradient(TOY, "ScaledProduct", [a, b],
                                   param_str=json.dumps({"scale": 3.0}))
    assert report.checked == a.size + b.size


def test_only_selected_bottoms_are_checked():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 5))
    report = assert_layer_gradient(TOY, "ScaledProduct", [a, b], check_bottoms=[1])
    assert report.checked == b.size


def test_parameter_blob_gradients_are_checked():
    x = np.random.default_rng(3).standard_normal((4, 3, 2, 2))
    report = assert_layer_gradient(TOY, "ChannelScale", [x])
    assert report.checked == x.size + 3          # bottom elements and the 3 channel weights
    wrong = check_layer_gradient(TOY, "ChannelScaleWrongParamGradient", [x])
    assert not wrong.ok
    assert {m.blob for m in wrong.mismatches} == {"param 0"}


def test_sampling_limits_the_number_of_checks():
    x = np.random.default_rng(4).standard_normal((10, 30))
    report = assert_layer_gradient(TOY, "Square", [x], max_checks=25)
    assert report.checked == 25
