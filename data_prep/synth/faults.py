"""The real dataset's layout faults, which the synthetic tree reproduces unless --clean.

Every real video is a few frames longer than its poses (h36m.VIDEO_EXTRA_FRAMES, per camera);
four S9 recordings have videos about twice as long as their poses (h36m.HALF_POSED); `_ALL`
files, each action's subactions in one file, lie beside the others; and S11's "Directions"
video from camera 54138969 cannot be decoded (h36m.BROKEN_VIDEO), as in many copies of the
real one.
"""
import re

import numpy as np

from data_prep.h36m import CAMERAS, HALF_POSED, MOST_VIDEO_EXTRA_FRAMES, STEMS, VIDEO_EXTRA_FRAMES
from data_prep.synth import stable_seed

# What is left of the broken video: its mp4 header and the start of its frame data, as a
# truncated copy has it (the index, at the file's end, is gone, so nothing decodes).
BROKEN_VIDEO_BYTES = 512
ALL_SUFFIX = "_ALL"


def is_half_posed(subject, stem):
    """Whether the recording's poses cover only about the first half of its videos."""
    return (subject, stem) in HALF_POSED


def motion_frames(subject, stem, poses):
    """Frames of motion to generate for a recording with `poses` pose frames: enough for its
    longest video in the default tree. A --clean tree generates as many and keeps the first
    `poses`, so that its poses are those of the default tree."""
    covered = 2 * poses if is_half_posed(subject, stem) else poses
    # the most extra frames any camera's video has: every camera's extra frames show motion
    return covered + MOST_VIDEO_EXTRA_FRAMES


def video_extra_frames(seed, subject, stem, camera_id):
    """Frames a camera's video has beyond its recording's poses in the default tree, within
    the camera's real (least, median, most) (h36m.VIDEO_EXTRA_FRAMES) and with its median:
    below or above the median with equal chance, then uniformly on that side; the same for
    the same seed (a half-posed recording's videos have these beyond twice its poses)."""
    least, median, most = VIDEO_EXTRA_FRAMES[camera_id]
    rng = np.random.default_rng(stable_seed(seed, subject, stem, camera_id, "video extra"))
    low, high = (least, median) if rng.random() < 0.5 else (median, most)
    return int(rng.integers(low, high + 1))


def video_frame_counts(seed, subject, stem, poses, clean):
    """{camera id: frames of its video} of one recording with `poses` pose frames."""
    if clean:
        return {camera_id: poses for camera_id in CAMERAS}
    covered = 2 * poses if is_half_posed(subject, stem) else poses
    return {camera_id: covered + video_extra_frames(seed, subject, stem, camera_id)
            for camera_id in CAMERAS}


def all_file_stem(subject, action):
    """The stem of a subject's `_ALL` files of an action, spelled as its other files are
    (S1's 'TakingPhoto_ALL'), the form the reader's is_all_file recognises."""
    spelled = re.sub(r"\s*\d+$", "", STEMS[subject][action][0])
    return spelled + ALL_SUFFIX


def break_video(path):
    """Truncate a written video to its first BROKEN_VIDEO_BYTES bytes: the file exists and
    starts as an mp4 does, but OpenCV cannot open it."""
    with open(path, "r+b") as video:
        video.truncate(BROKEN_VIDEO_BYTES)
