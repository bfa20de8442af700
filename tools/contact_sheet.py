#!/usr/bin/env python3
"""Contact sheet of a Human3.6M-layout dataset: frames per action and camera with the 2D joints
of D2_Positions drawn on the video frames (left red, right blue, spine green), as a PNG.

    .venv/bin/python tools/contact_sheet.py [--root data/synth-h36m] [--subject S1]
        [--out runs/synth/contact_sheet.png]
It reads the files as a user would (OpenCV for the videos, cdflib for the poses), so it also
shows whether the 2D annotations sit on the people in the videos.
"""
import argparse
import sys
from pathlib import Path

import cdflib
import cv2
import numpy as np

from data_prep.h36m import (ACTIONS, CAMERAS, JOINTS_17_FROM_32, PARENTS_17, RIGHT_17,
                            sequence_name, sequence_paths)

LEFT_BGR, RIGHT_BGR, CENTRE_BGR = (40, 40, 230), (230, 120, 30), (60, 200, 60)
LEFT_17 = (4, 5, 6, 11, 12, 13)


def read_frame(video, index):
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise OSError(f"cannot read frame {index} of {video}")
    return frame


def draw_skeleton(frame, joints_32, radius=3):
    joints = joints_32[list(JOINTS_17_FROM_32)]
    for child, parent in enumerate(PARENTS_17):
        if parent >= 0:
            colour = RIGHT_BGR if child in RIGHT_17 else LEFT_BGR if child in LEFT_17 else \
                CENTRE_BGR
            cv2.line(frame, tuple(np.round(joints[parent]).astype(int)),
                     tuple(np.round(joints[child]).astype(int)), colour, 2, cv2.LINE_AA)
    for point in joints:
        cv2.circle(frame, tuple(np.round(point).astype(int)), radius, (255, 255, 255), -1)
    return frame


def tile(root, subject, action, camera_id, frame_index, size):
    paths = sequence_paths(root, subject, sequence_name(subject, action, 1), camera_id)
    poses = cdflib.CDF(str(paths["d2"]))["Pose"].reshape(-1, 32, 2)
    index = min(frame_index, len(poses) - 1)
    frame = draw_skeleton(read_frame(paths["video"], index), poses[index])
    frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    cv2.putText(frame, f"{action} {camera_id[:4]} f{index}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX,
                0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def contact_sheet(root, subject, actions, frames_per_tile=(0,), size=200):
    rows = []
    for action in actions:
        rows.append(np.hstack([tile(root, subject, action, camera_id, f, size)
                               for camera_id in CAMERAS for f in frames_per_tile]))
    return np.vstack(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/synth-h36m"),
                        help="dataset root (default: %(default)s)")
    parser.add_argument("--subject", default="S1", help="subject to show (default: S1)")
    parser.add_argument("--actions", nargs="+", default=list(ACTIONS), help="actions (default: all)")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 12],
                        help="frame indices per recording (default: 0 12)")
    parser.add_argument("--out", type=Path, default=Path("runs/synth/contact_sheet.png"),
                        help="PNG to write (default: %(default)s)")
    args = parser.parse_args(argv)
    if not (args.root / args.subject).is_dir():
        parser.error(f"{args.root / args.subject} not found; write the dataset with `make synth`")
    try:
        sheet = contact_sheet(args.root, args.subject, args.actions, args.frames)
    except (OSError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet)
    print(f"contact sheet: {args.out} ({len(args.actions)} actions x {len(CAMERAS)} cameras x "
          f"{len(args.frames)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
