"""Training on GPUs, the parts that need no GPU: the device checks and their messages, the
per-GPU batch of the nets, the multi-GPU launcher's single-process path (the same worker code,
without NCCL) against `caffe train`, and its argument handling and errors."""
import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

import caffe
from config import PAPER, schedule_config
from prototxt.pose_net import make_net
from solver import devices
from solver.devices import DeviceError, check_gpus, parse_gpus
from solver.caffe_cli import CaffeError, train_losses
from solver.run_folder import prepare_run
from solver.training import main as worker_main, rank_log, run_processes, run_solver
from tests.tiny_dataset import TINY, write_tiny_dataset
from tools.train import main as train_main


@pytest.fixture(scope="module")
def lmdb_dir(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny") / "lmdb")


@pytest.mark.parametrize("text, gpus", [("", ()), (None, ()), ("0", (0,)), ("0,1,3", (0, 1, 3)),
                                        (" 2 ", (2,))])
def test_parse_gpus(text, gpus):
    assert parse_gpus(text) == gpus


@pytest.mark.parametrize("text, message", [("a", "separated by commas"), ("0,,1", "commas"),
                                           ("0,0", "distinct"), ("-1", "non-negative")])
def test_parse_gpus_rejects(text, message):
    with pytest.raises(DeviceError, match=message):
        parse_gpus(text)


def expected_device_message(gpu):
    """What check_gpus says about `gpu` on this build and machine."""
    if not devices.is_gpu_build():
        return "CPU-only build(.|\n)*make setup CAFFE_DEVICE=gpu"
    if caffe.cuda_device_count() == 0:
        return "no CUDA device is visible(.|\n)*without --gpus"
    return f"there is no GPU {gpu}; CUDA sees"


def test_check_gpus_says_what_is_wrong_and_what_to_do():
    check_gpus(())   # the CPU is always there
    with pytest.raises(DeviceError, match=expected_device_message(99)):
        check_gpus((0, 99) if devices.device_count() else (99,))


def test_the_build_knows_what_it_is():
    info = devices.build_info()
    assert info.get("device", "cpu") in ("cpu", "gpu")
    assert devices.is_gpu_build() == (info.get("device") == "gpu")
    if devices.is_gpu_build():
        assert caffe.has_nccl()
        assert caffe.cuda_device_count() >= 0


@pytest.mark.skipif(not devices.is_gpu_build(), reason="device_query of the GPU build")
def test_device_query_without_a_gpu_ends_with_a_message(tmp_path):
    if caffe.cuda_device_count():
        pytest.skip("this machine has a GPU")
    from solver.caffe_cli import caffe_binary
    solver = tmp_path / "solver.prototxt"   # read before the GPUs are; its net is not
    solver.write_text('train_net: "net.prototxt"\n')
    for args in (["device_query"], ["device_query", "-gpu", "0"],
                 ["train", f"-solver={solver}", "-gpu", "0"]):
        out = subprocess.run([str(caffe_binary()), *args], capture_output=True, text=True)
        assert out.returncode == 1, args
        assert "caffe: no CUDA device is available" in out.stderr
        assert "Check failure stack trace" not in out.stderr


def test_train_nets_split_the_update_batch_over_the_gpus():
    cfg = PAPER   # batch 128, the paper's
    for gpus, batch in ((1, 128), (2, 64), (4, 32), (8, 16)):
        proto = make_net(cfg, "full", "train", gpus=gpus).to_proto()
        assert [layer.dummy_data_param.shape[0].dim[0] for layer in proto.layer
                if layer.type == "DummyData"] == [batch] * 3
    test = make_net(cfg, "full", "test", gpus=4).to_proto()
    assert test.layer[0].dummy_data_param.shape[0].dim[0] == 128   # one GPU tests
    with pytest.raises(ValueError, match="does not split over 3 GPUs"):
        make_net(cfg, "full", "train", gpus=3)


def test_lmdb_train_net_carries_the_loader_settings(lmdb_dir):
    cfg = schedule_config("paper", overrides=["loader_workers=3", "loader_processes=false",
                                              "batch_size=8"])
    proto = make_net(cfg, "full", "train", data=str(lmdb_dir), gpus=2).to_proto()
    params = json.loads(proto.layer[0].python_param.param_str)
    assert params["batch_size"] == 4
    assert (params["workers"], params["processes"], params["prefetch"]) == (3, False, 4)


def test_gpus_refused_before_anything_is_written(lmdb_dir, tmp_path, capsys):
    run = tmp_path / "run"
    code = train_main(["--lmdb", str(lmdb_dir), "--run", str(run), "--gpus", "0",
                       "--set", *TINY])
    assert code == 1
    assert not run.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(expected_device_message(0), err)
    with pytest.raises(SystemExit) as stop:
        train_main(["--lmdb", str(lmdb_dir), "--run", str(run), "--gpus", "zero"])
    assert stop.value.code == 2
    assert "separated by commas" in capsys.readouterr().err


def test_evaluate_and_predict_refuse_an_unusable_gpu(tmp_path, capsys):
    from tools.evaluate import main as evaluate_main
    from tools.predict import main as predict_main
    assert evaluate_main(["--run", str(tmp_path), "--gpu", "7"]) == 1
    assert re.search(expected_device_message(7), capsys.readouterr().err)
    image = tmp_path / "crop.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    assert predict_main([str(image), "--run", str(tmp_path), "--gpu", "7"]) == 1
    assert re.search(expected_device_message(7), capsys.readouterr().err)


def test_several_gpus_are_checked_before_any_process_starts(tmp_path):
    with pytest.raises(DeviceError):
        run_solver(tmp_path / "solver.prototxt", tmp_path / "train.log", gpus=(0, 1))
    assert not (tmp_path / "train.log").exists()


def solver_copy(run, prefix, max_iter):
    """A copy of the run's solver that snapshots to run/<prefix>/iter and ends at max_iter."""
    text = (run / "solver.prototxt").read_text()
    path = run / f"solver_{prefix}_{max_iter}.prototxt"
    (run / prefix).mkdir(exist_ok=True)
    text = text.replace(str(run / "snapshots" / "iter"), str(run / prefix / "iter"))
    path.write_text(re.sub(r"max_iter: \d+", f"max_iter: {max_iter}", text))
    return path


@pytest.mark.slow
def test_single_process_path_trains_as_caffe_train(lmdb_dir, tmp_path):
    """The launcher's worker (pycaffe Solver, solver count 1, CPU) and `caffe train` on the
    same solver: the same loss at every iteration and the same weights at the end."""
    run = tmp_path / "run"
    # worker processes feed the data layer, also inside `caffe train`'s embedded Python
    cfg = schedule_config("paper", overrides=TINY + ["loader_processes=true"])
    prepare_run(run, cfg, "full", lmdb_dir)
    run_solver(solver_copy(run, "cli", 5), run / "cli.log")
    run_processes(solver_copy(run, "worker", 5), run / "worker.log", gpus=())
    cli = train_losses((run / "cli.log").read_text())
    worker = train_losses((run / "worker.log").read_text())
    assert [it for it, _ in worker] == [0, 1, 2, 3, 4, 5]
    assert worker == cli
    a = caffe.Net(str(run / "deploy.prototxt"), str(run / "cli" / "iter_iter_5.caffemodel"),
                  caffe.TEST)
    b = caffe.Net(str(run / "deploy.prototxt"), str(run / "worker" / "iter_iter_5.caffemodel"),
                  caffe.TEST)
    for name in a.params:
        for blob_a, blob_b in zip(a.params[name], b.params[name]):
            np.testing.assert_array_equal(blob_a.data, blob_b.data)
    assert (run / "worker" / "iter_iter_5.solverstate").exists()
    # a resume through the worker continues the iteration count and lambda_2D's switch
    run_processes(solver_copy(run, "worker", 10), run / "worker2.log", gpus=(),
                  snapshot=run / "worker" / "iter_iter_5.solverstate")
    resumed = (run / "worker2.log").read_text()
    assert [it for it, _ in train_losses(resumed)] == [5, 6, 7, 8, 9, 10]
    assert "lambda_2D = 0.01" in resumed and "lambda_2D = 0.1" not in resumed


def test_a_failing_rank_names_its_log(tmp_path):
    with pytest.raises(CaffeError, match=r"training rank 0 failed .*log: .*train\.log"):
        run_processes(tmp_path / "missing.prototxt", tmp_path / "train.log", gpus=())


def test_rank_logs_sit_beside_the_run_log(tmp_path):
    log = tmp_path / "logs" / "train.log"
    assert rank_log(log, 0) == log
    assert rank_log(log, 3) == tmp_path / "logs" / "train.rank3.log"


@pytest.mark.parametrize("args, message", [
    (["--rank", "2", "--gpus", "0,1", "--uid", "00"], "not one of 2 ranks"),
    (["--rank", "0", "--gpus", "0,1"], "need the launcher's --uid"),
    (["--rank", "1"], "not one of 1 ranks"),
])
def test_worker_arguments_are_checked(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        worker_main(["--solver", "s.prototxt", *args])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_worker_help_runs():
    out = subprocess.run([sys.executable, "-m", "solver.training", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "--uid" in out.stdout


def test_gpu_check_without_a_gpu_says_so(capsys):
    if devices.device_count():
        pytest.skip("this machine has a GPU: make gpu-check runs for real")
    from tools.gpu_check import main as gpu_check_main
    assert gpu_check_main(["--gpu", "0"]) == 1
    err = capsys.readouterr().err
    assert re.search("gpu-check: GPU 0: (.|\n)*" + expected_device_message(0), err)
    assert "Traceback" not in err


def test_gpu_check_compares_arrays_by_their_scale():
    from benchmarks.gpu_check import relative_error
    reference = np.array([[1.0, -4.0], [2.0, 0.5]])
    assert relative_error(reference + [[0, 0.004], [0, 0]], reference) == pytest.approx(1e-3)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.full(2, 1e-9), np.zeros(2)) == pytest.approx(1e-9)


@pytest.mark.skipif(not devices.is_gpu_build(), reason="NCCL is in the GPU build only")
def test_nccl_id_keeps_all_its_bytes():
    """setup/patches/debian-cuda/06: the id is 128 bytes with many zeros, all of which every
    rank must receive (NCCL makes one without a GPU)."""
    uid = caffe.NCCL.new_uid()
    assert isinstance(uid, bytes) and len(uid) == 128
    assert uid.count(0) > 0
    assert bytes.fromhex(uid.hex()) == uid   # as the launcher hands it to the ranks


def test_make_solver_for_several_gpus_splits_the_train_nets_batch(lmdb_dir, tmp_path, capsys):
    """`make solver GPUS=0,1`: the same iterations per epoch (the update's batch), the train
    net's data layer at half of it, the test net at all of it; an odd split is refused."""
    from tools.make_solver import main as solver_main
    overrides = TINY + ["batch_size=4"]   # the later value wins
    for gpus in ("0", "0,1"):
        run = tmp_path / f"run{gpus}"
        assert solver_main(["--lmdb", str(lmdb_dir), "--run", str(run), "--gpus", gpus,
                            "--link", str(tmp_path / "h36m.prototxt"), "--set",
                            *overrides]) == 0
        share = 4 // len(gpus.split(","))
        for name, size in (("train", share), ("test", 4)):
            text = (run / f"{name}.prototxt").read_text()
            assert f'\\"batch_size\\": {size},' in text, (gpus, name)
        # 10 images / 4 a step: 3 iterations per epoch, 2 epochs
        assert "max_iter: 6" in (tmp_path / "h36m.prototxt").read_text()
    assert solver_main(["--lmdb", str(lmdb_dir), "--run", str(tmp_path / "odd"), "--gpus",
                        "0,1,2", "--link", str(tmp_path / "odd.prototxt"),
                        "--set", *overrides]) == 1
    assert "does not split over 3 GPUs" in capsys.readouterr().err
    assert not (tmp_path / "odd").exists()


def test_a_batch_that_does_not_split_writes_nothing(lmdb_dir, tmp_path, capsys, monkeypatch):
    from solver import training
    monkeypatch.setattr(training, "check_gpus", lambda gpus: None)   # as if 3 GPUs were there
    run = tmp_path / "run"
    assert train_main(["--lmdb", str(lmdb_dir), "--run", str(run), "--gpus", "0,1,2",
                       "--set", *TINY]) == 1
    assert "batch_size 2 does not split over 3 GPUs" in capsys.readouterr().err
    assert not run.exists()


def test_gpu_check_agreement_plumbing_on_the_cpu():
    """The agreement part with the CPU in place of the GPU: the same weights, batch and
    function on both sides, so every blob and gradient must agree exactly."""
    from benchmarks.gpu_check import agreement
    result = agreement(None, batch=2, variant="full")
    assert result["max_blob"] == 0.0 and result["max_gradient"] == 0.0
    assert result["max_ratio"] == 0.0
    assert "loss_2D" in result["blobs"] and "conv1/0" in result["gradients"]
    assert len(result["gradients"]) > 20
    # the CPU's own spread (its other engine, nudged images) moved the convolutions' weight
    # gradients, and by more than the rounding of the blobs
    spread = result["spread"]
    assert spread.keys() == result["blobs"].keys() | result["gradients"].keys()
    assert min(spread[f"conv{i}/0"] for i in range(1, 6)) > 0
    assert max(spread[name] for name in result["gradients"]) > 10 * spread["fc2_2D"]


def test_gpu_check_agreement_runs_share_the_weights_and_the_cpu_spread(tmp_path, monkeypatch):
    """The second run of one check (the other TF32 setting) takes the first's weights and
    CPU spread instead of measuring the spread again, and so reports the same tolerances."""
    from benchmarks import gpu_check
    first = gpu_check.agreement(None, batch=2, shared=tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cpu-spread.json",
                                                                "weights.caffemodel"]

    def measured_again(*args):
        raise AssertionError("the CPU spread was measured again")
    monkeypatch.setattr(gpu_check, "cpu_spread", measured_again)
    assert gpu_check.agreement(None, batch=2, shared=tmp_path) == first


def test_tolerance_ratios_take_the_larger_of_the_floor_and_the_noise():
    from benchmarks.gpu_check import NOISE_FACTOR, tolerance_ratios
    errors = {"a": 5e-4, "b": 5e-3, "c": 5e-2}
    noise = {"a": 1e-6, "b": 1e-6, "c": 2e-2}
    ratios = tolerance_ratios(errors, noise, floor=1e-3)
    assert ratios["a"] == 0.5 and ratios["b"] == 5.0
    assert ratios["c"] == 5e-2 / (NOISE_FACTOR * 2e-2)


def test_gpu_check_step_timing_runs_on_the_cpu():
    """The speed part's Caffe side, with the CPU in place of the GPU (its plumbing: solver,
    Input layers, the timed steps)."""
    from benchmarks.gpu_check import caffe_gpu_steps
    times = caffe_gpu_steps("baseline", None, batch=2, iterations=2)
    assert len(times) == 2 and all(isinstance(t, float) for t in times)


def test_gpu_check_layer_times_on_the_cpu():
    """The layers part's plumbing with the CPU in place of the GPU: `caffe time` per layer
    type, the slowest first (the times themselves are the machine's, not asserted)."""
    from benchmarks.gpu_check import layer_times
    result = layer_times(None, batch=2, iterations=2)
    per_type = result["per_type_ms"]
    assert {"Convolution", "BatchNorm", "Python", "InnerProduct"} <= set(per_type)
    assert list(per_type.values()) == sorted(per_type.values(), reverse=True)
    assert result["forward_backward_ms"] > 0 and min(per_type.values()) >= 0


# the lines of `caffe time` that its parser reads, in the tool's own format
CAFFE_TIME_LOG = """\
I1206 10:00:00.000001  4242 caffe.cpp:404] Average time per layer:
I1206 10:00:00.000002  4242 caffe.cpp:407]       data\tforward: 0.0125 ms.
I1206 10:00:00.000003  4242 caffe.cpp:410]       data\tbackward: 0.001 ms.
I1206 10:00:00.000004  4242 caffe.cpp:407]      conv1\tforward: 12.5 ms.
I1206 10:00:00.000005  4242 caffe.cpp:410]      conv1\tbackward: 20.25 ms.
I1206 10:00:00.000006  4242 caffe.cpp:407]      conv2\tforward: 7 ms.
I1206 10:00:00.000007  4242 caffe.cpp:410]      conv2\tbackward: 9.5 ms.
I1206 10:00:00.000008  4242 caffe.cpp:407]   bn_conv1\tforward: 1.5 ms.
I1206 10:00:00.000009  4242 caffe.cpp:410]   bn_conv1\tbackward: 2.5 ms.
I1206 10:00:00.000010  4242 caffe.cpp:415] Average Forward pass: 21.0125 ms.
I1206 10:00:00.000011  4242 caffe.cpp:417] Average Backward pass: 32.251 ms.
I1206 10:00:00.000012  4242 caffe.cpp:419] Average Forward-Backward: 53.5 ms.
"""


def test_caffe_time_log_is_summed_per_layer_type():
    from benchmarks.speed import parse_caffe_time
    total, per_type = parse_caffe_time(CAFFE_TIME_LOG, {"conv1": "Convolution",
                                                        "conv2": "Convolution",
                                                        "bn_conv1": "BatchNorm"})
    assert total == 53.5
    assert per_type == pytest.approx({"other": 0.0135, "Convolution": 49.25, "BatchNorm": 4.0})


def test_gpu_check_runs_only_the_parts_named(tmp_path, monkeypatch, capsys):
    """--parts speed,layers runs those two (in the check's order, whatever the order given),
    and writes its report beside a whole check's report.json, which it leaves as it was."""
    from argparse import Namespace
    from benchmarks import gpu_check

    def must_not_run(*args):
        raise AssertionError("a part that was not named ran")
    for name in ("agreement_in_process", "gradient_checks", "kernel_checks", "demo_on_gpu",
                 "data_rates"):
        monkeypatch.setattr(gpu_check, name, must_not_run)
    monkeypatch.setattr(gpu_check, "machine", lambda: {"gpus": ["NVIDIA H200"]})
    monkeypatch.setattr(gpu_check, "torch_python", lambda choice: "python3")
    monkeypatch.setattr(gpu_check, "speed", lambda gpu, batch, rounds, iterations, python: {
        "full": {"caffe_step_s": 0.03, "torch_step_s": 0.0125, "caffe_images_per_s": 4266.7,
                 "torch_images_per_s": 10240.0, "caffe_vs_torch": 2.4}})
    monkeypatch.setattr(gpu_check, "layer_times", lambda gpu, batch, iterations: {
        "variant": "full", "forward_backward_ms": 30.0, "per_type_ms": {"Convolution": 10.4}})
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"whole": true}')
    args = Namespace(gpu=0, lmdb=tmp_path / "no-lmdb", out=out, batch=128, rounds=1,
                     iterations=2, data_seconds=1.0, torch_python=None,
                     parts=["layers", "speed"])
    assert gpu_check.check(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[1:-2]] == ["speed", "layers"]
    assert lines[-1] == "GPUCHECK PASS" and "goal missed" in lines[1]
    report = json.loads((out / "report-speed-layers.json").read_text())
    assert report["parts"] == ["speed", "layers"] and "agreement" not in report
    assert (out / "report.json").read_text() == '{"whole": true}'
    # the parts that read the LMDBs are skipped, not failed, without them
    args.parts = ["data", "demo"]
    assert gpu_check.check(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:3] == [f"GPUCHECK {name} SKIPPED no LMDB at {tmp_path / 'no-lmdb'} (make lmdb)"
                          for name in ("demo", "data")]


def test_gpu_check_refuses_an_unknown_part(capsys):
    from tools.gpu_check import main as gpu_check_main
    with pytest.raises(SystemExit) as stop:
        gpu_check_main(["--parts", "speed,spead"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "unknown part spead; the parts are agreement, gradients," in err
    assert "Traceback" not in err


def test_gpu_check_report_from_its_parts(tmp_path, monkeypatch, capsys):
    """check() assembles report.json and the GPUCHECK lines from its parts (the parts that
    need a GPU replaced by fixed results here; those that run on a CPU are tested above)."""
    from argparse import Namespace
    from benchmarks import gpu_check
    part = {"max_blob": 2e-5, "max_gradient": 4e-2, "worst_blob": "fc2_2D",
            "worst_gradient": "conv5/0", "max_ratio": 0.6, "worst_ratio": "conv5/0"}
    monkeypatch.setattr(gpu_check, "machine", lambda: {"gpus": ["NVIDIA H100, 580, 81559 MiB"]})
    monkeypatch.setattr(gpu_check, "agreement_in_process", lambda gpu, batch, tf32, shared: dict(
        part, max_gradient=3e-1 if tf32 else 4e-2))
    monkeypatch.setattr(gpu_check, "gradient_checks",
                        lambda gpu: {"passed": True, "summary": "29 passed"})
    monkeypatch.setattr(gpu_check, "kernel_checks",
                        lambda gpu: {"passed": True, "summary": "19 passed, 17 skipped"})
    monkeypatch.setattr(gpu_check, "demo_on_gpu", lambda gpu, lmdb, out: {
        "passed": True, "train_seconds": 41.0, "mpjpe_mm": 99.0, "mean_pose_mpjpe_mm": 197.0,
        "frames": 5760, "goal_met": True})
    monkeypatch.setattr(gpu_check, "torch_python", lambda choice: "python3")
    monkeypatch.setattr(gpu_check, "speed", lambda gpu, batch, rounds, iterations, python: {
        "full": {"caffe_step_s": 0.05, "torch_step_s": 0.04, "caffe_images_per_s": 2560.0,
                 "torch_images_per_s": 3200.0, "caffe_vs_torch": 1.25}})
    monkeypatch.setattr(gpu_check, "layer_times", lambda gpu, batch, iterations: {
        "variant": "full", "forward_backward_ms": 30.0,
        "per_type_ms": {"Python": 12.5, "Convolution": 8.25}})
    monkeypatch.setattr(gpu_check, "data_rates", lambda lmdb, batch, seconds: {
        "workers": 15, "processes_images_per_s": 9000.0, "threads_images_per_s": 3000.0})
    args = Namespace(gpu=0, lmdb=tmp_path, out=tmp_path / "out", batch=128, rounds=1,
                     iterations=2, data_seconds=1.0, torch_python=None,
                     parts=list(gpu_check.PARTS))
    assert gpu_check.check(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "GPUCHECK agreement PASS tolerance max(0.001, 3 x float noise)" in lines
    assert any(line.startswith("GPUCHECK agreement tf32-off") and
               "max_of_tolerance 0.60 (conv5/0)" in line for line in lines)
    assert "GPUCHECK kernels PASS 19 passed, 17 skipped" in lines
    assert any(line.startswith("GPUCHECK speed full caffe_ms 50.0 torch_ms 40.0 ratio 1.25")
               and line.endswith("goal missed") for line in lines)   # the goal: 1.2x
    assert any("processes_img_s 9000" in line and "goal met" in line for line in lines)
    assert ("GPUCHECK layers full forward_backward_ms 30.0 Python 12.5 Convolution 8.2"
            in lines)
    assert lines[-1] == "GPUCHECK PASS"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["agreement"]["passed"] and report["agreement"]["tf32_on"]["max_gradient"] == 3e-1
    assert report["data"]["step_images_per_s"] == 2560.0
    # a disagreement beyond the tolerance fails the check
    monkeypatch.setattr(gpu_check, "agreement_in_process", lambda gpu, batch, tf32, shared: dict(
        part, max_ratio=1.5))
    assert gpu_check.check(args) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "GPUCHECK FAIL agreement"
    # so does a failing kernel check, named in the last line
    monkeypatch.setattr(gpu_check, "kernel_checks",
                        lambda gpu: {"passed": False, "summary": "1 failed, 18 passed"})
    assert gpu_check.check(args) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "GPUCHECK FAIL agreement kernels"
