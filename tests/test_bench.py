"""benchmarks/speed.py (tools/bench.py): the FLOP count against a hand count, the
matrix-product rates of the libraries Caffe loads (checked against numpy), the protocol of the
Caffe and PyTorch benchmark servers as the bench starts them, the interleaving and its
summary, the report file and its table. No timing is asserted: speed is what `make bench`
measures, not what tests check."""
import json
import subprocess
from argparse import Namespace
from pathlib import Path

import pytest

import caffe
from caffe import layers as L
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from benchmarks import speed
from benchmarks.speed import (REPO, Server, caffe_command, format_report, gemm_rates,
                              interleaved, step_flops, summary, torch_command, with_build)

BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"


def tiny_net(tmp_path, stop_gradient):
    spec = caffe.NetSpec()
    spec.data = L.DummyData(shape=dict(dim=[2, 3, 8, 8]))
    spec.target = L.DummyData(shape=dict(dim=[2, 5]))
    spec.conv = L.Convolution(spec.data, num_output=4, kernel_size=3, pad=1)
    spec.relu = L.ReLU(spec.conv, in_place=True)
    extra = dict(propagate_down=[False]) if stop_gradient else {}
    spec.fc = L.InnerProduct(spec.conv, num_output=5, **extra)
    spec.loss = L.EuclideanLoss(spec.fc, spec.target)
    path = Path(tmp_path) / "tiny.prototxt"
    path.write_text(str(spec.to_proto()))
    param = caffe_pb2.NetParameter()
    text_format.Parse(path.read_text(), param)
    return param, caffe.Net(str(path), caffe.TRAIN)


def test_step_flops_by_hand(tmp_path):
    # conv: 2 images x 8 x 8 positions x 4 x 3 x 3 x 3 weights = 13824 multiply-adds; forward
    # and weight gradient only (its input is the data): 2 x 13824 x 2 = 55296 FLOPs.
    # fc: 2 x (5 x 256) = 2560 multiply-adds; forward, weight and input gradient: 15360.
    assert step_flops(*tiny_net(tmp_path, stop_gradient=False)) == 55296 + 15360
    # propagate_down false: no gradient flows back into conv, so neither its input gradient
    # (never there) nor fc's input gradient is computed; conv's weight gradient stays
    # counted, as Caffe computes it whenever the layer has parameters
    assert step_flops(*tiny_net(tmp_path, stop_gradient=True)) == 55296 + 2 * 2560 * 2


def test_gemm_rates_cover_the_libraries_caffe_loaded():
    """pycaffe is imported: its OpenBLAS (and oneDNN in the optimised build) are mapped; each
    library's product is checked against numpy inside gemm_rates."""
    rates, core = gemm_rates(size=128)
    assert "openblas" in rates and isinstance(core, str) and core
    assert set(rates) <= {"openblas", "onednn"}
    if (Path(caffe.__file__).parent / "blas_core.json").exists():   # the optimised build
        assert "onednn" in rates


def test_the_caffe_server_answers_each_command(tmp_path):
    server = Server("caffe", caffe_command("baseline", 2, ["--warmup", "0"]), with_build(None))
    try:
        assert server.hello["ready"]
        assert len(server.ask("train 2")["seconds"]) == 2
        assert len(server.ask("infer 3 1")["seconds"]) == 1
        assert len(server.ask("update 2")["seconds"]) == 2
        answer = server.ask("gemm 64")
        assert set(answer["gflops"]) >= {"openblas"}
        assert isinstance(answer["openblas_core"], str) and answer["openblas_core"]
        with pytest.raises(RuntimeError, match="caffe: unknown command 'jump'"):
            server.ask("jump 3")
    finally:
        server.close()
    assert server.process.returncode == 0


def torch_at_hand():
    return BENCH_PYTHON.exists() and subprocess.run(
        [str(BENCH_PYTHON), "-c", "import torch"], capture_output=True).returncode == 0


@pytest.mark.skipif(not torch_at_hand(), reason="no .venv-bench with PyTorch (make bench "
                    "makes it)")
@pytest.mark.slow
def test_the_pytorch_server_answers_each_command_as_the_bench_starts_it():
    """tools/bench_torch.py --serve in .venv-bench, whose path does not name the repository,
    started with the command and working folder the bench uses."""
    server = Server("pytorch", torch_command(BENCH_PYTHON, "baseline", 2, threads=1,
                                             warmup=0))
    try:
        assert server.hello["ready"] and server.hello["threads"] == 1
        assert len(server.ask("train 2")["seconds"]) == 2
        assert len(server.ask("infer 3 1")["seconds"]) == 1
        assert isinstance(server.ask("gemm 64")["gflops"], float)
        with pytest.raises(RuntimeError, match="pytorch: unknown command 'jump'"):
            server.ask("jump 3")
    finally:
        server.close()
    assert server.process.returncode == 0
    assert "Traceback" not in server.process.stderr.read()


class FakeServer:
    """Answers with a fixed series of step times and records the order it was asked in."""

    def __init__(self, name, seconds, order):
        self.name, self.seconds, self.order = name, list(seconds), order

    def ask(self, command):
        self.order.append(self.name)
        steps = int(command.split()[1])
        answer, self.seconds = self.seconds[:steps], self.seconds[steps:]
        return {"seconds": answer}


