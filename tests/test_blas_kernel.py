"""The OpenBLAS that Caffe runs with is on a kernel made for this processor, not a generic
fallback (setup/blas_kernel.py chooses it, patch 09 and the venv's wrapper set it), and gives
numpy's results; and the choice's logic on described processors."""
import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import caffe

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))
import blas_kernel  # noqa: E402
from benchmarks.speed import caffe_library  # noqa: E402

CORE_FILE = Path(caffe.__file__).parent / "blas_core.txt"


def write_cpuinfo(tmp_path, vendor, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: {' '.join(flags)}\n"
                    f"\nprocessor\t: 1\nvendor_id\t: {vendor}\nflags\t\t: fpu\n")
    return path


@pytest.fixture(scope="module")
def runtime_blas():
    if not CORE_FILE.exists():
        pytest.skip("this Caffe build sets no OpenBLAS core (the PyPI fork, or a build "
                    "without the speed changes)")
    lib = ctypes.CDLL(caffe_library("libopenblas"))
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib


def test_pycaffe_runs_openblas_on_the_core_setup_chose(runtime_blas):
    core = runtime_blas.openblas_get_corename().decode()
    assert core.lower() == CORE_FILE.read_text().strip().lower()
    vendor, flags = blas_kernel.cpu_features()
    if blas_kernel.better_cores(vendor, flags):
        assert core.lower() not in blas_kernel.GENERIC_CORES, \
            f"OpenBLAS runs its generic {core} kernel on a processor with better ones"


def test_runtime_openblas_agrees_with_numpy(runtime_blas):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((97, 131)).astype(np.float32)
    b = rng.standard_normal((131, 65)).astype(np.float32)
    c = np.zeros((97, 65), np.float32)
    ptr = lambda m: m.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    runtime_blas.cblas_sgemm(101, 111, 111, 97, 65, 131, ctypes.c_float(1.0), ptr(a), 131,
                             ptr(b), 65, ctypes.c_float(0.0), ptr(c), 65)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_importing_pycaffe_leaves_the_environment_as_it_was():
    """The core is set for OpenBLAS's load only: child processes see the shell's setting."""
    if not CORE_FILE.exists():
        pytest.skip("this Caffe build sets no OpenBLAS core")
    code = ("import ctypes, os\n"
            "import cv2  # its wheel maps an OpenBLAS of its own, before Caffe's\n"
            "import caffe\n"
            "from benchmarks.speed import caffe_library\n"
            "lib = ctypes.CDLL(caffe_library('libopenblas'))\n"
            "lib.openblas_get_corename.restype = ctypes.c_char_p\n"
            "print(os.environ.get('OPENBLAS_CORETYPE'), lib.openblas_get_corename().decode())")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == ["None", CORE_FILE.read_text().strip()]


def test_the_caffe_tool_gets_the_same_core():
    """The venv's `caffe` wrapper exports the core that pycaffe sets."""
    if not CORE_FILE.exists():
        pytest.skip("this Caffe build sets no OpenBLAS core")
    wrapper = Path(sys.prefix) / "bin" / "caffe"
    script = wrapper.read_text()
    assert f"OPENBLAS_CORETYPE={CORE_FILE.read_text().strip()};" in script
    # the wrapper still starts the tool
    out = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "caffe version" in (out.stdout + out.stderr).lower()


@pytest.mark.parametrize("vendor,flags,expected", [
    ("GenuineIntel", ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"],
     ["SkylakeX", "Haswell", "SandyBridge"]),
    ("AuthenticAMD", ["avx", "avx2", "fma"], ["Zen", "Haswell", "SandyBridge"]),
    ("GenuineIntel", ["avx", "avx2", "fma", "avx512f"], ["Haswell", "SandyBridge"]),
    ("GenuineIntel", ["sse2", "sse3"], []),
])
def test_better_cores_follow_the_processor_flags(tmp_path, vendor, flags, expected):
    path = write_cpuinfo(tmp_path, vendor, flags)
    assert blas_kernel.better_cores(*blas_kernel.cpu_features(path)) == expected


def test_choice_on_this_machine_is_the_first_better_core_that_passed_its_checks():
    """The real probe: each tried core is loaded in its own process and checked; the
    choice is the first of the processor's better cores that passed and beat the generic
    kernel clearly (rates from this one run), so noise cannot flip it between runs."""
    result = blas_kernel.choose_core(Path(sys.executable), log=lambda msg: None)
    default = result["tried"][result["default"]]
    assert default["correct"]
    vendor, flags = blas_kernel.cpu_features()
    if result["default"].lower() not in blas_kernel.GENERIC_CORES:
        assert result["core"] == result["default"]
        return
    passed = [core for core in blas_kernel.better_cores(vendor, flags)
              if result["tried"].get(core) and result["tried"][core]["correct"]
              and result["tried"][core]["sgemm_gflops"]
              > blas_kernel.CLEARLY_FASTER * default["sgemm_gflops"]]
    expected = result["tried"][passed[0]]["core"] if passed else result["default"]
    assert result["core"] == expected
    if blas_kernel.better_cores(vendor, flags):
        assert result["core"].lower() not in blas_kernel.GENERIC_CORES


def test_a_library_that_does_not_load_is_a_clear_error(tmp_path):
    fake = tmp_path / "libopenblas.so.0"
    fake.write_bytes(b"not a library")
    with pytest.raises(RuntimeError, match="fails its own check"):
        blas_kernel.choose_core(Path(sys.executable), library=fake, log=lambda msg: None)
