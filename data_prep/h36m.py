"""Facts about Human3.6M's raw layout, skeleton and cameras: the dataset as its release lays it
out on disk and describes it in its metadata (metadata.xml; Ionescu et al., "Human3.6M", TPAMI
2014), and what the files themselves show.

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
# The 17 evaluation joints: indices into the 32, their names and parents, as the works that
# report MPJPE on the dataset take them (Martinez et al., ICCV 2017; VideoPose3D, Pavllo et al.,
# CVPR 2019).
JOINTS_17_FROM_32 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
JOINTS_17 = ("Pelvis", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
             "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist")
PARENTS_17 = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
RIGHT_17 = (1, 2, 3, 14, 15, 16)


def bone_lengths(poses, parents=PARENTS_17):
    """Length of the bone from each joint to its parent, (..., J); 0 for the root."""
    poses = np.asarray(poses, dtype=np.float64)
    parents = np.asarray(parents)
    if poses.ndim < 2 or poses.shape[-1] != 3 or len(parents) != poses.shape[-2]:
        raise ValueError(f"bone_lengths: poses of shape {poses.shape} do not hold "
                         f"{len(parents)} joints x 3")
    parent_positions = poses[..., np.where(parents < 0, np.arange(len(parents)), parents), :]
    return np.linalg.norm(poses - parent_positions, axis=-1)


@dataclasses.dataclass(frozen=True)
class Camera:
    """Intrinsics as Human3.6M gives them; extrinsics (R, t: world -> camera, mm) are set by
    whoever places the camera (the real ones ship in a metadata file, the synthetic ones are
    placed around the capture area). width x height is the camera's usual frame size; S7's
    differs (frame_size)."""
    id: str
    width: int
    height: int
    center: tuple        # (cx, cy) pixels
    focal: tuple         # (fx, fy) pixels
    radial: tuple        # k1, k2, k3
    tangential: tuple    # p1, p2, named as in project's formula


# The intrinsics at full precision, from the dataset's metadata (metadata.xml): with them
# project reproduces D2_Positions from D3_Positions_mono to about 1e-4 px.
CAMERAS = {
    "54138969": Camera("54138969", 1000, 1002, (512.54150390625, 515.4514770507812),
                       (1145.0494384765625, 1143.7811279296875),
                       (-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043),
                       (-0.00142447161488235, -0.0009756988729350269)),
    "55011271": Camera("55011271", 1000, 1000, (508.8486328125, 508.0649108886719),
                       (1149.6756591796875, 1147.5916748046875),
                       (-0.1942136287689209, 0.2404085397720337, 0.006819975562393665),
                       (-0.0027408944442868233, -0.0016190266469493508)),
    "58860488": Camera("58860488", 1000, 1000, (519.8158569335938, 501.40264892578125),
                       (1149.1407470703125, 1148.7989501953125),
                       (-0.2083381861448288, 0.25548800826072693, -0.0024604974314570427),
                       (-0.0007599993259645998, 0.0014843869721516967)),
    "60457274": Camera("60457274", 1000, 1002, (514.9682006835938, 501.88201904296875),
                       (1145.5113525390625, 1144.77392578125),
                       (-0.198384091258049, 0.21832367777824402, -0.008947807364165783),
                       (-0.0018133620033040643, -0.0005872055771760643)),
}
# S7's four videos are all 1000 wide and 1002 high (the other subjects' follow the camera)
S7_FRAME_SIZE = (1000, 1002)


def frame_size(subject, camera_id):
    """(width, height) of a subject's videos from a camera."""
    if subject == "S7":
        return S7_FRAME_SIZE
    camera = CAMERAS[camera_id]
    return camera.width, camera.height


