"""3D pose targets for the root heads (section 4, eq. 4) and multi-root averaging (eq. 7).

Targets: each ground-truth pose J (Nj, 3) is translated to zero mean and scaled to Frobenius
norm 1 (section 4); head r regresses the joints relative to its root, J_j - J_r for j != r
(eq. 4). The root itself is left out of the head's output, so the squared Euclidean loss is
exactly sum_{j != r} L3D(j, r) of eq. 5-6.

Averaging: head r's prediction becomes a full pose X^(r) with the root at the origin, is
translated to zero mean, and the Nr poses are averaged (eq. 7).

Layer `RootTargets` (python_param { module: "layers.pose_3d" layer: "RootTargets" }):
  bottom[0]  joints, (N, Nj, 3) or (N, 3 Nj): 3D joints (camera coordinates, any unit)
  top[r]     (N, 3 (Nj - 1)): targets of root r, one top per root, in the order of "roots"
  param_str  JSON: {"roots": [joint indices]} (required)
  No backward: targets are data.

Layer `MultiRootAverage` (python_param { module: "layers.pose_3d" layer: "MultiRootAverage" }):
  bottom[r]  (N, 3 (Nj - 1)): prediction of head r, in the order of "roots"
  top[0]     (N, Nj, 3): the averaged zero-mean pose of eq. 7
  param_str  JSON: {"roots": [joint indices], "num_joints": Nj} (both required)
  Backward: the transpose of the (linear) averaging.

The math takes numpy or CuPy arrays (layers/device_arrays.py): in GPU mode both layers compute
on the device.
"""

import numpy as np

import caffe
from layers.device_arrays import blob_array, blob_shape, mode_module, module_of
from layers.params import parse_param_str


def normalize_pose(joints):
    """Zero mean over joints, then Frobenius norm 1 (section 4). joints: (..., Nj, 3).

    A pose without scale is refused on the host only: on the device the check would wait for
    the GPU every step. There its targets are not finite, and so is the 3D loss, at which the
    solver stops (setup/patches/debian/04-*)."""
    xp = module_of(joints)
    joints = xp.asarray(joints, dtype=xp.float64)
    centred = joints - joints.mean(axis=-2, keepdims=True)
    norm = xp.linalg.norm(centred, axis=(-2, -1), keepdims=True)
    if xp is np and np.any(norm == 0):
        raise ValueError("normalize_pose: a pose with all joints at one point has no scale")
    return centred / norm


def without_joint(poses, joint):
    """(..., Nj, 3) -> (..., Nj - 1, 3): the poses without joint `joint` (np.delete by
    slices, which CuPy takes as numpy does)."""
    xp = module_of(poses)
    return xp.concatenate([poses[..., :joint, :], poses[..., joint + 1:, :]], axis=-2)


def root_relative(joints, root):
    """(..., Nj, 3) -> (..., Nj - 1, 3): J_j - J_root for every j != root (eq. 4)."""
    relative = joints - joints[..., root:root + 1, :]
    return without_joint(relative, root)


def root_targets(joints, roots):
    """Targets of every root head for poses (N, Nj, 3): a list of (N, 3 (Nj - 1)) arrays."""
    normalized = normalize_pose(joints)
    batch = normalized.shape[0]
    return [root_relative(normalized, r).reshape(batch, -1) for r in roots]


def full_pose(relative, root):
    """Inverse of root_relative: (..., Nj - 1, 3) -> (..., Nj, 3) with the root at the origin."""
    xp = module_of(relative)
    origin = xp.zeros(relative.shape[:-2] + (1, 3), dtype=relative.dtype)
    return xp.concatenate([relative[..., :root, :], origin, relative[..., root:, :]], axis=-2)


def multi_root_average(predictions, roots, num_joints):
    """Eq. 7: predictions[r] (N, 3 (Nj - 1)) -> (N, Nj, 3) average of the zero-mean poses."""
    xp = module_of(*predictions)
    poses = []
    for prediction, root in zip(predictions, roots):
        relative = xp.asarray(prediction, dtype=xp.float64).reshape(-1, num_joints - 1, 3)
        pose = full_pose(relative, root)
        poses.append(pose - pose.mean(axis=-2, keepdims=True))
    return xp.stack(poses).mean(axis=0)


