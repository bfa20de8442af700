"""BatchNorm -> Scale -> ReLU, the in-place chain of every convolution of the paper net, on
the device the tests run on (`pytest --caffe-gpu N`, as `make gpu-check` runs them: cuDNN's
batch normalisation, CUDA patch 11) against the CPU (patch 13's fused passes) and numpy.

TRAIN (batch statistics) and TEST (stored statistics), ReLU slopes 0 and 0.1, convolution-like
and inner-product-like shapes, three passes each, the parameter diffs starting at 1 (so that a
gradient written over them instead of added shows): the output, the input gradient, the
Scale's gradients and BatchNorm's three blobs afterwards; a caffemodel written on one side
gives the same TEST outputs on the other; a Scale that does not learn keeps its diffs; the
chain is done when the BatchNorm is. In `make test` both sides are the CPU: the numpy
comparisons hold there too."""
import numpy as np
import pytest

import caffe
from caffe import layers as L

from benchmarks.gpu_check import AGREEMENT_TOLERANCE, relative_error
from solver.devices import use_device
from tests.test_caffe_cpu_layers import chain_net, chain_pass, reference_chain

STATS_TOLERANCE = 1e-5   # BatchNorm's blobs: the same sums, float rounding apart
SHAPES = [(8, 6, 9, 7), (128, 48, 13, 13), (6, 5, 1, 1), (128, 64), (1, 2, 9, 9)]


@pytest.fixture
def device(request):
    """The GPU the tests run on (--caffe-gpu), or None: the CPU on both sides."""
    yield request.config.getoption("--caffe-gpu")
    use_device(request.config.getoption("--caffe-gpu"))   # as conftest left it


def within(got, want, tolerance):
    error = relative_error(np.asarray(got, np.float64), np.asarray(want, np.float64))
    assert error <= tolerance, f"relative difference {error:.2e}"


def chain_inputs(rng, shape, steps=3):
    channels = shape[1]
    return [((rng.standard_normal(shape) * 3 + 0.7).astype(np.float32),
             rng.standard_normal(shape).astype(np.float32),
             rng.uniform(0.5, 2.0, channels).astype(np.float32),
             (rng.standard_normal(channels) * 0.5).astype(np.float32))
            for _ in range(steps)]


def passes(gpu, tmp_path, shape, slope, phase, inputs, statistics):
    """The chain's passes on gpu (None: the CPU): each pass's (out, dx, dgamma, dbeta),
    BatchNorm's blobs afterwards, and the caffemodel it saved."""
    use_device(gpu)
    net = chain_net(tmp_path, shape, slope, True, phase)
    results = [chain_pass(net, x, top_diff, gamma, beta, True,
                          statistics if step == 0 else None)
               for step, (x, top_diff, gamma, beta) in enumerate(inputs)]
    weights = tmp_path / f"chain-{'cpu' if gpu is None else f'gpu{gpu}'}.caffemodel"
    net.save(str(weights))
    return results, [blob.data.copy() for blob in net.params["bn"]], weights


@pytest.mark.parametrize("phase", [caffe.TRAIN, caffe.TEST], ids=["TRAIN", "TEST"])
@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_chain_agrees_with_the_cpu_and_numpy(tmp_path, device, shape, slope, phase):
    rng = np.random.default_rng(11)
    inputs = chain_inputs(rng, shape)
    mean = var = statistics = None
    if phase == caffe.TEST:
        mean, var = rng.standard_normal(shape[1]), rng.uniform(0.5, 3.0, shape[1])
        statistics = (mean * 2.0, var * 2.0, [2.0])
    cpu, cpu_blobs, cpu_weights = passes(None, tmp_path, shape, slope, phase, inputs,
                                         statistics)
    other, other_blobs, other_weights = passes(device, tmp_path, shape, slope, phase, inputs,
                                               statistics)
    for a, b in zip(other, cpu):
        for got, want in zip(a, b):
            within(got, want, AGREEMENT_TOLERANCE)
    x, top_diff, gamma, beta = inputs[0]
    for got, want in zip(other[0], reference_chain(x, gamma, beta, slope, top_diff, mean, var)):
        within(got, want, AGREEMENT_TOLERANCE)
    for got, want in zip(other_blobs, cpu_blobs):
        within(got, want, STATS_TOLERANCE)
    if phase == caffe.TRAIN:   # a caffemodel of either side: TEST outputs on the other
        for weights in (cpu_weights, other_weights):
            outputs = []
            for gpu in (None, device):
                use_device(gpu)
                net = chain_net(tmp_path, shape, slope, True, caffe.TEST)
                net.copy_from(str(weights))
                net.blobs["data"].data[...] = x
                net.forward()
                outputs.append(net.blobs["data"].data.copy())
            within(outputs[1], outputs[0], AGREEMENT_TOLERANCE)


