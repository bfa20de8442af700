"""The 3D pose of one person crop with a trained run, and a drawing of it.

The crop is resized to the run's crop size and its centre input window is used, as at test
time. The pose is the average of the root heads (eq. 7), scaled so that the torso bones have
the training set's mean lengths (section 4): millimetres, camera axes (x right, y down,
z forward), relative to the pelvis.
"""
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from evaluation.evaluate import check_poses, deploy_net
from evaluation.figures import draw_skeleton_3d, save_figure
from evaluation.metrics import recover_scale, root_align


def read_crop(path):
    """The image file at path as a BGR uint8 (H, W, 3) crop (grey or with alpha: as BGR);
    ValueError naming the file when it is not an image, or is cut short or corrupt. Pillow
    decodes it first, strictly: OpenCV alone decodes what a cut-short JPEG holds, fills the
    rest with grey and says nothing but a warning on stderr."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as error:   # noqa: BLE001 - Pillow raises many kinds on malformed files
        raise ValueError(f"{path} is not a readable image ({type(error).__name__}: "
                         f"{error})") from None
    crop = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if crop is None:
        raise ValueError(f"OpenCV cannot read an image from {path}")
    return crop


def network_input(image, mean_bgr, crop_size, input_size):
    """(1, 3, S, S) float32: resized to the crop size, centre input window, mean subtracted."""
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"a crop must be a BGR image (H, W, 3), got shape {image.shape}")
    image = cv2.resize(image, (crop_size, crop_size), interpolation=cv2.INTER_AREA)
    offset = (crop_size - input_size) // 2
    window = image[offset:offset + input_size, offset:offset + input_size].astype(np.float32)
    return (window - np.asarray(mean_bgr, np.float32)).transpose(2, 0, 1)[None]


def predict_pose(image, folder, weights=None):
    """The root-aligned 3D pose (17, 3) in mm of a BGR crop with a run's (latest) weights."""
    cfg, dataset = folder.config(), folder.dataset()
    weights = weights or folder.latest_weights()
    net = deploy_net(folder.deploy_path, weights)
    net.blobs["data"].data[...] = network_input(image, dataset.mean_bgr, dataset.crop_size,
                                                cfg.input_size)
    pose = net.forward()["pose_3D"][0]
    check_poses(pose[None], weights)
    return root_align(recover_scale(pose[None], dataset.bone_lengths_mm, cfg.torso_bones))[0]


def draw_prediction(image, pose, path):
    """PNG of the input crop beside the predicted 3D skeleton; returns the path."""
    figure = Figure(figsize=(8, 4))
    crop_axes = figure.add_subplot(1, 2, 1)
    crop_axes.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    crop_axes.set_axis_off()
    draw_skeleton_3d(figure.add_subplot(1, 2, 2, projection="3d"), pose, "prediction (mm)")
    return save_figure(figure, Path(path))
