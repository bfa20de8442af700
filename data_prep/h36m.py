"""Facts about Human3.6M's raw layout, skeleton and cameras (../shared/REFERENCE.md section 2).

Shared by the reader of the real dataset and the generator of the synthetic one, which must
write exactly what the reader expects.

    Sx/Videos/<Action> <n>.<camera>.mp4
    Sx/MyPoseFeatures/D3_Positions/<Action> <n>.cdf                    Pose (1, N, 96), world mm
    Sx/MyPoseFeatures/D3_Positions_mono/<Action> <n>.<camera>.cdf      Pose (1, N, 96), camera mm
    Sx/MyPoseFeatures/D2_Positions/<Action> <n>.<camera>.cdf           Pose (1, N, 64), pixels
    Sx/MySegmentsMat/ground_truth_bs/<Action> <n>.<camera>.mat         Masks: (N, 1) references
"""
import dataclasses
from pathlib import Path

import numpy as np

SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")

# The 15 actions by their canonical names; S1 spells two of them differently on disk.
ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing",
           "Purchases", "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking",
           "WalkTogether")
S1_SPELLING = {"Photo": "TakingPhoto", "WalkDog": "WalkingDog"}
FPS = 50

# 32 joints of the raw files, in their order, with their parents.
JOINTS_32 = ("Hip", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase", "RightToeSite",
             "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "LeftToeSite", "Spine", "Spine1",
             "Neck", "Head", "HeadSite", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
             "LeftHandThumb", "LeftThumbSite", "LeftWristEnd", "LeftWristSite", "RightShoulder",
             "RightArm", "RightForeArm", "RightHand", "RightHandThumb", "RightThumbSite",
             "RightWristEnd", "RightWristSite")
PARENTS_32 = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17, 18, 19, 20, 19,
              22, 12, 24, 25, 26, 27, 28, 27, 30)
# Index of each of the 32 joints by its raw name, e.g. J32["RightLeg"]. The raw names are the
# motion-capture ones: <Side>UpLeg is the hip joint, <Side>Leg the knee, <Side>Foot the ankle,
# <Side>Shoulder the clavicle, <Side>Arm the shoulder, <Side>ForeArm the elbow, <Side>Hand the
# wrist; Hip is the evaluation's Pelvis, Spine1 its Spine, Neck its Thorax, Head its Neck/Nose
# and HeadSite its Head.
J32 = {name: index for index, name in enumerate(JOINTS_32)}
# The 17 evaluation joints: indices into the 32, their names and parents (REFERENCE.md 2).
JOINTS_17_FROM_32 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
JOINTS_17 = ("Pelvis", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
             "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist")
PARENTS_17 = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
RIGHT_17 = (1, 2, 3, 14, 15, 16)


@dataclasses.dataclass(frozen=True)
class Camera:
    """Intrinsics as Human3.6M gives them; extrinsics (R, t: world -> camera, mm) are set by
    whoever places the camera (the real ones ship in a metadata file, the synthetic ones are
    placed around the capture area)."""
    id: str
    width: int
    height: int
    center: tuple        # (cx, cy) pixels
    focal: tuple         # (fx, fy) pixels
    radial: tuple        # k1, k2, k3
    tangential: tuple    # p1, p2


CAMERAS = {
    "54138969": Camera("54138969", 1000, 1002, (512.54, 515.45), (1145.05, 1143.78),
                       (-0.2071, 0.2478, -0.0031), (-0.00098, -0.00142)),
    "55011271": Camera("55011271", 1000, 1000, (508.85, 508.06), (1149.68, 1147.59),
                       (-0.1942, 0.2404, 0.0068), (-0.0016, -0.0027)),
    "58860488": Camera("58860488", 1000, 1000, (519.82, 501.40), (1149.14, 1148.80),
                       (-0.2083, 0.2555, -0.0025), (0.0015, -0.0008)),
    "60457274": Camera("60457274", 1000, 1002, (514.97, 501.88), (1145.51, 1144.77),
                       (-0.1984, 0.2183, -0.0089), (-0.0006, -0.0018)),
}


def project(points, camera, scale=1.0):
    """Human3.6M's projection of camera-frame points (..., 3) mm to pixels (..., 2), with its
    radial (k1..k3) and tangential (p1, p2) distortion. scale shrinks the image (and so the
    focal length and centre) for down-sized renderings."""
    points = np.asarray(points, dtype=np.float64)
    xy = points[..., :2] / points[..., 2:3]
    r2 = np.sum(xy ** 2, axis=-1, keepdims=True)
    k1, k2, k3 = camera.radial
    p1, p2 = camera.tangential
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    tangential = p1 * xy[..., 1:2] + p2 * xy[..., 0:1]
    distorted = xy * (radial + tangential) + np.array([p2, p1]) * r2
    return (np.array(camera.focal) * distorted + np.array(camera.center)) * scale


def sequence_name(subject, action, subaction):
    """File stem of one of the two recordings (subaction 1 or 2) of an action, e.g.
    'Directions 1'. S1 names them '<Action>' and '<Action> 1' and spells two actions its own
    way (TakingPhoto, WalkingDog), as on the real disks."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    if subaction not in (1, 2):
        raise ValueError(f"subaction must be 1 or 2, got {subaction}")
    if subject == "S1":
        name = S1_SPELLING.get(action, action)
        return name if subaction == 1 else f"{name} 1"
    return f"{action} {subaction}"


def sequence_paths(root, subject, stem, camera_id):
    """{kind: path} of one sequence and camera under a Human3.6M root."""
    base = Path(root) / subject
    features = base / "MyPoseFeatures"
    return {
        "video": base / "Videos" / f"{stem}.{camera_id}.mp4",
        "d3_world": features / "D3_Positions" / f"{stem}.cdf",
        "d3_mono": features / "D3_Positions_mono" / f"{stem}.{camera_id}.cdf",
        "d2": features / "D2_Positions" / f"{stem}.{camera_id}.cdf",
        "mask": base / "MySegmentsMat" / "ground_truth_bs" / f"{stem}.{camera_id}.mat",
    }
