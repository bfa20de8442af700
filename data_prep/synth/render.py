"""Renderer of the synthetic Human3.6M: draws a 32-joint skeleton, seen by one camera, as a
clothed person over a textured background and returns the image and the person's silhouette.

The person is built from simple volumes whose on-screen size comes from their real size in mm
and the depth of their joints (r mm at depth z is r * focal_px / z pixels):

* limbs, feet, hands, neck and shoulders are capsules (thick lines with round caps);
* the torso is a filled polygon between hips and shoulders, padded by a spine capsule so that
  it keeps its thickness when seen from the side;
* the head is an ellipse around Head/HeadSite with hair on its top (all of it when the person
  turns their back to the camera).

Parts are painted far to near (painter's algorithm on the mean depth of each part's joints),
so near parts occlude far ones. Each part is shaded by concentric, progressively smaller and
brighter copies of itself shifted towards an upper-left light, which darkens the rims and
gives a highlight: enough for the network to see volume without a real rasteriser.

Only cv2 drawing primitives and numpy are used: a 1000x1000 frame takes a few ms.
"""
import dataclasses

import cv2
import numpy as np

from data_prep.h36m import J32
from data_prep.synth import stable_seed

# The joints the body is drawn on, by what they are in the body (JOINTS_32's own names differ:
# RightLeg is the knee, Spine1 the thorax...).
HIP, R_UPLEG, R_KNEE, R_ANKLE, R_TOE, R_TOE_SITE = (
    J32[name] for name in ("Hip", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase",
                           "RightToeSite"))
L_UPLEG, L_KNEE, L_ANKLE, L_TOE, L_TOE_SITE = (
    J32[name] for name in ("LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "LeftToeSite"))
THORAX, NECK, HEAD, HEAD_SITE = (J32[name] for name in ("Spine1", "Neck", "Head", "HeadSite"))
L_SHOULDER, L_ELBOW, L_WRIST, L_HAND_END = (
    J32[name] for name in ("LeftArm", "LeftForeArm", "LeftHand", "LeftWristEnd"))
R_SHOULDER, R_ELBOW, R_WRIST, R_HAND_END = (
    J32[name] for name in ("RightArm", "RightForeArm", "RightHand", "RightWristEnd"))

# Sub-pixel precision of cv2 drawing calls (coordinates are multiplied by 2**SHIFT).
SHIFT = 4
# Parts with a joint closer than this (mm) are behind or at the camera and are not drawn.
MIN_DEPTH_MM = 10.0
# Shading layers: (radius fraction, brightness); the first is the silhouette.
SHADE_LAYERS = ((1.0, 0.58), (0.82, 0.76), (0.6, 0.9), (0.35, 1.03))


def _constant(values):
    """A read-only array, so that module constants cannot be changed by accident."""
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


LAYER_FRACTIONS = _constant([fraction for fraction, _ in SHADE_LAYERS])
LAYER_BRIGHTNESS = _constant([brightness for _, brightness in SHADE_LAYERS])
# Direction of the light in the image (x right, y down): from the upper left.
LIGHT_DIR = _constant([-0.45, -0.89])
# Where the chest (shirt) ends and the pelvis (trousers) begins, from hips (0) to shoulders (1).
WAIST = 0.33


@dataclasses.dataclass(frozen=True)
class Appearance:
    """How one subject looks: BGR colours (0-255) and body part sizes in mm.

    left_tint / right_tint are BGR offsets added to every part of the left / right limbs so
    that the two sides are told apart by colour (left warmer, right cooler)."""
    skin: tuple
    shirt: tuple
    trousers: tuple
    shoes: tuple
    hair: tuple
    left_tint: tuple = (-30, 0, 40)
    right_tint: tuple = (45, 10, -30)
    upper_arm_radius: float = 48.0
    forearm_radius: float = 38.0
    hand_radius: float = 42.0
    thigh_radius: float = 78.0
    shin_radius: float = 55.0
    foot_radius: float = 45.0
    neck_radius: float = 52.0
    head_radius: float = 100.0
    torso_half_width: float = 50.0   # padding added around the hips-shoulders polygon
    torso_half_depth: float = 115.0  # half thickness front to back, seen from the side


# Palettes the subject colours are drawn from (BGR).
SKIN_TONES = ((165, 190, 235), (140, 170, 225), (110, 145, 200), (80, 115, 170),
              (60, 85, 135), (45, 65, 100))
HAIR_COLOURS = ((20, 20, 25), (30, 45, 70), (40, 70, 110), (90, 130, 170), (150, 150, 150))
SHOE_COLOURS = ((25, 25, 25), (240, 240, 240), (40, 50, 90), (90, 60, 40), (60, 60, 60))


def _hsv_to_bgr(hue, saturation, value):
    """One colour from OpenCV's HSV (hue 0-179, saturation and value 0-255) to a BGR tuple."""
    pixel = np.array([[[hue, saturation, value]]], dtype=np.uint8)
    return tuple(int(v) for v in cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0])


def appearance_for_subject(subject: str) -> Appearance:
    """The clothes, skin, hair and build of a subject, the same every time for the same name."""
    rng = np.random.default_rng(stable_seed("appearance", subject))
    shirt = _hsv_to_bgr(rng.integers(0, 180), rng.integers(90, 256), rng.integers(110, 240))
    # Trousers are darker and less saturated than shirts, as they mostly are.
    trousers = _hsv_to_bgr(rng.integers(0, 180), rng.integers(20, 160), rng.integers(40, 150))
    build = rng.uniform(0.9, 1.12)   # thinner or stockier subjects
    base = Appearance(skin=SKIN_TONES[rng.integers(len(SKIN_TONES))], shirt=shirt,
                      trousers=trousers, shoes=SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))],
                      hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))])
    sizes = {field.name: getattr(base, field.name) * build
             for field in dataclasses.fields(Appearance) if field.name.endswith(("_radius",
                                                                                   "_width",
                                                                                   "_depth"))}
    # The head varies less with build than the body does.
    sizes["head_radius"] = base.head_radius * rng.uniform(0.95, 1.05)
    return dataclasses.replace(base, **sizes)


