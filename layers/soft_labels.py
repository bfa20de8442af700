"""2D pose as classification over an Ng x Ng grid with soft labels (paper eq. 1-3).

The input image (input_size pixels square) is cut into Ng x Ng cells of width w_g; class
i = row * Ng + col. A joint at pixel y gets probability on the cells whose centre c_i is
nearer than one cell width (eq. 2), inversely proportional to the distance (eq. 1):

    p_hat(g_i) = d(y, c_i)^-1 I(d(y, c_i) < w_g) / sum_k d(y, c_k)^-1 I(d(y, c_k) < w_g)

At most four cells qualify. A joint exactly on a centre gets that cell alone. A joint outside
the image is first clipped onto its border (ASSUMPTION: the paper does not say), so at least
one centre is always within w_g / sqrt(2).

The loss per joint is the cross-entropy with the softmax over the Ng^2 cells (eq. 3),
summed over joints and averaged over the batch: lambda_2D * sum_j L2D(j) of eq. 5.

Layer `SoftLabelLoss` (python_param { module: "layers.soft_labels" layer: "SoftLabelLoss" }):
  bottom[0]  scores, (N, Nj, Ng*Ng) or (N, Nj * Ng*Ng): the 2D branch's fc output
  bottom[1]  joints, (N, Nj, 2) or (N, 2 Nj): 2D joints (x, y) in input pixels
  top[0]     loss (scalar); give it loss_weight lambda_2D
  param_str  JSON: {"grid_size": Ng, "image_size": input pixels} (both required)
Backward: d loss / d scores = (softmax - p_hat) / N; the joints are labels (zero gradient).

The math takes numpy or CuPy arrays (layers/device_arrays.py): in GPU mode the layer computes
on the device, its loss written there.
"""

import numpy as np

import caffe
from layers.device_arrays import blob_array, blob_shape, mode_module, module_of, reused
from layers.params import parse_param_str

EPS = 1e-12


def cell_centres(grid_size, image_size):
    """(Ng*Ng, 2) centres (x, y) of the grid cells in pixels, in class order row * Ng + col."""
    width = image_size / grid_size
    rows, cols = np.meshgrid(np.arange(grid_size), np.arange(grid_size), indexing="ij")
    return np.stack([(cols.ravel() + 0.5) * width, (rows.ravel() + 0.5) * width], axis=1)


