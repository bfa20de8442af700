#!/usr/bin/env python3
"""The 3D pose of a person crop with a trained run, printed and drawn.

    python tools/predict.py IMAGE [--run RUN] [--weights FILE] [--lmdb DIR] [--out pose.png]
        [--gpu N]

IMAGE is a person crop as in the LMDBs (any size: it is resized to the crop size and its
centre input window is used, as at test time); evaluation/predict.py says what the numbers
are. Without --run, the run of solver/h36m.prototxt.
"""
import argparse
import sys
from pathlib import Path

from data_prep.h36m import JOINTS_17
from evaluation.evaluate import EvaluationError
from evaluation.predict import draw_prediction, predict_pose, read_crop
from solver.caffe_cli import quiet_caffe_log
from solver.devices import DeviceError, use_device
from solver.run_folder import RunError, add_model_arguments, find_run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path, help="person crop (any size)")
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, help="PNG of the crop and the 3D skeleton")
    parser.add_argument("--gpu", type=int, metavar="N",
                        help="run the net on GPU N (needs the GPU build; default: the CPU)")
    args = parser.parse_args(argv)
    try:
        image = read_crop(args.image)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    quiet_caffe_log()
    try:
        use_device(args.gpu)
        folder = find_run(args.run, args.lmdb)
        pose = predict_pose(image, folder, args.weights)
    except (DeviceError, EvaluationError, RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, (x, y, z) in zip(JOINTS_17, pose):
        print(f"joint {name:<10} {x:8.1f} {y:8.1f} {z:8.1f} mm")
    if args.out:
        print(f"predict: drawing in {draw_prediction(image, pose, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