def test_the_chain_is_done_when_the_batch_norm_is(tmp_path, device):
    """A partial forward that stops at the BatchNorm already sees the ReLU's output: the
    fused path took the pass."""
    shape = (16, 4, 5, 5)
    use_device(device)
    net = chain_net(tmp_path, shape, 0.0, True, caffe.TRAIN)
    net.blobs["data"].data[...] = np.random.default_rng(3).standard_normal(shape)
    net.forward(end="bn")
    assert net.blobs["data"].data.min() >= 0


def frozen_scale_net(tmp_path, shape):
    """Convolution -> the in-place chain with a Scale that does not learn (lr_mult 0) ->
    EuclideanLoss: the chain needs backward for the convolution's gradient alone."""
    spec = caffe.NetSpec()
    spec.data = L.Input(shape=dict(dim=list(shape)))
    spec.target = L.Input(shape=dict(dim=list(shape)))
    spec.conv = L.Convolution(spec.data, num_output=shape[1], kernel_size=1,
                              weight_filler=dict(type="gaussian", std=1.0))
    spec.bn = L.BatchNorm(spec.conv, in_place=True,
                          batch_norm_param=dict(moving_average_fraction=0.9))
    spec.scale = L.Scale(spec.conv, in_place=True, bias_term=True,
                         param=[dict(lr_mult=0), dict(lr_mult=0)])
    spec.relu = L.ReLU(spec.conv, in_place=True)
    spec.loss = L.EuclideanLoss(spec.conv, spec.target)
    path = tmp_path / "frozen.prototxt"
    path.write_text(str(spec.to_proto()))
    return caffe.Net(str(path), caffe.TRAIN)


def frozen_pass(gpu, tmp_path, weights, x, target):
    """(the convolution's gradient, the Scale's diffs) of one pass, those diffs set to 1."""
    use_device(gpu)
    net = frozen_scale_net(tmp_path, x.shape)
    net.copy_from(str(weights))
    for blob in net.params["scale"]:
        blob.diff[...] = 1.0
    for blob in net.params["conv"]:
        blob.diff[...] = 0.0
    net.blobs["data"].data[...] = x
    net.blobs["target"].data[...] = target
    net.forward()
    net.backward()
    return net.params["conv"][0].diff.copy(), [blob.diff.copy() for blob in net.params["scale"]]


def test_a_scale_that_does_not_learn_keeps_its_diffs(tmp_path, device):
    rng = np.random.default_rng(5)
    shape = (16, 4, 5, 5)
    use_device(None)
    net = frozen_scale_net(tmp_path, shape)
    net.params["scale"][0].data[...] = rng.uniform(0.5, 2.0, shape[1])
    net.params["scale"][1].data[...] = rng.standard_normal(shape[1]) * 0.5
    weights = tmp_path / "frozen.caffemodel"
    net.save(str(weights))
    x = rng.standard_normal(shape).astype(np.float32)
    target = rng.standard_normal(shape).astype(np.float32)
    cpu_gradient, _ = frozen_pass(None, tmp_path, weights, x, target)
    gradient, scale_diffs = frozen_pass(device, tmp_path, weights, x, target)
    within(gradient, cpu_gradient, AGREEMENT_TOLERANCE)
    assert all(np.all(diff == 1.0) for diff in scale_diffs)
