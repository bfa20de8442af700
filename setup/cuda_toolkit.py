"""The CUDA side of a GPU build of Caffe (used by caffe_setup.py): device choice, toolkit,
GPU architectures and the four libraries Caffe links (cuBLAS, cuRAND, cuDNN, NCCL).

    choice = choose_device("auto")                 # ("cpu" | "gpu", reason)
    toolkit = find_toolkit()                       # nvcc, its root, its CUDA version
    archs = architectures(toolkit, "90")           # ["90"]; None: those of the GPUs present
    libs = ensure_libraries(toolkit, cache, python, logs)
    flags = cmake_flags(toolkit, archs, libs)

Libraries come from the system where it has them (the toolkit's own folders, Debian's or
NVIDIA's packages under /usr), each one otherwise from NVIDIA's PyPI wheels for nvcc's major
version (pinned in WHEELS), installed with pip into a folder of the build cache that clones
share. Either way a folder of links, `<cache>/cuda-libs/<key>/{include,lib}`, holds every
header and library with unversioned names too, so that CMake finds them by path alone and the
built files reach them through their RPATH. Standard library only.
"""
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from caffe_sources import SetupError, log, run

# NVIDIA's wheels per CUDA major version: {library: requirement}. cuDNN 9 and NCCL 2 build
# for every CUDA major; cuBLAS's soname carries the major. Only the CUDA 13 set was built here
# (nvcc 13.0); the others follow the same layout rules and are found the same way.
WHEELS = {
    13: {"cublas": "nvidia-cublas==13.0.2.14", "curand": "nvidia-curand==10.4.0.35",
         "cudnn": "nvidia-cudnn-cu13==9.13.1.26", "nccl": "nvidia-nccl-cu13==2.28.9"},
    12: {"cublas": "nvidia-cublas-cu12==12.9.1.4", "curand": "nvidia-curand-cu12==10.3.10.19",
         "cudnn": "nvidia-cudnn-cu12==9.13.1.26", "nccl": "nvidia-nccl-cu12==2.28.9"},
    11: {"cublas": "nvidia-cublas-cu11==11.11.3.6", "curand": "nvidia-curand-cu11==10.3.0.86",
         "cudnn": "nvidia-cudnn-cu11==9.10.2.21", "nccl": "nvidia-nccl-cu11==2.21.5"},
}
# CuPy per CUDA major, installed into a GPU build's venv: the Python layers compute on the
# device through it (layers/device_arrays.py). 14.2 is the release the GPU machines here carry.
# None: no CuPy release for that major is pinned, and the layers compute on the host.
CUPY = {13: "cupy-cuda13x==14.2.0", 12: "cupy-cuda12x==14.2.0", 11: None}
# library: (header Caffe includes, shared library name)
LIBRARIES = {"cublas": ("cublas_v2.h", "libcublas.so"), "curand": ("curand.h", "libcurand.so"),
             "cudnn": ("cudnn.h", "libcudnn.so"), "nccl": ("nccl.h", "libnccl.so")}
SYSTEM_INCLUDE = [Path("/usr/include"), Path("/usr/include/x86_64-linux-gnu"),
                  Path("/usr/local/include")]
