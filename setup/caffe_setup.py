#!/usr/bin/env python3
"""Install what the project runs on: Debian build packages, the .venv, and BVLC Caffe.

`make setup` runs this; a second run takes seconds because every step is skipped when done:

1. the Debian packages of setup/apt-packages.txt (apt-get installs only the missing ones);
2. the virtual environment with setup/requirements.txt (reinstalled when that file changes);
3. Caffe, from a build cache keyed by source version, patches, CMake flags, Python, numpy,
   toolchain and the OpenBLAS core chosen for this processor (setup/blas_kernel.py). On a
   miss the source is fetched and verified, patched with setup/patches/<source>/*.patch,
   built with CMake and installed into the cache by an atomic rename, so an interrupted build
   never leaves a half entry behind;
4. the venv wired to that build: a .pth file puts pycaffe and the project root on sys.path, and
   bin/caffe runs Caffe's command-line tool with the venv's Python for Python layers;
5. for a GPU build, CuPy in the venv (setup/cuda_toolkit.py's CUPY), with which the Python
   layers compute on the device.

Device (--device): `cpu` builds Caffe CPU_ONLY; `gpu` builds it with CUDA, cuDNN and NCCL
(setup/cuda_toolkit.py: the toolkit, the architectures, the libraries from the system or from
NVIDIA's wheels) as a separate cache entry with the patches of setup/patches/debian-cuda/ on
top; `auto` (default) keeps the device the venv's build has, and for a new venv picks gpu
where nvidia-smi sees a GPU and nvcc exists; it says which.

Sources (--source): `debian` is Debian's source package caffe 1.0.0+git20180821.99bd997-8
(BVLC Caffe with Debian's patches), fetched with `apt-get source` through an apt configuration
of our own; `pypi` is the sdist brocolli-caffe==9.0.2, a BVLC-derived fork, for the day Debian
moves bullseye off its mirrors; `auto` (default) tries Debian and falls back to PyPI by itself.

Standard library only: this runs before the venv exists.
"""
import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import blas_kernel
import cuda_toolkit
from caffe_sources import SOURCES, BuildContext, FetchError, SetupError, log, run, sha256_of

REPO = Path(__file__).resolve().parent.parent
SETUP_DIR = REPO / "setup"
# Bump when the build steps change in a way the key below cannot see.
RECIPE_VERSION = 2


# ---------------------------------------------------------------- 1. Debian packages

