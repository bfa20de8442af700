"""Where Caffe computes: the CPU, one GPU or several; checked before Caffe is asked.

    gpus = parse_gpus("0,1")      # (0, 1); "" or None: () = the CPU
    check_gpus(gpus)              # DeviceError saying what is wrong and what to do
    use_device(0)                 # GPU 0 (None: the CPU) for the nets made after this call

Caffe itself aborts the process (a glog CHECK, no Python exception) on a GPU id it cannot
use, and a CPU-only build cannot use any: these checks come first. A GPU build (make setup
CAFFE_DEVICE=gpu) runs on the CPU too, so every tool works with either build; only --gpus
needs the GPU build and a visible device. Nets made in GPU mode use cuDNN's engines, nets
made in CPU mode Caffe's own (setup/patches/debian-cuda/04-*).
"""
import json
from pathlib import Path

import caffe


class DeviceError(ValueError):
    """A device request that cannot be met, with the reason and the fix."""


def parse_gpus(text):
    """"0" -> (0,), "0,1" -> (0, 1), "" or None -> () (the CPU); distinct non-negative ids."""
    if text is None or not str(text).strip():
        return ()
    try:
        gpus = tuple(int(part) for part in str(text).split(","))
    except ValueError:
        raise DeviceError(f"--gpus {text!r}: give GPU ids separated by commas, e.g. 0 or "
                          "0,1,2,3") from None
    if any(gpu < 0 for gpu in gpus) or len(set(gpus)) != len(gpus):
        raise DeviceError(f"--gpus {text!r}: GPU ids must be distinct and non-negative")
    return gpus


def build_info():
    """BUILD-INFO.json of the Caffe build that pycaffe was imported from (make setup)."""
    path = Path(caffe.__file__).resolve().parent.parent.parent / "BUILD-INFO.json"
    return json.loads(path.read_text()) if path.exists() else {}


def is_gpu_build():
    """True for a build with CUDA (make setup CAFFE_DEVICE=gpu)."""
    return build_info().get("device") == "gpu" and hasattr(caffe, "cuda_device_count")


def device_count():
    """Number of CUDA devices this process sees (0 on a CPU-only build or without a driver)."""
    return caffe.cuda_device_count() if is_gpu_build() else 0


def check_gpus(gpus):
    """Raise DeviceError unless every GPU in gpus can be used by this build and machine."""
    if not gpus:
        return
    listed = describe(gpus)
    if not is_gpu_build():
        raise DeviceError(
            f"{listed}: this venv's Caffe is a CPU-only build "
            f"({Path(caffe.__file__).resolve().parent.parent.parent}).\n"
            "  fix: build the GPU one with `make setup CAFFE_DEVICE=gpu` (on a machine without a "
            "GPU add CUDA_ARCH=90 or your GPU's), or leave out --gpus to use the CPU")
    count = caffe.cuda_device_count()
    if count == 0:
        raise DeviceError(f"{listed}: no CUDA device is visible here (no GPU, or no driver: "
                          "`nvidia-smi` tells which).\n  fix: run on the CPU (without --gpus / "
                          "--gpu)")
    missing = [gpu for gpu in gpus if gpu >= count]
    if missing:
        raise DeviceError(f"{listed}: there is no GPU {missing[0]}; CUDA sees {count} "
                          f"device(s), ids 0 to {count - 1}")
    if len(gpus) > 1 and not caffe.has_nccl():
        raise DeviceError(f"{listed}: this Caffe build has no NCCL, which training on "
                          "several GPUs needs; rebuild with `make setup CAFFE_DEVICE=gpu`")


def use_device(gpu=None):
    """Compute on GPU `gpu` (checked first), or on the CPU when gpu is None."""
    if gpu is None:
        caffe.set_mode_cpu()
        return
    check_gpus((gpu,))
    caffe.set_device(gpu)
    caffe.set_mode_gpu()


def describe(gpus):
    """"the CPU", "GPU 0" or "GPUs 0, 1" for messages."""
    if not gpus:
        return "the CPU"
    return f"GPU{'s' if len(gpus) > 1 else ''} {', '.join(map(str, gpus))}"
