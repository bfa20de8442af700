#!/usr/bin/env python3
"""Speed of the paper's network: Caffe's training step against PyTorch and the BLAS limit.

    .venv/bin/python tools/bench.py [--batch 32] [--iterations 5] [--out runs/bench/speed.json]

Every figure comes from this one run on this machine:
  - the matrix-product rate of the BLAS that Caffe links (a 4096^3 single-precision product
    through cblas_sgemm, the best of a few), and which OpenBLAS kernel ran;
  - per Table 2 variant: the training step's FLOP count (convolutions and inner products,
    forward and backward, from the net's blob shapes), so FLOPs / rate is the step's limit;
    `caffe time` (forward + backward) with the optimised build and with the build without
    the speed changes (setup/caffe_setup.py --without-speedups, built on first use); the
    full solver step through pycaffe (SGDSolver.step, update included); the same network in
    PyTorch on the CPU (tools/bench_torch.py in the separate venv .venv-bench, made on first
    use) as images per second; and the ratios: Caffe / PyTorch and Caffe / limit;
  - deploy inference in images per second (batch --deploy-batch), multi-root average included;
  - the runtime BLAS variants Debian has installed (OpenBLAS pthread, openmp, serial), each
    timed with `caffe time` on the full variant by putting its folder first on the library path;
  - the data figures of `make bench-data` if runs/bench/data.json exists.
Writes a JSON report and prints a table. Random-data nets (DummyData) are timed, so the data
layer's cost is left out here (it is `make bench-data`'s loader figure).
"""
import argparse
import ctypes
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from config import PAPER  # noqa: E402
from prototxt.pose_net import VARIANTS, make_net, torch_arch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BENCH_VENV = REPO / ".venv-bench"
# PyTorch for the comparison only, never for the project: the CPU wheel this kind of machine
# keeps on disk when it has one, else PyPI's
TORCH_WHEELS = sorted(Path("/opt/wheels").glob("torch-*+cpu-cp311-*.whl"))
BLAS_VARIANTS = {name: Path(f"/usr/lib/x86_64-linux-gnu/openblas-{name}")
                 for name in ("pthread", "openmp", "serial")}
FORWARD_BACKWARD = re.compile(r"Average Forward-Backward: ([0-9.]+) ms")
LAYER_TIME = re.compile(r"\]\s+(\S+)\s+(forward|backward): ([0-9.]+) ms")
# the layer kinds each kept speed change rewrote (setup/patches/debian/)
CHANGES = {"03 branch-free max pooling, vectorized ReLU backward": ("Pooling", "ReLU"),
           "04 BatchNorm as direct loops": ("BatchNorm",)}


# ---------------------------------------------------------------- BLAS

