"""Facts of the real Human3.6M typed into the tests from the dataset's own metadata
(metadata.xml of its release), independently of data_prep/h36m.py, which the tests check
against them; Human3.6M's projection formula written out again; and reading a video's frames
back with OpenCV."""
import cv2
import numpy as np

# Full-precision intrinsics per camera: centre, focal, (k1, k2, k3), p1, p2
INTRINSIC_FACTS = {
    "54138969": ((512.54150390625, 515.4514770507812), (1145.0494384765625, 1143.7811279296875),
                 (-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043),
                 -0.00142447161488235, -0.0009756988729350269),
    "55011271": ((508.8486328125, 508.0649108886719), (1149.6756591796875, 1147.5916748046875),
                 (-0.1942136287689209, 0.2404085397720337, 0.006819975562393665),
                 -0.0027408944442868233, -0.0016190266469493508),
    "58860488": ((519.8158569335938, 501.40264892578125), (1149.1407470703125, 1148.7989501953125),
                 (-0.2083381861448288, 0.25548800826072693, -0.0024604974314570427),
                 -0.0007599993259645998, 0.0014843869721516967),
    "60457274": ((514.9682006835938, 501.88201904296875), (1145.5113525390625, 1144.77392578125),
                 (-0.198384091258049, 0.21832367777824402, -0.008947807364165783),
                 -0.0018133620033040643, -0.0005872055771760643),
}


def formula_projection(points, camera_id):
    """Human3.6M's ProjectPointRadial at full resolution: camera-frame mm -> pixels.
    x = X/Z, y = Y/Z, r2 = x^2 + y^2, radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3,
    tan = p1 y + p2 x, (x', y') = (x, y)(radial + tan) + (p2, p1) r2, pixel = f (x', y') + c."""
    (cx, cy), (fx, fy), (k1, k2, k3), p1, p2 = INTRINSIC_FACTS[camera_id]
    x, y = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
    r2 = x ** 2 + y ** 2
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    tan = p1 * y + p2 * x
    return np.stack([fx * (x * (radial + tan) + p2 * r2) + cx,
                     fy * (y * (radial + tan) + p1 * r2) + cy], axis=-1)


def video_frames(path):
    """Every frame OpenCV decodes from a video."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    ok, frame = capture.read()
    while ok:
        frames.append(frame)
        ok, frame = capture.read()
    capture.release()
    return frames
