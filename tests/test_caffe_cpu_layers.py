"""The Caffe build's CPU layers that the project's speed patches rewrite (setup/patches/debian/
03 and 04: max pooling, ReLU, BatchNorm) against numpy reference computations: forward
outputs, gradients and BatchNorm's running statistics, in place and not, within float
tolerance. Whatever build `make setup` wired is the one tested."""
import numpy as np
import pytest

import caffe
from caffe import layers as L, params as P

EPS = 1e-5   # Caffe's BatchNorm default


def one_layer_net(tmp_path, shape, make_layer, in_place, phase=caffe.TRAIN):
    """A net of an Input blob and one layer (its top named "out", or in place on "data"),
    forced to run backward into the input."""
    spec = caffe.NetSpec()
    spec.data = L.Input(shape=dict(dim=list(shape)))
    if in_place:
        spec.out = make_layer(spec.data, in_place=True)
    else:
        spec.out = make_layer(spec.data)
    proto = spec.to_proto()
    proto.force_backward = True
    path = tmp_path / "net.prototxt"
    path.write_text(str(proto))
    return caffe.Net(str(path), phase)


def forward_backward(net, x, top_diff, in_place):
    """(top data, bottom diff) of one forward and backward pass."""
    net.blobs["data"].data[...] = x
    net.forward()
    top = "data" if in_place else "out"
    out = net.blobs[top].data.copy()
    net.blobs[top].diff[...] = top_diff
    net.backward()
    return out, net.blobs["data"].diff.copy()


