"""Where Caffe's source comes from and how each source is built (used by caffe_setup.py).

Each source class has:
  name, describe      short id (also the patch folder setup/patches/<name>/) and a readable name
  identity            the exact upstream version, part of the build-cache key
  known_test_failures names of tests in python/caffe/test that the source itself breaks
  cmake_flags(ctx, prefix)   the CMake flags (prefix=None: the part that goes into the cache key)
  fetch(downloads, workdir, logs) -> tree   download (kept in `downloads`), verify, unpack
  build(tree, ctx, prefix, destdir, build_dir, logs)
      configure, compile and install so that $destdir$prefix holds bin/caffe, lib/ and
      python/caffe/ (pycaffe with _caffe.so, proto/caffe_pb2.py and Caffe's own test/ folder).
Standard library only.
"""
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path


class SetupError(Exception):
    """A failure with a message that says what went wrong and what to do."""


class FetchError(SetupError):
    """The source could not be obtained (network, mirror, checksum); another source may work."""


@dataclasses.dataclass
class BuildContext:
    python: Path          # the venv's interpreter (numpy headers, and Caffe's CMake finds it)
    python_version: str
    python_library: str   # the shared libpython of the interpreter that will import pycaffe
    python_include: str
    numpy_include: str
    numpy_version: str
    jobs: int
    cuda: object = None   # a cuda_toolkit.CudaBuild for a GPU build; None: CPU_ONLY
    blas: dict = None     # blas_kernel.choose_core's result: the OpenBLAS and its core
    extra_cmake_flags: tuple = ()   # after the source's own (setup/gpu_bundle.py)


def log(msg):
    """A progress line of make setup."""
    print(f"[setup] {msg}", flush=True)