def linked_blas(library):
    """Path of the libopenblas (or libblas) that a shared library or binary loads."""
    out = subprocess.run(["ldd", str(library)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name, _, rest = line.strip().partition(" => ")
        if name.startswith(("libopenblas", "libblas")) and rest:
            return Path(rest.split(" (")[0])
    raise RuntimeError(f"no BLAS library among the dependencies of {library}")


def gemm_rate(blas_path, size=4096, repeats=3):
    """Best GFLOP/s of C = A B for size x size float32 matrices through cblas_sgemm, and the
    OpenBLAS core name when the library tells it."""
    blas = ctypes.CDLL(str(blas_path))
    sgemm = blas.cblas_sgemm
    sgemm.restype = None
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    c = np.empty((size, size), np.float32)
    pointer = lambda m: m.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    row_major, no_trans = 101, 111
    best = float("inf")
    for _ in range(repeats + 1):   # the first call warms up the threads
        start = time.perf_counter()
        sgemm(row_major, no_trans, no_trans, size, size, size, ctypes.c_float(1.0), pointer(a),
              size, pointer(b), size, ctypes.c_float(0.0), pointer(c), size)
        best = min(best, time.perf_counter() - start)
    np.testing.assert_allclose(c[:2, :2], a[:2] @ b[:, :2], rtol=1e-3, atol=1e-2)
    core = None
    if hasattr(blas, "openblas_get_corename"):
        blas.openblas_get_corename.restype = ctypes.c_char_p
        core = blas.openblas_get_corename().decode()
    return 2.0 * size ** 3 / best / 1e9, core


# ---------------------------------------------------------------- FLOPs

def step_flops(net_param, net):
    """FLOPs of one training step's convolutions and inner products: 2 per multiply-add,
    forward, the weight gradient, and the input gradient where one flows back (not into the
    data, not across propagate_down: false)."""
    needs_grad = set()   # blobs that a backward pass reaches
    total = 0
    for layer in net_param.layer:
        has_params = layer.type in ("Convolution", "InnerProduct", "BatchNorm", "Scale")
        flows = [b in needs_grad and (i >= len(layer.propagate_down) or layer.propagate_down[i])
                 for i, b in enumerate(layer.bottom)]
        if has_params or any(flows):
            needs_grad.update(layer.top)
        if layer.type in ("Convolution", "InnerProduct"):
            weights = net.params[layer.name][0].data.size
            top = net.blobs[layer.top[0]].data.shape
            positions = int(np.prod(top[2:])) if layer.type == "Convolution" else 1
            multiply_adds = top[0] * positions * weights
            passes = 2 + (1 if any(flows) else 0)   # forward, weight gradient, input gradient
            total += 2 * multiply_adds * passes
    return total


# ---------------------------------------------------------------- Caffe timings

def write_net(directory, cfg, variant, phase="train"):
    spec = make_net(cfg, variant, phase)
    path = Path(directory) / f"{variant}_{phase}.prototxt"
    path.write_text(str(spec.to_proto()))
    return path


def caffe_time(binary, model, iterations, extra_env=None, per_type=None):
    """Milliseconds of `caffe time`'s average forward + backward of a build's binary; given a
    dict per_type, adds each layer type's forward + backward milliseconds to it."""
    env = dict(os.environ, **(extra_env or {}))
    env.pop("GLOG_minloglevel", None)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"   # Python layers see the venv
    # ... and import the pycaffe of the same build (one libcaffe per process)
    env["PYTHONPATH"] = f"{Path(binary).parent.parent / 'python'}:{REPO}"
    result = subprocess.run([str(binary), "time", f"-model={model}",
                             f"-iterations={iterations}"], capture_output=True, text=True,
                            env=env)
    found = FORWARD_BACKWARD.search(result.stdout + result.stderr)
    if result.returncode != 0 or not found:
        tail = (result.stdout + result.stderr).splitlines()[-5:]
        raise RuntimeError(f"caffe time failed with {binary}: " + " | ".join(tail))
    if per_type is not None:
        net = caffe_pb2.NetParameter()
        text_format.Parse(Path(model).read_text(), net)
        types = {layer.name: layer.type for layer in net.layer}
        for name, _, ms in LAYER_TIME.findall(result.stdout + result.stderr):
            kind = types.get(name, "other")
            per_type[kind] = per_type.get(kind, 0.0) + float(ms)
    return float(found.group(1))


def pycaffe_step(model, cfg, iterations):
    """Median seconds of SGDSolver.step(1): forward, backward and the update."""
    solver_param = caffe_pb2.SolverParameter(
        train_net=str(model), base_lr=cfg.base_lr, momentum=cfg.momentum,
        weight_decay=cfg.weight_decay, lr_policy="fixed", max_iter=10 ** 6, display=0,
        snapshot_after_train=False, solver_mode=caffe_pb2.SolverParameter.CPU)
    path = Path(model).with_suffix(".solver.prototxt")
    path.write_text(text_format.MessageToString(solver_param))
    solver = caffe.SGDSolver(str(path))
    solver.step(1)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        solver.step(1)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def deploy_rate(model, batch, iterations):
    """Images per second of the deploy net (centre crops in, averaged pose_3D out)."""
    net = caffe.Net(str(model), caffe.TEST)
    net.blobs["data"].reshape(batch, *net.blobs["data"].data.shape[1:])
    net.reshape()
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(0, 50, net.blobs["data"].shape)
    net.forward()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        net.forward()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


# ---------------------------------------------------------------- PyTorch

def bench_python():
    """The .venv-bench interpreter with PyTorch, made on first use."""
    python = BENCH_VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import torch"],
                                          capture_output=True).returncode == 0:
        return python
    print("bench: making .venv-bench with PyTorch (first use only)", flush=True)
    base = subprocess.run([sys.executable, "-c", "import sys; print(sys.base_prefix)"],
                          capture_output=True, text=True).stdout.strip()
    subprocess.run([f"{base}/bin/python3", "-m", "venv", str(BENCH_VENV)], check=True)
    wheel = [str(TORCH_WHEELS[-1])] if TORCH_WHEELS else ["torch"]
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *wheel], check=True)
    return python


