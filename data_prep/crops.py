"""Person crops as in section 4: the box of the segmentation mask, made square with a margin,
resized to crop_size x crop_size; the 2D joints mapped into crop pixels by the same map.

The crop is an affine map x_crop = (x - x0) * s, y_crop = (y - y0) * s applied with
cv2.warpAffine, so a point at image pixel (u, v) lands at crop pixel ((u - x0) s, (v - y0) s)
exactly (pixel centres at integer coordinates in both), and parts of the square outside the
image are filled with black rather than shifting the person off centre.
"""
import math
import threading

import cv2
import numpy as np

# Pixels beyond the square that the warp may read: bilinear interpolation reads one pixel
# past a source position, and OpenCV rounds positions to 1/32 pixel.
WARP_MARGIN = 2
# Each thread's image-sized BGRA buffer for warp_square, kept from frame to frame.
_SCRATCH = threading.local()


class EmptyMask(ValueError):
    """The mask has no foreground pixel."""


def mask_box(mask):
    """(x_min, y_min, x_max, y_max) of the True pixels of a (H, W) mask, inclusive."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise EmptyMask("the mask is empty")
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


def square_around(box, margin):
    """(x0, y0, side): the square centred on the box, its side the box's longer side
    (in pixels, counting both end pixels) times (1 + margin)."""
    x_min, y_min, x_max, y_max = box
    side = max(x_max - x_min + 1, y_max - y_min + 1) * (1 + margin)
    cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2
    return cx - (side - 1) / 2, cy - (side - 1) / 2, side


def crop_transform(x0, y0, side, crop_size):
    """The 2x3 affine map of image pixels to crop pixels."""
    scale = crop_size / side
    return np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])


def map_points(points, transform):
    """Apply a 2x3 affine map to (..., 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ transform[:, :2].T + transform[:, 2]


def source_window(x0, y0, side, shape):
    """(rows, columns) slices of the pixels of an image of `shape` that the warp of the
    square (x0, y0, side) can read."""
    height, width = shape[:2]
    rows = slice(max(0, math.floor(y0) - WARP_MARGIN),
                 min(height, math.ceil(y0 + side) + WARP_MARGIN))
    columns = slice(max(0, math.floor(x0) - WARP_MARGIN),
                    min(width, math.ceil(x0 + side) + WARP_MARGIN))
    return rows, columns


def _bgra_scratch(shape):
    """This thread's BGRA buffer for images of `shape`: a new one per frame would cost more
    in page faults than the four-channel warp saves (a real frame's is 4 MB). What earlier
    frames left in it lies outside the pixels the warp reads."""
    buffer = getattr(_SCRATCH, "bgra", None)
    if buffer is None or buffer.shape[:2] != shape[:2]:
        buffer = _SCRATCH.bgra = np.zeros(shape[:2] + (4,), dtype=np.uint8)
    return buffer


def warp_square(image, x0, y0, side, transform, crop_size):
    """cv2.warpAffine of a BGR image's square (x0, y0, side) into the crop, bit for bit, but
    faster: OpenCV warps four-channel images much faster than three-channel ones (and
    interpolates each channel alike), so the pixels the warp can read are made BGRA first,
    in place in an image-sized buffer, which keeps the warp's coordinates and borders."""
    rows, columns = source_window(x0, y0, side, image.shape)
    bgra = _bgra_scratch(image.shape)
    if image[rows, columns].size:     # else the square lies outside: all border
        cv2.cvtColor(image[rows, columns], cv2.COLOR_BGR2BGRA, dst=bgra[rows, columns])
    crop = cv2.warpAffine(bgra, transform, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    return cv2.cvtColor(crop, cv2.COLOR_BGRA2BGR)


def box_crop(image, box, joints_2d, crop_size, margin):
    """(crop uint8 (S, S, 3), joints in crop pixels (J, 2), transform) of one frame, around the
    person's box (x_min, y_min, x_max, y_max) as mask_box gives it."""
    x0, y0, side = square_around(box, margin)
    transform = crop_transform(x0, y0, side, crop_size)
    crop = warp_square(image, x0, y0, side, transform, crop_size)
    return crop, map_points(joints_2d, transform), transform


def joints_outside_box(joints_2d, box, tolerance):
    """How many of the (J, 2) joints lie outside the box (x_min, y_min, x_max, y_max) grown on
    every side by `tolerance` times its longer side (in pixels, counting both end pixels)."""
    x_min, y_min, x_max, y_max = box
    grow = tolerance * max(x_max - x_min + 1, y_max - y_min + 1)
    x, y = np.asarray(joints_2d, dtype=np.float64).T
    inside = ((x >= x_min - grow) & (x <= x_max + grow)
              & (y >= y_min - grow) & (y <= y_max + grow))
    return int(inside.size - inside.sum())


def person_crop(image, mask, joints_2d, crop_size, margin):
    """box_crop around the box of a (H, W) mask's person; EmptyMask if it has none."""
    return box_crop(image, mask_box(mask), joints_2d, crop_size, margin)
