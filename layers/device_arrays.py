"""The arrays of the Python layers: numpy on the host in CPU mode, CuPy on the device in GPU
mode, and Caffe's blobs as arrays of either without a copy.

    xp = mode_module()                          # numpy, or cupy while Caffe computes on a GPU
    scores = blob_array(bottom[0], "data", xp)  # the blob's memory as an xp array
    xp = module_of(scores)                      # in the math: the module of its arguments

In GPU mode Caffe runs a Python layer between its device kernels. A layer that reads
`blob.data` or `blob.diff` has Caffe copy the blob to the host, and the next kernel has it
copied back: every blob of every Python layer, twice a step. CuPy computes on the blobs' device
memory instead, through pycaffe's `Blob._gpu_data_ptr` and `_gpu_diff_ptr` (the mutable device
pointers, which also mark the device copy as the current one). Caffe's kernels run on CUDA's
legacy default stream, and so do CuPy's by default (its per-thread default stream, if chosen,
synchronizes with it): they stay in order without a synchronization.

The mode is Caffe's own, `caffe.is_gpu_mode()` (setup/patches/debian-cuda/10-*): Caffe keeps
it per thread, and it is set by pycaffe's set_mode_gpu as well as by `caffe train -gpu`, whose
embedded Python runs these layers too. A build without that function (the CPU build, or the
GPU build without the speed patches), a machine without CuPy, and CuPy without a usable GPU
all compute with numpy on the host, as the layers always did.
"""
import functools
import sys

import numpy

import caffe

# pycaffe's blobs are float (Dtype float in python/caffe/_caffe.cpp)
BLOB_DTYPE = numpy.float32


def caffe_gpu_mode():
    """True while this thread's Caffe computes on a GPU; False where pycaffe cannot say."""
    is_gpu_mode = getattr(caffe, "is_gpu_mode", None)
    return is_gpu_mode is not None and bool(is_gpu_mode())


@functools.cache
def device_module():
    """CuPy where it is installed, sees a GPU and the blobs have device pointers; else None.
    Decided once a process: the import takes a while, and none of it changes."""
    if not hasattr(caffe._caffe.Blob, "_gpu_data_ptr"):   # a build without CUDA
        return None
    try:
        import cupy
    except ImportError:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return None
    except cupy.cuda.runtime.CUDARuntimeError:   # no driver, or one too old for this CuPy
        return None
    return cupy


def mode_module():
    """The array module of Caffe's mode now: CuPy in GPU mode where it can, else numpy."""
    if caffe_gpu_mode():
        cupy = device_module()
        if cupy is not None:
            return cupy
    return numpy


def module_of(*arrays):
    """The module of the arrays: CuPy where one of them is a CuPy array, else numpy (also for
    lists and scalars). Without importing CuPy: not imported, it has made no arrays."""
    cupy = sys.modules.get("cupy")
    if cupy is not None and any(isinstance(array, cupy.ndarray) for array in arrays):
        return cupy
    return numpy


def blob_array(blob, part, xp):
    """The blob's "data" or "diff" as an array of module xp, sharing the blob's memory."""
    if xp is numpy:
        return getattr(blob, part)
    return device_array(xp, blob, part)


def device_array(cupy, blob, part):
    """A CuPy array on the device memory of the blob's "data" or "diff" (no copy); the device
    copy is the blob's current one from then on."""
    shape = blob_shape(blob)
    if blob.count == 0:   # no device memory to point at
        return cupy.empty(shape, dtype=BLOB_DTYPE)
    pointer = getattr(blob, f"_gpu_{part}_ptr")
    size = blob.count * numpy.dtype(BLOB_DTYPE).itemsize
    memory = cupy.cuda.UnownedMemory(pointer, size, blob)
    if memory.device_id != cupy.cuda.runtime.getDevice():
        # CuPy computes on its current device, which Caffe's set_device may not have set
        cupy.cuda.Device(memory.device_id).use()
    return cupy.ndarray(shape, dtype=BLOB_DTYPE, memptr=cupy.cuda.MemoryPointer(memory, 0))


def blob_shape(blob):
    """The blob's shape as a tuple, without its data: in GPU mode `blob.data.shape` would copy
    the blob to the host."""
    return tuple(blob.shape)


def reused(array, shape, dtype, xp):
    """`array` when it is an array of module xp of that shape and dtype, else a new empty one:
    buffers kept from batch to batch, in the module of the mode they are used in."""
    if isinstance(array, xp.ndarray) and array.shape == tuple(shape) and array.dtype == dtype:
        return array
    return xp.empty(shape, dtype=dtype)
