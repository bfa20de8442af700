#!/usr/bin/env python3
"""The 3D pose of a person crop with a trained run, printed and drawn.

    python tools/predict.py IMAGE [--run RUN] [--weights FILE] [--lmdb DIR] [--out pose.png]
        [--gpu N]

IMAGE is a person crop as in the LMDBs (it is resized to the crop size and its centre input
window is used, as at test time); one with a side under 32 pixels, or of more than 4096 x 4096
pixels, is refused (evaluation/predict.py: MIN_CROP_SIDE, MAX_CROP_PIXELS), as are weights of
another variant than the run's. evaluation/predict.py says what the numbers are. Without
--run, the run of solver/h36m.prototxt. Where --out goes is checked before the work.
"""
import argparse
import sys
from pathlib import Path

from data_prep.h36m import JOINTS_17
from evaluation.evaluate import EvaluationError
from evaluation.predict import (MIN_CROP_SIDE, check_drawing_path, draw_prediction,
                                predict_pose, read_crop)
from solver.caffe_cli import quiet_caffe_log
from solver.devices import DeviceError, use_device
from solver.run_folder import RunError, add_model_arguments, find_run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path, help="person crop (sides of at least "
                        f"{MIN_CROP_SIDE} pixels)")
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, help="PNG of the crop and the 3D skeleton")
    parser.add_argument("--gpu", type=int, metavar="N",
                        help="run the net on GPU N (needs the GPU build; default: the CPU)")
    args = parser.parse_args(argv)
    try:
        image = read_crop(args.image, min_side=MIN_CROP_SIDE)
    except (OSError, ValueError) as err:   # the image given: one line, no usage
        parser.exit(2, f"error: {err}\n")
    quiet_caffe_log()
    try:
        if args.out:
            check_drawing_path(args.out)   # before the work, not after the pose is printed
        use_device(args.gpu)
        folder = find_run(args.run, args.lmdb)
        pose = predict_pose(image, folder, args.weights)
    except (DeviceError, EvaluationError, RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, (x, y, z) in zip(JOINTS_17, pose):
        print(f"joint {name:<10} {x:8.1f} {y:8.1f} {z:8.1f} mm")
    if args.out:
        try:
            print(f"predict: drawing in {draw_prediction(image, pose, args.out)}")
        except OSError as err:   # writable when checked, then not (a full disk)
            print(f"error: cannot write the drawing {args.out}: {err.strerror}",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