def neighbour_steps(xp):
    """(9, 2) int64 (column, row) steps from a joint's nearest cell to the cells that can lie
    within a cell width of it, -1 to 1 each, the column's slower. Made by the module itself:
    on the device, from a host constant, every step would copy it there."""
    step = xp.arange(9, dtype=xp.int64)
    return xp.stack([step // 3 - 1, step % 3 - 1], axis=-1)


def soft_label_pairs(joints, grid_size, image_size):
    """Soft labels of eq. 1-2 for joints (..., 2) in pixels as (class, weight) pairs: classes
    (..., 9) int64 and weights (..., 9) float64 summing to 1, the labels being
    sum_k weights[k] one_hot(classes[k]); soft_labels() spreads them over the grid.

    Only cells near a joint can qualify: centres are a cell width apart, so a centre within
    one width of the joint lies at most one cell from the nearest centre's, per axis. The
    pairs are those 3 x 3 cells (weight 0 where beyond a width or outside the grid, whose
    class is then clipped into it): the distances to every centre took 40-50 ms a batch of
    128 on two Xeon cores, in a layer that runs every iteration."""
    xp = module_of(joints)
    joints = xp.clip(xp.asarray(joints, dtype=xp.float64), 0.0, float(image_size))
    width = image_size / grid_size
    points = joints[..., None, :]
    # (..., 9, 2) column and row of the candidate cells: the nearest centre's and its neighbours
    cells = xp.floor(points / width).astype(xp.int64) + neighbour_steps(xp)
    inside = ((cells >= 0) & (cells < grid_size)).all(axis=-1)
    offset = points - (cells + 0.5) * width      # cell_centres' centres, without a gather
    distance = xp.sqrt(offset[..., 0] * offset[..., 0] + offset[..., 1] * offset[..., 1])
    near = inside & (distance < width)
    on_centre = inside & (distance < EPS * width)
    inverse = xp.where(near, 1.0 / xp.maximum(distance, EPS * width), 0.0)
    # a joint on a centre: the limit of eq. 1 puts all mass on that cell
    inverse = xp.where(on_centre.any(axis=-1, keepdims=True), on_centre.astype(xp.float64), inverse)
    last = cells.ndim - 1
    column, row = xp.clip(cells, 0, grid_size - 1).transpose(last, *range(last))
    return row * grid_size + column, inverse / inverse.sum(axis=-1, keepdims=True)


def soft_labels(joints, grid_size, image_size):
    """Soft labels of eq. 1-2 for joints (..., 2) in pixels -> (..., Ng*Ng), each summing to 1."""
    classes, weights = soft_label_pairs(joints, grid_size, image_size)
    xp = module_of(classes)
    labels = xp.zeros(classes.shape[:-1] + (grid_size * grid_size,))
    xp.add.at(labels.reshape(-1, labels.shape[-1]),
              (xp.arange(classes[..., 0].size)[:, None], classes.reshape(-1, classes.shape[-1])),
              weights.reshape(-1, weights.shape[-1]))
    return labels


def soft_label_cross_entropy(scores, classes, weights, out=None):
    """Eq. 3 summed over joints, averaged over the batch, and its gradient w.r.t. the scores.

    scores: (N, Nj, C); the labels as (class, weight) pairs, classes (N, Nj, K) int and
    weights (N, Nj, K) (soft_label_pairs; a dense (N, Nj, C) label is classes arange(C) and
    weights the label). Returns (loss, gradient of the loss w.r.t. scores), the gradient
    float32 like Caffe's blobs, written into `out` (float32, the scores' shape) when given.
    numpy or CuPy arrays (the loss then a 0-d CuPy array: it stays on the device).

    The softmax is stable (scores shifted by their maximum); its sums and the loss are float64,
    the per-score work float32, in place and without dense labels (a batch of 128 is half a
    million scores, and each pass over them costs a large part of a millisecond): the loss
    agrees with an all-float64 computation well within float32's precision, its top's type."""
    xp = module_of(scores, weights)
    scores, weights = xp.asarray(scores), xp.asarray(weights)
    classes = xp.broadcast_to(classes, weights.shape)
    batch = len(scores)
    gradient = xp.empty(scores.shape, dtype=xp.float32) if out is None else out
    xp.subtract(scores, xp.max(scores, axis=-1, keepdims=True), out=gradient,
                dtype=xp.float32)
    # -sum_c label_c log softmax_c = sum_k w_k log(sum_c exp(shifted_c)) - sum_k w_k shifted_k
    shifted = xp.take_along_axis(gradient, classes, axis=-1).astype(xp.float64)
    labelled = xp.vdot(weights, shifted)
    xp.exp(gradient, out=gradient)
    total = gradient.sum(axis=-1, keepdims=True, dtype=xp.float64)
    loss = (xp.vdot(xp.sum(weights, axis=-1), xp.log(total[..., 0])) - labelled) / batch
    gradient *= (1.0 / (total * batch)).astype(xp.float32)       # softmax / N
    flat = gradient.reshape(-1, gradient.shape[-1])
    xp.subtract.at(flat, (xp.arange(len(flat))[:, None], classes.reshape(len(flat), -1)),
                   (xp.reshape(weights, (len(flat), -1)) / batch).astype(xp.float32))
    return loss, gradient


class SoftLabelLoss(caffe.Layer):
    """Soft-label cross-entropy of the 2D grid classification (eq. 1-3); see module docstring."""

    def setup(self, bottom, top):
        if len(bottom) != 2 or len(top) != 1:
            raise ValueError(f"SoftLabelLoss takes 2 bottoms (scores, joints) and 1 top (loss), "
                             f"got {len(bottom)} and {len(top)}")
        params = parse_param_str("SoftLabelLoss", self.param_str, ["grid_size", "image_size"])
        self.grid_size = int(params["grid_size"])
        self.image_size = float(params["image_size"])
        if self.grid_size < 2 or self.image_size <= 0:
            raise ValueError("SoftLabelLoss: grid_size >= 2 and image_size > 0 required")
        self.gradient = None

    def reshape(self, bottom, top):
        scores_shape, joints_shape = blob_shape(bottom[0]), blob_shape(bottom[1])
        batch = scores_shape[0]
        classes = self.grid_size ** 2
        if bottom[0].count % (batch * classes) != 0:
            raise ValueError(f"SoftLabelLoss: scores of shape {scores_shape} are not "
                             f"(N, Nj, {classes})")
        self.joints = bottom[0].count // (batch * classes)
        if joints_shape[0] != batch or bottom[1].count != batch * self.joints * 2:
            raise ValueError(f"SoftLabelLoss: joints of shape {joints_shape} do not "
                             f"match {self.joints} joints x (x, y) for batch {batch}")
        top[0].reshape(1)

    def forward(self, bottom, top):
        xp = mode_module()
        shape = (blob_shape(bottom[0])[0], self.joints, self.grid_size ** 2)
        # kept from batch to batch: the layer runs every iteration (see soft_label_cross_entropy)
        self.gradient = reused(self.gradient, shape, xp.float32, xp)
        scores = blob_array(bottom[0], "data", xp).reshape(shape)
        joints = blob_array(bottom[1], "data", xp).reshape(shape[0], self.joints, 2)
        classes, weights = soft_label_pairs(joints, self.grid_size, self.image_size)
        loss, _ = soft_label_cross_entropy(scores, classes, weights, out=self.gradient)
        blob_array(top[0], "data", xp)[0] = loss

    def backward(self, top, propagate_down, bottom):
        xp = mode_module()
        if propagate_down[1]:
            # the joints are labels (asked for only under force_backward)
            blob_array(bottom[1], "diff", xp)[...] = 0
        if propagate_down[0]:
            scores_diff = blob_array(bottom[0], "diff", xp)
            xp.multiply(self.gradient.reshape(scores_diff.shape),
                        blob_array(top[0], "diff", xp)[0], out=scores_diff)
