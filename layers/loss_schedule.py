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
"""

import numpy as np

import caffe
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
        self.weight = weight_at(self.schedule, 0)

    def reshape(self, bottom, top):
        if bottom[0].data.size != 1:
            raise ValueError(f"ScheduledLossWeight: the bottom must be a scalar loss, got "
                             f"shape {bottom[0].data.shape}")
        top[0].reshape(1)
        top[1].reshape(1)

    def forward(self, bottom, top):
        iteration = int(self.blobs[0].data[0])
        self.weight = weight_at(self.schedule, iteration)
        top[0].data[0] = self.weight * bottom[0].data.flat[0]
        top[1].data[0] = self.weight
        if self.phase == caffe.TRAIN:
            self.blobs[0].data[0] = iteration + 1

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff.flat[0] = self.weight * top[0].diff[0]
