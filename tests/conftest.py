"""pytest setup and shared fixtures: quiet Caffe's glog output (set before any test imports
caffe); --caffe-gpu N, which makes the tests' nets in GPU mode on GPU N (make gpu-check runs
the Python layers' gradient checks so); the `slow` marker of the end-to-end tests (`make
test` runs them all; `pytest -m "not slow"` leaves them out while working); the tiny dataset
of the training tests; the synthetic dataset's BVH files; --processor-kind NAME, which runs the
tests as on another kind of x86-64 (tests/processor_kinds.py); and `report_choice`, for what a
library chose on this machine, which tests report but do not assert."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processor_kinds import STEERING_PREFIXES

os.environ.setdefault("GLOG_minloglevel", "2")
# Instants per command of the kill tests in `make test` (tests/test_kill.py).
KILL_POINTS = 3


def pytest_addoption(parser):
    parser.addoption("--caffe-gpu", type=int, default=None, metavar="N",
                     help="run Caffe in GPU mode on GPU N (needs the GPU build and a GPU)")
    parser.addoption("--kill-points", type=int, default=KILL_POINTS, metavar="N",
                     help="instants per command at which tests/test_kill.py kills it "
                          f"(default {KILL_POINTS}; `make fault-sweep` takes more)")
    parser.addoption("--processor-kind", default=None, metavar="NAME",
                     help="limit oneDNN, OpenBLAS and OpenMP as on another kind of processor "
                          "(tests/processor_kinds.py; tests/test_processor_kinds.py runs the "
                          "CPU-layer tests so, once per kind)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end test that trains or builds "
                            "(seconds to a minute); `make test` runs them")
    config.stash[CHOICES] = []
    kind = config.getoption("--processor-kind")
    if kind is not None:
        as_processor_kind(kind)
    gpu = config.getoption("--caffe-gpu")
    if gpu is not None:
        from solver.devices import use_device
        use_device(gpu)


def as_processor_kind(name):
    """Set this process up as tests/processor_kinds.py's kind `name`, before any test imports
    caffe: the libraries' limits in the environment, Caffe's OpenBLAS loaded on the kind's core
    (checked)."""
    from benchmarks.speed import caffe_library
    from tests.processor_kinds import KINDS, load_openblas_on_core, missing_flags
    from blas_kernel import cpu_features   # setup/, put on the path by processor_kinds
    if name not in KINDS:
        raise pytest.UsageError(f"--processor-kind {name}: not one of {', '.join(KINDS)}")
    kind = KINDS[name]
    missing = missing_flags(kind, cpu_features()[1])
    if missing:
        raise pytest.UsageError(f"--processor-kind {name}: this processor lacks "
                                f"{' '.join(missing)}")
    for key in list(os.environ):
        if key.startswith(STEERING_PREFIXES):
            del os.environ[key]
    os.environ.update(kind.environment({}))
    core = load_openblas_on_core(caffe_library("libopenblas"), kind.openblas_core)
    if core.lower() != kind.openblas_core.lower():
        raise pytest.UsageError(f"--processor-kind {name}: OpenBLAS runs {core}, not "
                                f"{kind.openblas_core}")


@pytest.fixture(scope="session")
def processor_kind(request):
    """The tests/processor_kinds.py kind these tests run as, or None (this machine as it is)."""
    from tests.processor_kinds import KINDS
    name = request.config.getoption("--processor-kind")
    return None if name is None else KINDS[name]


# what libraries chose on this machine, reported after the tests (pytest_terminal_summary)
CHOICES = pytest.StashKey[list]()
CHOICES_HEADING = "choices this machine's libraries made (reported, not asserted)"


@pytest.fixture
def report_choice(request):
    """report_choice(text): a line for the summary after the tests, under CHOICES_HEADING."""
    return lambda text: request.config.stash[CHOICES].append(f"{request.node.name}: {text}")


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(CHOICES, [])
    if lines:
        terminalreporter.section(CHOICES_HEADING)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def kill_points(request):
    return request.config.getoption("--kill-points")


@pytest.fixture(scope="session")
def lmdb_dir(tmp_path_factory):
    """The tiny dataset folder of tests/tiny_dataset.py, written once per session (tests copy
    it before changing anything in it)."""
    from tests.tiny_dataset import write_tiny_dataset
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny") / "lmdb")


# ---------------------------------------------------- shared by the synthetic dataset's tests

REPOSITORY = Path(__file__).resolve().parent.parent


class BvhFiles:
    """Small BVH files written by the tests into one folder. A hierarchy is a tree of
    (name, offset, children) nodes, 'End Site' nodes included; a frame is one row of channel
    values."""
    ROOT_CHANNELS = "Xposition Yposition Zposition Zrotation Yrotation Xrotation"
    JOINT_CHANNELS = "Zrotation Yrotation Xrotation"

    def __init__(self, folder):
        self.folder = Path(folder)

    def write(self, text, name="motion.bvh"):
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    @staticmethod
    def cmu_skeleton():
        """A CMU-style hierarchy (offsets in cm, left is +x, the figure faces +z): standing
        height 169 (toe tips at 0, head top at 169) when the root is at y = 95."""
        left_leg, left_arm = _cmu_side("Left", "L", 1)
        right_leg, right_arm = _cmu_side("Right", "R", -1)
        spine = ("LowerBack", (0, 0, 0), [
            ("Spine", (0, 15, 0), [
                ("Spine1", (0, 25, 0), [
                    ("Neck", (0, 0, 0), [
                        ("Neck1", (0, 8, 0), [
                            ("Head", (0, 8, 0), [("End Site", (0, 18, 0), [])])])]),
                    left_arm, right_arm])])])
        return ("Hips", (0, 0, 0), [left_leg, right_leg, spine])

    @staticmethod
    def joint_order(node):
        """Joints with channels, in file order."""
        name, _, children = node
        if name == "End Site":
            return []
        return [name] + [n for child in children for n in BvhFiles.joint_order(child)]

    @staticmethod
    def frame_row(order, root_position=(0, 95, 0), angles=None):
        """One frame's values: root position, then (Z, Y, X) degrees per joint (zero unless
        given in `angles` as {joint: (z, y, x)})."""
        angles = angles or {}
        values = list(root_position)
        for name in order:
            values += list(angles.get(name, (0, 0, 0)))
        return values

    @staticmethod
    def text(node, rows, frame_time, root_channels=ROOT_CHANNELS,
             joint_channels=JOINT_CHANNELS):
        """A whole BVH file: the hierarchy of `node`, then `rows` of values."""
        lines = ["HIERARCHY"] + _hierarchy_lines(node, root_channels, joint_channels)
        lines += ["MOTION", f"Frames: {len(rows)}", f"Frame Time: {frame_time}"]
        lines += [" ".join(f"{v:g}" for v in row) for row in rows]
        return "\n".join(lines) + "\n"


def _cmu_side(prefix, letter, sign):
    """One side's leg and arm of BvhFiles.cmu_skeleton."""
    x = sign
    leg = (f"{letter}HipJoint", (0, 0, 0), [
        (f"{prefix}UpLeg", (10 * x, -5, 0), [
            (f"{prefix}Leg", (0, -42, 0), [
                (f"{prefix}Foot", (0, -42, 0), [
                    (f"{prefix}ToeBase", (0, -6, 12), [("End Site", (0, 0, 5), [])])])])])])
    arm = (f"{prefix}Shoulder", (0, 0, 0), [
        (f"{prefix}Arm", (15 * x, 5, 0), [
            (f"{prefix}ForeArm", (28 * x, 0, 0), [
                (f"{prefix}Hand", (25 * x, 0, 0), [
                    (f"{prefix}FingerBase", (4 * x, 0, 0), [
                        (f"{prefix}HandIndex1", (4 * x, 0, 0), [("End Site", (3 * x, 0, 0), [])])]),
                    (f"{letter}Thumb", (0, 0, 0), [("End Site", (3 * x, 0, 3), [])])])])])])
    return leg, arm


