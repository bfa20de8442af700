"""Rotations and forward kinematics shared by the procedural motion (motion.py) and the BVH
reader (bvh.py): right-handed rotation matrices about one axis, and the world pose of a joint
tree from each joint's rotation and offset relative to its parent."""
import numpy as np


def axis_rotation(axis, radians):
    """(..., 3, 3) rotations about 'X', 'Y' or 'Z' by angles (...,) in radians, counter-clockwise
    looking down the axis: about y, positive tips +z towards +x (a bow forward); about z, positive
    turns +x towards +y (yaw to the left)."""
    radians = np.asarray(radians, dtype=np.float64)
    c, s = np.cos(radians), np.sin(radians)
    one, zero = np.ones_like(c), np.zeros_like(c)
    rows = {"X": ((one, zero, zero), (zero, c, -s), (zero, s, c)),
            "Y": ((c, zero, s), (zero, one, zero), (-s, zero, c)),
            "Z": ((c, -s, zero), (s, c, zero), (zero, zero, one))}[axis]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def rot_x(radians):
    return axis_rotation("X", radians)


def rot_y(radians):
    return axis_rotation("Y", radians)


def rot_z(radians):
    return axis_rotation("Z", radians)


def forward_kinematics(parents, local_rotations, offsets):
    """World positions (n, J, 3) and rotations (n, J, 3, 3) of a tree of J joints listed
    parents first (parents[j] < j; -1 for the root).

    local_rotations[j]: (n, 3, 3) rotation of joint j relative to its parent's frame.
    offsets[j]: where joint j sits in its parent's frame, (3,) for a bone of fixed length or
    (n, 3) for one that changes per frame (BVH position channels); the root's is its world
    position (n, 3).
    """
    rotations, positions = [], []
    for joint, parent in enumerate(parents):
        if parent < 0:
            rotations.append(local_rotations[joint])
            positions.append(offsets[joint])
        else:
            rotations.append(rotations[parent] @ local_rotations[joint])
            positions.append(positions[parent] + _rotate(rotations[parent], offsets[joint]))
    return np.stack(positions, axis=1), np.stack(rotations, axis=1)


def _rotate(rotations, offset):
    """Per-frame rotations (n, 3, 3) applied to one vector (3,) or to one vector per frame
    (n, 3). The two products round differently in the last bit; each is the one its caller
    (motion.py, bvh.py) has always used, so that generated datasets keep their bytes."""
    if np.ndim(offset) == 1:
        return rotations @ offset
    # matmul would take (n, 3) for a single matrix, not for n vectors
    return np.einsum("fij,fj->fi", rotations, offset)