# The file stem of each recording: STEMS[subject][action] = (subaction 1, subaction 2), from
# the dataset's metadata (metadata.xml). Not a rule: S5 has "Discussion 2" and
# "Discussion 3", S6 "Waiting 3" and "Waiting", S11 "Phoning 3" and "Phoning 2".
_STEM_TABLE = """
Directions   | Directions 1,Directions | Directions 1,Directions 2 | Directions 1,Directions | Directions 1,Directions | Directions 1,Directions | Directions 1,Directions | Directions 1,Directions
Discussion   | Discussion 1,Discussion | Discussion 2,Discussion 3 | Discussion 1,Discussion | Discussion 1,Discussion | Discussion 1,Discussion | Discussion 1,Discussion 2 | Discussion 1,Discussion 2
Eating       | Eating 2,Eating | Eating 1,Eating | Eating 1,Eating 2 | Eating 1,Eating | Eating 1,Eating | Eating 1,Eating | Eating 1,Eating
Greeting     | Greeting 1,Greeting | Greeting 1,Greeting 2 | Greeting 1,Greeting | Greeting 1,Greeting | Greeting 1,Greeting | Greeting 1,Greeting | Greeting 2,Greeting
Phoning      | Phoning 1,Phoning | Phoning 1,Phoning | Phoning 1,Phoning | Phoning 2,Phoning | Phoning 1,Phoning | Phoning 1,Phoning | Phoning 3,Phoning 2
Posing       | Posing 1,Posing | Posing 1,Posing | Posing 2,Posing | Posing 1,Posing | Posing 1,Posing | Posing 1,Posing | Posing 1,Posing
Purchases    | Purchases 1,Purchases | Purchases 1,Purchases | Purchases 1,Purchases | Purchases 1,Purchases | Purchases 1,Purchases | Purchases 1,Purchases | Purchases 1,Purchases
Sitting      | Sitting 1,Sitting 2 | Sitting 1,Sitting | Sitting 1,Sitting 2 | Sitting 1,Sitting | Sitting 1,Sitting | Sitting 1,Sitting | Sitting 1,Sitting
SittingDown  | SittingDown 2,SittingDown | SittingDown,SittingDown 1 | SittingDown 1,SittingDown | SittingDown,SittingDown 1 | SittingDown,SittingDown 1 | SittingDown,SittingDown 1 | SittingDown,SittingDown 1
Smoking      | Smoking 1,Smoking | Smoking 1,Smoking | Smoking 1,Smoking | Smoking 1,Smoking | Smoking 1,Smoking | Smoking 1,Smoking | Smoking 2,Smoking
Photo        | TakingPhoto 1,TakingPhoto | Photo,Photo 2 | Photo,Photo 1 | Photo,Photo 1 | Photo 1,Photo | Photo 1,Photo | Photo 1,Photo
Waiting      | Waiting 1,Waiting | Waiting 1,Waiting 2 | Waiting 3,Waiting | Waiting 1,Waiting 2 | Waiting 1,Waiting | Waiting 1,Waiting | Waiting 1,Waiting
Walking      | Walking 1,Walking | Walking 1,Walking | Walking 1,Walking | Walking 1,Walking 2 | Walking 1,Walking | Walking 1,Walking | Walking 1,Walking
WalkDog      | WalkingDog 1,WalkingDog | WalkDog 1,WalkDog | WalkDog 1,WalkDog | WalkDog 1,WalkDog | WalkDog 1,WalkDog | WalkDog 1,WalkDog | WalkDog 1,WalkDog
WalkTogether | WalkTogether 1,WalkTogether | WalkTogether 1,WalkTogether | WalkTogether 1,WalkTogether | WalkTogether 1,WalkTogether | WalkTogether 1,WalkTogether 2 | WalkTogether 1,WalkTogether | WalkTogether 1,WalkTogether
"""


def _stems():
    table = {subject: {} for subject in SUBJECTS}
    for line in _STEM_TABLE.strip().splitlines():
        action, *cells = [cell.strip() for cell in line.split("|")]
        for subject, cell in zip(SUBJECTS, cells):
            table[subject][action] = tuple(cell.split(","))
    return table


STEMS = _stems()

# Every video of the dataset is longer than its pose files: by this many frames (least,
# median, most), per camera.
VIDEO_EXTRA_FRAMES = {"54138969": (0, 1, 2), "60457274": (0, 1, 2),
                      "55011271": (2, 4, 8), "58860488": (2, 4, 8)}
MOST_VIDEO_EXTRA_FRAMES = max(most for _, _, most in VIDEO_EXTRA_FRAMES.values())
# Recordings whose poses cover only about half of their videos (S9 Greeting: videos of
# 2899-2902 frames, 1447 poses), by subject and stem.
HALF_POSED = {("S9", "Greeting"), ("S9", "SittingDown 1"), ("S9", "Waiting 1"),
              ("S9", "Walking")}
# Recordings that some works leave out of their evaluation as damaged (misaligned ground
# truth; e.g. HybrIK, Li et al., CVPR 2021, and MotionBERT, Zhu et al., ICCV 2023, skip
# S9's Greeting and SittingDown of subaction 2 and Waiting of subaction 1): --drop-damaged. By
# stem: "SittingDown 1", one of the half-posed recordings, not S9's other SittingDown.
DAMAGED = {("S9", "Greeting"), ("S9", "SittingDown 1"), ("S9", "Waiting 1")}
# The video that many copies of the dataset hold corrupt or not at all (VideoPose3D's data
# preparation skips S11's Directions altogether for it).
BROKEN_VIDEO = ("S11", "Directions", "54138969")
# Crops of the real dataset at every frame, four cameras: training (S1 S5 S6 S7 S8), test.
REAL_CROPS = {"train": 1_559_752, "test": 550_644}


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
    """File stem of one of the two recordings (subaction 1 or 2) of an action, as the real
    dataset names it (STEMS), e.g. S5's Discussion: 'Discussion 2' and 'Discussion 3'."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    if subaction not in (1, 2):
        raise ValueError(f"subaction must be 1 or 2, got {subaction}")
    if subject not in STEMS:
        raise ValueError(f"unknown subject {subject!r}; known: {', '.join(SUBJECTS)}")
    return STEMS[subject][action][subaction - 1]


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