def _hierarchy_lines(node, root_channels, joint_channels, depth=0):
    """BVH HIERARCHY lines of a (name, offset, children) tree."""
    name, offset, children = node
    pad = "  " * depth
    if name == "End Site":
        head, channels = "End Site", None
    elif depth == 0:
        head, channels = f"ROOT {name}", root_channels
    else:
        head, channels = f"JOINT {name}", joint_channels
    lines = [pad + head, pad + "{", f"{pad}  OFFSET {' '.join(str(v) for v in offset)}"]
    if channels:
        lines.append(f"{pad}  CHANNELS {len(channels.split())} {channels}")
    for child in children:
        lines += _hierarchy_lines(child, root_channels, joint_channels, depth + 1)
    lines.append(pad + "}")
    return lines


@pytest.fixture
def bvh_files(tmp_path):
    """BvhFiles writing into the test's tmp_path."""
    return BvhFiles(tmp_path)


@pytest.fixture
def repr_in_fresh_process():
    """repr() of an expression evaluated in a new Python process whose string hashes are
    salted differently (PYTHONHASHSEED): for values that must not depend on the process."""
    def evaluate(imports, expression):
        code = f"{imports}\nprint(repr({expression}))"
        salt = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"   # not this process's
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                cwd=REPOSITORY, env={**os.environ, "PYTHONHASHSEED": salt},
                                check=True)
        return result.stdout.strip()
    return evaluate
