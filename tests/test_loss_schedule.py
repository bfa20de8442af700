"""The scheduled loss weight (layers/loss_schedule.py): the weight per iteration, the count in
its blob (TRAIN only), the gradient, and the count saved and restored through a snapshot."""
import json

import numpy as np
import pytest

import caffe
from caffe import layers as L
from layers.loss_schedule import parse_schedule, weight_at
from tests.gradcheck import assert_layer_gradient, layer_net

SCHEDULE = json.dumps({"schedule": [[0, 0.1], [3, 0.01]]})


def test_weight_at_follows_the_schedule():
    schedule = parse_schedule(SCHEDULE)
    assert [weight_at(schedule, i) for i in range(5)] == [0.1, 0.1, 0.1, 0.01, 0.01]
    three = parse_schedule(json.dumps({"schedule": [[0, 1.0], [2, 0.5], [4, 0.0]]}))
    assert [weight_at(three, i) for i in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.0, 0.0]


@pytest.mark.parametrize("param_str, message", [
    ("{", "not JSON"),
    (json.dumps({"schedule": [[0, 0.1]], "extra": 1}), "unknown keys \\[.extra.\\]"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"schedule": [[1, 0.1]]}), "start at 0"),
    (json.dumps({"schedule": [[0, 0.1], [0, 0.2]]}), "increase"),
    (json.dumps({"schedule": [[0, -1.0]]}), "finite and >= 0"),
    (json.dumps({"schedule": "0.1"}), "must be"),
])
def test_bad_schedules_are_refused(param_str, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(param_str)


def test_train_forward_counts_and_switches_test_forward_does_not():
    net = layer_net("layers.loss_schedule", "ScheduledLossWeight", [(1,)], SCHEDULE, n_tops=2)
    net.blobs["bottom0"].data[0] = 5.0
    seen = []
    for _ in range(5):
        net.forward()
        seen.append((float(net.blobs["top0"].data[0]), float(net.blobs["top1"].data[0])))
    np.testing.assert_allclose(seen, [(0.5, 0.1)] * 3 + [(0.05, 0.01)] * 2, rtol=1e-6)
    assert net.layers[1].blobs[0].data[0] == 5
    test_net = layer_net("layers.loss_schedule", "ScheduledLossWeight", [(1,)], SCHEDULE,
                         n_tops=2, phase=caffe.TEST)
    test_net.layers[1].blobs[0].data[0] = 3
    test_net.blobs["bottom0"].data[0] = 5.0
    for _ in range(3):
        test_net.forward()
    assert test_net.layers[1].blobs[0].data[0] == 3            # TEST does not count
    assert test_net.blobs["top1"].data[0] == pytest.approx(0.01)


def test_gradient_is_the_weight_times_the_top_diff():
    # a fresh layer at iteration 0: the finite differences run forward repeatedly, each
    # counting, so the schedule switches only after far more passes than the check makes
    schedule = json.dumps({"schedule": [[0, 0.25], [100000, 0.01]]})
    assert_layer_gradient("layers.loss_schedule", "ScheduledLossWeight", [np.array([2.0])],
                          schedule, n_tops=2, check_params=False)


def test_the_count_survives_a_snapshot_and_a_resume(tmp_path):
    """Three iterations, a snapshot, a resume for two more: the weight switches at 3 and the
    count in the caffemodel is 5, as in one uninterrupted run."""
    spec = caffe.NetSpec()
    spec.x = L.DummyData(shape=dict(dim=[2, 3]), data_filler=dict(type="gaussian"))
    spec.fc = L.InnerProduct(spec.x, num_output=1, weight_filler=dict(type="gaussian"))
    spec.raw = L.Reduction(spec.fc, operation=3)   # SUMSQ: a scalar
    spec.loss, spec.weight = L.Python(
        spec.raw, ntop=2, loss_weight=[1, 0], param=[dict(lr_mult=0, decay_mult=0)],
        python_param=dict(module="layers.loss_schedule", layer="ScheduledLossWeight",
                          param_str=SCHEDULE))
    net_path = tmp_path / "net.prototxt"
    net_path.write_text(str(spec.to_proto()))
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(f'train_net: "{net_path}"\nbase_lr: 0.01\nlr_policy: "fixed"\n'
                           f'max_iter: 5\nsnapshot: 3\nsnapshot_prefix: "{tmp_path}/s"\n'
                           'type: "SGD"\nmomentum: 0.9\nweight_decay: 0.1\n')
    solver = caffe.get_solver(str(solver_path))
    solver.step(3)
    assert solver.net.params["loss"][0].data[0] == 3       # the solver leaves it alone
    solver.snapshot()
    resumed = caffe.get_solver(str(solver_path))
    resumed.restore(str(tmp_path / "s_iter_3.solverstate"))
    assert resumed.net.params["loss"][0].data[0] == 3
    resumed.step(1)
    assert resumed.net.blobs["weight"].data[0] == pytest.approx(0.01)
    resumed.step(1)
    assert resumed.net.params["loss"][0].data[0] == 5
