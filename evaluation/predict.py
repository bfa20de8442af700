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

from evaluation.evaluate import deploy_net
from evaluation.figures import draw_skeleton_3d, save_figure
from evaluation.metrics import recover_scale, root_align


def network_input(image, mean_bgr, crop_size, input_size):
    """(1, 3, S, S) float32: resized to the crop size, centre input window, mean subtracted."""
    image = cv2.resize(image, (crop_size, crop_size), interpolation=cv2.INTER_AREA)
    offset = (crop_size - input_size) // 2
    window = image[offset:offset + input_size, offset:offset + input_size].astype(np.float32)
    return (window - np.asarray(mean_bgr, np.float32)).transpose(2, 0, 1)[None]


def predict_pose(image, folder, weights=None):
    """The root-aligned 3D pose (17, 3) in mm of a BGR crop with a run's (latest) weights."""
    cfg, dataset = folder.config(), folder.dataset()
    net = deploy_net(folder.deploy_path, weights or folder.latest_weights())
    net.blobs["data"].data[...] = network_input(image, dataset.mean_bgr, dataset.crop_size,
                                                cfg.input_size)
    pose = net.forward()["pose_3D"][0]
    return root_align(recover_scale(pose[None], dataset.bone_lengths_mm, cfg.torso_bones))[0]


def draw_prediction(image, pose, path):
    """PNG of the input crop beside the predicted 3D skeleton; returns the path."""
    figure = Figure(figsize=(8, 4))
    crop_axes = figure.add_subplot(1, 2, 1)
    crop_axes.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    crop_axes.set_axis_off()
    draw_skeleton_3d(figure.add_subplot(1, 2, 2, projection="3d"), pose, "prediction (mm)")
    return save_figure(figure, Path(path))
