"""The OpenBLAS that Caffe links, on the best kernel it has for this processor (used by
caffe_setup.py; standard library only, the checks run in the venv's Python with numpy).

OpenBLAS chooses its kernels once, when it is loaded, from its own CPU detection or from
OPENBLAS_CORETYPE. Debian 12's OpenBLAS 0.3.21 does not know processors newer than itself and
falls back to a generic SSE3 kernel ("Prescott") on them, about 4x slower on a large sgemm
than the AVX-512 kernel it ships. So setup probes it:
  1. what OpenBLAS picks by itself (every OPENBLAS_* variable of this shell removed);
  2. where that is a generic fallback and the processor has AVX-512, AVX2 or is an AMD Zen,
     the better cores, most specific first, each loaded in its own process, checked against
     numpy (sgemm, dgemm, sgemv on random matrices: a crash or a wrong result rejects the
     core) and timed on a sgemm;
and keeps the first that is correct and clearly (1.2x) faster than the generic kernel: the
order, not a close race between timings, decides, so the choice is the same on every run. The choice is part of the build's cache key, written into
the build (pycaffe sets it before OpenBLAS loads) and into the venv's `caffe` wrapper.
"""
import json
import os
import subprocess
from pathlib import Path

# Debian's OpenBLAS built for OpenMP: Caffe's own loops and oneDNN use OpenMP's threads, and
# a BLAS on the same thread pool does not fight them for the two cores (the pthread build
# spins its own threads beside OpenMP's)
OPENBLAS = Path("/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0")
# OpenBLAS's names of its generic x86 cores (what it falls back to on a processor it does not
# know); anything else is a kernel written for a processor family
GENERIC_CORES = {"prescott", "katmai", "coppermine", "northwood", "banias", "core2",
                 "penryn", "dunnington", "atom", "generic", "nehalem"}
# how much faster than the generic kernel a core must be to be chosen (measured: 3-6x)
CLEARLY_FASTER = 1.2

PROBE = r"""
import ctypes, json, sys, time
import numpy as np
lib = ctypes.CDLL(sys.argv[1])
lib.openblas_get_corename.restype = ctypes.c_char_p
core = lib.openblas_get_corename().decode()
rng = np.random.default_rng(0)
ptr = lambda m: m.ctypes.data_as(ctypes.c_void_p)
def gemm(fn, ctype, a, b):
    c = np.zeros((a.shape[0], b.shape[1]), a.dtype)
    fn(101, 111, 111, a.shape[0], b.shape[1], a.shape[1], ctype(1.0), ptr(a), a.shape[1],
       ptr(b), b.shape[1], ctype(0.0), ptr(c), b.shape[1])
    return c
worst = 0.0
for m, n, k in ((1, 1, 1), (7, 33, 65), (129, 257, 100), (300, 31, 517)):
    for dtype, fn, ctype in ((np.float32, lib.cblas_sgemm, ctypes.c_float),
                             (np.float64, lib.cblas_dgemm, ctypes.c_double)):
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        err = np.abs(gemm(fn, ctype, a, b) - ref).max() / (np.abs(ref).max() + 1e-30)
        worst = max(worst, err / (1e-5 if dtype == np.float32 else 1e-12))
a = rng.standard_normal((257, 129)).astype(np.float32)
x = rng.standard_normal(129).astype(np.float32)
y = np.zeros(257, np.float32)
lib.cblas_sgemv(101, 111, 257, 129, ctypes.c_float(1.0), ptr(a), 129, ptr(x), 1,
                ctypes.c_float(0.0), ptr(y), 1)
ref = a.astype(np.float64) @ x
worst = max(worst, np.abs(y - ref).max() / np.abs(ref).max() / 1e-5)
size = int(sys.argv[2])
a = rng.standard_normal((size, size)).astype(np.float32)
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    gemm(lib.cblas_sgemm, ctypes.c_float, a, a)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"core": core, "correct": bool(worst < 1.0), "error_vs_tolerance": worst,
                  "sgemm_gflops": 2 * size ** 3 / best / 1e9}))
"""


# the AVX-512 subset that OpenBLAS's SkylakeX core and oneDNN's avx512_core kernels need
AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl"})


def cpu_features(cpuinfo="/proc/cpuinfo"):
    """(vendor, set of flags) of the first processor."""
    vendor, flags = "", set()
    for line in Path(cpuinfo).read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return vendor, flags


def better_cores(vendor, flags):
    """OpenBLAS core names worth trying on this processor, the most specific first."""
    cores = []
    if AVX512_CORE <= flags:
        cores.append("SkylakeX")
    if vendor == "AuthenticAMD" and {"avx2", "fma"} <= flags:
        cores.append("Zen")
    if {"avx2", "fma"} <= flags:
        cores.append("Haswell")
    if "avx" in flags:
        cores.append("SandyBridge")
    return cores


def probe(python, library, core=None, size=1024):
    """The probe's result for one core (None: OpenBLAS's own choice), or None when the
    library crashed or could not be loaded with it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    env["OPENBLAS_NUM_THREADS"] = "1"   # the rate per core: comparable between runs
    if core:
        env["OPENBLAS_CORETYPE"] = core
    try:
        out = subprocess.run([str(python), "-c", PROBE, str(library), str(size)], env=env,
                             capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def choose_core(python, library=OPENBLAS, cpuinfo="/proc/cpuinfo", log=print):
    """{"library", "default", "core", "tried"}: the core Caffe's OpenBLAS should run with.

    "default" is what OpenBLAS picks by itself; "core" the one to set (the default where it
    is not a generic fallback or no better core passes the checks); "tried" every probe."""
    own = probe(python, library)
    if own is None or not own["correct"]:
        raise RuntimeError(f"{library} fails its own check against numpy: {own}")
    result = {"library": str(library), "default": own["core"], "core": own["core"],
              "tried": {own["core"]: own}}
    if own["core"].lower() not in GENERIC_CORES:
        return result
    for core in better_cores(*cpu_features(cpuinfo)):
        found = probe(python, library, core)
        result["tried"][core] = found
        if found is None or not found["correct"] or found["core"].lower() != core.lower():
            log(f"blas: core {core} rejected ({'crashed' if found is None else found})")
            continue
        # the most specific core that works and clearly beats the generic one: a choice
        # that timing noise cannot flip between runs (it is part of the build's cache key)
        if found["sgemm_gflops"] > CLEARLY_FASTER * own["sgemm_gflops"]:
            result["core"] = found["core"]
            log(f"blas: OpenBLAS falls back to its generic {own['core']} kernel on this "
                f"processor ({own['sgemm_gflops']:.0f} GFLOP/s on one core); using "
                f"{found['core']} ({found['sgemm_gflops']:.0f} GFLOP/s, checked against numpy)")
            break
    return result