def test_interleaving_alternates_and_summarises_by_median_and_round_spread():
    order = []
    servers = [FakeServer("a", [1, 3, 2, 2, 9, 1], order), FakeServer("b", [5, 5, 4, 6, 7, 7],
                                                                        order),
               FakeServer("c", [1, 1, 1, 1, 1, 4], order)]
    steps, medians = interleaved(servers, "train 2", rounds=3)
    assert order == ["a", "b", "c"] * 3
    assert steps["a"] == [1, 3, 2, 2, 9, 1]   # every step, in the order taken
    assert medians == {"a": [2, 2, 5], "b": [5, 5, 7], "c": [1, 1, 2.5]}
    result = summary(steps, medians)
    # the median of every step (1 1 2 2 3 9), not the median of the round medians (2)
    assert result["a"] == {"median_seconds": 2, "round_medians_seconds": [2, 5], "steps": 6}
    assert result["b"] == {"median_seconds": 5.5, "round_medians_seconds": [5, 7], "steps": 6}
    assert result["c"]["median_seconds"] == 1 and result["c"]["round_medians_seconds"] == [1, 2.5]


def sample_report():
    """A report as run_bench makes it, with simple numbers."""
    step = lambda median, low, high: {"median_seconds": median,  # noqa: E731
                                      "round_medians_seconds": [low, high], "steps": 10}
    return {"processor": "Test CPU", "machine_cores": 2, "batch": 32, "rounds": 5,
            "steps_per_round": 2, "openblas_core": "SkylakeX",
            "openblas_core_before": "Prescott",
            "gemm_gflops": {"numpy": 190.0, "caffe_onednn": 250.0, "pytorch": 240.0},
            "machine_gflops": 250.0, "machine_gflops_from": "caffe_onednn",
            "variants": {"full": {
                "step_gflop": 59.0, "limit_seconds": 0.236,
                "step": {"caffe": step(0.5, 0.45, 0.6), "pytorch": step(0.7, 0.6, 0.8),
                         "caffe_before": step(2.0, 1.9, 2.2)},
                "caffe_images_per_second": 64.0, "caffe_vs_pytorch": 0.5 / 0.7,
                "caffe_vs_limit": 0.5 / 0.236, "before_vs_after": 4.0,
                "layer_ms_before": {"Convolution": 1500.0, "Pooling": 100.0, "Python": 20.0},
                "layer_ms_after": {"Convolution": 300.0, "Pooling": 40.0, "Python": 20.0,
                                   "DummyData": 40.0, "ReLU": 40.0},
                "update": {"caffe": step(0.014, 0.013, 0.016),
                           "caffe_before": step(0.032, 0.03, 0.034)}}},
            "deploy": {"caffe": step(0.2, 0.2, 0.2), "pytorch": step(0.4, 0.4, 0.4)},
            "deploy_batch": 16, "peak_memory_batch": 128,
            "peak_memory_mib": {"after": 3000.0, "before": 2800.0}}


def test_report_lines():
    lines = format_report(sample_report()).splitlines()
    assert lines[0].startswith("MACHINE Test CPU, 2 cores; OpenBLAS core SkylakeX")
    assert "the machine's rate: 250 (caffe_onednn)" in lines[1]
    speed_line = next(line for line in lines if line.startswith("SPEED full"))
    assert speed_line.split()[2:11] == ["59.0", "0.24", "2.00", "0.50", "0.70", "64.0", "0.71",
                                   "2.12", "4.00"]
    assert speed_line.endswith("[0.45, 0.60]  [0.60, 0.80]")
    assert "Python layers 20 ms of 400 ms per step (5 %" in next(
        line for line in lines if line.startswith("PYTHON full"))
    assert "Convolution 1500 -> 300 ms per step" in next(
        line for line in lines if "convolutions through oneDNN" in line)
    assert "CHANGE full       12 SGD update in one pass on OpenMP: apply_update 32 -> 14 ms " \
        "per step" in lines
    assert any(line.startswith("DEPLOY caffe         80.0 images/s (batch 16") for line in lines)
    assert lines[-1] == "MEMORY peak of the batch-128 step: after 3000 MiB, before 2800 MiB"
    # make bench-data's figures, when its report is there: the build on both trees
    report = sample_report()
    report["data"] = {"lmdb_build_frames_per_s": 640.0, "build_vs_decode": 0.23,
                      "loader_images_per_s": 1900.0, "full_size": {"build_vs_decode": 0.46}}
    assert format_report(report).splitlines()[-1] == (
        "DATA LMDB build 640 frames/s = 0.23 of decoding (at the real frame size 0.46); "
        "loader 1900 images/s")


def test_run_writes_the_report_and_prints_its_table(tmp_path, monkeypatch, capsys):
    """run(): run_bench's report with deploy_batch added as JSON in --out (no temporary file
    left), the table and where the report is on stdout; a failed run writes nothing."""
    report = sample_report()
    del report["deploy_batch"]   # run() adds it from the command line
    monkeypatch.setattr(speed, "run_bench", lambda args: json.loads(json.dumps(report)))
    out = tmp_path / "bench" / "speed.json"
    args = Namespace(out=out, deploy_batch=16)
    assert speed.run(args) == 0
    written = json.loads(out.read_text())
    assert written == dict(report, deploy_batch=16)
    assert [p.name for p in out.parent.iterdir()] == ["speed.json"]
    printed = capsys.readouterr().out.splitlines()
    assert printed[:-1] == format_report(written).splitlines()
    assert printed[-1] == f"bench: report in {out}"

    def fails(args):
        raise RuntimeError("the build without speed changes failed: no compiler")
    monkeypatch.setattr(speed, "run_bench", fails)
    args.out = tmp_path / "failed" / "speed.json"
    assert speed.run(args) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "error: the build without speed changes failed: no compiler"
    assert captured.out == "" and not args.out.parent.exists()
