"""Person crops: a joint drawn at a known pixel lands at its mapped crop pixel."""
import cv2
import numpy as np
import pytest

from data_prep.crops import (EmptyMask, crop_transform, joints_outside_box, map_points, mask_box,
                             person_crop, square_around, warp_square)


def test_mask_box_and_square():
    mask = np.zeros((50, 80), bool)
    mask[10:30, 40:50] = True                         # rows 10-29, cols 40-49
    assert mask_box(mask) == (40, 10, 49, 29)
    x0, y0, side = square_around((40, 10, 49, 29), margin=0.5)
    assert side == pytest.approx(30)                  # longer side 20 px, plus 50 %
    assert (x0 + (side - 1) / 2, y0 + (side - 1) / 2) == pytest.approx((44.5, 19.5))
    with pytest.raises(EmptyMask):
        mask_box(np.zeros((4, 4), bool))


def test_joints_outside_the_grown_box():
    # box x 10-19, y 20-59: its longer side 40 px, grown by 10 % of it (4 px) on every side
    box = (10.0, 20.0, 19.0, 59.0)
    inside = [(6, 20), (23, 63), (15, 16), (6, 63)]
    outside = [(5.9, 30), (23.1, 30), (15, 15.9), (15, 63.1)]
    assert joints_outside_box(inside, box, 0.1) == 0
    assert joints_outside_box(outside, box, 0.1) == 4
    assert joints_outside_box(inside + outside, box, 0.1) == 4
    assert joints_outside_box([(6, 20)], box, 0.0) == 1       # no tolerance: the box itself


@pytest.mark.parametrize("joint", [(61, 37), (45, 22), (70, 55)])
def test_a_dot_at_a_joint_lands_on_the_mapped_joint(joint):
    image = np.zeros((120, 160, 3), np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[20:100, 40:90] = True                        # an 80 x 50 person box
    image[joint[1] - 1:joint[1] + 2, joint[0] - 1:joint[0] + 2] = 255     # a 3x3 dot
    crop, mapped, transform = person_crop(image, mask, np.array([joint], float), 250, 0.2)
    assert crop.shape == (250, 250, 3)
    weights = crop[..., 0].astype(float)             # the dot, enlarged by the resize
    rows, cols = np.mgrid[:250, :250]
    centroid = (np.sum(cols * weights) / weights.sum(), np.sum(rows * weights) / weights.sum())
    assert np.allclose(centroid, mapped[0], atol=0.5)
    # the box of 80 px plus 20 % margin fills the crop: 96 image pixels -> 250 crop pixels
    assert transform[0, 0] == pytest.approx(250 / 96)
    np.testing.assert_allclose(map_points(joint, transform), mapped[0])


def test_square_outside_the_image_is_padded_black_not_shifted():
    image = np.full((60, 60, 3), 200, np.uint8)
    mask = np.zeros((60, 60), bool)
    mask[0:50, 0:10] = True                           # person at the left border
    crop, mapped, _ = person_crop(image, mask, np.array([[5.0, 25.0]]), 100, 0.0)
    assert mapped[0, 0] == pytest.approx(50, abs=1.5)    # centred horizontally
    assert crop[50, 5].max() == 0 and crop[50, 50].min() == 200


def test_warp_square_is_warp_affine_bit_for_bit():
    # noise images, so that a pixel read from anywhere else would show; squares inside,
    # across every edge, outside, larger than the image, up- and downscaled; shapes alternate,
    # so the scratch buffer is reused (holding other frames' pixels) and replaced
    rng = np.random.default_rng(0)
    shapes = [(48, 64), (500, 500), (101, 77)]
    images = [rng.integers(0, 256, size=shape + (3,), dtype=np.uint8) for shape in shapes]
    for case in range(300):
        image = images[case % len(images)]
        height, width = image.shape[:2]
        side = rng.uniform(5, 1.5 * max(height, width))
        x0, y0 = rng.uniform(-side - 5, width + 5), rng.uniform(-side - 5, height + 5)
        crop_size = int(rng.choice([31, 100, 250]))
        transform = crop_transform(x0, y0, side, crop_size)
        expected = cv2.warpAffine(image, transform, (crop_size, crop_size),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=(0, 0, 0))
        np.testing.assert_array_equal(warp_square(image, x0, y0, side, transform, crop_size),
                                      expected, err_msg=f"case {case}")
