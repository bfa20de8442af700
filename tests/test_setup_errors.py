"""make setup's failure modes give a clear message naming the problem and the fix."""
import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "setup"))
import caffe_setup  # noqa: E402
from caffe_sources import (BuildContext, DebianSource, FetchError, SetupError,  # noqa: E402
                           built_line, run)


def fake_dsc(folder, name, digest):
    dsc = folder / f"caffe_{DebianSource.version}.dsc"
    dsc.write_text("Format: 3.0 (quilt)\nSource: caffe\nChecksums-Sha256:\n"
                   f" {digest} 5 {name}\nFiles:\n 0 5 {name}\n")
    return dsc


def test_checksum_mismatch_is_reported_and_the_bad_file_removed(tmp_path):
    downloads = tmp_path / "downloads" / "debian"
    downloads.mkdir(parents=True)
    tarball = downloads / "caffe_1.0.orig.tar.gz"
    tarball.write_bytes(b"tampered")
    fake_dsc(downloads, tarball.name, hashlib.sha256(b"hello").hexdigest())
    with pytest.raises(FetchError, match="checksum mismatch for .*caffe_1.0.orig.tar.gz"):
        DebianSource().fetch(downloads, tmp_path / "work", tmp_path / "logs")
    assert not tarball.exists()


def test_unreachable_source_says_what_to_do(tmp_path):
    # port 9 on the loopback: nothing listens, so apt fails at once as without network
    with pytest.raises(FetchError) as err:
        DebianSource(mirror="http://127.0.0.1:9/debian/").fetch(tmp_path / "downloads" / "debian", tmp_path / "work", tmp_path / "logs")
    message = str(err.value)
    assert "could not download Debian's bullseye source index from http://127.0.0.1:9" in message
    assert "Connection refused" in message
    assert "CAFFE_SOURCE=pypi" in message
    assert str(tmp_path / "logs" / "fetch.log") in message


def test_patch_that_does_not_fit_names_the_patch(tmp_path):
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "io.cpp").write_text("int a = 1;\n")
    patch = tmp_path / "01-fix.patch"
    patch.write_text("# reason: test\n--- a/src/io.cpp\n+++ b/src/io.cpp\n@@ -1 +1 @@\n"
                     "-int a = 2;\n+int a = 3;\n")
    with pytest.raises(SetupError, match=r"patch 01-fix.patch failed(.|\n)*does not fit this source"):
        caffe_setup.apply_patches(tree, [patch], tmp_path / "logs")
    assert (tree / "src" / "io.cpp").read_text() == "int a = 1;\n"  # dry run: tree untouched


def test_failed_command_shows_first_error_lines_and_log(tmp_path):
    script = "echo compiling; echo 'io.cpp:60: error: no matching function' ; exit 3"
    with pytest.raises(SetupError) as err:
        run(["sh", "-c", script], log=tmp_path / "build.log", what="compiling Caffe", hint="see log")
    message = str(err.value)
    assert "compiling Caffe failed (exit 3)" in message
    assert "io.cpp:60: error: no matching function" in message
    assert "compiling\n" not in message
    assert str(tmp_path / "build.log") in message


def test_build_progress_shows_the_time_so_far_and_left(tmp_path, capsys):
    assert built_line(25, 60) == "[ 25%] built in 1m00s, about 3m00s left"
    assert built_line(40, 125.9) == "[ 40%] built in 2m05s, about 3m08s left"
    assert built_line(3, 10) == "[  3%] built in 0m10s"        # too early to tell
    assert built_line(100, 725) == "[100%] built in 12m05s"
    script = "print('[  1%] a'); print('[  1%] b'); print('other'); print('[100%] c')"
    run([sys.executable, "-c", script], log=tmp_path / "log", what="w", progress=r"^\[")
    shown = capsys.readouterr().out.splitlines()
    assert [line.split(" built")[0] for line in shown] == ["    [  1%]", "    [100%]"]
    assert shown[1].startswith("    [100%] built in 0m0") and "left" not in shown[1]


