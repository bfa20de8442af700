"""The Python layers' arrays (layers/device_arrays.py): numpy in CPU mode, and the device path
checked without a GPU through a stand-in for CuPy: numpy arrays that, like CuPy's, refuse host
arrays in their operations and, unlike CuPy's, refuse to become host values, so a layer that
would copy to the host or wait for the GPU fails here. The layers' results through it are byte
for byte those of the numpy path, and no layer reads a blob's host memory on the way. With
CuPy and `pytest --caffe-gpu N` on the GPU build the last tests run the layers on the device."""
import functools
import json
import sys
import types

import numpy as np
import pytest

import caffe
from config import PAPER
from layers import device_arrays
from layers.device_arrays import blob_array, blob_shape, mode_module, module_of, reused
from layers.loss_schedule import parse_schedule, schedule_arrays, weight_at, weights_at
from layers.pose_3d import (multi_root_average, multi_root_average_backward, normalize_pose,
                            root_targets)
from layers.soft_labels import soft_label_cross_entropy, soft_label_pairs, soft_labels
from tests.gradcheck import layer_net

ROOTS = list(PAPER.root_joints)


class HostCopyError(AssertionError):
    """The device path read a device array on the host or mixed a host array into one."""


def on_host(value):
    """value with every stand-in device array as a plain numpy array on the same memory."""
    if isinstance(value, DeviceLike):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(on_host(item) for item in value)
    if isinstance(value, dict):
        return {key: on_host(item) for key, item in value.items()}
    return value


def on_device(value):
    """value with every numpy array or scalar as a stand-in device array (CuPy's results are
    arrays, 0-d where numpy's are scalars)."""
    if isinstance(value, np.ndarray) and not isinstance(value, DeviceLike):
        return value.view(DeviceLike)
    if isinstance(value, np.generic):
        return np.asarray(value).view(DeviceLike)
    if isinstance(value, (list, tuple)):
        return type(value)(on_device(item) for item in value)
    return value


def refuse_host_arrays(*values):
    """HostCopyError where a plain numpy array is among the values (CuPy refuses them)."""
    for value in values:
        if isinstance(value, np.ndarray) and not isinstance(value, DeviceLike):
            raise HostCopyError(f"a host array {value.shape} mixed with device arrays")
        if isinstance(value, (list, tuple)):
            refuse_host_arrays(*value)
        if isinstance(value, dict):
            refuse_host_arrays(*value.values())


