"""Kinds of x86-64 processor that the CPU-layer tests stand in for on this one machine.

The libraries under Caffe choose their code by the processor they find: oneDNN its kernels
(limited by ONEDNN_MAX_CPU_ISA) and OpenBLAS its core (OPENBLAS_CORETYPE); OpenMP splits the
work over OMP_NUM_THREADS threads. tests/test_processor_kinds.py runs the CPU-layer tests in one
child pytest per kind, with these set in the child's environment (the machine's own ONEDNN_*,
OPENBLAS_* and OMP_* settings removed) and `--processor-kind NAME`, with which conftest.py loads
Caffe's OpenBLAS on the kind's core before pycaffe can choose one. A kind whose instructions
this machine lacks is skipped with the reason: a limit can take instructions away, never add
them.
"""
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "setup"))
from blas_kernel import AVX512_CORE  # noqa: E402

# environment variables through which a machine's shell could steer the libraries under test;
# a kind's child starts without any of them
STEERING_PREFIXES = ("ONEDNN_", "DNNL_", "OPENBLAS_", "GOTO_", "OMP_", "GOMP_", "KMP_")


@dataclass(frozen=True)
class ProcessorKind:
    description: str      # the processors it stands for
    onednn_isa: str       # ONEDNN_MAX_CPU_ISA
    openblas_core: str    # OPENBLAS_CORETYPE, as OpenBLAS names the core
    threads: int          # OMP_NUM_THREADS
    needs: frozenset      # /proc/cpuinfo flags it takes
    # substrings no oneDNN implementation name may hold under this limit (the instructions
    # above it)
    above_limit: tuple

    def environment(self, base):
        """`base` without the steering variables, plus this kind's settings."""
        env = {k: v for k, v in base.items() if not k.startswith(STEERING_PREFIXES)}
        env.update(ONEDNN_MAX_CPU_ISA=self.onednn_isa, OPENBLAS_CORETYPE=self.openblas_core,
                   OMP_NUM_THREADS=str(self.threads))
        return env


KINDS = {
    "sse41": ProcessorKind(
        "an x86-64 without AVX (oneDNN's SSE4.1 kernels, OpenBLAS's Nehalem core)",
        "SSE41", "Nehalem", 1, frozenset({"sse4_1"}), ("avx", "amx")),
    "avx2": ProcessorKind(
        "Intel without AVX-512, Haswell to Alder Lake (oneDNN's AVX2 kernels, OpenBLAS's "
        "Haswell core)", "AVX2", "Haswell", 2, frozenset({"avx2", "fma"}), ("avx512", "amx")),
    "avx2-zen": ProcessorKind(
        "AMD Zen 2 and 3 (oneDNN's AVX2 kernels, OpenBLAS's Zen core)",
        "AVX2", "Zen", 3, frozenset({"avx2", "fma"}), ("avx512", "amx")),
    "avx512": ProcessorKind(
        "Intel Skylake-SP to Ice Lake (oneDNN's avx512_core kernels, OpenBLAS's SkylakeX core)",
        "AVX512_CORE", "SkylakeX", 2, AVX512_CORE, ("amx",)),
    "avx512-bf16": ProcessorKind(
        "AMD Zen 4 and Intel Cooper Lake (AVX-512 with BF16: oneDNN's avx512_core_bf16 limit, "
        "OpenBLAS's Cooperlake core)", "AVX512_CORE_BF16", "Cooperlake", 1,
        AVX512_CORE | {"avx512_bf16"}, ("amx",)),
}


def missing_flags(kind, flags):
    """The flags of `kind` that a processor with `flags` lacks (sorted; empty: it can run)."""
    return sorted(kind.needs - set(flags))


def load_openblas_on_core(library, core):
    """Load `library` (Caffe's OpenBLAS) with OPENBLAS_CORETYPE=core, before anything else
    loads it: OpenBLAS picks its core once, at load, and a later load of the same file (by
    pycaffe's _caffe.so) gets the library already mapped. Returns the core it runs."""
    import ctypes
    os.environ["OPENBLAS_CORETYPE"] = core
    lib = ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode()
