"""A loss weight that changes during training, so that one `caffe train` runs the paper's
whole schedule: lambda_2D = 0.1 for the first 16 epochs, then 0.01 (section 4).

Caffe's loss_weight is fixed for a run. This layer scales a loss by the weight of the current
training iteration instead, and counts the iterations in a blob of its own: the blob is a
parameter of the net (lr_mult 0, decay_mult 0: the solver never changes it), so every
snapshot saves the count and a resumed run (`caffe train -snapshot ...`) goes on from it.
The count is the number of TRAIN forward passes: one per iteration with iter_size 1 (the
toolkit's solvers); with iter_size k it advances k per iteration.

Layer `ScheduledLossWeight` (python_param { module: "layers.loss_schedule"
layer: "ScheduledLossWeight" }, param { lr_mult: 0 decay_mult: 0 }):
  bottom[0]  a scalar loss (1,)
  top[0]     weight x loss (1,): give it loss_weight 1
  top[1]     the weight used (1,), loss_weight 0: Caffe prints it beside the losses
  blobs[0]   (1,) the number of TRAIN forward passes so far
  param_str  JSON: "schedule": [[first iteration, weight], ...], first iterations
             increasing from 0; weight k holds from its first iteration to the next one's
In TEST the weight of the shared count is used and the count does not move (a test net
shares the train net's blobs). Backward: bottom diff = weight x top[0] diff.

The layer computes with numpy or CuPy (layers/device_arrays.py): in GPU mode the count, the
weight and the loss stay on the device, so a step does not wait to read the count.
"""

import numpy as np

import caffe
from layers.device_arrays import blob_array, blob_shape, mode_module, module_of
from layers.params import parse_param_str


def parse_schedule(param_str):
    """[(first iteration, weight)] from the layer's param_str, checked."""
    params = parse_param_str("ScheduledLossWeight", param_str, ["schedule"])
    try:
        schedule = [(int(first), float(weight)) for first, weight in params["schedule"]]
    except (TypeError, ValueError):
        raise ValueError("ScheduledLossWeight: \"schedule\" must be [[iteration, weight], ...]"
                         f", got {params['schedule']!r}") from None
    firsts = [first for first, _ in schedule]
    if not schedule or firsts[0] != 0 or any(b <= a for a, b in zip(firsts, firsts[1:])):
        raise ValueError(f"ScheduledLossWeight: the schedule's iterations must start at 0 and "
                         f"increase, got {firsts}")
    if not all(np.isfinite(weight) and weight >= 0 for _, weight in schedule):
        raise ValueError("ScheduledLossWeight: weights must be finite and >= 0")
    return schedule


def weight_at(schedule, iteration):
    """The weight of iteration `iteration` (0-based) under the schedule."""
    weight = schedule[0][1]
    for first, value in schedule:
        if iteration >= first:
            weight = value
    return weight


def schedule_arrays(schedule, xp):
    """The schedule as arrays of module xp: first iterations (float64) and weights (float32,
    the type they multiply the loss in)."""
    firsts = xp.asarray([first for first, _ in schedule], dtype=xp.float64)
    return firsts, xp.asarray([weight for _, weight in schedule], dtype=xp.float32)


def weights_at(firsts, weights, iterations):
    """weight_at over an array of iterations (schedule_arrays' arrays, of the same module):
    computed where the iterations are, without reading them."""
    xp = module_of(iterations)
    index = xp.searchsorted(firsts, iterations, side="right") - 1
    return weights[xp.maximum(index, 0)]   # before the first iteration: the first weight


class ScheduledLossWeight(caffe.Layer):
    """A loss scaled by the weight of the current iteration; see the module docstring."""

    def setup(self, bottom, top):
        if len(bottom) != 1 or len(top) != 2:
            raise ValueError(f"ScheduledLossWeight takes 1 bottom (a loss) and 2 tops (the "
                             f"weighted loss, the weight), got {len(bottom)} and {len(top)}")
        self.schedule = parse_schedule(self.param_str)
        if len(self.blobs) == 0:
            self.blobs.add_blob(1)
            self.blobs[0].data[0] = 0
        # the schedule as arrays of each module used, made once: on the device, from lists,
        # every step would copy them there
        self.schedules = {}
        self.weight = None   # (1,) the weight of the last forward pass, in its module

    def reshape(self, bottom, top):
        if bottom[0].count != 1:
            raise ValueError(f"ScheduledLossWeight: the bottom must be a scalar loss, got "
                             f"shape {blob_shape(bottom[0])}")
        top[0].reshape(1)
        top[1].reshape(1)

    def forward(self, bottom, top):
        xp = mode_module()
        if xp not in self.schedules:
            self.schedules[xp] = schedule_arrays(self.schedule, xp)
        count = blob_array(self.blobs[0], "data", xp)
        self.weight = weights_at(*self.schedules[xp], count)
        loss = blob_array(bottom[0], "data", xp).reshape(1)
        blob_array(top[0], "data", xp)[...] = self.weight * loss
        blob_array(top[1], "data", xp)[...] = self.weight
        if self.phase == caffe.TRAIN:
            count += 1

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = mode_module()
            loss_diff = blob_array(bottom[0], "diff", xp).reshape(1)
            loss_diff[...] = self.weight * blob_array(top[0], "diff", xp)
