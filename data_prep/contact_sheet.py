"""Contact sheet of a Human3.6M-layout dataset: frames per action and camera with the 2D joints
of D2_Positions drawn on the video frames (left red, right blue, spine green), as a PNG
(tools/contact_sheet.py is its command line, `make synth-sheet` runs it).

It reads the files as a user would (OpenCV for the videos, cdflib for the poses), so it also
shows whether the 2D annotations sit on the people in the videos.
"""
import sys
from pathlib import Path

import cdflib
import cv2
import numpy as np

from data_prep.h36m import (CAMERAS, JOINTS_17_FROM_32, PARENTS_17, RIGHT_17, sequence_name,
                            sequence_paths)

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


def write_contact_sheet(root, subject, actions, frames, out):
    """The contact sheet of `subject`'s `actions` (all cameras, the frame indices `frames` of
    each recording) as the PNG `out`, and a line saying so; the exit status (1: a file could
    not be read)."""
    try:
        sheet = contact_sheet(root, subject, actions, frames)
    except (OSError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)
    print(f"contact sheet: {out} ({len(actions)} actions x {len(CAMERAS)} cameras x "
          f"{len(frames)} frames)")
    return 0