SYSTEM_LIB = [Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib64"), Path("/usr/local/lib")]
# Bump when the layout of a library folder changes.
LAYOUT_VERSION = 1


# ---------------------------------------------------------------- device choice

def visible_gpus():
    """[(index, name, compute capability "9.0" or "")] of the GPUs nvidia-smi lists; [] when
    there is no nvidia-smi, no driver or no GPU."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,compute_cap",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:   # older drivers know no compute_cap: ask for the list alone
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            return []
        return [(i, line.split(":", 1)[1].split("(")[0].strip(), "")
                for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]
    gpus = []
    for line in out.stdout.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3 and parts[0].isdigit():
            gpus.append((int(parts[0]), parts[1], parts[2]))
    return gpus


def find_nvcc(cuda_home=None):
    """Path of nvcc: CUDA_HOME's, else the one on PATH, else /usr/local/cuda's; None if none."""
    candidates = [Path(cuda_home) / "bin" / "nvcc"] if cuda_home else []
    on_path = shutil.which("nvcc")
    candidates += ([Path(on_path)] if on_path else []) + [Path("/usr/local/cuda/bin/nvcc")]
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def choose_device(requested, cuda_home=None):
    """("cpu" or "gpu", why). auto: gpu where nvidia-smi sees a GPU and nvcc exists."""
    if requested in ("cpu", "gpu"):
        return requested, f"CAFFE_DEVICE={requested}"
    if requested != "auto":
        raise SetupError(f"CAFFE_DEVICE must be auto, cpu or gpu, not {requested!r}")
    gpus, nvcc = visible_gpus(), find_nvcc(cuda_home)
    if gpus and nvcc:
        names = ", ".join(f"{i}: {name}" for i, name, _ in gpus)
        return "gpu", f"CAFFE_DEVICE=auto found GPU(s) ({names}) and {nvcc}"
    missing = [what for what, ok in (("no GPU seen by nvidia-smi", gpus),
                                     ("no CUDA compiler (nvcc)", nvcc)) if not ok]
    return "cpu", f"CAFFE_DEVICE=auto: {' and '.join(missing)}"


# ---------------------------------------------------------------- toolkit and architectures

@dataclasses.dataclass(frozen=True)
class Toolkit:
    root: Path        # holds bin/nvcc, include/cuda_runtime.h, lib64/libcudart.so
    nvcc: Path
    version: str      # "13.0"

    @property
    def major(self):
        return int(self.version.split(".")[0])


def find_toolkit(cuda_home=None):
    nvcc = find_nvcc(cuda_home)
    if nvcc is None:
        raise SetupError("a GPU build needs CUDA's compiler nvcc, and none was found (PATH, "
                         "/usr/local/cuda/bin).\n  fix: install the CUDA toolkit (11.8 to 13.x)"
                         " or name it: make setup CAFFE_DEVICE=gpu CUDA_HOME=/path/to/cuda")
    text = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"release (\d+)\.(\d+)", text)
    if not match:
        raise SetupError(f"cannot read the CUDA version from `{nvcc} --version`:\n{text}")
    version = f"{match.group(1)}.{match.group(2)}"
    # nvcc may be a wrapper script (/usr/local/bin/nvcc): the root is where the runtime is
    roots = ([Path(cuda_home)] if cuda_home else []) + [nvcc.resolve().parent.parent,
                                                        Path("/usr/local/cuda")]
    root = next((r for r in roots if (r / "include" / "cuda_runtime.h").exists()
                 and (r / "bin" / "nvcc").exists()), None)
    if root is None:
        raise SetupError(f"found {nvcc} (CUDA {version}) but no toolkit folder with "
                         "include/cuda_runtime.h beside it.\n  fix: make setup "
                         "CAFFE_DEVICE=gpu CUDA_HOME=/path/to/cuda")
    if not (11, 8) <= (int(match.group(1)), int(match.group(2))) < (14, 0):
        raise SetupError(f"CUDA {version} ({root}) is outside the supported 11.8 to 13.x")
    if int(match.group(1)) not in WHEELS:
        raise SetupError(f"no library wheels are pinned for CUDA {version}")
    return Toolkit(root=root, nvcc=root / "bin" / "nvcc", version=version)


def supported_architectures(toolkit):
    """The compute capabilities nvcc can build for, e.g. ["75", "80", ..., "121"]."""
    out = subprocess.run([str(toolkit.nvcc), "--list-gpu-arch"], capture_output=True, text=True)
    return re.findall(r"compute_(\d+)", out.stdout)


def architectures(toolkit, cuda_arch=None, gpus=None):
    """The architectures to build for: CUDA_ARCH (e.g. "90" or "80 90"), else those of the
    GPUs present. Refuses what nvcc cannot build, with the list it can."""
    if cuda_arch:
        wanted = re.split(r"[\s,;]+", cuda_arch.strip())
        bad = [a for a in wanted if not re.fullmatch(r"\d{2,3}", a)]
        if bad:
            raise SetupError(f"CUDA_ARCH={cuda_arch!r}: give compute capabilities without the "
                             "dot, e.g. CUDA_ARCH=90 (H100/H200) or CUDA_ARCH=\"80 90\"")
    else:
        gpus = visible_gpus() if gpus is None else gpus
        wanted = sorted({cap.replace(".", "") for _, _, cap in gpus if cap})
        if not wanted:
            raise SetupError("no GPU architecture to build for: no GPU (with a compute "
                             "capability) is visible here.\n  fix: name it, e.g. make setup "
                             "CAFFE_DEVICE=gpu CUDA_ARCH=90 (H100/H200), 80 (A100), 89 (L4)")
    known = supported_architectures(toolkit)
    unsupported = [a for a in wanted if known and a not in known]
    if unsupported:
        raise SetupError(f"nvcc {toolkit.version} cannot build for sm_{', sm_'.join(unsupported)}"
                         f"; it supports {' '.join(known)}")
    return wanted


# ---------------------------------------------------------------- libraries

@dataclasses.dataclass(frozen=True)
class Libraries:
    folder: Path      # <folder>/include and <folder>/lib: links to every header and library
    sources: dict     # library: "system <path>" or the wheel requirement

    @property
    def include(self):
        return self.folder / "include"

    @property
    def lib(self):
        return self.folder / "lib"


def soname_major(path):
    """3 for libfoo.so.3.1 (None for an unversioned name)."""
    match = re.search(r"\.so\.(\d+)", Path(path).name)
    return int(match.group(1)) if match else None


def find_system_library(toolkit, name):
    """(include dir, library path) of a system copy that fits this toolkit, or None."""
    header, library = LIBRARIES[name]
    includes = [toolkit.root / "include"] + SYSTEM_INCLUDE
    libdirs = [toolkit.root / "lib64", toolkit.root / "lib",
               toolkit.root / "targets" / "x86_64-linux" / "lib"] + SYSTEM_LIB
    include = next((d for d in includes if (d / header).exists()), None)
    lib = next((d / library for d in libdirs if (d / library).exists()), None)
    if include is None or lib is None:
        return None
    # cuBLAS's soname is the CUDA major it belongs to: another major's copy does not fit
    if name == "cublas" and soname_major(lib.resolve()) not in (None, toolkit.major):
        return None
    return include, lib


def wheel_files(target):
    """{library: (include dir, [its .so files])} found in a pip --target folder."""
    found = {}
    for name, (header, library) in LIBRARIES.items():
        headers = sorted(target.rglob(header))
        libs = sorted(target.rglob(library + ".*"))
        if headers and libs:
            found[name] = (headers[0].parent, libs)
    return found


def link(path, target, inside):
    """Symlink path -> target: relative where target lies inside the folder `inside` (so that
    renaming that folder keeps the link), absolute otherwise."""
    if path.exists() or path.is_symlink():
        return
    target = Path(target)
    if inside in target.parents:
        path.symlink_to(os.path.relpath(target, path.parent))
    else:
        path.symlink_to(target.resolve())


def link_folder(folder, header_dirs, libraries):
    """Fill folder/include with links to every entry of the header folders and folder/lib with
    links to the libraries, under their own names and without the version suffix."""
    (folder / "include").mkdir(parents=True, exist_ok=True)
    (folder / "lib").mkdir(parents=True, exist_ok=True)
    for include in header_dirs:
        for item in sorted(include.iterdir()):
            link(folder / "include" / item.name, item, folder)
    for library in libraries:
        versioned = folder / "lib" / Path(library).name
        link(versioned, library, folder)
        plain = folder / "lib" / re.sub(r"\.so\..*$", ".so", Path(library).name)
        if not (plain.exists() or plain.is_symlink()):
            plain.symlink_to(versioned.name)


def library_plan(toolkit, use_system=True):
    """{library: ("system", (include, lib)) or ("wheel", requirement)}."""
    plan = {}
    for name in LIBRARIES:
        system = find_system_library(toolkit, name) if use_system else None
        plan[name] = ("system", system) if system else ("wheel", WHEELS[toolkit.major][name])
    return plan


def ensure_libraries(toolkit, cache, python, logs, use_system=True):
    """The link folder of cuBLAS, cuRAND, cuDNN and NCCL for this toolkit, made once per
    cache (pip installs the wheels it needs into it; an interrupted install leaves nothing)."""
    plan = library_plan(toolkit, use_system)
    sources = {name: (f"system {where[1]}" if kind == "system" else where)
               for name, (kind, where) in plan.items()}
    key = hashlib.sha256(json.dumps([LAYOUT_VERSION, toolkit.version, sources],
                                    sort_keys=True).encode()).hexdigest()[:16]
    folder = cache / "cuda-libs" / f"cu{toolkit.major}-{key}"
    if (folder / "SOURCES.json").exists():
        return Libraries(folder, sources)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".staging-{folder.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)   # left by an interrupted run
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{folder.name}-", dir=folder.parent))
    try:
        headers, libraries = [], []
        for kind, where in plan.values():
            if kind == "system":
                headers.append(where[0])
                libraries += sorted(where[1].parent.glob(where[1].name + ".*")) or [where[1]]
        wheels = [where for kind, where in plan.values() if kind == "wheel"]
        if wheels:
            log(f"cuda: installing NVIDIA's wheels {' '.join(wheels)} into {folder} (about "
                "1.3 GB for CUDA 13, once per machine)")
            target = staging / "wheels"
            run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                 "--no-deps", "--target", str(target), *wheels], log=logs / "cuda-libs.log",
                what="pip install of the CUDA library wheels",
                progress=r"^(Collecting|Installing)",
                hint="check access to PyPI and the free disk space of the cache")
            found = wheel_files(target)
            missing = [w for name, (kind, w) in plan.items()
                       if kind == "wheel" and name not in found]
            if missing:
                raise SetupError(f"the wheels {missing} hold no {', '.join(LIBRARIES)} headers "
                                 f"and libraries where expected; see {logs / 'cuda-libs.log'}")
            headers += [found[name][0] for name, (kind, _) in plan.items() if kind == "wheel"]
            # all they hold (cuBLASLt, cuDNN's engines, ...) sits beside the main libraries
            libraries += sorted(target.rglob("*.so.*"))
        link_folder(staging, headers, libraries)
        (staging / "SOURCES.json").write_text(json.dumps(sources, indent=2) + "\n")
        os.rename(staging, folder)   # complete or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Libraries(folder, sources)


def cmake_flags(toolkit, archs, libs, cudnn=True, nccl=True):
    """CMake flags that turn Caffe's CPU_ONLY build into a CUDA build with these parts."""
    arch_list = " ".join(archs)
    flags = [
        "-DCPU_ONLY=OFF",
        f"-DCUDA_TOOLKIT_ROOT_DIR={toolkit.root}",
        f"-DCUDA_NVCC_EXECUTABLE={toolkit.nvcc}",
        # Manual: CMake's Auto falls back to sm_20..61 without a GPU, which nvcc 12+ refuses
        "-DCUDA_ARCH_NAME=Manual", f"-DCUDA_ARCH_BIN={arch_list}",
        f"-DCUDA_ARCH_PTX={archs[-1]}",   # PTX of the newest, for GPUs newer than the list
        # FindCUDA looks for cuBLAS and cuRAND under the toolkit, then on these paths
        f"-DCMAKE_LIBRARY_PATH={libs.lib}", f"-DCMAKE_INCLUDE_PATH={libs.include}",
        f"-DCUDA_NVCC_FLAGS=-I{libs.include}",
        f"-DUSE_CUDNN={'ON' if cudnn else 'OFF'}",
        f"-DUSE_NCCL={'ON' if nccl else 'OFF'}",
    ]
    if cudnn:
        flags += [f"-DCUDNN_INCLUDE={libs.include}", f"-DCUDNN_LIBRARY={libs.lib / 'libcudnn.so'}"]
    if nccl:
        flags += [f"-DNCCL_INCLUDE_DIR={libs.include}",
                  f"-DNCCL_LIBRARIES={libs.lib / 'libnccl.so'}"]
    return flags


@dataclasses.dataclass(frozen=True)
class CudaBuild:
    """What a GPU build of Caffe is made with; its identity goes into the build-cache key."""
    toolkit: Toolkit
    archs: tuple
    libs: Libraries

    def cmake_flags(self):
        return cmake_flags(self.toolkit, list(self.archs), self.libs)

    def identity(self):
        return {"nvcc": str(self.toolkit.nvcc), "cuda": self.toolkit.version,
                "archs": list(self.archs), "libraries": self.libs.sources}

    def describe(self):
        return (f"CUDA {self.toolkit.version} for sm_{', sm_'.join(self.archs)} with cuDNN "
                "and NCCL")
