"""The Caffe build's CPU layers that the project's patches rewrite (setup/patches/debian:
03, 05 to 08, 10 and 11: max pooling, ReLU, BatchNorm, Scale, and convolutions and inner
products through oneDNN; 12: the SGD update; 13: BatchNorm, Scale and ReLU fused) against numpy reference computations: forward
outputs, gradients (which Caffe adds to the parameters' diffs) and BatchNorm's running
statistics, in place and not, within float tolerance; and the convolutions of oneDNN against
Caffe's own im2col + GEMM (engine: CAFFE) in the same build. Whatever build `make setup`
wired is the one tested."""
import os
import subprocess
import sys

import numpy as np
import pytest

import caffe
from caffe import layers as L, params as P

from benchmarks.gpu_check import (AGREEMENT_TOLERANCE, differing_decisions,
                                  reference_max_pool, relative_error, with_convolution_engine)
from solver.devices import build_info

EPS = 1e-5   # Caffe's BatchNorm default
# the patch that rewrote ReLU and Scale (setup/patches/debian/); the PyPI fork has BVLC's
ELEMENTWISE_PATCH = "08-cpu-openmp-elementwise-layers.patch"


def needs_patch(name, bvlc_behaviour):
    """Skip, naming what BVLC's own layer does, on a build without the patch `name`."""
    if name not in build_info().get("patches", {}):
        pytest.skip(f"this build lacks {name}: {bvlc_behaviour}")


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


def only_caffe_pooling(request, with_mask):
    """Skip a single-top case in GPU mode (pytest --caffe-gpu, as make gpu-check runs these
    tests): there it runs cuDNN's pooling, whose ties and NaN are its own, while a Pooling
    layer with the index as a second top runs Caffe's kernel (CUDA patch 07)."""
    if not with_mask and request.config.getoption("--caffe-gpu") is not None:
        pytest.skip("GPU mode: a single top runs cuDNN's pooling, not Caffe's kernel")


def max_pool_net(tmp_path, shape, with_mask, **geometry):
    """A net of an Input blob of `shape` and one MAX Pooling layer with `geometry` (Caffe's
    pooling_param fields), top "out" and, with_mask, its index as a second top "mask";
    forced to run backward into the input."""
    spec = caffe.NetSpec()
    spec.data = L.Input(shape=dict(dim=list(shape)))
    pooled = L.Pooling(spec.data, pool=P.Pooling.MAX, ntop=2 if with_mask else 1, **geometry)
    if with_mask:
        spec.out, spec.mask = pooled
    else:
        spec.out = pooled
    proto = spec.to_proto()
    proto.force_backward = True
    (tmp_path / "net.prototxt").write_text(str(proto))
    return caffe.Net(str(tmp_path / "net.prototxt"), caffe.TRAIN)


# (shape, kernel, stride, pad): the paper's 3x3 stride 2 and others with padding, stride 1
# and 3, non-square windows and a window as large as the image; ReLU-like inputs (half of
# them 0) check that ties keep the first maximum.
POOLINGS = [((2, 3, 11, 11), 3, 2, 0), ((1, 2, 12, 9), 3, 2, 0), ((2, 2, 13, 17), 3, 2, 1),
            ((1, 3, 10, 7), 2, 3, 1), ((1, 2, 9, 8), 3, 1, 1), ((2, 1, 7, 12), (2, 3), (1, 2), 0),
            ((1, 2, 6, 5), (6, 5), 1, 0), ((1, 1, 3, 40), (3, 4), (1, 4), (1, 2))]


