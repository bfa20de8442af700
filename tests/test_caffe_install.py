"""The Caffe that make setup installed: pycaffe with Python layers, the command-line tool, and
the project's modules reachable from Caffe's Python layer loader in both."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import caffe
from tests.gradcheck import layer_net
from solver.caffe_cli import caffe_binary, train_losses
from solver.smoke import smoke_run


def test_pycaffe_has_python_layers():
    assert "Python" in caffe.layer_type_list()
    assert caffe.__version__.startswith("1.0")


def test_project_module_loads_as_python_layer_in_pycaffe():
    net = layer_net("tests.toy_layers", "Square", [(2, 3)])
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    net.blobs["bottom0"].data[...] = x
    net.forward()
    np.testing.assert_array_equal(net.blobs["top0"].data, x ** 2)


def test_caffe_tool_in_venv():
    tool = caffe_binary()
    assert tool == Path(sys.prefix) / "bin" / "caffe"
    out = subprocess.run([str(tool), "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "caffe version 1.0" in out.stdout + out.stderr


def test_caffe_train_and_time_with_a_python_layer(tmp_path):
    """`caffe train` runs a generated net whose Python layer comes from the project, learns
    (the loss falls), writes the snapshot, and `caffe time` times it."""
    summary = smoke_run(tmp_path, iterations=40, batch=8,
                        python_layer=("tests.toy_layers", "ChannelScale"))
    assert [it for it, _ in summary["losses"]] == list(range(0, 45, 5))   # display + final
    assert summary["last_loss"] < 0.5 * summary["first_loss"]
    average = re.search(r"Average Forward-Backward: ([0-9.]+) ms",
                        (tmp_path / "time.log").read_text())
    assert summary["forward_backward_ms"] == float(average.group(1))
    # the Python layer's own weights (set to 1 + 0.1 c in its setup) were trained and saved
    trained = caffe.Net(str(tmp_path / "net.prototxt"), str(tmp_path / summary["snapshot"]),
                        caffe.TEST)
    weights = trained.params["python1"][0].data
    assert weights.shape == (8,)
    assert not np.allclose(weights, 1 + 0.1 * np.arange(8), atol=1e-4)


def test_train_loss_parser_on_both_log_styles():
    text = ("I1125 solver.cpp:218] Iteration 20 (97.1 iter/s, 0.05s/5 iters), loss = 0.25\n"
            "I1125 solver.cpp:237]     Train net output #0: loss = 0.25 (* 1 = 0.25 loss)\n"
            "I1125 sgd_solver.cpp:112] Iteration 20, lr = 0.01\n"
            "I1125 solver.cpp:218] Iteration 25 (97.1 iter/s, 0.05s/5 iters), loss = 1.5e-3\n"
            "I1125 solver.cpp:327] Iteration 30, loss = -nan\n")
    losses = train_losses(text)
    assert losses[:2] == [(20, 0.25), (25, 0.0015)]
    assert losses[2][0] == 30 and np.isnan(losses[2][1])
    old_style = "I1125 solver.cpp:228] Iteration 0, loss = 7\nI1125 solver.cpp:228] Iteration 0, loss = 8\n"
    assert train_losses(old_style) == [(0, 7.0)]


def test_failed_caffe_run_names_the_log(tmp_path):
    from solver.caffe_cli import CaffeError, run_caffe
    with pytest.raises(CaffeError, match=r"caffe train failed .*train\.log"):
        run_caffe(["train", f"-solver={tmp_path / 'missing.prototxt'}"], tmp_path / "train.log")


def test_failure_excerpt_leads_with_the_reason():
    from solver.caffe_cli import failure_excerpt
    stack = [f"    @     0x7f30fd07b{k:03x} caffe::Solver<>::Init()" for k in range(12)]
    python_layer = "\n".join([
        "I1127 08:16:25.686753  8778 layer_factory.hpp:77] Creating layer data",
        "Traceback (most recent call last):",
        '  File "/repo/layers/h36m_data.py", line 3, in <module>',
        "    import numpy",
        "ImportError: PyCapsule_Import could not import module \"datetime\"",
        "terminate called after throwing an instance of 'boost::python::error_already_set'",
        "*** Aborted at 1795767387 (unix time) try \"date -d @1795767387\" ***", *stack])
    lines = failure_excerpt(python_layer).splitlines()
    assert lines[0] == '  | ImportError: PyCapsule_Import could not import module "datetime"'
    assert lines[1].startswith("  | terminate called after throwing")
    assert lines[2:] == ["  | " + line for line in stack[-8:]]
    check = "F1127 08:16:25.6 8778 net.cpp:84] Check failed: top_id_vec.size() == 2 (1 vs. 2)"
    lines = failure_excerpt("\n".join(["I1127 start", check, "*** Check failure stack trace:",
                                       *stack])).splitlines()
    assert lines[0] == "  | " + check and len(lines) == 9
    assert failure_excerpt("I1127 one\nI1127 two") == "  | I1127 one\n  | I1127 two"