def run(cmd, *, log, what, hint=None, env=None, cwd=None, progress=None):
    """Run `cmd` with its output appended to `log`; on failure raise SetupError naming the log.

    progress: a regex; matching output lines are echoed so long steps show they are moving
    (a compiler's "[ 42%]" lines are echoed only when the percentage changes, with the time
    so far and the time left at that pace).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(progress) if progress else None
    shown, started = None, time.monotonic()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(map(str, cmd))}\n")
        out.flush()
        try:
            proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace",
                                    env=env, cwd=cwd)
        except FileNotFoundError:
            raise SetupError(f"{what}: command not found: {cmd[0]}") from None
        for line in proc.stdout:
            out.write(line)
            if pattern and pattern.search(line):
                percent = re.match(r"\[\s*(\d+)%\]", line)
                key = percent.group(1) if percent else line
                if key != shown:
                    shown = key
                    text = (built_line(int(key), time.monotonic() - started) if percent
                            else line.rstrip())
                    print(f"    {text}", flush=True)
        code = proc.wait()
    if code != 0:
        raise SetupError(f"{what} failed (exit {code}).\n  log: {log}\n"
                         f"{indent(excerpt(log))}" + (f"\n  fix: {hint}" if hint else ""))


def built_line(percent, elapsed):
    """"[ 42%] built in 2m05s, about 2m53s left": the time left assumes the pace so far
    (CMake counts targets, not time: an estimate, given from 5 %)."""
    def clock(seconds):
        return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"
    line = f"[{percent:3d}%] built in {clock(elapsed)}"
    if 5 <= percent < 100:
        line += f", about {clock(elapsed * (100 - percent) / percent)} left"
    return line


def excerpt(log, limit=8):
    """The first compiler/CMake error lines of the last command in a log, else its last lines."""
    text = Path(log).read_text(errors="replace")
    last = text[text.rfind("\n$ ") + 1:].splitlines()[1:]
    errors = [line for line in last
              if re.search(r"error|Error|E: |W: Failed|No such|not found", line)]
    return errors[:limit] if errors else last[-limit:]


def indent(lines):
    return "\n".join("  | " + line[:200] for line in lines)


def sha256_of(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def common_cmake_flags(ctx, prefix):
    major_minor = ".".join(ctx.python_version.split(".")[:2])
    flags = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DCPU_ONLY=ON",
        "-DBLAS=Open",
        "-DBUILD_python=ON",
        "-DBUILD_python_layer=ON",
        f"-Dpython_version={major_minor}",
        "-DUSE_OPENCV=ON",
        "-DUSE_LMDB=ON",
        "-DUSE_LEVELDB=OFF",
        "-DBUILD_docs=OFF",
        "-DBUILD_matlab=OFF",
        f"-DPYTHON_LIBRARY={ctx.python_library}",
        f"-DPYTHON_INCLUDE_DIR={ctx.python_include}",
    ]
    if prefix is not None:  # paths that differ between clones stay out of the cache key
        flags += [f"-DPYTHON_EXECUTABLE={ctx.python}", f"-DCMAKE_INSTALL_PREFIX={prefix}"]
    return flags


def move_python_package(installed, from_dir, tree):
    """Normalise the install: pycaffe at python/caffe, with Caffe's own Python tests beside it
    and the fixtures they read (the draw test renders every net prototxt of models/ and
    examples/, found three folders above the test folder)."""
    target = installed / "python" / "caffe"
    if from_dir != target:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(from_dir), str(target))
    shutil.copytree(tree / "python" / "caffe" / "test", target / "test", dirs_exist_ok=True)
    for folder in ("models", "examples"):
        for prototxt in (tree / folder).rglob("*.prototxt"):
            copy = installed / prototxt.relative_to(tree)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(prototxt, copy)


class DebianSource:
    """Debian's source package caffe (bullseye): BVLC Caffe 1.0 with Debian's patches."""

    name = "debian"
    package = "caffe"
    version = "1.0.0+git20180821.99bd997-8"
    suite = "bullseye"
    describe = f"Debian source package caffe {version} ({suite})"
    identity = f"debian:{package}={version}"
    known_test_failures = []
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

    def __init__(self, mirror=None):
        self.mirror_uri = mirror

    # False: build without the speed changes (patches whose reason starts with "speed" and
    # the flags below), for the "before" figures of `make bench`
    speed = True

    def cmake_flags(self, ctx, prefix):
        flags = common_cmake_flags(ctx, prefix)
        if ctx.cuda is not None:
            flags = [f for f in flags if f != "-DCPU_ONLY=ON"] + ctx.cuda.cmake_flags()
        if self.speed:
            # -fno-trapping-math lets GCC vectorize the selects of patches 05 and 08 (it
            # changes no values, only whether floating-point exception flags may be raised
            # speculatively); OpenMP runs the loops of patch 08; OpenBLAS built for OpenMP
            # shares its threads with them and with oneDNN (patch 07)
            flags += ["-DCMAKE_CXX_FLAGS=-fno-trapping-math", "-DUSE_OPENMP=ON"]
            if ctx.blas:
                flags.append(f"-DOpenBLAS_LIB={ctx.blas['library']}")
        flags += list(ctx.extra_cmake_flags)   # later flags win
        return flags

    def blas_core(self, ctx):
        """The OpenBLAS core this build runs with (patch 09 and the venv's wrapper set it),
        or None: OpenBLAS's own choice (the build without the speed changes)."""
        return ctx.blas["core"] if self.speed and ctx.blas else None

    def mirror(self):
        """The Debian archive to fetch from: the one given, else the one this machine's apt
        already uses (no host is hard-coded here)."""
        if self.mirror_uri:
            return self.mirror_uri
        out = subprocess.run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(LABEL)"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            uri, _, label = line.partition(" ")
            if label == "Debian":
                return uri
        raise FetchError("no Debian archive in this machine's apt sources (apt-get indextargets "
                         "lists none labelled 'Debian'); run `apt-get update` first")

    def apt_options(self, apt_dir):
        """An apt configuration of our own: deb-src for bullseye, private lists and cache."""
        for sub in ("lists/partial", "cache/archives/partial", "sources.list.d"):
            (apt_dir / sub).mkdir(parents=True, exist_ok=True)
        sources = apt_dir / "sources.list"
        sources.write_text(f"deb-src [signed-by={self.keyring}] {self.mirror()} {self.suite} main\n")
        options = {
            "Dir::Etc::SourceList": sources,
            "Dir::Etc::SourceParts": apt_dir / "sources.list.d",
            "Dir::State::Lists": apt_dir / "lists",
            "Dir::Cache": apt_dir / "cache",
            "Acquire::Retries": 1,
            "Acquire::http::Timeout": 30,
        }
        if os.geteuid() == 0:
            options["APT::Sandbox::User"] = "root"  # downloads land in our own folder
        return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]

    def dsc_checksums(self, dsc):
        """{file name: sha256} from the Checksums-Sha256 field of a .dsc."""
        sums, inside = {}, False
        for line in dsc.read_text().splitlines():
            if line.startswith("Checksums-Sha256:"):
                inside = True
            elif inside and line.startswith(" "):
                digest, _size, name = line.split()
                sums[name] = digest
            elif inside:
                break
        if not sums:
            raise FetchError(f"{dsc} has no Checksums-Sha256 field; delete it and rerun")
        return sums

    def fetch(self, downloads, workdir, logs):
        dsc = self.download(downloads, logs)
        tree = workdir / "caffe"
        workdir.mkdir(parents=True, exist_ok=True)
        # dpkg-source unpacks the upstream tarball and applies Debian's own patch series.
        run(["dpkg-source", "-x", str(dsc), str(tree)], log=logs / "fetch.log",
            what=f"dpkg-source -x {dsc.name}")
        return tree

    def download(self, downloads, logs):
        """The package's .dsc in `downloads`, with its files downloaded (kept) and verified."""
        downloads.mkdir(parents=True, exist_ok=True)
        dsc = downloads / f"{self.package}_{self.version}.dsc"
        if not dsc.exists() or not all((downloads / n).exists() for n in self.dsc_checksums(dsc)):
            options = self.apt_options(downloads.parent / "apt")
            hint = ("the Debian mirror may have moved bullseye to its archive, or there is no "
                    "network; use `make setup CAFFE_SOURCE=pypi`")
            try:
                run(["apt-get", *options, "update"], log=logs / "fetch.log",
                    what=f"apt-get update of the {self.suite} deb-src index", hint=hint)
                # apt-get update only warns (exit 0) when an index cannot be fetched
                lists = downloads.parent / "apt" / "lists"
                if not list(lists.glob(f"*_{self.suite}_main_source_Sources*")):
                    raise FetchError(f"could not download Debian's {self.suite} source index "
                                     f"from {self.mirror()}.\n  log: {logs / 'fetch.log'}\n"
                                     f"{indent(excerpt(logs / 'fetch.log'))}\n  fix: {hint}")
                run(["apt-get", *options, "source", "--download-only",
                     f"{self.package}={self.version}"], cwd=downloads, log=logs / "fetch.log",
                    what=f"apt-get source {self.package}={self.version}", hint=hint)
            except FetchError:
                raise
            except SetupError as err:
                raise FetchError(str(err)) from None
        for name, digest in self.dsc_checksums(dsc).items():
            actual = sha256_of(downloads / name)
            if actual != digest:
                (downloads / name).unlink()
                raise FetchError(f"checksum mismatch for {downloads / name}:\n"
                                 f"  sha256 {actual}, but {dsc.name} says {digest}.\n"
                                 "  The file was removed; rerun `make setup` to download it again.")
        return dsc

    def build(self, tree, ctx, prefix, destdir, build_dir, logs):
        build_log = logs / "build.log"
        run(["cmake", "-S", tree, "-B", build_dir, *self.cmake_flags(ctx, prefix)],
            log=build_log, what="CMake configure of Caffe",
            hint="a build dependency is missing or too new; the log's CMake error names it")
        run(["cmake", "--build", build_dir, "--", f"-j{ctx.jobs}"], log=build_log,
            what="compiling Caffe", progress=r"^\[\s*\d+%\]",
            hint="see the first error in the log; a library update may need a new patch in "
                 f"setup/patches/{self.name}/")
        run(["cmake", "--install", build_dir], env=dict(os.environ, DESTDIR=str(destdir)),
            log=build_log, what="installing Caffe into the cache")
        installed = Path(str(destdir) + str(prefix))
        # Debian's packaging patch installs the module under lib/python3/dist-packages.
        move_python_package(installed, installed / "lib/python3/dist-packages/caffe", tree)