@pytest.mark.parametrize("relu_like", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("shape, kernel, stride, pad", POOLINGS)
def test_max_pooling_forward_and_backward(tmp_path, request, shape, kernel, stride, pad,
                                          with_mask, relu_like):
    only_caffe_pooling(request, with_mask)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    if relu_like:
        x = np.maximum(x, 0)
    geometry = {}
    for key, value in (("kernel", kernel), ("stride", stride), ("pad", pad)):
        if isinstance(value, tuple):
            geometry.update({f"{key}_h": value[0], f"{key}_w": value[1]})
        else:
            geometry[f"{key}_size" if key == "kernel" else key] = value
    net = max_pool_net(tmp_path, shape, with_mask, **geometry)
    top_ref, index = reference_max_pool(x, kernel, stride, pad)
    top_diff = rng.standard_normal(top_ref.shape).astype(np.float32)
    net.blobs["data"].diff[...] = np.nan       # every element must be written by backward
    top, bottom_diff = forward_backward(net, x, top_diff, in_place=False)
    np.testing.assert_array_equal(top, top_ref)
    if with_mask:
        np.testing.assert_array_equal(net.blobs["mask"].data, index)
    expected = np.zeros_like(x).reshape(shape[0], shape[1], -1)
    for n in range(shape[0]):
        for c in range(shape[1]):
            np.add.at(expected[n, c], index[n, c].ravel(), top_diff[n, c].ravel())
    np.testing.assert_allclose(bottom_diff, expected.reshape(shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("with_mask", [False, True])
def test_max_pooling_keeps_the_first_of_equal_maxima(tmp_path, request, with_mask):
    only_caffe_pooling(request, with_mask)
    x = np.zeros((1, 1, 3, 3), np.float32)      # one window, all equal: the first one wins
    net = max_pool_net(tmp_path, x.shape, with_mask, kernel_size=3, stride=2)
    _, bottom_diff = forward_backward(net, x, np.ones((1, 1, 1, 1), np.float32), False)
    assert bottom_diff.ravel().tolist() == [1] + [0] * 8


@pytest.mark.parametrize("with_mask", [False, True])
def test_max_pooling_of_nan_and_minus_infinity_windows_stays_in_its_planes(tmp_path, request,
                                                                          with_mask):
    """Patch 03: a window of all NaN or all -inf has no value above -FLT_MAX, so BVLC gave it
    index -1 and backward added its gradient before the plane (the previous plane's last
    element, or before the buffer: "double free or corruption"). Now the window's first
    element is taken before any larger one: an all-NaN window gives NaN, and every gradient
    stays in its window (a NaN after a number is passed over, as before: checking every value
    for NaN made the pooling 3x slower; since patch 10, which pools by rows, so is a later row
    of a window that starts with NaN). Two channels, four 2 x 2 windows each; with_mask: the
    index as a second top."""
    only_caffe_pooling(request, with_mask)
    nan, inf = np.float32("nan"), np.float32("inf")
    plane = np.array([[nan, nan, -inf, -inf],
                      [nan, nan, -inf, -inf],
                      [1.0, nan, 5.0, 2.0],
                      [3.0, 2.0, 4.0, 5.0]], np.float32)
    x = np.stack([plane, plane])[None]                 # (1, 2, 4, 4)
    net = max_pool_net(tmp_path, x.shape, with_mask, kernel_size=2, stride=2)
    top, bottom_diff = forward_backward(net, x, np.ones((1, 2, 2, 2), np.float32), False)
    for channel in range(2):
        assert np.isnan(top[0, channel, 0, 0])
        assert top[0, channel, 0, 1] == -inf
        assert top[0, channel, 1, 0] == 3.0 and top[0, channel, 1, 1] == 5.0
        # each window's gradient once, on its first element (all NaN, all -inf) or its
        # first maximum
        diff = bottom_diff[0, channel]
        assert diff.sum() == 4
        assert diff[0, 0] == diff[0, 2] == diff[3, 0] == diff[2, 2] == 1
    if with_mask:
        mask = net.blobs["mask"].data
        assert ((mask >= 0) & (mask < 16)).all()


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


def test_relu_gives_positive_zero_for_negative_inputs(tmp_path):
    """+0, not -0, at slope 0, for negative inputs and for -0."""
    needs_patch(ELEMENTWISE_PATCH, "BVLC's max(x, 0) + slope * min(x, 0) gives -0 for -0")
    x = np.array([-2.0, -0.0, 0.0, 3.0], np.float32).reshape(1, 1, 1, 4)
    net = one_layer_net(tmp_path, x.shape, lambda b: L.ReLU(b), in_place=False)
    top, _ = forward_backward(net, x, np.ones_like(x), in_place=False)
    assert not np.signbit(top.ravel()[:3]).any()


def reference_scale(x, gamma, beta, top_diff):
    """y = gamma * x + beta per channel (axis 1) and (dx, dgamma, dbeta)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    g = gamma.reshape(shape)
    y = x * g + (0 if beta is None else beta.reshape(shape))
    axes = tuple(i for i in range(x.ndim) if i != 1)
    dgamma = (top_diff.astype(np.float64) * x).sum(axis=axes)
    dbeta = top_diff.astype(np.float64).sum(axis=axes)
    return y, top_diff * g, dgamma, dbeta


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(3, 4, 5, 7), (5, 6), (1, 2, 3, 3)])
def test_scale_forward_backward_and_parameter_gradients(tmp_path, in_place, bias, shape):
    if shape[0] == 1:
        needs_patch(ELEMENTWISE_PATCH, "BVLC's Scale overwrites its parameter gradient at "
                                       "batch 1 where Caffe adds gradients to the diffs")
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32)
    top_diff = rng.standard_normal(shape).astype(np.float32)
    net = one_layer_net(tmp_path, shape, lambda b, **kw: L.Scale(b, bias_term=bias, **kw),
                        in_place)
    gamma = rng.uniform(0.5, 2.0, shape[1]).astype(np.float32)
    beta = rng.standard_normal(shape[1]).astype(np.float32) if bias else None
    params = net.params["out"]
    params[0].data[...] = gamma
    if bias:
        params[1].data[...] = beta
    for blob in params:       # Caffe adds each pass's gradient to what the diff holds
        blob.diff[...] = 1.0
    top, bottom_diff = forward_backward(net, x, top_diff, in_place)
    y, dx, dgamma, dbeta = reference_scale(x, gamma, beta, top_diff)
    np.testing.assert_allclose(top, y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bottom_diff, dx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(params[0].diff, dgamma + 1, rtol=1e-5, atol=1e-5)
    if bias:
        np.testing.assert_allclose(params[1].diff, dbeta + 1, rtol=1e-5, atol=1e-5)


FUSION_PATCH = "13-cpu-batchnorm-scale-relu-fused.patch"


def chain_net(tmp_path, shape, slope, fused, phase):
    """BatchNorm -> Scale (with bias) -> ReLU on an Input blob: all three in place on "data"
    (the chain Caffe fuses on the CPU, patch 13), or the ReLU into a top of its own ("out"),
    which leaves the three layers to run apart: the same function."""
    spec = caffe.NetSpec()
    spec.data = L.Input(shape=dict(dim=list(shape)))
    spec.bn = L.BatchNorm(spec.data, in_place=True, batch_norm_param=dict(
        use_global_stats=phase == caffe.TEST, moving_average_fraction=0.9))
    spec.scale = L.Scale(spec.data, in_place=True, bias_term=True)
    if fused:
        spec.relu = L.ReLU(spec.data, in_place=True, negative_slope=slope)
    else:
        spec.out = L.ReLU(spec.data, negative_slope=slope)
    proto = spec.to_proto()
    proto.force_backward = True
    path = tmp_path / f"chain-{fused}.prototxt"
    path.write_text(str(proto))
    return caffe.Net(str(path), phase)


def reference_chain(x, gamma, beta, slope, top_diff, mean=None, var=None):
    """relu(gamma * BatchNorm(x) + beta) and (dx, dgamma, dbeta), in float64; BatchNorm over
    the batch, or with the given mean and variance (global statistics)."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x = x.astype(np.float64)
    batch = mean is None
    if batch:
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    else:
        mean, var = mean.reshape(shape), var.reshape(shape)
    std = np.sqrt(var + EPS)
    y = (x - mean) / std
    z = y * gamma.reshape(shape) + beta.reshape(shape)
    out = np.where(z > 0, z, z * slope)
    dz = top_diff * np.where(z > 0, 1.0, slope)
    dgamma, dbeta = (dz * y).sum(axis=axes), dz.sum(axis=axes)
    dy = dz * gamma.reshape(shape)
    if batch:
        dx = (dy - dy.mean(axis=axes, keepdims=True)
              - y * (dy * y).mean(axis=axes, keepdims=True)) / std
    else:
        dx = dy / std
    return out, dx, dgamma, dbeta


def chain_pass(net, x, top_diff, gamma, beta, fused, statistics=None):
    """(output, input gradient, scale gradient, bias gradient) of one pass of a chain_net,
    the parameters' diffs starting at 1 (Caffe adds each pass's gradient to them)."""
    net.params["scale"][0].data[...] = gamma
    net.params["scale"][1].data[...] = beta
    for blob in net.params["scale"]:
        blob.diff[...] = 1.0
    if statistics is not None:
        for blob, value in zip(net.params["bn"], statistics):
            blob.data[...] = value
    top = "data" if fused else "out"
    net.blobs["data"].data[...] = x
    net.forward()
    out = net.blobs[top].data.copy()
    net.blobs[top].diff[...] = top_diff
    net.backward()
    return (out, net.blobs["data"].diff.copy(), net.params["scale"][0].diff - 1,
            net.params["scale"][1].diff - 1)


@pytest.mark.parametrize("phase", [caffe.TRAIN, caffe.TEST])
@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (1, 2, 9, 9), (6, 5, 1, 1), (2, 16, 13, 11)])
def test_batch_norm_scale_relu_fused_as_the_three_layers(tmp_path, shape, slope, phase):
    """The in-place chain, which the build runs fused on the CPU, against the same three
    layers run apart and against numpy: outputs, input gradients and the Scale's parameter
    gradients (added to its diffs), in batch and in global statistics, over sizes with and
    without a remainder of the eight-wide sums."""
    needs_patch(FUSION_PATCH, "BVLC runs the three layers apart")
    rng = np.random.default_rng(13)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    top_diff = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.uniform(0.5, 2.0, shape[1]).astype(np.float32)
    beta = rng.standard_normal(shape[1]).astype(np.float32) * 0.5
    statistics, mean, var = None, None, None
    if phase == caffe.TEST:
        mean, var = rng.standard_normal(shape[1]), rng.uniform(0.5, 3.0, shape[1])
        statistics = (mean * 2.0, var * 2.0, [2.0])   # sums with weight 2, as Caffe keeps them
    fused = chain_pass(chain_net(tmp_path, shape, slope, True, phase), x, top_diff, gamma,
                       beta, True, statistics)
    apart = chain_pass(chain_net(tmp_path, shape, slope, False, phase), x, top_diff, gamma,
                       beta, False, statistics)
    reference = reference_chain(x, gamma, beta, slope, top_diff, mean, var)
    np.testing.assert_array_equal(fused[0], apart[0])   # the same float expressions
    for got, other, want in zip(fused[1:], apart[1:], reference[1:]):
        np.testing.assert_allclose(got, other, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fused[0], reference[0], rtol=1e-4, atol=1e-5)


def test_the_fused_chain_is_done_when_the_batch_norm_is(tmp_path):
    """Forward up to the BatchNorm alone already gives the ReLU's output where the chain is
    fused (what a partial forward in pycaffe sees), and the BatchNorm's where it is not."""
    needs_patch(FUSION_PATCH, "BVLC runs the three layers apart")
    shape = (2, 3, 4, 4)
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    for fused in (True, False):
        net = chain_net(tmp_path, shape, 0.0, fused, caffe.TRAIN)
        net.blobs["data"].data[...] = x
        net.forward(end="bn")
        assert (net.blobs["data"].data.min() >= 0) == fused


def reference_convolution(x, w, b, stride, pad, dilation, group):
    """Direct 2D convolution as Caffe defines it (cross-correlation, floor output size),
    in float64; returns y and a function of dy giving (dx, dw, db)."""
    n, c, h, width = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - (dilation * (kh - 1) + 1)) // stride + 1
    ow = (width + 2 * pad - (dilation * (kw - 1) + 1)) // stride + 1
    og = o // group

    def window(i, j):   # (n, c, oh, ow) inputs that kernel tap (i, j) sees
        r, s = i * dilation, j * dilation
        return xp[:, :, r:r + stride * (oh - 1) + 1:stride, s:s + stride * (ow - 1) + 1:stride]

    y = np.zeros((n, o, oh, ow))
    for g in range(group):
        cs, os_ = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        for i in range(kh):
            for j in range(kw):
                y[:, os_] += np.einsum("ncij,oc->noij", window(i, j)[:, cs], w[os_, :, i, j])
    if b is not None:
        y += b[None, :, None, None]

    def backward(dy):
        dy = dy.astype(np.float64)
        dxp = np.zeros_like(xp)
        dw = np.zeros(w.shape)
        for g in range(group):
            cs, os_ = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
            for i in range(kh):
                for j in range(kw):
                    r, s = i * dilation, j * dilation
                    dw[os_, :, i, j] = np.einsum("noij,ncij->oc", dy[:, os_],
                                                 window(i, j)[:, cs])
                    dxp[:, cs, r:r + stride * (oh - 1) + 1:stride,
                        s:s + stride * (ow - 1) + 1:stride] += np.einsum(
                            "noij,oc->ncij", dy[:, os_], w[os_, :, i, j])
        dx = dxp[:, :, pad:pad + h, pad:pad + width]
        return dx, dw, dy.sum(axis=(0, 2, 3))
    return y, backward