def test_auto_falls_back_to_the_fork_saying_what_it_lacks(tmp_path, monkeypatch, capsys):
    built = []

    def build(source, ctx, entry, identity, logs):
        if source.name == "debian":
            raise FetchError("could not download Debian's bullseye source index")
        built.append(entry.name)

    monkeypatch.setattr(caffe_setup, "build_into_cache", build)
    ctx = BuildContext(python=Path("/venv/bin/python"), python_version="3.11.7",
                       python_library="/py/lib/libpython3.11.so", python_include="/py/include",
                       numpy_include="/np/include", numpy_version="2.4.6", jobs=2)
    entry = caffe_setup.ensure_caffe("auto", ctx, tmp_path / "cache", tmp_path / "logs",
                                     rebuild=False)
    assert built == [entry.name] and entry.name.startswith("pypi-")
    out = capsys.readouterr().out
    assert "could not download Debian's bullseye source index" in out
    assert "falling back to the next source: PyPI sdist brocolli-caffe==9.0.2" in out
    assert "not the speed patches" in out and "one device only" in out


def test_a_build_removes_the_staging_folders_interrupted_builds_left(tmp_path):
    cache = tmp_path / "cache"
    stale = [cache / ".staging-pypi-0123-abcd" / "build", cache / ".staging-debian-gpu-4567-ef"]
    kept = [cache / ".staging-cuda-libs-13-xy", cache / "debian-89ab"]
    for folder in stale + kept:
        folder.mkdir(parents=True)

    class Unreachable(DebianSource):
        def fetch(self, downloads, workdir, logs):
            raise FetchError("no network")

    with pytest.raises(FetchError):
        caffe_setup.build_into_cache(Unreachable(), None, cache / "debian-cdef", {},
                                     tmp_path / "logs")
    assert sorted(p.name for p in cache.iterdir()) == [".staging-cuda-libs-13-xy",
                                                       "debian-89ab"]


def test_cache_key_follows_numpy_and_python():
    def ctx(numpy_version, python_version="3.11.7"):
        return BuildContext(python=Path("/venv/bin/python"), python_version=python_version,
                            python_library="/py/lib/libpython3.11.so", python_include="/py/include",
                            numpy_include="/np/include", numpy_version=numpy_version, jobs=2)
    source = DebianSource()
    name = lambda c: caffe_setup.entry_name(source, caffe_setup.build_identity(source, c))  # noqa: E731
    assert name(ctx("2.4.6")) == name(ctx("2.4.6"))
    assert name(ctx("2.4.6")) != name(ctx("2.5.0"))
    assert name(ctx("2.4.6")) != name(ctx("2.4.6", "3.11.8"))
    assert name(ctx("2.4.6")).startswith("debian-")


def test_cache_key_follows_the_openblas_core_not_its_timings():
    """One entry per OpenBLAS core choice (blas_core.json's content): an AMD Zen 4 (OpenBLAS's
    own Cooperlake), a Zen 3 (its own Zen), an Intel where setup forces SkylakeX and one where
    OpenBLAS picks it itself each get their own build; the same choice probed again with other
    timings (a noisy machine) finds the same entry."""
    def ctx(core, default, needs, gflops):
        blas = {"library": "/usr/lib/libopenblas.so.0", "core": core, "default": default,
                "needs": needs, "tried": {default: {"core": default, "correct": True,
                                                    "sgemm_gflops": gflops}}}
        return BuildContext(python=Path("/venv/bin/python"), python_version="3.11.7",
                            python_library="/py/lib/libpython3.11.so", python_include="/py/include",
                            numpy_include="/np/include", numpy_version="2.4.6", jobs=2, blas=blas)
    source = DebianSource()
    name = lambda c: caffe_setup.entry_name(source, caffe_setup.build_identity(source, c))  # noqa: E731
    zen4 = name(ctx("Cooperlake", "Cooperlake", None, 90.0))
    zen3 = name(ctx("Zen", "Zen", None, 60.0))
    intel = name(ctx("SkylakeX", "Prescott", ["avx512bw", "avx512dq", "avx512f", "avx512vl"],
                     20.0))
    # an Intel where OpenBLAS picks SkylakeX itself: nothing forced, so another entry
    intel_own = name(ctx("SkylakeX", "SkylakeX", None, 90.0))
    assert len({zen4, zen3, intel, intel_own}) == 4
    assert name(ctx("Cooperlake", "Cooperlake", None, 71.5)) == zen4
