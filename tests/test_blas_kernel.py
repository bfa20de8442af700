"""The OpenBLAS that Caffe runs with is on the core setup chose (setup/blas_kernel.py; patch
09 and the venv's wrapper force it where it overrides OpenBLAS's own choice, only on a
processor with the flags it needs) and gives numpy's results; and the choice's logic on
described processors, with the probe's answers given (an Intel newer than OpenBLAS, AMD Zen 3
and Zen 4, cores that crash or load as another)."""
import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import caffe

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))
import blas_kernel  # noqa: E402
import caffe_setup  # noqa: E402
from benchmarks.speed import caffe_library  # noqa: E402

CHOICE_FILE = Path(caffe.__file__).parent / "blas_core.json"
INTEL_AVX512 = ["sse2", "sse4_1", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq",
                "avx512vl"]
ZEN3 = ["sse2", "sse4_1", "avx", "avx2", "fma"]
ZEN4 = ZEN3 + ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"]


def write_cpuinfo(tmp_path, vendor, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: {' '.join(flags)}\n"
                    f"\nprocessor\t: 1\nvendor_id\t: {vendor}\nflags\t\t: fpu\n")
    return path


@pytest.fixture(scope="module")
def choice():
    if not CHOICE_FILE.exists():
        pytest.skip("this Caffe build sets no OpenBLAS core (the PyPI fork, or a build "
                    "without the speed changes)")
    return json.loads(CHOICE_FILE.read_text())


@pytest.fixture(scope="module")
def runtime_blas(choice):
    lib = ctypes.CDLL(caffe_library("libopenblas"))
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib


def test_pycaffe_runs_openblas_on_the_core_setup_chose(choice, runtime_blas, processor_kind):
    """As another kind of processor (tests/processor_kinds.py) OpenBLAS runs that kind's core,
    loaded before pycaffe."""
    core = runtime_blas.openblas_get_corename().decode()
    expected = choice["core"] if processor_kind is None else processor_kind.openblas_core
    assert core.lower() == expected.lower()
    vendor, flags = blas_kernel.cpu_features()
    if processor_kind is None and blas_kernel.better_cores(vendor, flags):
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


# a child that imports pycaffe from sys.argv[1] (first on its path) and prints its
# OPENBLAS_CORETYPE afterwards and the core Caffe's OpenBLAS runs
CORE_OF_PYCAFFE = """
import ctypes, os, sys
sys.path.insert(0, sys.argv[1])
import cv2  # its wheel maps an OpenBLAS of its own, before Caffe's
import caffe
from benchmarks.speed import caffe_library
lib = ctypes.CDLL(caffe_library("libopenblas"))
lib.openblas_get_corename.restype = ctypes.c_char_p
print(caffe.__file__, os.environ.get("OPENBLAS_CORETYPE"), lib.openblas_get_corename().decode())
"""