CONVOLUTIONS = [   # (input shape, outputs, kernel, stride, pad, dilation, group, bias)
    ((1, 3, 17, 19), 8, 7, 2, 1, 1, 1, True),      # conv1-like: 3 channels, big stride
    ((5, 16, 13, 13), 32, 3, 1, 1, 1, 1, False),   # a batch, same-size output, no bias
    ((2, 4, 9, 10), 6, 3, 2, 0, 1, 2, True),       # groups, odd sizes, floor rounding
    ((3, 8, 11, 11), 8, 1, 1, 0, 1, 1, True),      # 1x1
    ((2, 6, 12, 12), 6, 3, 1, 2, 2, 3, True),      # dilation and groups
    ((4, 48, 27, 27), 128, 5, 2, 0, 1, 1, False),  # conv2's shape at a small batch
    ((16, 16, 9, 11), 32, 3, 1, 1, 1, 1, True),    # Winograd where oneDNN takes it (11)
]


@pytest.mark.parametrize("engine", ["DEFAULT", "CAFFE"])
@pytest.mark.parametrize("shape,outputs,kernel,stride,pad,dilation,group,bias", CONVOLUTIONS)
def test_convolution_forward_and_gradients(tmp_path, engine, shape, outputs, kernel, stride,
                                           pad, dilation, group, bias):
    """engine DEFAULT runs oneDNN in the optimised build (patch 07), CAFFE im2col + GEMM."""
    rng = np.random.default_rng(5)
    net = one_layer_net(tmp_path, shape, lambda b: L.Convolution(
        b, num_output=outputs, kernel_size=kernel, stride=stride, pad=pad, dilation=dilation,
        group=group, bias_term=bias, engine=getattr(P.Convolution, engine)), in_place=False)
    x = rng.standard_normal(shape).astype(np.float32)
    params = net.params["out"]
    w = rng.standard_normal(params[0].data.shape).astype(np.float32) * 0.2
    b = rng.standard_normal(outputs).astype(np.float32) if bias else None
    params[0].data[...] = w
    if bias:
        params[1].data[...] = b
    for blob in params:
        blob.diff[...] = 0.5
    y_ref, backward = reference_convolution(x, w, b, stride, pad, dilation, group)
    top_diff = rng.standard_normal(y_ref.shape).astype(np.float32)
    top, bottom_diff = forward_backward(net, x, top_diff, in_place=False)
    dx, dw, db = backward(top_diff)
    np.testing.assert_allclose(top, y_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bottom_diff, dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(params[0].diff, dw + 0.5, rtol=1e-4, atol=1e-3)
    if bias:
        np.testing.assert_allclose(params[1].diff, db + 0.5, rtol=1e-4, atol=1e-3)


def test_convolution_follows_a_change_of_batch_size(tmp_path):
    """oneDNN's primitives are made for one shape: a reshaped net must get new ones."""
    rng = np.random.default_rng(6)
    net = one_layer_net(tmp_path, (2, 3, 8, 8), lambda b: L.Convolution(
        b, num_output=4, kernel_size=3, pad=1), in_place=False)
    w = rng.standard_normal(net.params["out"][0].data.shape).astype(np.float32)
    net.params["out"][0].data[...] = w
    for batch in (2, 5, 1):
        x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
        net.blobs["data"].reshape(*x.shape)
        net.blobs["data"].data[...] = x
        net.forward()
        y_ref, _ = reference_convolution(x, w, net.params["out"][1].data, 1, 1, 1, 1)
        np.testing.assert_allclose(net.blobs["out"].data, y_ref, rtol=1e-4, atol=1e-4)


# One 3x3 stride-1 convolution at batch 16, forward and backward, in ONEDNN_VERBOSE's child
# process; its inputs, weights and results go to the .npz named by argv[2].
ONEDNN_PASSES = """
import sys
import numpy as np
import caffe
from caffe import layers as L
spec = caffe.NetSpec()
spec.data = L.Input(shape=dict(dim=[16, 16, 9, 11]))
spec.out = L.Convolution(spec.data, num_output=32, kernel_size=3, pad=1)
proto = spec.to_proto()
proto.force_backward = True
open(sys.argv[1], "w").write(str(proto))
net = caffe.Net(sys.argv[1], caffe.TRAIN)
rng = np.random.default_rng(11)
x = rng.standard_normal((16, 16, 9, 11)).astype(np.float32)
w = (rng.standard_normal((32, 16, 3, 3)) * 0.2).astype(np.float32)
b = rng.standard_normal(32).astype(np.float32)
top_diff = rng.standard_normal((16, 32, 9, 11)).astype(np.float32)
net.blobs["data"].data[...] = x
net.params["out"][0].data[...] = w
net.params["out"][1].data[...] = b
net.forward()
net.blobs["out"].diff[...] = top_diff
net.backward()
np.savez(sys.argv[2], x=x, w=w, b=b, top_diff=top_diff, top=net.blobs["out"].data,
         bottom_diff=net.blobs["data"].diff, w_diff=net.params["out"][0].diff,
         b_diff=net.params["out"][1].diff)
"""


def onednn_convolution(tmp_path):
    """({propagation kind: oneDNN implementation}, the child's arrays) of one run of
    ONEDNN_PASSES, from oneDNN's verbose log (set for that child only). One thread, so that
    oneDNN's choice does not vary with the cores of the machine (it still varies with the
    processor: its ISA and caches)."""
    env = dict(os.environ, ONEDNN_VERBOSE="1", GLOG_minloglevel="2", OMP_NUM_THREADS="1")
    arrays = tmp_path / "passes.npz"
    out = subprocess.run([sys.executable, "-c", ONEDNN_PASSES, str(tmp_path / "net.prototxt"),
                          str(arrays)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    found = {}
    for line in out.stdout.splitlines():
        fields = line.split(",")
        # onednn_verbose,exec,cpu,convolution,<implementation>,<propagation>,...
        if len(fields) > 5 and fields[1] == "exec" and fields[3] == "convolution":
            found[fields[5]] = fields[4]
    return found, dict(np.load(arrays))


def test_convolution_is_right_on_whatever_algorithm_onednn_chooses(tmp_path, report_choice,
                                                                     processor_kind):
    """Patch 11 lets oneDNN choose each pass's algorithm for a 3x3 stride-1 convolution:
    Winograd or direct, by its own rules over the processor's ISA and caches (at batch 16 it
    took Winograd on an Intel Xeon with AVX-512, direct on an AMD EPYC Zen 4 with AVX-512).
    Whatever it took, all three passes run through oneDNN and give the reference's results;
    the algorithm is reported. Run as another kind of processor (tests/processor_kinds.py),
    no pass may use instructions above the kind's limit."""
    needs_patch("11-cpu-onednn-winograd.patch", "oneDNN's direct convolutions only")
    passes, arrays = onednn_convolution(tmp_path)
    assert set(passes) == {"forward_training", "backward_data", "backward_weights"}, passes
    report_choice(", ".join(f"{kind} {passes[kind]}" for kind in sorted(passes)))
    if processor_kind is not None:
        for kind, implementation in passes.items():
            assert not any(isa in implementation for isa in processor_kind.above_limit), \
                (kind, implementation, processor_kind.onednn_isa)
    y_ref, backward = reference_convolution(arrays["x"], arrays["w"], arrays["b"], 1, 1, 1, 1)
    dx, dw, db = backward(arrays["top_diff"])
    np.testing.assert_allclose(arrays["top"], y_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(arrays["bottom_diff"], dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(arrays["w_diff"], dw, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(arrays["b_diff"], db, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape,outputs,transpose", [((32, 64), 48, False),
                                                     ((3, 5, 2, 2), 7, False),
                                                     ((1, 30), 9, True)])
def test_inner_product_forward_and_gradients(tmp_path, shape, outputs, transpose):
    """Every float GEMM goes through oneDNN's sgemm in the optimised build (patch 07)."""
    rng = np.random.default_rng(7)
    net = one_layer_net(tmp_path, shape, lambda b: L.InnerProduct(
        b, num_output=outputs, transpose=transpose), in_place=False)
    x = rng.standard_normal(shape).astype(np.float32)
    params = net.params["out"]
    w = rng.standard_normal(params[0].data.shape).astype(np.float32)
    params[0].data[...] = w
    params[1].data[...] = rng.standard_normal(outputs)
    for blob in params:
        blob.diff[...] = 0.25
    flat = x.reshape(shape[0], -1).astype(np.float64)
    matrix = w.T if transpose else w                      # (outputs, inputs)
    y = flat @ matrix.T + params[1].data
    top_diff = rng.standard_normal(y.shape).astype(np.float32)
    top, bottom_diff = forward_backward(net, x, top_diff, in_place=False)
    np.testing.assert_allclose(top, y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bottom_diff.reshape(shape[0], -1), top_diff @ matrix,
                               rtol=1e-4, atol=1e-4)
    dw = top_diff.T.astype(np.float64) @ flat
    np.testing.assert_allclose(params[0].diff, (dw.T if transpose else dw) + 0.25,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(params[1].diff, top_diff.sum(axis=0) + 0.25, rtol=1e-4,
                               atol=1e-4)


def relative_errors(got, want):
    """{name: benchmarks/gpu_check.py's relative error} over two dicts with the same keys."""
    assert got.keys() == want.keys()
    return {name: relative_error(got[name], want[name]) for name in want}


def within_tolerance(got, want):
    """Assert each array of `got` lies within AGREEMENT_TOLERANCE of `want` (relative to the
    array's largest value: benchmarks/gpu_check.py's relative_error), the rule `make gpu-check`
    holds the GPU to where no decision flips."""
    for name, error in relative_errors(got, want).items():
        assert error <= AGREEMENT_TOLERANCE, f"{name}: relative difference {error:.2e}"


def stepped_pass(net, inputs, convolution_outputs=None):
    """A forward pass layer by layer, then backward: ({convolution layer: its output}, blobs,
    parameter gradients) as benchmarks/gpu_check.forward_backward gives them. With
    `convolution_outputs` ({layer: array}), each convolution's output is replaced by the one
    given before the layers after it run (its own is still returned)."""
    for name, value in inputs.items():
        net.blobs[name].data[...] = value
    net.clear_param_diffs()
    own = {}
    for index, name in enumerate(net._layer_names):
        net._forward(index, index)
        if net.layers[index].type == "Convolution":
            top = net.blobs[net.top_names[name][0]]
            own[name] = top.data.copy()
            if convolution_outputs is not None:
                top.data[...] = convolution_outputs[name]
    net.backward()
    blobs = {name: blob.data.copy() for name, blob in net.blobs.items()}
    gradients = {f"{name}/{k}": blob.diff.copy() for name, blobs_ in net.params.items()
                 for k, blob in enumerate(blobs_)}
    return own, blobs, gradients


@pytest.mark.parametrize("variant,batch", [("full", 4), ("baseline", 4), ("full", 16)])
def test_paper_net_same_outputs_and_gradients_with_onednn_and_im2col(tmp_path, variant,
                                                                     batch, report_choice):
    """The whole training net (BatchNorm in batch mode, the Python loss layers) with its
    convolutions through oneDNN and through Caffe's im2col + GEMM, on the same weights and
    batch: every blob, and every parameter gradient, agrees within float tolerance. At batch
    16 oneDNN may run conv3-conv5 by Winograd (patch 11, where its rules favour it).

    The forward pass is continuous, so the two engines' blobs are compared as each runs on
    its own. The backward pass is not: where a ReLU's input or two elements of a max-pooling
    window lie within rounding of a tie, the engines' rounding flips the decision (at batch 16
    one to seven of the net's 1.9 M decisions, on every seed tried), and one flipped ReLU
    moves every gradient below it by about 0.5 %. So for the gradients the oneDNN net runs
    forward with each convolution's output replaced by im2col's once it has been checked
    against it: both nets then take the same decisions, and their backward passes, oneDNN's
    three convolution passes among them, compare within float tolerance (1e-3 of each
    array's largest value; seen: 6e-5 at most)."""
    from config import PAPER
    from prototxt.pose_net import make_net
    cfg = PAPER.replace(dropout_ratio=0.0, batch_size=batch)   # no random masks to match
    net_param = make_net(cfg, variant, "train", data="input").to_proto()
    paths = {}
    for engine in ("DEFAULT", "CAFFE"):
        paths[engine] = tmp_path / f"{engine}.prototxt"
        paths[engine].write_text(str(with_convolution_engine(net_param, engine)))
    caffe.set_random_seed(1)
    weights = tmp_path / "weights.caffemodel"
    caffe.Net(str(paths["CAFFE"]), caffe.TRAIN).save(str(weights))
    rng = np.random.default_rng(8)
    size, joints = cfg.input_size, cfg.num_joints
    inputs = {"data": rng.normal(0, 50, (batch, 3, size, size)),
              "joints_2D": rng.uniform(0, size, (batch, joints, 2)),
              "joints_3D": rng.normal(0, 300, (batch, joints, 3))}
    nets = {engine: caffe.Net(str(path), caffe.TRAIN, weights=str(weights))
            for engine, path in paths.items()}
    im2col_convolutions, im2col_blobs, im2col_gradients = stepped_pass(nets["CAFFE"], inputs)
    _, onednn_blobs, _ = stepped_pass(nets["DEFAULT"], inputs)
    within_tolerance(onednn_blobs, im2col_blobs)
    flipped = differing_decisions(net_param, onednn_blobs, im2col_blobs)
    report_choice(f"decisions the engines' rounding flipped: {flipped or 'none'}")
    onednn_convolutions, _, onednn_gradients = stepped_pass(nets["DEFAULT"], inputs,
                                                            im2col_convolutions)
    within_tolerance(onednn_convolutions, im2col_convolutions)
    within_tolerance(onednn_gradients, im2col_gradients)


def sgd_solver(tmp_path, regularization, iter_size):
    """An SGD solver (momentum 0.9, weight decay 0.01) over a net of two inner products: "big"
    (60,000 weights, so that patch 12 splits it over its threads; lr_mult 1 and 0.5, decay_mult
    1 and 0) and "small" (lr_mult 2, decay_mult 3)."""
    spec = caffe.NetSpec()
    spec.data = L.Input(shape=dict(dim=[2, 300]))
    spec.big = L.InnerProduct(spec.data, num_output=200, param=[
        dict(lr_mult=1, decay_mult=1), dict(lr_mult=0.5, decay_mult=0)])
    spec.small = L.InnerProduct(spec.big, num_output=3,
                                param=[dict(lr_mult=2, decay_mult=3)] * 2)
    (tmp_path / "net.prototxt").write_text(str(spec.to_proto()))
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(f'train_net: "{tmp_path / "net.prototxt"}"\nbase_lr: 0.1\n'
                           f'lr_policy: "fixed"\nmomentum: 0.9\nweight_decay: 0.01\n'
                           f'regularization_type: "{regularization}"\niter_size: {iter_size}\n'
                           f'max_iter: 10\ndisplay: 0\n')
    return caffe.SGDSolver(str(solver_path))


@pytest.mark.parametrize("regularization, iter_size", [("L2", 1), ("L1", 1), ("L2", 2)])
def test_sgd_update_follows_its_formula(tmp_path, regularization, iter_size):
    """Caffe's SGD step (patch 12 fuses it on the CPU for L2 and one iteration per step; the
    others take BVLC's separate steps): per parameter, g = diff / iter_size + decay x
    decay_mult x (data for L2, sign(data) for L1), h = lr x lr_mult x g + 0.9 h, data -= h,
    and the diff holds h afterwards; twice, so that the momentum counts."""
    if not hasattr(caffe.SGDSolver, "apply_update"):
        pytest.skip("this pycaffe has no SGDSolver.apply_update (the PyPI fork)")
    solver = sgd_solver(tmp_path, regularization, iter_size)
    rng = np.random.default_rng(12)
    multipliers = {("big", 0): (1, 1), ("big", 1): (0.5, 0), ("small", 0): (2, 3),
                   ("small", 1): (2, 3)}
    history = {key: 0.0 for key in multipliers}
    for _ in range(2):
        expected = {}
        for (layer, k), (lr_mult, decay_mult) in multipliers.items():
            blob = solver.net.params[layer][k]
            blob.data[...] = rng.standard_normal(blob.data.shape).astype(np.float32)
            blob.diff[...] = rng.standard_normal(blob.data.shape).astype(np.float32)
            data, diff = blob.data.astype(np.float64), blob.diff.astype(np.float64)
            decay = data if regularization == "L2" else np.sign(data)
            gradient = diff / iter_size + 0.01 * decay_mult * decay
            history[layer, k] = 0.1 * lr_mult * gradient + 0.9 * history[layer, k]
            expected[layer, k] = data - history[layer, k]
        solver.apply_update()
        for key in multipliers:
            blob = solver.net.params[key[0]][key[1]]
            np.testing.assert_allclose(blob.data, expected[key], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(blob.diff, history[key], rtol=1e-5, atol=1e-6)
            history[key] = blob.diff.astype(np.float64)   # the solver's own, for the next step
