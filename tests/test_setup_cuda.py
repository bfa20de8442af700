"""make setup CAFFE_DEVICE=...: the device choice, the CUDA toolkit and architectures, the
library folder, and the GPU build's place in the build cache (setup/cuda_toolkit.py and
setup/caffe_setup.py), without building anything."""
import json
import os
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "setup"))
import caffe_setup  # noqa: E402
import cuda_toolkit  # noqa: E402
from caffe_sources import BuildContext, DebianSource, SetupError  # noqa: E402


def context(cuda=None):
    return BuildContext(python=Path("/venv/bin/python"), python_version="3.11.7",
                        python_library="/py/lib/libpython3.11.so", python_include="/py/include",
                        numpy_include="/np/include", numpy_version="2.4.6", jobs=2, cuda=cuda)


def fake_toolkit(tmp_path, major=13):
    root = tmp_path / "cuda"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "bin" / "nvcc").write_text("")
    return cuda_toolkit.Toolkit(root=root, nvcc=root / "bin" / "nvcc", version=f"{major}.0")


def gpu_build(tmp_path, archs=("90",), sources=None):
    libs = cuda_toolkit.Libraries(tmp_path / "libs", sources or {"cublas": "nvidia-cublas==1"})
    return cuda_toolkit.CudaBuild(toolkit=fake_toolkit(tmp_path), archs=archs, libs=libs)


def test_explicit_devices_and_a_bad_one():
    assert cuda_toolkit.choose_device("cpu")[0] == "cpu"
    assert cuda_toolkit.choose_device("gpu")[0] == "gpu"
    with pytest.raises(SetupError, match="auto, cpu or gpu"):
        cuda_toolkit.choose_device("tpu")


def test_auto_needs_a_gpu_and_a_compiler(monkeypatch, tmp_path):
    nvcc = tmp_path / "nvcc"
    nvcc.write_text("")
    nvcc.chmod(0o755)
    monkeypatch.setattr(cuda_toolkit, "find_nvcc", lambda home=None: nvcc)
    monkeypatch.setattr(cuda_toolkit, "visible_gpus", lambda: [(0, "NVIDIA H100", "9.0")])
    device, why = cuda_toolkit.choose_device("auto")
    assert device == "gpu" and "0: NVIDIA H100" in why
    monkeypatch.setattr(cuda_toolkit, "visible_gpus", lambda: [])
    assert cuda_toolkit.choose_device("auto") == ("cpu", "CAFFE_DEVICE=auto: no GPU seen by "
                                                         "nvidia-smi")
    monkeypatch.setattr(cuda_toolkit, "find_nvcc", lambda home=None: None)
    assert "no GPU seen by nvidia-smi and no CUDA compiler" in cuda_toolkit.choose_device("auto")[1]


def test_auto_on_this_machine_matches_what_it_has():
    device, why = cuda_toolkit.choose_device("auto")
    has_gpu = bool(cuda_toolkit.visible_gpus()) and cuda_toolkit.find_nvcc() is not None
    assert device == ("gpu" if has_gpu else "cpu"), why


def test_architectures_named_checked_or_taken_from_the_gpus(monkeypatch, tmp_path):
    toolkit = fake_toolkit(tmp_path)
    monkeypatch.setattr(cuda_toolkit, "supported_architectures", lambda t: ["75", "80", "90"])
    assert cuda_toolkit.architectures(toolkit, "90") == ["90"]
    assert cuda_toolkit.architectures(toolkit, "80, 90") == ["80", "90"]
    with pytest.raises(SetupError, match="cannot build for sm_61; it supports 75 80 90"):
        cuda_toolkit.architectures(toolkit, "61")
    with pytest.raises(SetupError, match="without the dot"):
        cuda_toolkit.architectures(toolkit, "9.0")
    assert cuda_toolkit.architectures(toolkit, None, gpus=[(0, "A", "9.0"), (1, "B", "8.0"),
                                                           (2, "C", "9.0")]) == ["80", "90"]
    with pytest.raises(SetupError, match="CUDA_ARCH=90"):
        cuda_toolkit.architectures(toolkit, None, gpus=[])


@pytest.mark.skipif(cuda_toolkit.find_nvcc() is None, reason="no CUDA toolkit here")
def test_this_machines_toolkit():
    toolkit = cuda_toolkit.find_toolkit()
    assert (toolkit.root / "include" / "cuda_runtime.h").exists()
    assert toolkit.major in cuda_toolkit.WHEELS
    assert "90" in cuda_toolkit.supported_architectures(toolkit)