def core_of_pycaffe(python_folder):
    """(pycaffe's file, OPENBLAS_CORETYPE after the import, OpenBLAS's core) in a child with
    no OPENBLAS_* variable, pycaffe imported from python_folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    out = subprocess.run([sys.executable, "-c", CORE_OF_PYCAFFE, str(python_folder)],
                         capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-800:]
    return out.stdout.split()


def test_importing_pycaffe_leaves_the_environment_as_it_was(choice):
    """The core is set for OpenBLAS's load only: child processes see the shell's setting."""
    folder = Path(caffe.__file__).parent.parent
    _, variable, core = core_of_pycaffe(folder)
    assert (variable, core.lower()) == ("None", choice["core"].lower())


@pytest.mark.parametrize("needs,forced", [(["sse2"], True), (["sse2", "no_such_flag"], False),
                                          (None, False)])
def test_pycaffe_forces_a_core_only_on_a_processor_with_its_flags(tmp_path, choice, needs,
                                                                   forced):
    """A copy of pycaffe whose blas_core.json names a core that is not OpenBLAS's own choice
    here: forced where this processor has every flag listed, else OpenBLAS chooses (as it
    would on another machine sharing the build)."""
    other = "Nehalem" if choice["default"].lower() != "nehalem" else "Haswell"
    copy = tmp_path / "python" / "caffe"
    shutil.copytree(Path(caffe.__file__).parent, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "test"))
    (copy / "blas_core.json").write_text(json.dumps(
        {"core": other, "default": choice["default"], "needs": needs}))
    loaded_from, variable, core = core_of_pycaffe(copy.parent)
    assert Path(loaded_from).parent == copy
    assert variable == "None"
    assert core.lower() == (other if forced else choice["default"]).lower()


def wrapper_core(tmp_path, runtime):
    """OPENBLAS_CORETYPE as the venv's `caffe` wrapper, written for `runtime`, hands it to the
    tool (a stand-in tool that prints it), with no OPENBLAS_* variable in the shell."""
    tool = tmp_path / "entry" / "bin" / "caffe"
    tool.parent.mkdir(parents=True)
    tool.write_text('#!/bin/sh\necho "${OPENBLAS_CORETYPE-unset}"\n')
    tool.chmod(0o755)
    wrapper = tmp_path / "caffe"
    wrapper.write_text(caffe_setup.WRAPPER.format(entry=tmp_path / "entry",
                                                  blas=blas_kernel.wrapper_lines(runtime)))
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    out = subprocess.run([str(wrapper)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("needs,expected", [(["sse2", "fpu"], "Haswell"),
                                            (["sse2", "no_such_flag"], "unset"),
                                            (None, "unset")])
def test_the_wrapper_forces_a_core_only_on_a_processor_with_its_flags(tmp_path, needs,
                                                                       expected):
    runtime = {"core": "Haswell", "default": "Prescott", "needs": needs}
    assert wrapper_core(tmp_path, runtime) == expected
    flags = blas_kernel.cpu_features()[1]
    assert (expected != "unset") == (blas_kernel.forced_core(runtime, flags) is not None)


def test_the_caffe_tool_runs_the_core_pycaffe_runs(choice):
    """The venv's `caffe` wrapper starts the tool on the core setup chose (OpenBLAS says which
    when OPENBLAS_VERBOSE=2)."""
    wrapper = Path(sys.prefix) / "bin" / "caffe"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    out = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True,
                         env=dict(env, OPENBLAS_VERBOSE="2"))
    assert out.returncode == 0 and "caffe version" in (out.stdout + out.stderr).lower()
    said = [line.split(":", 1)[1].strip() for line in (out.stdout + out.stderr).splitlines()
            if line.startswith("Core:")]
    assert [core.lower() for core in said] == [choice["core"].lower()]


@pytest.mark.parametrize("vendor,flags,expected", [
    ("GenuineIntel", INTEL_AVX512, ["SkylakeX", "Haswell", "SandyBridge"]),
    ("AuthenticAMD", ZEN3, ["Zen", "Haswell", "SandyBridge"]),
    ("AuthenticAMD", ZEN4, ["SkylakeX", "Zen", "Haswell", "SandyBridge"]),
    ("GenuineIntel", ["avx", "avx2", "fma", "avx512f"], ["Haswell", "SandyBridge"]),
    ("GenuineIntel", ["sse2", "sse3"], []),
])
def test_better_cores_follow_the_processor_flags(tmp_path, vendor, flags, expected):
    path = write_cpuinfo(tmp_path, vendor, flags)
    assert blas_kernel.better_cores(*blas_kernel.cpu_features(path)) == expected


def described_probe(answers):
    """A stand-in for blas_kernel.probe: {core asked (None: OpenBLAS's own): (core it loads
    as, correct, GFLOP/s) or None (crashed)}; records what was asked."""
    asked = []

    def probe(python, library, core=None, size=1024):
        asked.append(core)
        answer = answers[core]
        return None if answer is None else {"core": answer[0], "correct": answer[1],
                                            "sgemm_gflops": answer[2]}
    return probe, asked


@pytest.mark.parametrize("vendor,flags,answers,core,needs,asked", [
    # AMD Zen 4: OpenBLAS 0.3.21 picks Cooperlake itself; kept, nothing forced or probed
    ("AuthenticAMD", ZEN4, {None: ("Cooperlake", True, 90.0)}, "Cooperlake", None, [None]),
    # AMD Zen 3: OpenBLAS's own Zen core, kept
    ("AuthenticAMD", ZEN3, {None: ("Zen", True, 60.0)}, "Zen", None, [None]),
    # an Intel newer than OpenBLAS: generic fallback, SkylakeX forced where AVX-512 is
    ("GenuineIntel", INTEL_AVX512,
     {None: ("Prescott", True, 20.0), "SkylakeX": ("SkylakeX", True, 90.0)},
     "SkylakeX", sorted(blas_kernel.AVX512_CORE), [None, "SkylakeX"]),
    # the order decides, not the timing: a first core that passes but measured slower
    ("GenuineIntel", INTEL_AVX512,
     {None: ("Prescott", True, 20.0), "SkylakeX": ("SkylakeX", True, 15.0)},
     "SkylakeX", sorted(blas_kernel.AVX512_CORE), [None, "SkylakeX"]),
    # SkylakeX crashes, then one loads as another core: Haswell, the next that passes
    ("AuthenticAMD", ZEN4,
     {None: ("Prescott", True, 20.0), "SkylakeX": None, "Zen": ("Prescott", True, 20.0),
      "Haswell": ("Haswell", True, 60.0)},
     "Haswell", ["avx2", "fma"], [None, "SkylakeX", "Zen", "Haswell"]),
    # every better core wrong: the generic default stays, nothing forced
    ("GenuineIntel", ["avx"], {None: ("Prescott", True, 20.0),
                               "SandyBridge": ("SandyBridge", False, 40.0)},
     "Prescott", None, [None, "SandyBridge"]),
])
def test_choice_on_described_processors(tmp_path, vendor, flags, answers, core, needs, asked):
    probe, calls = described_probe(answers)
    result = blas_kernel.choose_core(Path(sys.executable), cpuinfo=write_cpuinfo(
        tmp_path, vendor, flags), log=lambda msg: None, probe=probe)
    assert (result["core"], result["needs"], calls) == (core, needs, asked)
    runtime = json.loads(blas_kernel.runtime_choice(result))
    assert runtime == {"core": core, "default": answers[None][0], "needs": needs}
    # forced on the processor described, never on one without the flags
    assert blas_kernel.forced_core(runtime, flags) == (core if needs else None)
    assert blas_kernel.forced_core(runtime, ["sse2"]) is None


def test_choice_on_this_machine_is_the_first_better_core_that_passed_its_checks(tmp_path):
    """The real probe: each tried core is loaded in its own process and checked; the choice
    is OpenBLAS's own where that is not generic, else the first of the processor's better
    cores that passed (its timing is logged, not used)."""
    result = blas_kernel.choose_core(Path(sys.executable), log=lambda msg: None)
    default = result["tried"][result["default"]]
    assert default["correct"]
    vendor, flags = blas_kernel.cpu_features()
    if result["default"].lower() not in blas_kernel.GENERIC_CORES:
        assert (result["core"], result["needs"]) == (result["default"], None)
        return
    passed = [core for core in blas_kernel.better_cores(vendor, flags)
              if result["tried"].get(core) and result["tried"][core]["correct"]
              and result["tried"][core]["core"].lower() == core.lower()]
    expected = passed[0] if passed else result["default"]
    assert result["core"].lower() == expected.lower()
    assert result["needs"] == (sorted(blas_kernel.CORE_NEEDS[passed[0]]) if passed else None)


def test_a_library_that_does_not_load_is_a_clear_error(tmp_path):
    fake = tmp_path / "libopenblas.so.0"
    fake.write_bytes(b"not a library")
    with pytest.raises(RuntimeError, match="fails its own check"):
        blas_kernel.choose_core(Path(sys.executable), library=fake, log=lambda msg: None)