def torch_step(cfg, variant, batch, iterations, threads):
    """tools/bench_torch.py's JSON result for one variant."""
    result = subprocess.run([str(bench_python()), str(REPO / "tools" / "bench_torch.py"),
                             "--arch", json.dumps(torch_arch(cfg, variant)), "--batch", str(batch),
                             "--iterations", str(iterations), "--warmup", "1",
                             "--threads", str(threads), "--variant", variant],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError("bench_torch.py failed: " + result.stderr[-800:])
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the report

def unoptimised_caffe():
    """`caffe` of the build without the speed changes (built on first use, ~6 min)."""
    out = subprocess.run([sys.executable, str(REPO / "setup" / "caffe_setup.py"),
                          "--without-speedups", "--venv", str(REPO / ".venv")],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("the build without speed changes failed: " + out.stderr[-800:])
    return Path(out.stdout.strip().splitlines()[-1]) / "bin" / "caffe"


def run_bench(args):
    cfg = PAPER.replace(batch_size=args.batch)
    optimised = Path(caffe.__file__).resolve().parent.parent.parent / "bin" / "caffe"
    blas = linked_blas(Path(caffe.__file__).resolve().parent / "_caffe.so")
    rate, core = gemm_rate(blas)
    report = {"batch": args.batch, "threads": args.threads, "machine_cores": os.cpu_count(),
              "blas": str(blas), "blas_core": core, "gemm_gflops": rate,
              "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",
                                                              "OPENBLAS_L2_SIZE",
                                                              "OPENBLAS_NUM_THREADS")},
              "variants": {}}
    print(f"bench: BLAS {blas} (kernel {core}): {rate:.1f} GFLOP/s on a 4096^3 sgemm", flush=True)
    before = None if args.skip_before else unoptimised_caffe()
    with tempfile.TemporaryDirectory() as scratch:
        for variant in args.variants:
            model = write_net(scratch, cfg, variant)
            net_param = caffe_pb2.NetParameter()
            text_format.Parse(model.read_text(), net_param)
            flops = step_flops(net_param, caffe.Net(str(model), caffe.TRAIN))
            row = {"step_gflop": flops / 1e9, "limit_seconds": flops / 1e9 / rate}
            after_types, before_types = {}, {}
            row["caffe_time_seconds"] = caffe_time(optimised, model, args.iterations,
                                                   per_type=after_types) / 1e3
            row["layer_ms_after"] = after_types
            if before is not None:
                row["caffe_time_before_seconds"] = caffe_time(
                    before, model, args.iterations, per_type=before_types) / 1e3
                row["layer_ms_before"] = before_types
            row["pycaffe_step_seconds"] = pycaffe_step(model, cfg, args.iterations)
            if not args.skip_torch:
                torch = torch_step(cfg, variant, args.batch, args.iterations, args.threads)
                row["pytorch_step_seconds"] = torch["median_step_seconds"]
                row["pytorch_version"] = torch["torch_version"]
            step = row["pycaffe_step_seconds"]
            row["caffe_images_per_second"] = args.batch / step
            row["caffe_vs_limit"] = step / row["limit_seconds"]
            if "pytorch_step_seconds" in row:
                row["caffe_vs_pytorch"] = step / row["pytorch_step_seconds"]
            report["variants"][variant] = row
            print(f"bench: {variant} done", flush=True)
        deploy = write_net(scratch, cfg, "full", "deploy")
        report["deploy_images_per_second"] = deploy_rate(deploy, args.deploy_batch,
                                                         args.iterations)
        report["deploy_batch"] = args.deploy_batch
        full = write_net(scratch, cfg, "full")
        report["blas_variants"] = {}
        for name, folder in BLAS_VARIANTS.items():
            if (folder / "libopenblas.so.0").exists():
                env = {"LD_LIBRARY_PATH": f"{folder}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
                report["blas_variants"][name] = caffe_time(optimised, full, args.iterations,
                                                           env) / 1e3
    data = REPO / "runs" / "bench" / "data.json"
    if data.exists():
        report["data"] = json.loads(data.read_text())
    return report


def format_report(report):
    lines = [f"# batch {report['batch']}, {report['machine_cores']} cores; BLAS kernel "
             f"{report['blas_core']}, sgemm {report['gemm_gflops']:.1f} GFLOP/s"]
    lines.append(f"{'#':<6}{'variant':<11}{'GFLOP':>7}{'limit_s':>9}{'before_s':>10}"
                 f"{'caffe_s':>9}{'pycaffe_s':>11}{'torch_s':>9}{'img/s':>7}"
                 f"{'vs_torch':>10}{'vs_limit':>10}")
    for variant, row in report["variants"].items():
        def cell(key, width, fmt=".2f"):
            return f"{row[key]:>{width}{fmt}}" if key in row else f"{'-':>{width}}"
        lines.append(f"SPEED {variant:<11}{row['step_gflop']:>7.1f}{row['limit_seconds']:>9.2f}"
                     + cell("caffe_time_before_seconds", 10) + cell("caffe_time_seconds", 9)
                     + cell("pycaffe_step_seconds", 11) + cell("pytorch_step_seconds", 9)
                     + cell("caffe_images_per_second", 7, ".1f") + cell("caffe_vs_pytorch", 10)
                     + cell("caffe_vs_limit", 10))
    for variant, row in report["variants"].items():
        if "layer_ms_before" not in row:
            continue
        for change, kinds in CHANGES.items():
            before = sum(row["layer_ms_before"].get(k, 0.0) for k in kinds)
            after = sum(row["layer_ms_after"].get(k, 0.0) for k in kinds)
            lines.append(f"CHANGE {variant:<10} {change}: {'+'.join(kinds)} "
                         f"{before:.0f} -> {after:.0f} ms per step")
    lines.append(f"DEPLOY {report['deploy_images_per_second']:.1f} images/s "
                 f"(batch {report['deploy_batch']}, multi-root average included)")
    for name, seconds in report["blas_variants"].items():
        lines.append(f"BLAS openblas-{name}: caffe time full {seconds:.2f} s per step")
    if "data" in report:
        data = report["data"]
        lines.append(f"DATA LMDB build {data['lmdb_build_frames_per_s']:.0f} frames/s = "
                     f"{data['build_vs_decode']:.2f} of decoding; loader "
                     f"{data['loader_images_per_s']:.0f} images/s = "
                     f"{data['loader_vs_training']:.0f}x training")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32,
                        help="images per training step (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=5,
                        help="timed steps per figure; the median is reported (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="PyTorch threads (default: the number of cores)")
    parser.add_argument("--deploy-batch", type=int, default=16,
                        help="images per deploy forward pass (default: %(default)s)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="Table 2 variants to time (default: all four)")
    parser.add_argument("--skip-before", action="store_true",
                        help="do not time (or build) Caffe without the speed changes")
    parser.add_argument("--skip-torch", action="store_true", help="do not time PyTorch")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "speed.json",
                        help="JSON report (default: runs/bench/speed.json)")
    args = parser.parse_args(argv)
    if min(args.batch, args.iterations, args.threads, args.deploy_batch) < 1:
        parser.error("--batch, --iterations, --threads and --deploy-batch must be positive")
    try:
        report = run_bench(args)
    except (RuntimeError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.out)
    print(format_report(report))
    print(f"bench: report in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