def test_system_library_must_fit_the_toolkit(tmp_path):
    toolkit = fake_toolkit(tmp_path, major=13)
    (toolkit.root / "include").mkdir()
    (toolkit.root / "include" / "cublas_v2.h").write_text("")
    lib64 = toolkit.root / "lib64"
    lib64.mkdir()
    (lib64 / "libcublas.so.12").write_text("")
    (lib64 / "libcublas.so").symlink_to("libcublas.so.12")
    assert cuda_toolkit.find_system_library(toolkit, "cublas") is None   # CUDA 12's
    (lib64 / "libcublas.so").unlink()
    (lib64 / "libcublas.so.13").write_text("")
    (lib64 / "libcublas.so").symlink_to("libcublas.so.13")
    assert cuda_toolkit.find_system_library(toolkit, "cublas") == (
        toolkit.root / "include", lib64 / "libcublas.so")


def test_link_folder_survives_the_rename_into_place(tmp_path):
    staging, final = tmp_path / ".staging", tmp_path / "cu13-key"
    include = staging / "wheels" / "nvidia" / "cu13" / "include"
    lib = staging / "wheels" / "nvidia" / "cu13" / "lib"
    include.mkdir(parents=True)
    lib.mkdir(parents=True)
    (include / "cublas_v2.h").write_text("header")
    (lib / "libcublas.so.13").write_text("library")
    system = tmp_path / "usr" / "libnccl.so.2"
    system.parent.mkdir()
    system.write_text("nccl")
    cuda_toolkit.link_folder(staging, [include], [lib / "libcublas.so.13", system])
    os.rename(staging, final)
    assert (final / "include" / "cublas_v2.h").read_text() == "header"
    assert (final / "lib" / "libcublas.so").read_text() == "library"
    assert os.readlink(final / "lib" / "libcublas.so") == "libcublas.so.13"
    assert (final / "lib" / "libnccl.so").read_text() == "nccl"


def test_cmake_flags_of_a_gpu_build(tmp_path):
    build = gpu_build(tmp_path, archs=("80", "90"))
    flags = DebianSource().cmake_flags(context(build), prefix=None)
    assert "-DCPU_ONLY=ON" not in flags and "-DCPU_ONLY=OFF" in flags
    assert "-DCUDA_ARCH_BIN=80 90" in flags and "-DCUDA_ARCH_PTX=90" in flags
    assert "-DUSE_NCCL=ON" in flags and "-DUSE_CUDNN=ON" in flags
    assert f"-DCUDNN_LIBRARY={tmp_path / 'libs' / 'lib' / 'libcudnn.so'}" in flags
    assert "-DCPU_ONLY=ON" in DebianSource().cmake_flags(context(), prefix=None)


def test_gpu_builds_have_their_own_cache_entries(tmp_path):
    source = DebianSource()
    name = lambda ctx: caffe_setup.entry_name(source, caffe_setup.build_identity(source, ctx))  # noqa: E731
    cpu = caffe_setup.build_identity(source, context())
    assert "cuda" not in cpu   # the CPU key is what it was before GPU builds existed
    assert name(context()).startswith("debian-") and "gpu" not in name(context())
    gpu90 = name(context(gpu_build(tmp_path)))
    assert gpu90.startswith("debian-gpu-")
    assert gpu90 != name(context(gpu_build(tmp_path, archs=("80",))))
    assert gpu90 != name(context(gpu_build(tmp_path, sources={"cublas": "system /usr/lib"})))
    patches = caffe_setup.build_identity(source, context(gpu_build(tmp_path)))["patches"]
    cuda_folder = Path(__file__).resolve().parent.parent / "setup" / "patches" / "debian-cuda"
    cuda_patches = sorted(patch.name for patch in cuda_folder.glob("*.patch"))
    assert len(cuda_patches) >= 6 and list(patches) == list(cpu["patches"]) + cuda_patches


def test_cuda_patches_follow_the_source_series_and_give_reasons():
    source = DebianSource()
    cpu, gpu = caffe_setup.patch_series(source), caffe_setup.patch_series(source, cuda=True)
    assert gpu[:len(cpu)] == cpu
    cuda_patches = gpu[len(cpu):]
    assert [p.parent.name for p in cuda_patches] == ["debian-cuda"] * len(cuda_patches)
    for patch in cuda_patches:
        assert patch.read_text().startswith("# reason: ")