def multi_root_average_backward(gradient, roots, num_joints):
    """Gradients w.r.t. each head's prediction, given d loss / d output (N, Nj, 3)."""
    xp = module_of(gradient)
    gradient = xp.asarray(gradient, dtype=xp.float64)
    # the output is mean_r C P_r(prediction_r), C = centring (symmetric), P_r = insert root
    centred = gradient - gradient.mean(axis=-2, keepdims=True)
    per_head = centred / len(roots)
    batch = gradient.shape[0]
    return [without_joint(per_head, root).reshape(batch, 3 * (num_joints - 1))
            for root in roots]


def blob_list(blobs):
    """A Python list of a layer's bottom or top blobs (Caffe's blob vector cannot be iterated)."""
    return [blobs[i] for i in range(len(blobs))]


class RootTargets(caffe.Layer):
    """Normalized root-relative 3D targets, one top per root head; see module docstring."""

    def setup(self, bottom, top):
        params = parse_param_str("RootTargets", self.param_str, ["roots"])
        self.roots = [int(r) for r in params["roots"]]
        if len(bottom) != 1 or len(top) != len(self.roots):
            raise ValueError(f"RootTargets takes 1 bottom and one top per root "
                             f"({len(self.roots)}), got {len(bottom)} and {len(top)}")

    def reshape(self, bottom, top):
        batch = blob_shape(bottom[0])[0]
        if bottom[0].count % (batch * 3):
            raise ValueError(f"RootTargets: joints of shape {blob_shape(bottom[0])} are not "
                             "(N, Nj, 3)")
        self.num_joints = bottom[0].count // (batch * 3)
        if not all(0 <= r < self.num_joints for r in self.roots):
            raise ValueError(f"RootTargets: roots {self.roots} outside {self.num_joints} joints")
        for t in blob_list(top):
            t.reshape(batch, 3 * (self.num_joints - 1))

    def forward(self, bottom, top):
        xp = mode_module()
        joints = blob_array(bottom[0], "data", xp).reshape(-1, self.num_joints, 3)
        for t, target in zip(blob_list(top), root_targets(joints, self.roots)):
            blob_array(t, "data", xp)[...] = target

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            # targets are data (asked for only under force_backward)
            blob_array(bottom[0], "diff", mode_module())[...] = 0


class MultiRootAverage(caffe.Layer):
    """Eq. 7: average of the zero-mean poses of all root heads; see module docstring."""

    def setup(self, bottom, top):
        params = parse_param_str("MultiRootAverage", self.param_str, ["roots", "num_joints"])
        self.roots = [int(r) for r in params["roots"]]
        self.num_joints = int(params["num_joints"])
        if len(bottom) != len(self.roots) or len(top) != 1:
            raise ValueError(f"MultiRootAverage takes one bottom per root ({len(self.roots)}) "
                             f"and 1 top, got {len(bottom)} and {len(top)}")

    def reshape(self, bottom, top):
        batch = blob_shape(bottom[0])[0]
        for b in blob_list(bottom):
            if blob_shape(b)[0] != batch or b.count != batch * 3 * (self.num_joints - 1):
                raise ValueError(f"MultiRootAverage: a head output of shape {blob_shape(b)} is "
                                 f"not (N, {3 * (self.num_joints - 1)})")
        top[0].reshape(batch, self.num_joints, 3)

    def forward(self, bottom, top):
        xp = mode_module()
        predictions = [blob_array(b, "data", xp) for b in blob_list(bottom)]
        blob_array(top[0], "data", xp)[...] = multi_root_average(predictions, self.roots,
                                                                 self.num_joints)

    def backward(self, top, propagate_down, bottom):
        xp = mode_module()
        gradients = multi_root_average_backward(blob_array(top[0], "diff", xp), self.roots,
                                                self.num_joints)
        for b, down, gradient in zip(blob_list(bottom), propagate_down, gradients):
            if down:
                diff = blob_array(b, "diff", xp)
                diff[...] = gradient.reshape(diff.shape)