def read_list(path):
    """Non-empty, non-comment lines of a text file."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def missing_debian_packages(packages):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\n", *packages],
                         capture_output=True, text=True).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def ensure_debian_packages(logs, skip, packages=None, what="build"):
    """apt-get install those of `packages` (default: setup/apt-packages.txt's, Caffe's build
    packages) that are missing; SetupError with the command to run where that cannot be done
    (skip, or neither root nor sudo). `what` names them in the progress lines."""
    packages = read_list(SETUP_DIR / "apt-packages.txt") if packages is None else list(packages)
    missing = missing_debian_packages(packages)
    if not missing:
        log(f"apt: all {len(packages)} {what} packages present")
        return
    if skip:
        raise SetupError(f"missing Debian packages: {' '.join(missing)}\n"
                         f"  fix: apt-get install {' '.join(missing)}  (or drop --skip-apt)")
    sudo = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise SetupError("installing Debian packages needs root, and sudo is missing.\n"
                             f"  fix: as root, apt-get install {' '.join(missing)}")
        sudo = ["sudo"]
    log(f"apt: installing {len(missing)} packages ({', '.join(missing[:6])}"
        f"{', ...' if len(missing) > 6 else ''}); this takes a few minutes the first time")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    hint = "check the network and `apt-get update` by hand; the log names the package that failed"
    run(sudo + ["apt-get", "update"], log=logs / "apt.log", what="apt-get update", hint=hint, env=env)
    run(sudo + ["apt-get", "install", "-y", "--no-install-recommends", *missing],
        log=logs / "apt.log", what="apt-get install", hint=hint, env=env)


# ---------------------------------------------------------------- 2. virtual environment

PYTHON_INFO = r"""
import json, sys, sysconfig
v = sysconfig.get_config_var
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "base_prefix": sys.base_prefix,
    "shared": bool(v("Py_ENABLE_SHARED")),
    "library": "%s/%s" % (v("LIBDIR"), v("LDLIBRARY")),
    "include": sysconfig.get_paths()["include"],
    "site_packages": sysconfig.get_paths()["purelib"],
}))
"""


def python_info(python):
    out = subprocess.run([str(python), "-c", PYTHON_INFO], capture_output=True, text=True)
    if out.returncode != 0:
        raise SetupError(f"cannot run {python}: {out.stderr.strip()}")
    info = json.loads(out.stdout)
    if not info["shared"] or not Path(info["library"]).exists():
        raise SetupError(
            f"{python} (Python {info['version']}) has no shared libpython ({info['library']}).\n"
            "  Caffe embeds Python for its Python layers and must link the libpython of the\n"
            "  interpreter that imports it.  fix: use a Python built with --enable-shared,\n"
            "  e.g. `make setup PYTHON=/path/to/python3`")
    return info


def ensure_venv(venv, base_python, logs):
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"venv: creating {venv} with {base_python}")
        python_info(base_python)  # fail early, before making a venv that cannot host Caffe
        run([base_python, "-m", "venv", str(venv)], log=logs / "venv.log", what="python -m venv")
    info = python_info(python)
    requirements = SETUP_DIR / "requirements.txt"
    stamp = venv / ".requirements.sha256"
    wanted = sha256_of(requirements)
    if stamp.exists() and stamp.read_text().strip() == wanted:
        log(f"venv: {venv} up to date (Python {info['version']})")
        return info
    log(f"venv: installing {requirements.relative_to(REPO)} into {venv}")
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", "pip"],
        log=logs / "pip.log", what="pip upgrade", hint="check access to PyPI")
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-r", str(requirements)],
        log=logs / "pip.log", what="pip install -r setup/requirements.txt",
        hint="check access to PyPI; the log names the package that failed", progress=r"^(Collecting|Installing)")
    stamp.write_text(wanted + "\n")
    return info


def venv_value(python, expr, what):
    out = subprocess.run([str(python), "-c", f"print({expr})"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SetupError(f"cannot read {what} from {python}: {out.stderr.strip().splitlines()[-1:]}\n"
                         "  fix: delete the venv and rerun `make setup`")
    return out.stdout.strip()


# ---------------------------------------------------------------- 3. Caffe build cache

def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "park2016-caffe"


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        return "missing"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def is_speed_patch(patch):
    return patch.read_text().splitlines()[0].removeprefix("# reason:").strip().startswith("speed")


def patch_series(source, cuda=False):
    """setup/patches/<source>/*.patch in the order they apply (by their NN- prefix), then for
    a GPU build setup/patches/<source>-cuda/*.patch; without the speed patches for a source
    whose `speed` is False."""
    folders = [source.name] + ([f"{source.name}-cuda"] if cuda else [])
    patches = [p for folder in folders
               for p in sorted((SETUP_DIR / "patches" / folder).glob("*.patch"))]
    return [p for p in patches if getattr(source, "speed", True) or not is_speed_patch(p)]


def build_identity(source, ctx):
    """Everything the compiled result depends on; its hash names the cache entry."""
    patches = patch_series(source, cuda=ctx.cuda is not None)
    identity = {
        "recipe": RECIPE_VERSION,
        "source": source.identity,
        "patches": {p.name: sha256_of(p) for p in patches},
        "cmake_flags": source.cmake_flags(ctx, prefix=None),
        "python": ctx.python_version,
        "libpython": ctx.python_library,
        "numpy": ctx.numpy_version,
        "compiler": tool_version(["c++", "--version"]),
        "protoc": tool_version(["protoc", "--version"]),
        "cmake": tool_version(["cmake", "--version"]),
    }
    if source.blas_core(ctx):   # the kernel choice is part of what the build runs: the file
        identity["blas_core"] = blas_kernel.runtime_choice(ctx.blas)   # it holds, no timings
    if ctx.cuda is not None:   # a CPU build's key stays what it was before GPU builds existed
        identity["cuda"] = ctx.cuda.identity()
    return identity


def entry_name(source, identity):
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{source.name}-{'gpu-' if 'cuda' in identity else ''}{digest[:16]}"


def is_complete(entry):
    return (entry / "BUILD-INFO.json").exists()


@contextlib.contextmanager
def cache_lock(cache):
    """One build at a time per cache, so two setups never race on the same entry."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def build_into_cache(source, ctx, entry, identity, logs):
    """Fetch, patch, build and install `source` into `entry`, atomically. Called under
    cache_lock: builds run one at a time, so any Caffe build's staging folder found here
    (a gigabyte or more) was left by an interrupted run, of this configuration or another."""
    cache = entry.parent
    for stale in [path for name in SOURCES for path in cache.glob(f".staging-{name}-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{entry.name}-", dir=cache))
    started = time.monotonic()
    try:
        tree = source.fetch(cache / "downloads" / source.name, staging / "src", logs)
        apply_patches(tree, patch_series(source, cuda=ctx.cuda is not None), logs)
        destdir = staging / "install"
        source.build(tree, ctx, prefix=entry, destdir=destdir, build_dir=staging / "build",
                     logs=logs)
        installed = Path(str(destdir) + str(entry))
        if source.blas_core(ctx):   # read by pycaffe (patch 09) before OpenBLAS loads
            (installed / "python" / "caffe" / "blas_core.json").write_text(
                blas_kernel.runtime_choice(ctx.blas))
        verify_build(installed, ctx, logs)
        info = dict(identity, built=time.strftime("%Y-%m-%d %H:%M:%S"),
                    build_seconds=round(time.monotonic() - started), describe=source.describe,
                    device="gpu" if ctx.cuda is not None else "cpu",
                    cuda_describe=ctx.cuda.describe() if ctx.cuda is not None else None,
                    known_test_failures=source.known_test_failures)
        (installed / "BUILD-INFO.json").write_text(json.dumps(info, indent=2) + "\n")
        os.rename(installed, entry)   # the entry appears complete or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the logs stay in --logs
    log(f"caffe: built {source.describe} in {info['build_seconds']} s -> {entry}")


def apply_patches(tree, patches, logs):
    for patch in patches:
        reason = patch.read_text().splitlines()[0].removeprefix("# reason:").strip()
        log(f"patch: {patch.name} ({reason})")
        for extra in (["--dry-run"], []):
            run(["patch", "-p1", "--forward", "--batch", *extra, "-i", str(patch)], cwd=tree,
                log=logs / "patch.log", what=f"patch {patch.name}",
                hint="the patch does not fit this source; refresh it against the fetched tree")


def verify_build(installed, ctx, logs):
    """Import the staged pycaffe and run the staged tool before the entry is published."""
    # the staged files' RPATHs name the final entry, which does not exist yet
    env = dict(os.environ, PYTHONPATH=str(installed / "python"),
               LD_LIBRARY_PATH=f"{installed / 'lib'}:{installed / 'python' / 'caffe'}")
    check = ("import caffe; assert 'Python' in caffe.layer_type_list(), 'no Python layer'; "
             "print('pycaffe', caffe.__version__)")
    if ctx.cuda is not None:   # works without a GPU too: the count is then 0
        check += ("; assert caffe.has_nccl(), 'no NCCL'; "
                  "print('CUDA devices', caffe.cuda_device_count())")
    run([str(ctx.python), "-c", check],
        env=env, log=logs / "verify.log", what="import of the freshly built pycaffe",
        hint="the build finished but pycaffe does not load; see the log")
    run([str(installed / "bin" / "caffe"), "--version"], env=env, log=logs / "verify.log",
        what="caffe --version of the freshly built tool")


def ensure_caffe(choice, ctx, cache, logs, rebuild, debian_mirror=None, speed=True):
    """Return the cache entry of a complete build of the chosen source, building on a miss."""
    order = ["debian", "pypi"] if choice == "auto" else [choice]
    if ctx.cuda is not None:
        if choice == "pypi":
            raise SetupError("the GPU build is made from Debian's source package with the "
                             "patches of setup/patches/debian-cuda/; the PyPI fork has none.\n"
                             "  fix: make setup CAFFE_DEVICE=gpu CAFFE_SOURCE=debian (a "
                             "Debian archive that still serves bullseye: "
                             "SETUP_FLAGS=--debian-mirror=URI)")
        order = ["debian"]
    with cache_lock(cache):
        for position, name in enumerate(order):
            source = SOURCES[name](debian_mirror) if name == "debian" else SOURCES[name]()
            if not speed:
                source.speed = False
            identity = build_identity(source, ctx)
            entry = cache / entry_name(source, identity)
            if is_complete(entry) and not rebuild:
                log(f"caffe: cached build of {source.describe}: {entry}")
                return entry
            if is_complete(entry):
                shutil.rmtree(entry)
            minutes = 30 if ctx.cuda is not None else 6
            log(f"caffe: no cached build for this configuration; building {source.describe}"
                + (f" with {ctx.cuda.describe()}" if ctx.cuda is not None else "")
                + f" (about {minutes} minutes on two cores)")
            try:
                build_into_cache(source, ctx, entry, identity, logs)
                return entry
            except FetchError as err:
                if position + 1 == len(order):
                    raise
                log(f"caffe: {err}")
                fallback = SOURCES[order[position + 1]]
                log(f"caffe: falling back to the next source: {fallback.describe}; "
                    f"{fallback.limits}")
    raise AssertionError("unreachable")


def openblas_core(python):
    """setup/blas_kernel.py's choice of OpenBLAS core for this processor, logged."""
    try:
        blas = blas_kernel.choose_core(python, log=lambda msg: log(msg))
    except RuntimeError as err:
        raise SetupError(f"{err}\n  fix: reinstall Debian's libopenblas0-openmp "
                         "(apt-get install --reinstall libopenblas0-openmp)") from None
    log(f"blas: {blas['library']} on its {blas['core']} kernel")
    return blas


# ---------------------------------------------------------------- 4. wire the venv

WRAPPER = """#!/bin/sh
# Written by setup/caffe_setup.py: Caffe's command-line tool built in
#   {entry}
# This venv's bin/ goes first on PATH because the Python that Caffe embeds for Python layers
# finds its prefix through the `python3` on PATH: so layers see this venv, pycaffe and the project.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
{blas}PATH="$here:$PATH" exec '{entry}/bin/caffe' "$@"
"""


# A net whose Python layer imports what `caffe train`'s layers import (numpy, OpenCV, lmdb),
# for check_embedded_python.
PROBE_NET = """layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 } } }
layer { name: "probe" type: "Python" bottom: "x" top: "y"
        python_param { module: "park2016_probe" layer: "Probe" } }
"""
PROBE_LAYER = """import caffe
import layers.h36m_data, layers.soft_labels


class Probe(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass
"""


def check_embedded_python(wrapper, logs):
    """Run a net with a Python layer through Caffe's tool: the Python it embeds must find its
    standard library and the venv's packages, as `caffe train` needs them (a failure there
    aborts with a C++ exception, far from its cause)."""
    with tempfile.TemporaryDirectory(prefix="park2016-probe-") as folder:
        Path(folder, "probe.prototxt").write_text(PROBE_NET)
        Path(folder, "park2016_probe.py").write_text(PROBE_LAYER)
        run([str(wrapper), "time", "-model", "probe.prototxt", "-iterations", "1"],
            log=logs / "verify.log", cwd=folder,
            env=dict(os.environ, PYTHONPATH=folder, GLOG_minloglevel="1"),
            what="a Python layer in Caffe's tool (its embedded Python)",
            hint="the log shows the Python error above the C++ stack trace")


def wire_venv(venv, info, entry, logs):
    site = Path(info["site_packages"])
    (site / "park2016_caffe.pth").write_text(f"{entry / 'python'}\n{REPO}\n")
    wrapper = venv / "bin" / "caffe"
    choice = entry / "python" / "caffe" / "blas_core.json"
    # the OpenBLAS core setup checked on this machine (setup/blas_kernel.py), as pycaffe sets it
    blas = blas_kernel.wrapper_lines(json.loads(choice.read_text()) if choice.exists() else None)
    wrapper.write_text(WRAPPER.format(entry=entry, blas=blas))
    wrapper.chmod(0o755)
    python = venv / "bin" / "python"
    run([str(python), "-c", "import caffe, layers; assert 'Python' in caffe.layer_type_list()"],
        log=logs / "verify.log", what="import caffe in the venv",
        hint=f"delete {entry} to force a rebuild")
    run([str(wrapper), "--version"], log=logs / "verify.log", what=f"{wrapper} --version")
    check_embedded_python(wrapper, logs)
    info = json.loads((entry / "BUILD-INFO.json").read_text())
    device = info.get("cuda_describe") or "CPU only"
    log(f"ready: Caffe from {info['describe']} ({device}); {python} imports caffe (with Python "
        f"layers), {wrapper} is Caffe's tool")


def ensure_cupy(python, cuda, logs):
    """CuPy in the venv of a GPU build (cuda_toolkit.CUPY for its CUDA major), so that the
    Python layers compute on the device; a CUDA major without a pinned CuPy is told, and the
    layers then compute on the host."""
    requirement = cuda_toolkit.CUPY.get(cuda.toolkit.major)
    if requirement is None:
        log(f"cupy: none pinned for CUDA {cuda.toolkit.major}: the Python layers compute on "
            "the host in GPU mode")
        return
    name, version = requirement.split("==")
    have = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                           f"print(m.version({name!r}))"], capture_output=True, text=True)
    if have.returncode == 0 and have.stdout.strip() == version:
        log(f"cupy: {requirement} present")
        return
    log(f"cupy: installing {requirement} (the Python layers' device arrays)")
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check", requirement],
        log=logs / "pip.log", what=f"pip install {requirement}",
        hint="check access to PyPI; the log names what failed")


# ---------------------------------------------------------------- main

def wired_build(info):
    """BUILD-INFO of the build the venv is wired to (by wire_venv), or None."""
    pth = Path(info["site_packages"]) / "park2016_caffe.pth"
    if not pth.exists():
        return None
    build_info = Path(pth.read_text().splitlines()[0]).parent / "BUILD-INFO.json"
    return json.loads(build_info.read_text()) if build_info.exists() else None


def choose_device(args, info):
    """("cpu" | "gpu", why). auto keeps the device (and the GPU architectures) of the build the
    venv already uses, so that `make setup CAFFE_DEVICE=gpu` sticks through later targets;
    a new venv gets gpu where nvidia-smi sees a GPU and nvcc exists."""
    if args.without_speedups:
        return "cpu", "--without-speedups builds the CPU build"
    current = wired_build(info) if args.device == "auto" else None
    if current is None:
        return cuda_toolkit.choose_device(args.device, args.cuda_home)
    device = current.get("device", "cpu")
    if device == "gpu" and not args.cuda_arch:
        args.cuda_arch = " ".join(current.get("cuda", {}).get("archs", [])) or None
    return device, (f"CAFFE_DEVICE=auto keeps the {device} build this venv uses; "
                    "CAFFE_DEVICE=cpu or gpu switches")


def gpu_build(args, python):
    """The CUDA toolkit, architectures and libraries of a GPU build (libraries installed into
    the cache on first use)."""
    toolkit = cuda_toolkit.find_toolkit(args.cuda_home)
    archs = cuda_toolkit.architectures(toolkit, args.cuda_arch)
    cache = args.cache.resolve()
    with cache_lock(cache):
        libs = cuda_toolkit.ensure_libraries(toolkit, cache, python, args.logs)
    log(f"cuda: CUDA {toolkit.version} ({toolkit.root}) for sm_{', sm_'.join(archs)}; "
        + ", ".join(f"{name} from {where}" for name, where in libs.sources.items()))
    return cuda_toolkit.CudaBuild(toolkit=toolkit, archs=tuple(archs), libs=libs)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Install Debian build packages, the project's venv and a BVLC Caffe build "
                    "(CPU, or GPU with CUDA, cuDNN and NCCL; pycaffe with Python layers). Safe "
                    "to rerun: finished steps are skipped.")
    parser.add_argument("--source", choices=["auto", "debian", "pypi"], default="auto",
                        help="where Caffe's source comes from; auto tries Debian, then PyPI "
                             "(default: %(default)s)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                        help="cpu: CPU_ONLY; gpu: CUDA, cuDNN and NCCL; auto: the device of "
                             "the venv's current build, for a new venv gpu where nvidia-smi "
                             "sees a GPU and nvcc exists (default: %(default)s)")
    parser.add_argument("--cuda-arch", metavar="CC",
                        help="GPU compute capabilities to build for, e.g. 90 (H100/H200) or "
                             "'80 90' (default: those of the GPUs present)")
    parser.add_argument("--cuda-home", metavar="DIR",
                        help="CUDA toolkit folder (default: the nvcc on PATH, else "
                             "/usr/local/cuda)")
    parser.add_argument("--venv", type=Path, default=REPO / ".venv",
                        help="virtual environment to create or update (default: .venv)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter the venv is made from; needs a shared libpython "
                             "(default: the one running this script)")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("CAFFE_CACHE_DIR") or default_cache_dir()),
                        help="build cache shared by clones on this machine "
                             "(default: $CAFFE_CACHE_DIR or ~/.cache/park2016-caffe)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="parallel compile jobs (default: number of cores)")
    parser.add_argument("--logs", type=Path, default=REPO / "build" / "setup-logs",
                        help="where command logs go (default: build/setup-logs)")
    parser.add_argument("--debian-mirror", metavar="URI",
                        help="Debian archive holding bullseye's sources (default: the Debian "
                             "mirror of this machine's apt configuration)")
    parser.add_argument("--skip-apt", action="store_true",
                        help="do not call apt-get; fail with the list of missing packages instead")
    parser.add_argument("--rebuild", action="store_true",
                        help="rebuild Caffe even if the cache holds this configuration")
    parser.add_argument("--without-speedups", action="store_true",
                        help="build (or find) the CPU build of Caffe without the speed "
                             "patches and flags, print its folder as the last line and leave "
                             "the venv as it is (the 'before' build of `make bench`)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return args


def main(argv=None):
    args = parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)
    venv = args.venv.resolve()
    started = time.monotonic()
    try:
        ensure_debian_packages(args.logs, args.skip_apt)
        info = ensure_venv(venv, args.python, args.logs)
        python = venv / "bin" / "python"
        numpy_include = venv_value(python, "__import__('numpy').get_include()", "numpy's headers")
        numpy_version = venv_value(python, "__import__('numpy').__version__", "numpy's version")
        device, why = choose_device(args, info)
        log(f"device: {device} ({why})")
        cuda = gpu_build(args, python) if device == "gpu" else None
        ctx = BuildContext(python=python, python_version=info["version"],
                           python_library=info["library"], python_include=info["include"],
                           numpy_include=numpy_include, numpy_version=numpy_version, jobs=args.jobs,
                           cuda=cuda, blas=openblas_core(python))
        entry = ensure_caffe(args.source, ctx, args.cache.resolve(), args.logs, args.rebuild,
                             args.debian_mirror, speed=not args.without_speedups)
        if args.without_speedups:
            print(entry)
            return 0
        wire_venv(venv, info, entry, args.logs)
        if cuda is not None:
            ensure_cupy(python, cuda, args.logs)
    except SetupError as err:
        print(f"\nmake setup: ERROR: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nmake setup: interrupted; rerun it to continue (finished steps are kept)",
              file=sys.stderr)
        return 130
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
