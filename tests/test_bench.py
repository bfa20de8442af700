"""tools/bench.py: the FLOP count against a hand count, the BLAS rate, and the report layout."""
from pathlib import Path

import caffe
from caffe import layers as L
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from tools.bench import format_report, gemm_rate, linked_blas, step_flops


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


def test_gemm_rate_of_the_linked_blas():
    blas = linked_blas(Path(caffe.__file__).resolve().parent / "_caffe.so")
    rate, core = gemm_rate(blas, size=256, repeats=1)   # checks the product itself too
    assert rate > 0.1
    assert core is None or isinstance(core, str)


def test_report_lines():
    report = {"batch": 32, "machine_cores": 2, "blas_core": "Zen", "gemm_gflops": 70.0,
              "variants": {"full": {"step_gflop": 62.0, "limit_seconds": 0.886,
                                    "caffe_time_seconds": 1.7, "caffe_time_before_seconds": 2.2,
                                    "pycaffe_step_seconds": 1.8, "pytorch_step_seconds": 1.2,
                                    "caffe_images_per_second": 17.8, "caffe_vs_pytorch": 1.5,
                                    "caffe_vs_limit": 2.03,
                                    "layer_ms_before": {"Pooling": 300.0, "ReLU": 160.0,
                                                        "BatchNorm": 400.0},
                                    "layer_ms_after": {"Pooling": 100.0, "ReLU": 20.0,
                                                       "BatchNorm": 150.0}}},
              "deploy_images_per_second": 50.0, "deploy_batch": 16, "blas_variants": {}}
    lines = format_report(report).splitlines()
    speed = next(line for line in lines if line.startswith("SPEED full"))
    assert speed.split()[2:] == ["62.0", "0.89", "2.20", "1.70", "1.80", "1.20", "17.8", "1.50",
                                 "2.03"]
    assert "DEPLOY 50.0 images/s" in lines[-1]
    changes = [line for line in lines if line.startswith("CHANGE full")]
    assert changes[0].endswith("Pooling+ReLU 460 -> 120 ms per step")
    assert changes[1].endswith("BatchNorm 400 -> 150 ms per step")
