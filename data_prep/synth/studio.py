"""The synthetic capture studio: the four Human3.6M cameras placed around the capture area.

Intrinsics are the real ones (data_prep.h36m.CAMERAS); the extrinsics place each camera at a
corner of a roughly 4 m x 4 m capture area, 4-6 m from its centre and about 1.5 m high,
looking at the middle of the person's height: about where the real studio's cameras stand
(the raw layout's camera-frame files make their exact extrinsics unnecessary).
`scale` shrinks the image (resolution flag): focal lengths, centres and sizes scale with it,
distortion stays. The frame size is the subject's (h36m.frame_size: S7's videos are all
1000x1002), scaled and rounded to even numbers.
"""
import dataclasses

import numpy as np

from data_prep.h36m import CAMERAS, Camera, frame_size

# (azimuth degrees around the area, distance mm, height mm) per camera id: ASSUMPTION, the
# real extrinsics ship with the dataset; these are plausible placements at the four corners.
PLACEMENTS = {
    "54138969": (45.0, 5200.0, 1550.0),
    "55011271": (135.0, 4800.0, 1500.0),
    "58860488": (-45.0, 5600.0, 1600.0),
    "60457274": (-135.0, 5000.0, 1450.0),
}
LOOK_AT_HEIGHT = 900.0   # mm: the middle of a standing person


@dataclasses.dataclass(frozen=True)
class PlacedCamera:
    camera: Camera           # intrinsics at the rendered resolution
    rotation: np.ndarray     # (3, 3) world -> camera
    position: np.ndarray     # (3,) camera centre in world mm

    def to_camera(self, world):
        """World points (..., 3) mm -> camera frame (x right, y down, z forward), mm."""
        offset = np.asarray(world, dtype=np.float64) - self.position
        # elementwise products, not a BLAS matmul, whose rounding can change with the thread
        # count: the same seed must give the same bytes in any process
        return (offset[..., None, :] * self.rotation).sum(axis=-1)

    def to_dict(self):
        c = self.camera
        return {"id": c.id, "width": c.width, "height": c.height, "center": list(c.center),
                "focal": list(c.focal), "radial": list(c.radial), "tangential": list(c.tangential),
                "rotation_world_to_camera": self.rotation.tolist(),
                "position_mm": self.position.tolist()}


def look_at(position, target):
    """Rotation world -> camera for a camera at `position` looking at `target`, z up in the
    world and the image's y axis pointing down."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def even(pixels):
    """The nearest even size: mp4 encoders store even frame sizes only (1002 * 0.5 = 501 would
    come back from the video as 500 rows)."""
    return 2 * int(round(pixels / 2))


def scaled(camera, scale):
    """Intrinsics of the same camera rendering an image about `scale` times the size."""
    return dataclasses.replace(
        camera, width=even(camera.width * scale), height=even(camera.height * scale),
        center=tuple(v * scale for v in camera.center), focal=tuple(v * scale for v in camera.focal))


def studio_cameras(scale=1.0, subject=None):
    """{camera id: PlacedCamera} of the four cameras, with the frame size of `subject`'s
    videos (None: each camera's usual size)."""
    placed = {}
    for camera_id, (azimuth, distance, height) in PLACEMENTS.items():
        angle = np.radians(azimuth)
        position = np.array([distance * np.cos(angle), distance * np.sin(angle), height])
        rotation = look_at(position, [0.0, 0.0, LOOK_AT_HEIGHT])
        camera = CAMERAS[camera_id]
        if subject is not None:
            frame_width, frame_height = frame_size(subject, camera_id)
            camera = dataclasses.replace(camera, width=frame_width, height=frame_height)
        placed[camera_id] = PlacedCamera(scaled(camera, scale), rotation, position)
    return placed