def test_the_gpu_build_refuses_the_pypi_fork(tmp_path):
    with pytest.raises(SetupError, match="CAFFE_SOURCE=debian"):
        caffe_setup.ensure_caffe("pypi", context(gpu_build(tmp_path)), tmp_path / "cache",
                                 tmp_path / "logs", rebuild=False)
    assert not (tmp_path / "cache").exists()


def test_auto_keeps_the_build_the_venv_uses(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    info = {"site_packages": str(site)}
    args = Namespace(device="auto", cuda_arch=None, cuda_home=None, without_speedups=False)
    entry = tmp_path / "debian-gpu-0123"
    (entry / "python").mkdir(parents=True)
    (entry / "BUILD-INFO.json").write_text(json.dumps({"device": "gpu",
                                                       "cuda": {"archs": ["80", "90"]}}))
    (site / "park2016_caffe.pth").write_text(f"{entry / 'python'}\n/repo\n")
    device, why = caffe_setup.choose_device(args, info)
    assert (device, args.cuda_arch) == ("gpu", "80 90")
    assert "keeps the gpu build" in why
    explicit = Namespace(device="cpu", cuda_arch=None, cuda_home=None, without_speedups=False)
    assert caffe_setup.choose_device(explicit, info)[0] == "cpu"
    bench = Namespace(device="auto", cuda_arch=None, cuda_home=None, without_speedups=True)
    assert caffe_setup.choose_device(bench, info)[0] == "cpu"
    shutil.rmtree(entry)   # a build deleted from the cache: decide afresh
    assert caffe_setup.choose_device(Namespace(**vars(explicit) | {"device": "auto"}),
                                     info) == cuda_toolkit.choose_device("auto")


def test_gpu_bundle_carries_what_the_gpu_machine_lacks():
    import gpu_bundle
    assert gpu_bundle.requirement_pins(("lmdb", "cdflib")) == [
        line for line in caffe_setup.read_list(caffe_setup.SETUP_DIR / "requirements.txt")
        if line.split("==")[0] in ("lmdb", "cdflib")]
    provided = ["libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libcuda.so.1",
                "libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10",
                "libcudnn.so.9", "libnccl.so.2", "ld-linux-x86-64.so.2"]
    carried = ["libglog.so.1", "libprotobuf.so.32", "libopenblas.so.0", "libcrypto.so.3",
               "libmpfr.so.6", "libboost_python312.so.1.74.0", "libpython3.12.so.1.0",
               "libgfortran.so.5", "liblmdb.so.0"]
    assert all(gpu_bundle.PROVIDED.match(name) for name in provided)
    assert not any(gpu_bundle.PROVIDED.match(name) for name in carried)


def test_gpu_bundle_embedded_python_modules_and_their_pth(tmp_path):
    import gpu_bundle
    for name in ("math", "_datetime", "_struct", "zlib", "_ssl", "_test_capi", "_tkinter",
                 "readline", "_sqlite3", "_ctypes_test", "xxlimited"):
        (tmp_path / f"{name}.cpython-312-x86_64-linux-gnu.so").write_text("")
    (tmp_path / "README.txt").write_text("")
    assert [p.name.split(".")[0] for p in gpu_bundle.embedded_modules(tmp_path)] == [
        "_datetime", "_ssl", "_struct", "math", "zlib"]
    line = gpu_bundle.embedded_python_pth("3.12.1 (main, 'x') [GCC]", Path("/b/python-dynload"))
    for version, expected in (("3.12.1 (main, 'x') [GCC]", ["/b/python-dynload", "/std"]),
                              ("3.12.3 (main) [GCC 13]", ["/std"])):
        fake_sys = Namespace(version=version, path=["/std"])
        exec(line.replace("import sys; ", ""), {"sys": fake_sys})
        assert fake_sys.path == expected


def debian_style_python():
    """/usr/bin/python3 if it is this Python's minor version with math compiled in (as Debian
    and Ubuntu build it, and as the GPU machines' Python is), else None."""
    python = Path("/usr/bin/python3")
    if not python.exists():
        return None
    probe = ("import sys; print(sys.version_info[:2] == tuple(map(int, sys.argv[1].split('.')))"
             " and 'math' in sys.builtin_module_names)")
    out = subprocess.run([str(python), "-c", probe, "%d.%d" % sys.version_info[:2]],
                         capture_output=True, text=True)
    return python if out.stdout.strip() == "True" else None


def test_embedded_python_under_a_debian_style_python(tmp_path):
    """The venv of a GPU machine's Python, reproduced with this machine's Debian python3: the
    Python that Caffe's tool embeds (this venv's, a separate build) then takes its standard
    library from Debian's, whose lib-dynload lacks the modules Debian compiles into its
    executable, and a Python layer cannot import numpy; check_embedded_python says so, and the
    bundle's .pth line (embedded_python_pth, naming this Python's own lib-dynload) mends it."""
    import sysconfig
    import caffe
    import gpu_bundle
    debian = debian_style_python()
    binary = Path(caffe.__file__).resolve().parent.parent.parent / "bin" / "caffe"
    if debian is None or not binary.exists():
        pytest.skip("needs a Debian-style /usr/bin/python3 of this minor version and the "
                    "build's caffe tool")
    venv = tmp_path / "venv"
    subprocess.run([str(debian), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    ours = next(Path(p) for p in sys.path if p.endswith("site-packages") and
                Path(p, "numpy").exists())
    (site / "park2016_caffe.pth").write_text(f"{Path(caffe.__file__).parent.parent}\n"
                                             f"{Path(__file__).resolve().parent.parent}\n")
    (site / "park2016_target.pth").write_text(f"import site; site.addsitedir({str(ours)!r})\n")
    wrapper = tmp_path / "caffe"
    wrapper.write_text(f'#!/bin/sh\nPATH="{venv}/bin:$PATH" exec "{binary}" "$@"\n')
    wrapper.chmod(0o755)
    with pytest.raises(SetupError, match="embedded Python"):
        caffe_setup.check_embedded_python(wrapper, tmp_path / "logs")
    assert "error_already_set" in (tmp_path / "logs" / "verify.log").read_text()
    (site / "park2016_embedded.pth").write_text(gpu_bundle.embedded_python_pth(
        sys.version, sysconfig.get_config_var("DESTSHARED")))
    caffe_setup.check_embedded_python(wrapper, tmp_path / "logs")


def python_seeing(tmp_path, distributions):
    """An interpreter (a wrapper of this one) whose importlib.metadata finds the given
    {name: version} distributions and no others, as a venv holding just them would."""
    site = tmp_path / "site"
    site.mkdir(parents=True)
    for name, version in distributions.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    wrapper = tmp_path / "python"
    # -S: without this interpreter's own site-packages, which may hold a CuPy of its own
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_gpu_venv_gets_the_pinned_cupy_once(tmp_path, capsys, monkeypatch):
    build = gpu_build(tmp_path)                                  # CUDA 13
    assert cuda_toolkit.CUPY[13] == "cupy-cuda13x==14.2.0"
    installs = []
    monkeypatch.setattr(caffe_setup, "run", lambda cmd, **kw: installs.append(cmd))
    # the pinned version present: nothing installed
    caffe_setup.ensure_cupy(python_seeing(tmp_path / "a", {"cupy-cuda13x": "14.2.0"}), build,
                            tmp_path / "logs")
    assert installs == [] and "cupy-cuda13x==14.2.0 present" in capsys.readouterr().out
    # another version, or none: pip installs the pin into that venv
    for have in ({"cupy-cuda13x": "13.6.0"}, {}):
        python = python_seeing(tmp_path / f"b{len(installs)}", have)
        caffe_setup.ensure_cupy(python, build, tmp_path / "logs")
        assert installs[-1][0] == str(python) and installs[-1][-1] == "cupy-cuda13x==14.2.0"
    assert len(installs) == 2


def test_cuda_major_without_a_pinned_cupy_says_so(tmp_path, capsys):
    build = cuda_toolkit.CudaBuild(toolkit=fake_toolkit(tmp_path, major=11), archs=("80",),
                                   libs=None)
    caffe_setup.ensure_cupy(tmp_path / "no-python-here", build, tmp_path / "logs")
    assert "none pinned for CUDA 11" in capsys.readouterr().out
    # every CUDA major with NVIDIA wheels has a CuPy entry, named as CuPy names its wheels
    assert set(cuda_toolkit.CUPY) == set(cuda_toolkit.WHEELS)
    for major, requirement in cuda_toolkit.CUPY.items():
        assert requirement is None or requirement.startswith(f"cupy-cuda{major}x==")
