"""Where Caffe's source comes from and how each source is built (used by caffe_setup.py).

Each source class has:
  name, describe      short id (also the patch folder setup/patches/<name>/) and a readable name
  identity            the exact upstream version, part of the build-cache key
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


def run(cmd, *, log, what, hint=None, env=None, cwd=None, progress=None):
    """Run `cmd` with its output appended to `log`; on failure raise SetupError naming the log.

    progress: a regex; matching output lines are echoed so long steps show they are moving
    (a compiler's "[ 42%]" lines are echoed only when the percentage changes).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(progress) if progress else None
    shown = None
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
                    print(f"    {percent.group(0) + ' built' if percent else line.rstrip()}",
                          flush=True)
        code = proc.wait()
    if code != 0:
        raise SetupError(f"{what} failed (exit {code}).\n  log: {log}\n"
                         f"{indent(excerpt(log))}" + (f"\n  fix: {hint}" if hint else ""))


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
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

    def cmake_flags(self, ctx, prefix):
        return common_cmake_flags(ctx, prefix)

    def mirror(self):
        """The Debian archive this machine's apt already uses: no host is hard-coded here."""
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
        tree = workdir / "caffe"
        workdir.mkdir(parents=True, exist_ok=True)
        # dpkg-source unpacks the upstream tarball and applies Debian's own patch series.
        run(["dpkg-source", "-x", str(dsc), str(tree)], log=logs / "fetch.log",
            what=f"dpkg-source -x {dsc.name}")
        return tree

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


SOURCES = {"debian": DebianSource}