class DeviceLike(np.ndarray):
    """A numpy array standing in for a CuPy array on the device."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        refuse_host_arrays(inputs, kwargs)
        result = getattr(ufunc, method)(*on_host(inputs), **on_host(kwargs))
        out = kwargs.get("out")
        if out is not None and len(out) == 1:
            return out[0]      # as numpy: the out array itself
        return on_device(result)

    def __array_function__(self, func, types, args, kwargs):
        refuse_host_arrays(args, kwargs)
        return on_device(func(*on_host(args), **on_host(kwargs)))

    def __setitem__(self, key, value):
        refuse_host_arrays(key, value)
        super().__setitem__(on_host(key), on_host(value))

    def host_value(self, *args, **kwargs):
        raise HostCopyError("a device array read on the host (CuPy waits for the GPU and copies)")

    __bool__ = __float__ = __int__ = __index__ = item = tolist = host_value


class DeviceLikeModule:
    """numpy's namespace with its functions' results as stand-in device arrays: CuPy's
    stand-in (its ufuncs are numpy's, which dispatch to DeviceLike)."""

    ndarray = DeviceLike

    def __init__(self, namespace=np):
        self.namespace = namespace

    def __getattr__(self, name):
        value = getattr(self.namespace, name)
        if isinstance(value, types.ModuleType):
            return DeviceLikeModule(value)
        if callable(value) and not isinstance(value, (type, np.ufunc)):
            @functools.wraps(value)
            def to_device(*args, **kwargs):
                return on_device(value(*args, **kwargs))
            return to_device
        return value


@pytest.fixture
def cpu_mode():
    """Caffe in CPU mode for the test (the numpy path, and the stand-in's), its mode after."""
    was_gpu = device_arrays.caffe_gpu_mode()
    caffe.set_mode_cpu()
    yield
    if was_gpu:
        caffe.set_mode_gpu()


@pytest.fixture
def fresh_device_module():
    """device_module() decided again in the test, and again after it."""
    device_arrays.device_module.cache_clear()
    yield
    device_arrays.device_module.cache_clear()


def use_stand_in(monkeypatch):
    """GPU mode with the stand-in for CuPy until the test ends; returns (module, host reads of
    blobs): the parts ("data", "diff") that code read through pycaffe's Blob.data and
    Blob.diff, which in GPU mode copy the blob to the host."""
    xp = DeviceLikeModule()
    reads = []
    host = {part: getattr(caffe._caffe.Blob, part) for part in ("data", "diff")}

    def watched(part):
        def read(blob):
            reads.append(part)
            return host[part].fget(blob)
        return property(read)

    for part in host:
        monkeypatch.setattr(caffe._caffe.Blob, part, watched(part))
    monkeypatch.setattr(device_arrays, "caffe_gpu_mode", lambda: True)
    monkeypatch.setattr(device_arrays, "device_module", lambda: xp)
    monkeypatch.setattr(device_arrays, "device_array",
                        lambda cupy, blob, part: host[part].fget(blob).view(DeviceLike))
    monkeypatch.setitem(sys.modules, "cupy", xp)
    return xp, reads


@pytest.fixture
def stand_in(monkeypatch, cpu_mode):
    """use_stand_in for the whole test."""
    return use_stand_in(monkeypatch)


# ---------------------------------------------------------------- the module choice


def test_caffe_gpu_mode_is_pycaffes_and_false_without_it(monkeypatch):
    monkeypatch.setattr(caffe, "is_gpu_mode", lambda: True, raising=False)
    assert device_arrays.caffe_gpu_mode() is True
    monkeypatch.setattr(caffe, "is_gpu_mode", lambda: False)
    assert device_arrays.caffe_gpu_mode() is False
    monkeypatch.delattr(caffe, "is_gpu_mode")
    assert device_arrays.caffe_gpu_mode() is False      # the CPU build: no getter


def test_cpu_mode_computes_with_numpy(monkeypatch):
    monkeypatch.setattr(device_arrays, "caffe_gpu_mode", lambda: False)
    monkeypatch.setattr(device_arrays, "device_module", lambda: DeviceLikeModule())
    assert mode_module() is np


def test_without_cupy_gpu_mode_computes_with_numpy(monkeypatch, fresh_device_module):
    monkeypatch.setattr(caffe._caffe.Blob, "_gpu_data_ptr", property(lambda blob: 0),
                        raising=False)
    monkeypatch.setitem(sys.modules, "cupy", None)     # import cupy: ImportError
    monkeypatch.setattr(device_arrays, "caffe_gpu_mode", lambda: True)
    assert device_arrays.device_module() is None
    assert mode_module() is np


def test_cupy_without_a_gpu_or_a_cuda_build_is_not_used(monkeypatch, fresh_device_module):
    class CUDARuntimeError(RuntimeError):
        pass

    def no_driver():
        raise CUDARuntimeError("cudaErrorInsufficientDriver")

    runtime = types.SimpleNamespace(getDeviceCount=no_driver, CUDARuntimeError=CUDARuntimeError)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(
        cuda=types.SimpleNamespace(runtime=runtime)))
    monkeypatch.setattr(caffe._caffe.Blob, "_gpu_data_ptr", property(lambda blob: 0),
                        raising=False)
    assert device_arrays.device_module() is None
    device_arrays.device_module.cache_clear()
    runtime.getDeviceCount = lambda: 0
    assert device_arrays.device_module() is None
    device_arrays.device_module.cache_clear()
    runtime.getDeviceCount = lambda: 1
    assert device_arrays.device_module() is sys.modules["cupy"]
    device_arrays.device_module.cache_clear()
    monkeypatch.delattr(caffe._caffe.Blob, "_gpu_data_ptr")   # a CPU-only build
    assert device_arrays.device_module() is None


def test_module_of_follows_the_arrays(stand_in):
    xp, _ = stand_in
    assert module_of(np.zeros(2), [1.0, 2.0], 3.0) is np
    assert module_of(np.zeros(2), xp.zeros(2)) is xp


def test_module_of_does_not_import_cupy(monkeypatch):
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    assert module_of(np.zeros(2)) is np
    assert "cupy" not in sys.modules


# ---------------------------------------------------------------- the blobs as arrays


def input_net(shape):
    """A net whose one blob, "bottom0", has the shape; filled with 0, 1, 2, ..."""
    net = layer_net("tests.toy_layers", "Square", [shape])
    net.blobs["bottom0"].data[...] = np.arange(np.prod(shape)).reshape(shape)
    return net


def test_numpy_blob_arrays_are_the_blobs_memory():
    blob = input_net((2, 3)).blobs["bottom0"]
    data = blob_array(blob, "data", np)
    assert np.shares_memory(data, blob.data) and data.dtype == np.float32
    data[1, 2] = 7
    assert blob.data[1, 2] == 7
    blob_array(blob, "diff", np)[...] = 3
    assert (blob.diff == 3).all()


