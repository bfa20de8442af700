"""The CPU-layer tests on other kinds of x86-64 than this machine (tests/processor_kinds.py):
oneDNN's convolutions and GEMMs, the fused BatchNorm/Scale/ReLU, max pooling, the SGD update
(tests/test_caffe_cpu_layers.py) and Caffe's OpenBLAS with the core-choice probe
(tests/test_blas_kernel.py), each kind in a child pytest whose environment this test sets, so
that nothing depends on the machine's own. A kind whose instructions this processor lacks is
skipped with its reason."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CHOICES_HEADING
from tests.processor_kinds import KINDS, missing_flags

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "setup"))
import blas_kernel  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CPU_TESTS = ["tests/test_caffe_cpu_layers.py", "tests/test_blas_kernel.py"]
# pytest -q's last line: "126 passed, 1 skipped in 13.55s"
SUMMARY = re.compile(r"^\d+ (passed|failed|skipped|deselected|errors?)\b")


def reported_choices(output):
    """The lines of the child's CHOICES_HEADING section."""
    lines = output.splitlines()
    heading = next((i for i, line in enumerate(lines) if CHOICES_HEADING in line), None)
    if heading is None:
        return []
    section = []
    for line in lines[heading + 1:]:
        if line.startswith("=") or SUMMARY.match(line):
            break
        section.append(line)
    return section


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KINDS))
def test_cpu_layers_as_on_another_kind_of_processor(name, report_choice):
    kind = KINDS[name]
    missing = missing_flags(kind, blas_kernel.cpu_features()[1])
    if missing:
        pytest.skip(f"this processor lacks {' '.join(missing)}, so it cannot stand in for "
                    f"{kind.description}")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--processor-kind", name, *CPU_TESTS],
                         cwd=REPO, env=kind.environment(os.environ), capture_output=True,
                         text=True, timeout=900)
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, f"as {kind.description}:\n{out.stdout[-6000:]}{out.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary, summary
    report_choice(f"as {kind.description}: {summary.strip('= ')}")
    for line in reported_choices(out.stdout):
        if line.startswith("test_convolution_is_right"):   # the algorithm oneDNN took
            report_choice(f"  {line}")
