"""The Makefile: its commands with paths that hold spaces (each path reaches its Python
command as one argument; `make -n` prints the commands without running them), `make help`
listing every variable a user may set with its default, and what `make clean` removes."""
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def planned(target, **variables):
    """The argument lists of the Python commands `make target` would run (its prerequisites
    setup and lmdb taken as up to date)."""
    assignments = [f"{name}={value}" for name, value in variables.items()]
    prerequisites = [option for name in ("setup", "lmdb") if name != target
                     for option in ("-o", name)]
    done = subprocess.run(["make", "-n", "--no-print-directory", *prerequisites, target,
                           *assignments], cwd=REPO, capture_output=True, text=True, check=True)
    commands = done.stdout.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in commands if ".venv/bin/python" in line]


def argument(commands, script, flag):
    """The value after `flag` in the command that runs `script`."""
    for words in commands:
        if any(word.endswith(script) for word in words) and flag in words:
            return words[words.index(flag) + 1]
    raise AssertionError(f"no {script} {flag} in {commands}")


def test_paths_with_spaces_reach_each_command_whole():
    root, run = "/data/Human 3.6M/raw copy", "runs/my run"
    lmdb = planned("lmdb", H36M_ROOT=root, LMDB_FLAGS="--force")
    assert argument(lmdb, "data_prep.make_lmdb", "--root") == root
    assert argument(lmdb, "data_prep.make_lmdb", "--out") == "data/lmdb/raw copy"
    for target, script in (("train", "tools/train.py"), ("solver", "tools/make_solver.py")):
        commands = planned(target, H36M_ROOT=root, RUN=run)
        assert argument(commands, script, "--lmdb") == "data/lmdb/raw copy"
        assert argument(commands, script, "--run") == run
    evaluate = planned("evaluate", RUN=run)
    assert argument(evaluate, "tools/evaluate.py", "--run") == run
    assert not any("--lmdb" in words for words in evaluate), "the run's own dataset by default"
    moved = "/mnt/lmdb copy/synth-h36m"
    assert argument(planned("evaluate", RUN=run, LMDB_DIR=moved), "tools/evaluate.py",
                    "--lmdb") == moved
    assert argument(planned("report", RUN=run), "tools/report.py", "--run") == run
    synth = planned("synth", SYNTH_ROOT="data/my synth", SYNTH_FLAGS="--force")
    assert argument(synth, "data_prep.make_synth", "--out") == "data/my synth"


def test_several_actions_stay_several_arguments():
    commands = planned("lmdb", ACTIONS="Eating Walking", LMDB_FLAGS="--force")
    words = next(w for w in commands if "data_prep.make_lmdb" in w)
    assert words[words.index("--actions") + 1:words.index("--actions") + 3] == ["Eating", "Walking"]
    assert argument(commands, "data_prep.make_lmdb", "--out") == "data/lmdb/synth-h36m-Eating-Walking"


def dry_run(target, env=None, **variables):
    """What `make -n target` prints, the makes a target starts itself included (make -n runs
    the lines that name $(MAKE)); SYNTH_ROOT and LMDB_DIR where nothing is, so that lmdb
    starts its make of synth."""
    return subprocess.run(["make", "-n", "--no-print-directory", target,
                           "SYNTH_ROOT=/nonexistent/synth", "LMDB_DIR=/nonexistent/lmdb",
                           *(f"{name}={value}" for name, value in variables.items())],
                          cwd=REPO, capture_output=True, text=True, check=True, env=env).stdout


def test_setup_runs_once_whatever_makes_a_target_starts():
    for target in ("setup", "lmdb", "demo", "ablation"):
        printed = dry_run(target)
        assert printed.count("setup/caffe_setup.py") == 1, target
        if target != "setup":   # lmdb's own make of synth ran, and ran no setup
            assert "data_prep.make_synth --out \"/nonexistent/synth\"" in printed, target
    assert "setup/caffe_setup.py" not in dry_run("setup", SETUP_DONE=1)
    # a variable a machine happens to set in the environment skips nothing
    assert dry_run("setup", env={**os.environ, "SETUP_DONE": "1"}).count(
        "setup/caffe_setup.py") == 1


def user_variables():
    """{name: default as written} of every variable the Makefile defines with ?=."""
    found = {}
    for line in (REPO / "Makefile").read_text().splitlines():
        match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*\?=\s*(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def test_help_lists_every_variable_with_its_default_and_what_it_is():
    shown = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    lines = {line.split()[0]: line for line in shown.splitlines() if line.strip()}
    variables = user_variables()
    assert {"H36M_ROOT", "LMDB_DIR", "RUN", "GPUS", "SEEDS", "TORCH_WHEELS"} <= set(variables)
    for name, default in variables.items():
        assert name in lines, f"make help does not list {name}"
        description = lines[name].removeprefix(name).strip()
        assert description.endswith(f"[{default}]"), (name, default, lines[name])
        assert len(description) > len(f"[{default}]") + 10, f"{name} has no help text"


def test_clean_removes_the_venv_and_build_and_says_so(tmp_path):
    """In a copy of the Makefile: .venv and build/ (the GPU bundle's files included) go, each
    named; data/ and runs/ stay; a second clean says there was nothing to remove."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    for folder in (".venv/bin", "build/setup-logs", "build/gpu-bundle", "data", "runs"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "build" / "gpu-bundle.tar.xz").write_bytes(b"")

    def clean():
        return subprocess.run(["make", "--no-print-directory", "clean"], cwd=tmp_path,
                              capture_output=True, text=True, check=True).stdout.splitlines()

    removed = clean()
    assert removed[0] == "removed .venv" and removed[-1] == "removed build"
    assert sorted(removed[1:-1]) == ["removed build/gpu-bundle", "removed build/gpu-bundle.tar.xz",
                                     "removed build/setup-logs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "data", "runs"]
    assert clean() == ["nothing to remove: no .venv, no build/"]