def test_blob_shape_is_the_datas_shape():
    blob = input_net((2, 1, 4)).blobs["bottom0"]
    assert blob_shape(blob) == blob.data.shape == (2, 1, 4)


def test_reused_keeps_a_buffer_of_the_module_shape_and_type(stand_in):
    xp, _ = stand_in
    buffer = np.empty((2, 3), dtype=np.float32)
    assert reused(buffer, (2, 3), np.float32, np) is buffer
    assert reused(buffer, (3, 2), np.float32, np).shape == (3, 2)
    assert reused(buffer, (2, 3), np.float64, np).dtype == np.float64
    assert isinstance(reused(buffer, (2, 3), np.float32, xp), DeviceLike)
    assert reused(None, (4,), np.float32, np).shape == (4,)


# ---------------------------------------------------------------- the stand-in itself


def test_the_stand_in_refuses_host_constants_and_host_reads(stand_in):
    xp, _ = stand_in
    device = xp.arange(3)
    with pytest.raises(HostCopyError, match="host array"):
        device + np.arange(3)
    with pytest.raises(HostCopyError, match="host array"):
        xp.concatenate([device, np.arange(3)])
    with pytest.raises(HostCopyError, match="host array"):
        device[...] = np.arange(3)
    with pytest.raises(HostCopyError, match="read on the host"):
        bool(xp.any(device == 0))
    with pytest.raises(HostCopyError, match="read on the host"):
        float(xp.sum(device))
    assert isinstance(device + 1, DeviceLike) and isinstance(xp.vdot(device, device), DeviceLike)


# ---------------------------------------------------------------- the math through xp


def same_bytes(host, device):
    """True when device (stand-in) arrays hold exactly the host arrays' values and types."""
    host, device = np.asarray(host), on_host(device)
    return host.dtype == device.dtype and host.shape == device.shape and \
        host.tobytes() == device.tobytes()


def test_soft_label_functions_through_the_stand_in_match_numpy(stand_in):
    xp, _ = stand_in
    rng = np.random.default_rng(0)
    joints = np.concatenate([rng.uniform(-5, 230, size=(4, 15, 2)),
                             np.full((4, 2, 2), 225 / 32)], axis=1)
    scores = rng.normal(0, 5, size=(4, 17, 256)).astype(np.float32)
    classes, weights = soft_label_pairs(joints, 16, 225)
    device_classes, device_weights = soft_label_pairs(on_device(joints), 16, 225)
    assert same_bytes(classes, device_classes) and same_bytes(weights, device_weights)
    assert same_bytes(soft_labels(joints, 16, 225), soft_labels(on_device(joints), 16, 225))
    loss, gradient = soft_label_cross_entropy(scores, classes, weights)
    device_loss, device_gradient = soft_label_cross_entropy(
        on_device(scores), device_classes, device_weights, out=xp.empty(scores.shape,
                                                                          dtype=np.float32))
    assert same_bytes(loss, device_loss) and same_bytes(gradient, device_gradient)


def test_pose_functions_through_the_stand_in_match_numpy(stand_in):
    rng = np.random.default_rng(1)
    poses = rng.normal(0, 300, size=(3, 17, 3)).astype(np.float32)
    assert same_bytes(normalize_pose(poses), normalize_pose(on_device(poses)))
    for host, device in zip(root_targets(poses, ROOTS), root_targets(on_device(poses), ROOTS)):
        assert same_bytes(host, device)
    heads = [rng.standard_normal((3, 48)).astype(np.float32) for _ in ROOTS]
    assert same_bytes(multi_root_average(heads, ROOTS, 17),
                      multi_root_average(on_device(heads), ROOTS, 17))
    upstream = rng.standard_normal((3, 17, 3)).astype(np.float32)
    for host, device in zip(multi_root_average_backward(upstream, ROOTS, 17),
                            multi_root_average_backward(on_device(upstream), ROOTS, 17)):
        assert same_bytes(host, device)


def test_scheduled_weights_through_either_module_are_weight_at(stand_in):
    xp, _ = stand_in
    schedule = parse_schedule(json.dumps({"schedule": [[0, 1.0], [2, 0.5], [4, 0.1]]}))
    for module in (np, xp):
        firsts, weights = schedule_arrays(schedule, module)
        for iteration in range(7):
            count = module.asarray([iteration], dtype=np.float32)
            weight = weights_at(firsts, weights, count)
            assert same_bytes(np.float32([weight_at(schedule, iteration)]), weight)


# ---------------------------------------------------------------- the layers on the stand-in