class PypiSource:
    """The PyPI sdist brocolli-caffe 9.0.2, a BVLC-derived fork, driven through its CMake.

    Its setup.py wants conda and its CMake hard-codes conda paths (ANACONDA_HOME), ignores the
    USE_* options (so the defines go into CXXFLAGS), builds one library _caffe.so holding both
    libcaffe and pycaffe, and skips tools/: the `caffe` tool is compiled here and linked against
    the installed _caffe.so, so that the tool and pycaffe share one copy of Caffe.
    """

    name = "pypi"
    package = "brocolli-caffe"
    version = "9.0.2"
    sha256 = "c6410cc60bdd6db685d441b66be7df05410f8850ac88d6b75d48ef9b2315c08a"
    describe = f"PyPI sdist {package}=={version} (BVLC-derived fork)"
    identity = f"pypi:{package}=={version}"
    # Tests of python/caffe/test that the fork itself broke: its SGDSolver has no apply_update.
    known_test_failures = ["test_apply_update"]
    # what a user falling back to it gives up (docs/INSTALL.md, "Sources and the fallback")
    limits = ("it has the fault fixes but not the speed patches (training steps several "
              "times slower) and trains on one device only")
    libdir = "/usr/lib/x86_64-linux-gnu"

    def blas_core(self, ctx):
        """None: the fork has none of the speed patches; OpenBLAS chooses its own core."""
        return None

    def python_prefix(self, ctx):
        return str(Path(ctx.python_library).parent.parent)

    def cmake_flags(self, ctx, prefix, tree="<tree>", build="<build>"):
        """prefix=None: the cache-key form, with the per-build paths as placeholders."""
        numpy_include = ctx.numpy_include if prefix is not None else "<numpy include>"
        major_minor = ".".join(ctx.python_version.split(".")[:2])
        defines = "-DWITH_PYTHON_LAYER -DUSE_LMDB -DUSE_OPENCV"
        includes = f"-I/usr/include/opencv4 -I/usr/include/hdf5/serial -I{tree}/src"  # src: gtest
        return [
            "-DCMAKE_BUILD_TYPE=Release",
            "-DCMAKE_SKIP_RPATH=ON",      # its RUNPATH would hold empty entries (= the cwd)
            f"-DANACONDA_HOME={self.python_prefix(ctx)}",
            f"-DPYTHON_VERSION=python{major_minor}",
            f"-DNUMPY_INCLUDE_DIR={numpy_include}",
            f"-DCMAKE_CXX_FLAGS={defines} {includes}",
            f"-DCMAKE_SHARED_LINKER_FLAGS=-L{self.libdir}/hdf5/serial -L{build}/private-lib",
            "-DCMAKE_CXX_STANDARD_LIBRARIES=-llmdb -lgflags -lopencv_core -lopencv_imgproc "
            "-lopencv_imgcodecs -lopencv_highgui -lopencv_videoio",
        ]

    def fetch(self, downloads, workdir, logs):
        downloads.mkdir(parents=True, exist_ok=True)
        sdist = downloads / f"{self.package}-{self.version}.tar.gz"
        if not sdist.exists():
            try:
                run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                     "--disable-pip-version-check", f"{self.package}=={self.version}",
                     "-d", str(downloads)], log=logs / "fetch.log",
                    what=f"pip download {self.package}=={self.version}",
                    hint="check access to PyPI")
            except SetupError as err:
                raise FetchError(str(err)) from None
        actual = sha256_of(sdist)
        if actual != self.sha256:
            sdist.unlink()
            raise FetchError(f"checksum mismatch for {sdist}:\n  sha256 {actual}, expected "
                             f"{self.sha256}.\n  The file was removed; rerun `make setup`.")
        workdir.mkdir(parents=True, exist_ok=True)
        run(["tar", "-xzf", str(sdist), "-C", str(workdir)], log=logs / "fetch.log",
            what=f"unpacking {sdist.name}")
        return workdir / f"{self.package}-{self.version}"

    def build(self, tree, ctx, prefix, destdir, build_dir, logs):
        build_log = logs / "build.log"
        private = build_dir / "private-lib"   # the fork links -lboost_python; Debian names it per version
        private.mkdir(parents=True, exist_ok=True)
        major_minor = "".join(ctx.python_version.split(".")[:2])
        boost_python = Path(self.libdir) / f"libboost_python{major_minor}.so"
        if not boost_python.exists():
            raise SetupError(f"{boost_python} is missing; fix: apt-get install libboost-python-dev")
        (private / "libboost_python.so").unlink(missing_ok=True)
        (private / "libboost_python.so").symlink_to(boost_python)
        run(["cmake", "-S", tree, "-B", build_dir,
             *self.cmake_flags(ctx, prefix, tree=tree, build=build_dir)],
            log=build_log, what="CMake configure of the brocolli-caffe fork")
        run(["cmake", "--build", build_dir, "--", f"-j{ctx.jobs}"], log=build_log,
            what="compiling the brocolli-caffe fork", progress=r"^\[\s*\d+%\]",
            hint=f"see the first error in the log; a fix goes into setup/patches/{self.name}/")
        installed = Path(str(destdir) + str(prefix))
        package = installed / "python" / "caffe"
        shutil.copytree(tree / "python" / "caffe", package, symlinks=False,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.cpp", "_caffe.so"))
        shutil.copy2(build_dir / "lib" / "_caffe.so", package / "_caffe.so")
        move_python_package(installed, package, tree)
        (installed / "bin").mkdir(parents=True, exist_ok=True)
        python_prefix = self.python_prefix(ctx)
        # the tool needs _caffe.so by its soname from the installed package folder: the same
        # file pycaffe loads, so Python layers run in the tool's own copy of Caffe
        run(["c++", "-std=c++14", "-O3", "-DNDEBUG", "-fPIC", "-DCAFFE_VERSION=1.0.0",
             "-DCPU_ONLY=1", "-DWITH_PYTHON_LAYER", "-DUSE_LMDB", "-DUSE_OPENCV",
             f"-I{build_dir}/include", f"-I{build_dir}", f"-I{tree}/include",
             f"-I{ctx.python_include}", f"-I{ctx.numpy_include}",
             "-I/usr/include/opencv4", "-I/usr/include/hdf5/serial",
             str(tree / "tools" / "caffe.cpp"), "-o", str(installed / "bin" / "caffe"),
             f"-L{package}", "-l:_caffe.so", f"-L{python_prefix}/lib", f"-lpython{ctx.python_version.rsplit('.', 1)[0]}",
             f"-L{private}", "-lboost_python", "-lboost_system", "-lboost_filesystem",
             "-lglog", "-lgflags", "-lprotobuf", "-lpthread",
             f"-Wl,-rpath,{prefix}/python/caffe:{python_prefix}/lib"],
            log=build_log, what="compiling the caffe command-line tool of the fork")


SOURCES = {"debian": DebianSource, "pypi": PypiSource}
