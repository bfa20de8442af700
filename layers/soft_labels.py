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
"""

import numpy as np

import caffe
from layers.params import parse_param_str

EPS = 1e-12


def cell_centres(grid_size, image_size):
    """(Ng*Ng, 2) centres (x, y) of the grid cells in pixels, in class order row * Ng + col."""
    width = image_size / grid_size
    rows, cols = np.meshgrid(np.arange(grid_size), np.arange(grid_size), indexing="ij")
    return np.stack([(cols.ravel() + 0.5) * width, (rows.ravel() + 0.5) * width], axis=1)


def soft_labels(joints, grid_size, image_size):
    """Soft labels of eq. 1-2 for joints (..., 2) in pixels -> (..., Ng*Ng), each summing to 1."""
    joints = np.clip(np.asarray(joints, dtype=np.float64), 0.0, float(image_size))
    width = image_size / grid_size
    distance = np.linalg.norm(joints[..., None, :] - cell_centres(grid_size, image_size), axis=-1)
    near = distance < width
    on_centre = distance < EPS * width
    inverse = np.where(near, 1.0 / np.maximum(distance, EPS * width), 0.0)
    # a joint on a centre: the limit of eq. 1 puts all mass on that cell
    inverse = np.where(on_centre.any(axis=-1, keepdims=True), on_centre.astype(np.float64), inverse)
    return inverse / inverse.sum(axis=-1, keepdims=True)


def log_softmax(scores):
    """Log of the softmax over the last axis, stable for large scores."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def soft_label_cross_entropy(scores, labels):
    """Eq. 3 summed over joints, averaged over the batch, and its gradient w.r.t. the scores.

    scores, labels: (N, Nj, C). Returns (loss, gradient of the loss w.r.t. scores).
    """
    scores = np.asarray(scores, dtype=np.float64)
    log_p = log_softmax(scores)
    batch = scores.shape[0]
    loss = -np.sum(labels * log_p) / batch
    gradient = (np.exp(log_p) - labels) / batch
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
        batch = bottom[0].data.shape[0]
        classes = self.grid_size ** 2
        if bottom[0].data.size % (batch * classes) != 0:
            raise ValueError(f"SoftLabelLoss: scores of shape {bottom[0].data.shape} are not "
                             f"(N, Nj, {classes})")
        self.joints = bottom[0].data.size // (batch * classes)
        if bottom[1].data.shape[0] != batch or bottom[1].data.size != batch * self.joints * 2:
            raise ValueError(f"SoftLabelLoss: joints of shape {bottom[1].data.shape} do not "
                             f"match {self.joints} joints x (x, y) for batch {batch}")
        top[0].reshape(1)

    def forward(self, bottom, top):
        batch = bottom[0].data.shape[0]
        scores = bottom[0].data.reshape(batch, self.joints, self.grid_size ** 2)
        joints = bottom[1].data.reshape(batch, self.joints, 2)
        labels = soft_labels(joints, self.grid_size, self.image_size)
        loss, self.gradient = soft_label_cross_entropy(scores, labels)
        top[0].data[0] = loss

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            bottom[1].diff[...] = 0  # the joints are labels (asked for only under force_backward)
        if propagate_down[0]:
            bottom[0].diff[...] = (top[0].diff[0] * self.gradient).reshape(bottom[0].diff.shape)
