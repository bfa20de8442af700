"""The 3D pose of one person crop with a trained run, and a drawing of it.

The crop is resized to the run's crop size and its centre input window is used, as at test
time. The pose is the average of the root heads (eq. 7), scaled so that the torso bones have
the training set's mean lengths (section 4): millimetres, camera axes (x right, y down,
z forward), relative to the pelvis.
"""
import warnings
from pathlib import Path

import cv2
import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure
from PIL import Image

from config import PAPER
from evaluation.evaluate import EvaluationError, check_output_folder, check_poses, deploy_net
from evaluation.figures import draw_skeleton_3d, save_figure
from evaluation.metrics import recover_scale, root_align

# The images prediction takes (tools/predict.py); each is resized to the run's crop size (the
# paper's 250 x 250) and the net sees its centre input window (225 x 225).
# ASSUMPTION: the shortest side of a crop worth predicting: a smaller one is enlarged more
# than 7 times and shows no limbs, so its pose would be a guess printed as a result
MIN_CROP_SIDE = 32
# ASSUMPTION: the most pixels prediction decodes (a 4096 x 4096 crop; a whole 4K frame, 3840 x
# 2160, fits): a larger image is refused before decoding, which took 27 s and 8.5 GB for
# 12000 x 12000 pixels (Pillow's own bomb limit, 89 Mpx, is far above)
MAX_CROP_PIXELS = 4096 * 4096
# the longest side of the crop as drawn beside the skeleton (about the 4 inches it takes at
# DPI 120): a larger one is drawn shrunk, as imshow resampled a 4096-pixel crop for seconds
# and a gigabyte
DRAWN_CROP_SIDE = 512


def crop_size_problem(width, height, min_side=MIN_CROP_SIDE):
    """Why a crop of width x height pixels is not predicted, or None."""
    size = f"{PAPER.crop_size} x {PAPER.crop_size}"
    if width * height > MAX_CROP_PIXELS:
        return (f"is {width} x {height} pixels, more than the {MAX_CROP_PIXELS / 1e6:.1f} "
                f"million prediction decodes (every crop is resized to the run's crop size, "
                f"{size} in the paper); crop the person out, or shrink the image first")
    if min(width, height) < min_side:
        return (f"is {width} x {height} pixels: a side under {min_side} pixels holds no pose "
                f"to see once resized to the run's crop size ({size} in the paper); give a "
                "larger crop of the person")
    return None


def read_crop(path, min_side=1):
    """The image file at path as a BGR uint8 (H, W, 3) crop (grey or with alpha: as BGR);
    ValueError naming the file when it is not an image, or is cut short or corrupt, or its
    size (read before decoding) is not one to predict from (crop_size_problem; min_side:
    MIN_CROP_SIDE for a user's image). Pillow decodes it first, strictly: OpenCV alone
    decodes what a cut-short JPEG holds, fills the rest with grey and says nothing but a
    warning on stderr."""
    path = Path(path)
    try:
        with warnings.catch_warnings():   # Pillow's bomb warning: the size is checked here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            problem = crop_size_problem(*image.size, min_side)
            if problem is None:
                image.load()
    except Exception as error:   # noqa: BLE001 - Pillow raises many kinds on malformed files
        raise ValueError(f"{path} is not a readable image ({type(error).__name__}: "
                         f"{error})") from None
    if problem:
        raise ValueError(f"{path} {problem}")
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
    net = deploy_net(folder.deploy_path, weights, folder.variant())
    net.blobs["data"].data[...] = network_input(image, dataset.mean_bgr, dataset.crop_size,
                                                cfg.input_size)
    pose = net.forward()["pose_3D"][0]
    check_poses(pose[None], weights)
    return root_align(recover_scale(pose[None], dataset.bone_lengths_mm, cfg.torso_bones))[0]


def check_drawing_path(path):
    """EvaluationError naming `path` unless the drawing can be written there (checked before
    the work): a name of a format matplotlib writes, not a folder, in a folder that can be
    written to (check_output_folder)."""
    path = Path(path)
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise EvaluationError(f"cannot draw into {path}: name a .png file (or one of another "
                              f"format matplotlib writes: {', '.join(sorted(formats))}) "
                              "(--out)")
    if path.is_dir():
        raise EvaluationError(f"cannot write {path}: it is a folder; name the drawing's file "
                              "(--out)")
    check_output_folder(path.parent, output=path)


def draw_prediction(image, pose, path):
    """PNG of the input crop (shrunk to DRAWN_CROP_SIDE) beside the predicted 3D skeleton;
    returns the path."""
    scale = DRAWN_CROP_SIDE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    figure = Figure(figsize=(8, 4))
    crop_axes = figure.add_subplot(1, 2, 1)
    crop_axes.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    crop_axes.set_axis_off()
    draw_skeleton_3d(figure.add_subplot(1, 2, 2, projection="3d"), pose, "prediction (mm)")
    return save_figure(figure, Path(path))
