"""The OpenBLAS that Caffe links, on the best kernel it has for this processor (used by
caffe_setup.py; standard library only, the checks run in the venv's Python with numpy).

OpenBLAS chooses its kernels once, when it is loaded, from its own CPU detection or from
OPENBLAS_CORETYPE. Debian 12's OpenBLAS 0.3.21 does not know some processors newer than itself
and falls back to a generic SSE3 kernel ("Prescott") on them, about 4x slower on a large sgemm
than the AVX-512 kernel it ships. So setup probes it:
  1. what OpenBLAS picks by itself (every OPENBLAS_* variable of this shell removed);
  2. where that is a generic fallback, the cores this processor's flags can run, most specific
     first, each loaded in its own process and checked against numpy (sgemm, dgemm, sgemv on
     random matrices: a crash or a wrong result rejects the core);
and keeps the first that passes. Timings are measured and logged, never used to decide: the
choice is the same on every run of one processor, and it is part of the build's cache key.

Where OpenBLAS's own choice is not generic, it is kept and nothing is forced. Two cases seen:
  - AMD Zen 4 (family 25, AVX-512 F/BW/DQ/VL and BF16): OpenBLAS 0.3.21 picks its Cooperlake
    kernels. They are its SkylakeX (AVX-512) kernels plus BF16 ones, all instructions Zen 4
    executes: the right kernel, not a fallback.
  - AMD Zen 2 and 3 (AVX2 and FMA, no AVX-512): OpenBLAS picks "Zen", its Haswell kernels
    with Zen's blocking sizes.
A core that overrides OpenBLAS's choice is written with the flags its kernels execute
(blas_core.json beside pycaffe, see `runtime_choice`): pycaffe (patch 09) and the venv's
`caffe` wrapper force it only on a processor that has them, since OpenBLAS does not check a
forced core (without AVX-512 the SkylakeX kernels die of SIGILL). A build or venv used from
another machine (a cluster's shared home) then runs OpenBLAS's own choice there.
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
# OpenBLAS's cores for x86-64 processors with vector units wider than SSE, the most specific
# first, with the /proc/cpuinfo flags their kernels execute (OpenBLAS's names, which it
# compares without case)
CORE_NEEDS = {
    "SkylakeX": AVX512_CORE,
    "Zen": frozenset({"avx2", "fma"}),
    "Haswell": frozenset({"avx2", "fma"}),
    "SandyBridge": frozenset({"avx"}),
}


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
    """OpenBLAS core names worth trying on this processor, the most specific first: Zen's
    blocking only on AMD's processors, whose caches it was tuned for."""
    return [core for core, needs in CORE_NEEDS.items()
            if needs <= flags and (core != "Zen" or vendor == "AuthenticAMD")]


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


def choose_core(python, library=OPENBLAS, cpuinfo="/proc/cpuinfo", log=print, probe=probe):
    """{"library", "default", "core", "needs", "tried"}: the core Caffe's OpenBLAS should run
    with.

    "default" is what OpenBLAS picks by itself; "core" the one to run (the default where it is
    not a generic fallback or no better core passes the checks); "needs" the processor flags
    that a forced core executes, or None where "core" is OpenBLAS's own choice and nothing is
    forced; "tried" every probe."""
    own = probe(python, library)
    if own is None or not own["correct"]:
        raise RuntimeError(f"{library} fails its own check against numpy: {own}")
    result = {"library": str(library), "default": own["core"], "core": own["core"],
              "needs": None, "tried": {own["core"]: own}}
    if own["core"].lower() not in GENERIC_CORES:
        return result
    for core in better_cores(*cpu_features(cpuinfo)):
        found = probe(python, library, core)
        result["tried"][core] = found
        if found is None or not found["correct"] or found["core"].lower() != core.lower():
            log(f"blas: core {core} rejected ({'crashed' if found is None else found})")
            continue
        # the most specific core that works: the order decides, not a race between timings
        result["core"], result["needs"] = found["core"], sorted(CORE_NEEDS[core])
        log(f"blas: OpenBLAS falls back to its generic {own['core']} kernel on this "
            f"processor ({own['sgemm_gflops']:.0f} GFLOP/s on one core); using "
            f"{found['core']} ({found['sgemm_gflops']:.0f} GFLOP/s, checked against numpy)")
        break
    return result


def runtime_choice(choice):
    """The text of blas_core.json, which pycaffe (patch 09) reads before OpenBLAS loads: the
    core setup chose, OpenBLAS's own choice on the processor it ran on, and the flags a
    processor needs for the core to be forced there (null: nothing is forced)."""
    return json.dumps({key: choice[key] for key in ("core", "default", "needs")}) + "\n"


def forced_core(runtime, flags):
    """The OPENBLAS_CORETYPE to set on a processor with `flags`, or None, for a runtime_choice
    dict: what patch 09 and the `caffe` wrapper compute (they cannot import this module)."""
    needs = runtime.get("needs")
    return runtime["core"] if needs and set(needs) <= set(flags) else None


def wrapper_lines(runtime):
    """Lines of sh for the venv's `caffe` wrapper that export OPENBLAS_CORETYPE as
    forced_core does, reading the processor's flags where the tool runs ("" if none)."""
    if not runtime or not runtime.get("needs"):
        return ""
    return ("# OpenBLAS's core as setup chose it (setup/blas_kernel.py), where this processor "
            "has the flags it needs\n"
            "cpu_flags=\" $(sed -n 's/^flags[[:space:]]*: //p' /proc/cpuinfo | head -n 1) \"\n"
            f"core={runtime['core']}\n"
            f"for flag in {' '.join(runtime['needs'])}; do\n"
            "  case \"$cpu_flags\" in *\" $flag \"*) ;; *) core= ;; esac\n"
            "done\n"
            "if [ -n \"$core\" ]; then OPENBLAS_CORETYPE=$core; export OPENBLAS_CORETYPE; fi\n")