LAYERS = {
    "SoftLabelLoss": ("layers.soft_labels", [(4, 17, 256), (4, 17, 2)], 1,
                      {"grid_size": 16, "image_size": 225}),
    "RootTargets": ("layers.pose_3d", [(3, 17, 3)], 6, {"roots": ROOTS}),
    "MultiRootAverage": ("layers.pose_3d", [(3, 48)] * 6, 1,
                         {"roots": ROOTS, "num_joints": 17}),
    "ScheduledLossWeight": ("layers.loss_schedule", [(1,)], 2,
                            {"schedule": [[0, 0.1], [2, 0.01]]}),
}


def layer_inputs(layer, seed):
    """Bottom values for a LAYERS entry: scores, joints in and around a 225-pixel image, poses
    in mm, head outputs, a loss."""
    shapes = LAYERS[layer][1]
    rng = np.random.default_rng(seed)
    if layer == "SoftLabelLoss":
        return [rng.normal(0, 5, shapes[0]), rng.uniform(-10, 235, shapes[1])]
    scale = 300 if layer == "RootTargets" else 1
    return [scale * rng.standard_normal(shape) for shape in shapes]


def run_layer(layer, reads=None, steps=3):
    """Forward and backward `steps` times in a net of the layer, by Caffe's own passes
    (pycaffe's Net.forward reads the outputs on the host). Returns the tops, bottom diffs and
    parameter blobs after each step, and what `reads` (use_stand_in's) recorded during the
    passes."""
    module, shapes, n_tops, params = LAYERS[layer]
    net = layer_net(module, layer, shapes, json.dumps(params), n_tops)
    rng = np.random.default_rng(7)
    results, reads_in_passes = [], []
    for step in range(steps):
        for i, value in enumerate(layer_inputs(layer, step)):
            net.blobs[f"bottom{i}"].data[...] = value
        for i in range(n_tops):
            top = net.blobs[f"top{i}"]
            top.diff[...] = rng.standard_normal(top.diff.shape)
        if reads is not None:
            reads.clear()
        net._forward(0, len(net.layers) - 1)
        net._backward(len(net.layers) - 1, 0)
        reads_in_passes += reads or []
        results.append([net.blobs[f"top{i}"].data.copy() for i in range(n_tops)]
                       + [net.blobs[f"bottom{i}"].diff.copy() for i in range(len(shapes))]
                       + [blob.data.copy() for blob in net.layers[-1].blobs])
    return results, reads_in_passes


@pytest.mark.parametrize("layer", LAYERS)
def test_the_layers_through_the_stand_in_match_numpy_without_host_reads(layer, monkeypatch,
                                                                         cpu_mode):
    expected, _ = run_layer(layer)
    _, reads = use_stand_in(monkeypatch)
    results, reads_in_passes = run_layer(layer, reads)
    assert reads_in_passes == [], f"{layer} read blobs on the host"
    for step, (host_values, device_values) in enumerate(zip(expected, results)):
        assert len(host_values) == len(device_values)
        for host, device in zip(host_values, device_values):
            assert same_bytes(host, device), f"{layer}, step {step}"


# ---------------------------------------------------------------- on a GPU, with CuPy


def cupy_or_skip():
    """CuPy, when the tests run in GPU mode (--caffe-gpu) on a build and machine where the
    layers compute with it."""
    xp = mode_module()
    if xp is np:
        pytest.skip("the layers compute with numpy here (no --caffe-gpu, no is_gpu_mode in "
                    "this build, no CuPy, or no GPU)")
    return xp


def test_on_a_gpu_blob_arrays_are_the_blobs_device_memory():
    cupy = cupy_or_skip()
    blob = input_net((2, 3)).blobs["bottom0"]
    device = blob_array(blob, "data", cupy)
    assert isinstance(device, cupy.ndarray) and device.shape == (2, 3)
    assert (cupy.asnumpy(device) == np.arange(6).reshape(2, 3)).all()   # copied there once
    device *= 2
    assert (blob.data == 2 * np.arange(6).reshape(2, 3)).all()   # the device copy is current
    blob_array(blob, "diff", cupy)[...] = 5
    assert (blob.diff == 5).all()


@pytest.mark.parametrize("layer", LAYERS)
def test_on_a_gpu_the_layers_match_the_cpu(layer):
    cupy_or_skip()
    on_gpu, _ = run_layer(layer)
    caffe.set_mode_cpu()
    try:
        on_cpu, _ = run_layer(layer)
    finally:
        caffe.set_mode_gpu()
    for step, (gpu_values, cpu_values) in enumerate(zip(on_gpu, on_cpu)):
        for gpu, cpu in zip(gpu_values, cpu_values):
            np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{layer}, step {step}")