def random_light(rng: np.random.Generator) -> np.ndarray:
    """A lighting condition: per-channel BGR gains (overall brightness times a colour cast),
    to be passed to make_background and render_person so that both share it."""
    brightness = rng.uniform(0.7, 1.2)
    cast = rng.uniform(0.88, 1.12, size=3)
    return brightness * cast


def make_background(width: int, height: int, rng: np.random.Generator,
                    light=None) -> np.ndarray:
    """A random studio-like background, uint8 (height, width, 3) BGR: a wall with a vertical
    gradient and a few rectangles (doors, posters), a floor with tiles or stripes, blurred
    noise blobs and fine grain, under `light` (BGR gains; drawn from rng when None)."""
    if light is None:
        light = random_light(rng)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    horizon = int(height * rng.uniform(0.45, 0.7))
    wall_top, wall_bottom = rng.uniform(60, 220, size=(2, 3)).astype(np.float32)
    floor_colour = rng.uniform(40, 200, size=3).astype(np.float32)
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = wall_top + (wall_bottom - wall_top) * ys
    image[horizon:] = floor_colour * (0.8 + 0.35 * ys[horizon:])
    _add_floor_pattern(image[horizon:], rng)
    _add_wall_rectangles(image[:horizon], rng)
    # Blobs: coarse noise upsampled smoothly, so that large soft stains cover the scene; mostly
    # brightness, with a weaker colour part, as shadows and stains are.
    cells = int(rng.integers(3, 9))
    blobs = (rng.normal(0.0, rng.uniform(8, 30), size=(cells, cells, 1)) +
             rng.normal(0.0, 6.0, size=(cells, cells, 3))).astype(np.float32)
    image += cv2.resize(blobs, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal(size=(height, width, 1), dtype=np.float32)
    image += grain * np.float32(rng.uniform(1, 6))
    image *= np.asarray(light, dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _add_floor_pattern(floor, rng):
    """Tiles (a darker grid) or stripes on the floor region (float image view, in place)."""
    height, width = floor.shape[:2]
    if height == 0:
        return
    period = int(rng.integers(12, 60))
    darkening = np.float32(rng.uniform(0.6, 0.9))
    xs = np.arange(width)[None, :]
    ys = np.arange(height)[:, None]
    line_width = max(1, period // 8)
    if rng.random() < 0.5:
        dark = (xs % period < line_width) | (ys % period < line_width)
    else:
        slope = rng.uniform(-1.0, 1.0)
        dark = ((xs + slope * ys) // (period / 2)) % 2 == 0
    floor *= np.where(dark, darkening, np.float32(1.0))[:, :, None]


def _add_wall_rectangles(wall, rng):
    """A few flat rectangles (doors, panels, posters) on the wall region (in place)."""
    height, width = wall.shape[:2]
    if height < 4 or width < 4:
        return
    for _ in range(int(rng.integers(0, 5))):
        x0, x1 = np.sort(rng.integers(0, width, size=2))
        y0, y1 = np.sort(rng.integers(0, height, size=2))
        colour = tuple(float(c) for c in rng.uniform(30, 230, size=3))
        cv2.rectangle(wall, (int(x0), int(y0)), (int(x1), int(y1)), colour, thickness=-1)


@dataclasses.dataclass(frozen=True)
class _Part:
    """One body part to paint: its depth (for ordering) and how to draw it."""
    depth: float
    kind: str                 # "capsule", "torso" or "head"
    joints: tuple             # joint indices the part is built on
    colour: np.ndarray        # BGR float, lit, before shading
    radius_mm: float


def _side_colour(colour, tint):
    """A limb's colour: the clothing or skin colour shifted by its side's tint."""
    return np.asarray(colour, dtype=np.float64) + np.asarray(tint, dtype=np.float64)


def _body_parts(appearance):
    """(kind, joints, colour, radius_mm) of every part; colours before lighting."""
    a = appearance
    parts = [("torso", (HIP, R_UPLEG, L_UPLEG, THORAX, L_SHOULDER, R_SHOULDER, NECK),
              None, a.torso_half_width),
             ("capsule", (NECK, HEAD), a.skin, a.neck_radius),
             ("head", (HEAD, HEAD_SITE, L_SHOULDER, R_SHOULDER), a.skin, a.head_radius)]
    sides = ((a.left_tint, L_UPLEG, L_KNEE, L_ANKLE, L_TOE, L_TOE_SITE,
              L_SHOULDER, L_ELBOW, L_WRIST, L_HAND_END),
             (a.right_tint, R_UPLEG, R_KNEE, R_ANKLE, R_TOE, R_TOE_SITE,
              R_SHOULDER, R_ELBOW, R_WRIST, R_HAND_END))
    for tint, upleg, knee, ankle, toe, toe_site, shoulder, elbow, wrist, hand_end in sides:
        parts += [("capsule", (upleg, knee), _side_colour(a.trousers, tint), a.thigh_radius),
                  ("capsule", (knee, ankle), _side_colour(a.trousers, tint), a.shin_radius),
                  ("capsule", (ankle, toe), _side_colour(a.shoes, tint), a.foot_radius),
                  ("capsule", (toe, toe_site), _side_colour(a.shoes, tint), 0.8 * a.foot_radius),
                  ("capsule", (shoulder, elbow), _side_colour(a.shirt, tint),
                   a.upper_arm_radius),
                  # Short sleeves: bare forearms, tinted too so left and right stay distinct.
                  ("capsule", (elbow, wrist), _side_colour(a.skin, tint), a.forearm_radius),
                  ("capsule", (wrist, hand_end), _side_colour(a.skin, tint), a.hand_radius)]
    return parts


def _to_fixed(points):
    """Pixel coordinates (..., 2) to cv2's fixed point ints (SHIFT fractional bits)."""
    return np.round(np.asarray(points) * (1 << SHIFT)).astype(np.int32)


def _shades(colour):
    """The colour of every shading layer, as cv2 wants them: a list of float tuples."""
    return np.clip(np.outer(LAYER_BRIGHTNESS, colour), 0, 255).tolist()


def _draw_capsule(image, mask, start, end, radius_px, colour):
    """A shaded capsule (round-capped thick line) from start to end, pixels."""
    # Inner layers move towards the light; they stay inside the outer one.
    offsets = np.outer(radius_px * (1 - LAYER_FRACTIONS) * 0.6, LIGHT_DIR)
    starts = _to_fixed(start + offsets).tolist()
    ends = _to_fixed(end + offsets).tolist()
    thicknesses = np.maximum(1, np.round(2 * radius_px * LAYER_FRACTIONS)).astype(int).tolist()
    for p, q, thickness, shade in zip(starts, ends, thicknesses, _shades(colour)):
        cv2.line(image, p, q, shade, thickness, cv2.LINE_8, SHIFT)
        cv2.line(mask, p, q, 255, thickness, cv2.LINE_8, SHIFT)


def _draw_polygon(image, mask, points, pad_px, colour):
    """A shaded convex polygon padded by pad_px (a thick outline around it)."""
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    centre = hull.mean(axis=0)
    for fraction, shade in zip(LAYER_FRACTIONS, _shades(colour)):
        # Inner layers shrink towards the centre and move towards the light.
        shrunk = centre + (hull - centre) * fraction + LIGHT_DIR * pad_px * (1 - fraction)
        fixed = _to_fixed(shrunk)
        pad = max(1, int(round(2 * pad_px * fraction)))
        for canvas, value in ((image, shade), (mask, 255)):
            cv2.fillConvexPoly(canvas, fixed, value, cv2.LINE_8, SHIFT)
            cv2.polylines(canvas, [fixed], True, value, pad, cv2.LINE_8, SHIFT)


def _draw_torso(image, mask, points, scale, appearance, light):
    """Pelvis (trousers) and chest (shirt) between hips and shoulders, a spine capsule that
    keeps the body thick from the side, and shoulder capsules up to the neck."""
    hip, r_upleg, l_upleg, thorax, l_shoulder, r_shoulder, neck = points
    pad = appearance.torso_half_width * scale
    r_waist = r_upleg + WAIST * (r_shoulder - r_upleg)
    l_waist = l_upleg + WAIST * (l_shoulder - l_upleg)
    shirt = np.asarray(appearance.shirt, float) * light
    trousers = np.asarray(appearance.trousers, float) * light
    _draw_capsule(image, mask, hip, thorax, appearance.torso_half_depth * scale, shirt)
    _draw_polygon(image, mask, np.stack([r_upleg, l_upleg, l_waist, r_waist]), pad, trousers)
    _draw_polygon(image, mask, np.stack([r_waist, l_waist, l_shoulder, r_shoulder]), pad, shirt)
    for shoulder in (l_shoulder, r_shoulder):
        _draw_capsule(image, mask, neck, shoulder, appearance.upper_arm_radius * scale, shirt)


def _draw_head(image, mask, points, scale, appearance, colour, light):
    """An ellipse around Head/HeadSite, elongated along the head's axis; hair covers its top
    half when the person faces the camera and all of it when they turn their back."""
    head, head_site, l_shoulder, r_shoulder = points
    axis = head_site - head
    length = float(np.hypot(*axis))
    up = axis / length if length > 1e-6 else np.array([0.0, -1.0])
    # The person faces the camera when their left shoulder is on the image's right of their
    # right shoulder, seen with their head up (2D cross product of shoulders and head axis).
    shoulders = l_shoulder - r_shoulder
    facing_camera = shoulders[0] * up[1] - shoulders[1] * up[0] < 0
    centre = head + 0.5 * axis
    radius = appearance.head_radius * scale
    angle = float(np.degrees(np.arctan2(up[1], up[0])))   # of the long axis, pointing up
    hair = np.asarray(appearance.hair, float) * light
    centres = _to_fixed(centre + np.outer(radius * (1 - LAYER_FRACTIONS) * 0.6, LIGHT_DIR))
    axes = _to_fixed(np.outer(radius * LAYER_FRACTIONS, [1.15, 1.0]))
    hair_span = 100 if facing_camera else 180
    for c, ax, face, top in zip(centres.tolist(), axes.tolist(), _shades(colour), _shades(hair)):
        for canvas, face_value, hair_value in ((image, face, top), (mask, 255, 255)):
            # An arc of 0..360 is the whole ellipse; hair is the sector towards HeadSite.
            cv2.ellipse(canvas, c, ax, angle, 0, 360, face_value, -1, cv2.LINE_8, SHIFT)
            cv2.ellipse(canvas, c, ax, angle, -hair_span, hair_span, hair_value, -1,
                        cv2.LINE_8, SHIFT)


def render_person(background, joints_2d, depth, appearance: Appearance, focal_px: float,
                  light=1.0):
    """Draw the person over a copy of `background`.

    background: uint8 (H, W, 3) BGR, left unchanged. joints_2d: (32, 2) pixels; depth: (32,)
    camera-frame z in mm (positive in front of the camera); focal_px: focal length in pixels;
    light: brightness, a scalar or BGR gains (3,) (see random_light).
    Returns (image uint8 (H, W, 3), mask bool (H, W)): mask is True exactly where the person
    was drawn, and image equals background everywhere else."""
    joints_2d = np.asarray(joints_2d, dtype=np.float64).reshape(32, 2)
    depth = np.asarray(depth, dtype=np.float64).reshape(32)
    height, width = background.shape[:2]
    image = background.copy()
    mask = np.zeros((height, width), dtype=np.uint8)
    light = np.broadcast_to(np.asarray(light, dtype=np.float64), (3,))
    # Far-off coordinates and sizes are clamped so that cv2's fixed-point maths cannot
    # overflow; the clamps only change parts far outside the image or right at the camera.
    size = max(width, height)
    points = np.clip(joints_2d, -8.0 * size, 9.0 * size)
    largest_radius_mm = max(appearance.head_radius, appearance.torso_half_depth,
                            appearance.thigh_radius)
    for part in _ordered_parts(appearance, joints_2d, depth, light):
        part_points = points[list(part.joints)]
        # Pixels per mm at the part's depth.
        scale = min(focal_px / part.depth, 2.0 * size / largest_radius_mm)
        if part.kind == "capsule":
            _draw_capsule(image, mask, part_points[0], part_points[1],
                          part.radius_mm * scale, part.colour)
        elif part.kind == "torso":
            _draw_torso(image, mask, part_points, scale, appearance, light)
        else:
            _draw_head(image, mask, part_points, scale, appearance, part.colour, light)
    return image, mask.astype(bool)


def _ordered_parts(appearance, joints_2d, depth, light):
    """The visible parts, farthest first (painter's algorithm on their joints' mean depth).
    Parts with a joint behind the camera or not finite are left out."""
    parts = []
    for kind, joints, colour, radius_mm in _body_parts(appearance):
        # The head is placed by Head/HeadSite only; the shoulders just tell which way it faces.
        depth_joints = joints[:2] if kind == "head" else joints
        part_depth = depth[list(depth_joints)]
        finite = np.all(np.isfinite(joints_2d[list(joints)])) and np.all(np.isfinite(part_depth))
        if not finite or part_depth.min() < MIN_DEPTH_MM:
            continue
        lit = None if colour is None else np.asarray(colour, dtype=np.float64) * light
        parts.append(_Part(float(part_depth.mean()), kind, joints, lit, radius_mm))
    # Stable sort: equal depths keep the body order above, so the result is deterministic.
    return sorted(parts, key=lambda part: -part.depth)