def reference_max_pool(x, kernel, stride):
    """Caffe's max pooling (no padding, ceil rounding, the first maximum in row-major window
    order) and its argmax; returns (top, flat input index per output)."""
    n, c, h, w = x.shape
    ph, pw = -(-(h - kernel) // stride) + 1, -(-(w - kernel) // stride) + 1
    top = np.empty((n, c, ph, pw), x.dtype)
    index = np.empty((n, c, ph, pw), np.int64)
    for i in range(ph):
        for j in range(pw):
            h0, w0 = i * stride, j * stride
            window = x[:, :, h0:min(h0 + kernel, h), w0:min(w0 + kernel, w)]
            flat = window.reshape(n, c, -1)
            best = flat.argmax(axis=2)             # numpy returns the first maximum too
            top[:, :, i, j] = np.take_along_axis(flat, best[..., None], axis=2)[..., 0]
            width = window.shape[3]
            index[:, :, i, j] = (h0 + best // width) * w + w0 + best % width
    return top, index


@pytest.mark.parametrize("shape", [(2, 3, 11, 11), (1, 2, 12, 9)])
def test_max_pooling_forward_and_backward(tmp_path, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    net = one_layer_net(tmp_path, shape, lambda b: L.Pooling(
        b, pool=P.Pooling.MAX, kernel_size=3, stride=2), in_place=False)
    top_ref, index = reference_max_pool(x, 3, 2)
    top_diff = rng.standard_normal(top_ref.shape).astype(np.float32)
    top, bottom_diff = forward_backward(net, x, top_diff, in_place=False)
    np.testing.assert_array_equal(top, top_ref)
    expected = np.zeros_like(x).reshape(shape[0], shape[1], -1)
    for n in range(shape[0]):
        for c in range(shape[1]):
            np.add.at(expected[n, c], index[n, c].ravel(), top_diff[n, c].ravel())
    np.testing.assert_allclose(bottom_diff, expected.reshape(shape), rtol=1e-6, atol=1e-6)


def test_max_pooling_keeps_the_first_of_equal_maxima(tmp_path):
    x = np.zeros((1, 1, 3, 3), np.float32)      # one window, all equal: the first one wins
    net = one_layer_net(tmp_path, x.shape, lambda b: L.Pooling(
        b, pool=P.Pooling.MAX, kernel_size=3, stride=2), in_place=False)
    _, bottom_diff = forward_backward(net, x, np.ones((1, 1, 1, 1), np.float32), False)
    assert bottom_diff.ravel().tolist() == [1] + [0] * 8


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_relu_forward_and_backward(tmp_path, in_place, slope):
    rng = np.random.default_rng(1)
    shape = (2, 3, 7, 5)
    x = rng.standard_normal(shape).astype(np.float32)
    top_diff = rng.standard_normal(shape).astype(np.float32)
    net = one_layer_net(tmp_path, shape, lambda b, **kw: L.ReLU(b, negative_slope=slope, **kw),
                        in_place)
    top, bottom_diff = forward_backward(net, x, top_diff, in_place)
    np.testing.assert_allclose(top, np.where(x > 0, x, slope * x), rtol=1e-6)
    np.testing.assert_allclose(bottom_diff, np.where(x > 0, top_diff, slope * top_diff),
                               rtol=1e-6)


def reference_batch_norm(x, top_diff):
    """Training-mode BatchNorm over (N, H, W) per channel: (y, dx, mean, biased variance)."""
    axes = (0, 2, 3)
    mean = x.astype(np.float64).mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    std = np.sqrt(var + EPS)
    y = (x - mean) / std
    dy = top_diff.astype(np.float64)
    dx = (dy - dy.mean(axis=axes, keepdims=True)
          - y * (dy * y).mean(axis=axes, keepdims=True)) / std
    return y, dx, mean.ravel(), var.ravel()


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (3, 2, 1, 1), (2, 5, 9, 9)])
def test_batch_norm_training_forward_backward_and_statistics(tmp_path, in_place, shape):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 3 + 1.5).astype(np.float32)
    top_diff = rng.standard_normal(shape).astype(np.float32)
    net = one_layer_net(tmp_path, shape, lambda b, **kw: L.BatchNorm(
        b, batch_norm_param=dict(use_global_stats=False, moving_average_fraction=0.9), **kw),
        in_place)
    top, bottom_diff = forward_backward(net, x, top_diff, in_place)
    y, dx, mean, var = reference_batch_norm(x, top_diff)
    np.testing.assert_allclose(top, y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bottom_diff, dx, rtol=1e-3, atol=1e-4)
    # running statistics after one pass from zero: sums weighted by 0.9^0, and the unbiased
    # variance (m / (m - 1)) as Caffe stores it
    m = x.size // shape[1]
    blobs = net.params["out"]
    np.testing.assert_allclose(blobs[0].data, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(blobs[1].data, var * m / max(m - 1, 1), rtol=1e-4)
    assert blobs[2].data[0] == pytest.approx(1.0)
    # a second pass: each running value is the new one plus 0.9 times the old
    net.blobs["data"].data[...] = x
    net.forward()
    np.testing.assert_allclose(blobs[0].data, mean * 1.9, rtol=1e-5, atol=1e-6)
    assert blobs[2].data[0] == pytest.approx(1.9)


@pytest.mark.parametrize("in_place", [False, True])
def test_batch_norm_global_statistics(tmp_path, in_place):
    rng = np.random.default_rng(3)
    shape = (2, 3, 4, 4)
    x = rng.standard_normal(shape).astype(np.float32)
    top_diff = rng.standard_normal(shape).astype(np.float32)
    net = one_layer_net(tmp_path, shape, lambda b, **kw: L.BatchNorm(
        b, batch_norm_param=dict(use_global_stats=True), **kw), in_place, phase=caffe.TEST)
    mean_sum, var_sum, weight = np.array([1.0, -2.0, 0.5]), np.array([4.0, 1.0, 9.0]), 2.0
    for blob, value in zip(net.params["out"], (mean_sum, var_sum, [weight])):
        blob.data[...] = value
    top, bottom_diff = forward_backward(net, x, top_diff, in_place)
    mean, var = mean_sum / weight, var_sum / weight
    std = np.sqrt(var + EPS)[None, :, None, None]
    np.testing.assert_allclose(top, (x - mean[None, :, None, None]) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bottom_diff, top_diff / std, rtol=1e-5, atol=1e-6)
