#!/usr/bin/env python3
"""The 3D pose of a person crop with a trained model, printed and drawn.

    .venv/bin/python tools/predict.py IMAGE --run runs/full-demo [--weights FILE] [--out pose.png]
        [--gpu N]

IMAGE is a person crop as in the LMDBs (it is resized to 250x250 and its centre 225x225 is
used, as at test time). The pose is the average of the root heads (eq. 7), scaled so that the
torso bones have the training set's mean lengths (section 4): millimetres, camera axes
(x right, y down, z forward), relative to the pelvis.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
from config import PAPER  # noqa: E402
from data_prep.h36m import JOINTS_17  # noqa: E402
from solver.devices import DeviceError, use_device  # noqa: E402
from tools.evaluate import EvaluationError, check_weights, latest_weights  # noqa: E402
from evaluation.metrics import recover_scale, root_align  # noqa: E402


def network_input(image, mean_bgr, crop_size=PAPER.crop_size, input_size=PAPER.input_size):
    """(1, 3, S, S) float32: resized to the crop size, centre input window, mean subtracted."""
    image = cv2.resize(image, (crop_size, crop_size), interpolation=cv2.INTER_AREA)
    offset = (crop_size - input_size) // 2
    window = image[offset:offset + input_size, offset:offset + input_size].astype(np.float32)
    return (window - np.asarray(mean_bgr, np.float32)).transpose(2, 0, 1)[None]


def predict_pose(image, deploy, weights, manifest):
    net = caffe.Net(str(deploy), str(weights), caffe.TEST)
    net.blobs["data"].data[...] = network_input(image, manifest["mean_bgr"])
    pose = net.forward()["pose_3D"][0]
    return root_align(recover_scale(pose[None], manifest["bone_lengths_mm"]))[0]


def draw_prediction(image, pose, path):
    """PNG of the input crop beside the predicted 3D skeleton."""
    from evaluation.figures import draw_skeleton_3d, plt   # figures selects the Agg backend
    figure = plt.figure(figsize=(8, 4))
    crop_axes = figure.add_subplot(1, 2, 1)
    crop_axes.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    crop_axes.set_axis_off()
    draw_skeleton_3d(figure.add_subplot(1, 2, 2, projection="3d"), pose, "prediction (mm)")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path, help="person crop (any size, resized to 250x250)")
    parser.add_argument("--run", type=Path, required=True, help="run folder of tools/train.py")
    parser.add_argument("--weights", type=Path, help="caffemodel (default: the run's latest)")
    parser.add_argument("--out", type=Path, help="PNG of the crop and the 3D skeleton")
    parser.add_argument("--gpu", type=int, metavar="N",
                        help="run the net on GPU N (needs the GPU build; default: the CPU)")
    args = parser.parse_args(argv)
    image = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if image is None:
        parser.error(f"cannot read an image from {args.image}")
    try:
        use_device(args.gpu)
        config = json.loads((args.run / "config.json").read_text())
        manifest = json.loads((Path(config["lmdb"]) / "manifest.json").read_text())
        weights = args.weights or latest_weights(args.run)
        check_weights(args.run / "deploy.prototxt", weights)
    except (OSError, KeyError, EvaluationError, DeviceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    pose = predict_pose(image, args.run / "deploy.prototxt", weights, manifest)
    for name, (x, y, z) in zip(JOINTS_17, pose):
        print(f"joint {name:<10} {x:8.1f} {y:8.1f} {z:8.1f} mm")
    if args.out:
        draw_prediction(image, pose, args.out)
        print(f"predict: drawing in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
