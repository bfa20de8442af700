"""Check the GPU path on a machine with a GPU: correctness first, then the speed goals
(tools/gpu_check.py is its command line).

`make gpu-check` runs it with the GPU build (make setup CAFFE_DEVICE=gpu) and the LMDBs of
`make lmdb`. Parts, each a section of <out>/report.json and lines starting with GPUCHECK:
  agreement  the full train net (dropout off, so that both compute one function) forward and
             backward on the CPU and on the GPU, same weights and batch (the paper's 128):
             every blob and every parameter gradient, as max |gpu - cpu| / max |cpu|. With TF32
             off (NVIDIA_TF32_OVERRIDE=0) each must stay within its tolerance: the larger of
             AGREEMENT_TOLERANCE and NOISE_FACTOR times the CPU's own spread (how far its two
             convolution engines, oneDNN and im2col, lie apart, or the images nudged by one
             part in 1/NUDGE move it); the run with TF32 allowed (cuDNN's default on Ampere
             and later) is reported beside it.
  gradients  the Python layers' gradient checks (tests/test_soft_labels.py, test_pose_3d.py,
             test_gradcheck.py) with their nets made in GPU mode (pytest --caffe-gpu).
  kernels    the GPU kernels of CUDA patches 07 (max pooling with its index as a second top)
             and 11 (BatchNorm, Scale and ReLU through cuDNN) against the CPU and the numpy
             references (tests/test_caffe_cpu_layers.py, test_batchnorm_devices.py), in GPU
             mode.
  demo       the demo schedule trained on the GPU (tools/train.py --gpus), evaluated on it
             (tools/evaluate.py --gpu): training time and MPJPE beside the mean pose.
  speed      for each Table 2 variant at batch 128: Caffe's solver step (forward, backward,
             update; pycaffe, GPU mode, one fixed batch as PyTorch's twin uses) and PyTorch's
             on the same GPU (tools/bench_torch.py --device cuda), medians of interleaved
             runs, with PyTorch's TF32 settings reported (cuDNN's convolutions may use TF32 on
             both sides, matrix products on neither).
  layers     where the full net's GPU step goes: `caffe time -gpu` at batch 128, milliseconds
             per layer type, forward and backward (DummyData's share is its Gaussian draw on
             the host, which training does not do).
  data       the data layer's images/s at batch 128 with the paper's augmentation: worker
             processes (the training default) and threads, beside the images/s of the step.
tools/gpu_check.py --parts runs some of them (their report beside report.json).
Exit status 0 when agreement, gradients, kernels and demo pass (those of them that ran); the
speed and data goals (Caffe within 1.2x of PyTorch; data at least the step's rate; demo
training under four minutes) are reported as met or missed. Without a GPU it says so and exits
1. The parts that must run in a process of their own (agreement, the Caffe step timing) are
tools/gpu_check.py --part processes.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from built_folders import write_whole

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "tools" / "gpu_check.py"   # its command line, run again for the --part processes
AGREEMENT_TOLERANCE = 1e-3   # FP32 on both sides: different algorithms, same function
# Some gradients of this net are ill-conditioned in float (ReLU and max-pooling decisions near
# ties flip with the rounding): at batch 128 on one CPU, images scaled by 1 + 1e-6 N(0, 1)
# move conv5's weight gradient by 4e-2, and the CPU's two convolution engines give conv4's
# weight gradients 2e-2 apart. So each array may differ by up to NOISE_FACTOR times the
# largest of those spreads, measured in the same run. Whether a nudge flips a decision that
# matters is chance: the spread takes the largest of NUDGE_DRAWS nudges (at batch 4 one draw
# moved conv3's weight gradient by 9e-5 where the two engines lay 1.7e-2 apart; three reached
# 6e-2).
NUDGE = 1e-6
NUDGE_DRAWS = 3
NOISE_FACTOR = 3.0
SPEED_GOAL = 1.2             # Caffe's step at most this many times PyTorch's
DEMO_GOAL_SECONDS = 240.0     # the demo schedule (3,600 iterations at batch 16) in four minutes


def report_line(*fields):
    print("GPUCHECK " + " ".join(str(f) for f in fields), flush=True)


def no_gpu_reason(gpu):
    """Why this machine and build cannot run the check on GPU `gpu`, or None."""
    from solver import devices
    try:
        devices.check_gpus((gpu,))
    except devices.DeviceError as err:
        return str(err)
    return None


# ---------------------------------------------------------------- agreement

def relative_error(a, b):
    """max |a - b| / max |b| (0 for two all-zero arrays)."""
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return diff / scale if scale > 0 else diff


def fixed_inputs(cfg, batch):
    """A batch of images (N(0, 50), as the DummyData nets draw them) and joints, seeded."""
    rng = np.random.default_rng(0)
    return {"data": rng.normal(0, 50, (batch, 3, cfg.input_size, cfg.input_size)),
            "joints_2D": rng.uniform(0, cfg.input_size, (batch, cfg.num_joints, 2)),
            "joints_3D": rng.normal(0, 300, (batch, cfg.num_joints, 3)) + [0, 0, 4000]}


def nudges(inputs):
    """NUDGE_DRAWS copies of `inputs`, each with the images scaled by 1 + NUDGE N(0, 1) per
    value (draw k seeded with k)."""
    images = inputs["data"]
    return [dict(inputs, data=images * (1 + NUDGE * np.random.default_rng(seed).standard_normal(
        images.shape))) for seed in range(NUDGE_DRAWS)]


def float_spread(reference, others):
    """{name: the largest relative error of any of `others` against `reference`}, all of
    them dicts of arrays with the same keys (passes of one net)."""
    return {name: max(relative_error(other[name], value) for other in others)
            for name, value in reference.items()}


def tolerance_ratios(errors, noise, floor=AGREEMENT_TOLERANCE):
    """{name: error / its tolerance}, the tolerance being the larger of `floor` and
    NOISE_FACTOR times the array's float noise (two dicts of relative errors, the same keys;
    noise from float_spread); every ratio at most 1 passes."""
    return {name: error / max(floor, NOISE_FACTOR * noise[name])
            for name, error in errors.items()}


def pooled_size(size, kernel, stride, pad):
    """Caffe's output size: ceil rounding, and the last window must start inside the image
    (not in its padding)."""
    pooled = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


def reference_max_pool(x, kernel, stride, pad=(0, 0)):
    """Caffe's max pooling (ceil rounding, the window cut to the image, the first maximum in
    row-major window order) and its argmax; kernel, stride, pad: (h, w) or one number.
    Returns (top, flat input index per output)."""
    (kh, kw), (sh, sw), (padh, padw) = (v if isinstance(v, tuple) else (v, v)
                                        for v in (kernel, stride, pad))
    n, c, h, w = x.shape
    ph, pw = pooled_size(h, kh, sh, padh), pooled_size(w, kw, sw, padw)
    top = np.empty((n, c, ph, pw), x.dtype)
    index = np.empty((n, c, ph, pw), np.int64)
    for i in range(ph):
        for j in range(pw):
            h0, w0 = max(i * sh - padh, 0), max(j * sw - padw, 0)
            window = x[:, :, h0:min(i * sh - padh + kh, h), w0:min(j * sw - padw + kw, w)]
            flat = window.reshape(n, c, -1)
            best = flat.argmax(axis=2)             # numpy returns the first maximum too
            top[:, :, i, j] = np.take_along_axis(flat, best[..., None], axis=2)[..., 0]
            width = window.shape[3]
            index[:, :, i, j] = (h0 + best // width) * w + w0 + best % width
    return top, index


def decisions(net_param, blobs):
    """{layer: array} of the discontinuous choices of one forward pass of a net (a
    NetParameter) from its blobs ({name: data}): which outputs each ReLU passes (in place, its
    top holds its output) and which element each max pooling takes. Gradients jump where one
    of these flips, so two passes' gradients compare only where their decisions agree."""
    from caffe.proto import caffe_pb2
    found = {}
    for layer in net_param.layer:
        if layer.type == "ReLU":
            found[layer.name] = blobs[layer.top[0]] > 0
        elif (layer.type == "Pooling"
              and layer.pooling_param.pool == caffe_pb2.PoolingParameter.MAX):
            param = layer.pooling_param
            found[layer.name] = reference_max_pool(blobs[layer.bottom[0]], param.kernel_size,
                                                   param.stride, param.pad)[1]
    return found


def differing_decisions(net_param, blobs_a, blobs_b):
    """{layer: how many of its decisions differ} between two passes of one net, for the
    layers where any do."""
    a, b = decisions(net_param, blobs_a), decisions(net_param, blobs_b)
    counts = {name: int(np.count_nonzero(a[name] != b[name])) for name in a}
    return {name: count for name, count in counts.items() if count}


def with_convolution_engine(net_param, engine):
    """A copy of a NetParameter whose Convolution layers all use `engine` ("DEFAULT": oneDNN
    on the CPU, cuDNN on the GPU; "CAFFE": Caffe's own im2col + GEMM)."""
    from caffe import params as P
    from caffe.proto import caffe_pb2
    copy = caffe_pb2.NetParameter()
    copy.CopyFrom(net_param)
    for layer in copy.layer:
        if layer.type == "Convolution":
            layer.convolution_param.engine = getattr(P.Convolution, engine)
    return copy


def forward_backward(net, inputs):
    """({blob: data}, {param/k: diff}) of one forward and backward pass of a train net on
    `inputs` ({input blob: array}), the parameters' diffs cleared first."""
    for name, value in inputs.items():
        net.blobs[name].data[...] = value
    net.clear_param_diffs()
    net.forward()
    net.backward()
    return ({name: blob.data.copy() for name, blob in net.blobs.items()},
            {f"{name}/{k}": blob.diff.copy() for name, blobs in net.params.items()
             for k, blob in enumerate(blobs)})


def agreement(gpu, batch, shared=None, variant="full"):
    """{"blobs": {name: err}, "gradients": {name/k: err}, "spread": {name: err}, "max_blob",
    "max_gradient", "max_ratio" (of an error to its tolerance, tolerance_ratios), ...} of one
    forward and backward on the CPU against GPU `gpu` (None: the CPU again, which must agree
    exactly); the spread is the CPU's own (see NOISE_FACTOR). Run it in a process of its own:
    CUDA reads the TF32 setting once per process. `shared` (a folder; None: one of its own)
    holds what the runs of one check share: the weights and the CPU's spread, made by the
    first run and read by the next (another TF32 setting does not change the CPU: its four
    spread passes are the CPU side's largest part, seconds of the GPU machine's time)."""
    import caffe
    from config import PAPER
    from prototxt.pose_net import write_net
    from solver.devices import use_device
    cfg = PAPER.replace(dropout_ratio=0.0, batch_size=batch)
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    shared = folder if shared is None else Path(shared)
    weights, spread_file = shared / "weights.caffemodel", shared / "cpu-spread.json"
    try:
        net_path = write_net(folder / "train.prototxt", cfg, variant, "train", data="input")
        inputs = fixed_inputs(cfg, batch)
        caffe.set_mode_cpu()
        if not weights.exists():
            caffe.set_random_seed(1)
            caffe.Net(str(net_path), caffe.TRAIN).save(str(weights))
        cpu = forward_backward(caffe.Net(str(net_path), caffe.TRAIN, weights=str(weights)),
                               inputs)
        if spread_file.exists():
            spread = json.loads(spread_file.read_text())
        else:
            spread = cpu_spread(net_path, weights, inputs, cpu, folder)
            spread_file.write_text(json.dumps(spread))
        use_device(gpu)   # nets made in GPU mode use cuDNN's engines
        on_gpu = forward_backward(caffe.Net(str(net_path), caffe.TRAIN, weights=str(weights)),
                                  inputs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    blobs = {name: relative_error(on_gpu[0][name], value) for name, value in cpu[0].items()}
    grads = {name: relative_error(on_gpu[1][name], value) for name, value in cpu[1].items()}
    ratios = tolerance_ratios({**blobs, **grads}, spread)
    return {"variant": variant, "batch": batch, "blobs": blobs, "gradients": grads,
            "spread": spread, "max_blob": max(blobs.values()),
            "max_gradient": max(grads.values()), "worst_blob": max(blobs, key=blobs.get),
            "worst_gradient": max(grads, key=grads.get), "max_ratio": max(ratios.values()),
            "worst_ratio": max(ratios, key=ratios.get)}


def cpu_spread(net_path, weights, inputs, cpu, folder):
    """float_spread of the CPU pass `cpu` (forward_backward of the net at net_path with the
    weights on `inputs`) against its other convolution engine and the nudged images, each
    pass in a net of its own (a pass moves BatchNorm's running statistics)."""
    import caffe
    from google.protobuf import text_format
    from caffe.proto import caffe_pb2
    im2col_path = folder / "train-im2col.prototxt"
    net_param = text_format.Parse(Path(net_path).read_text(), caffe_pb2.NetParameter())
    im2col_path.write_text(str(with_convolution_engine(net_param, "CAFFE")))
    others = [forward_backward(caffe.Net(str(path), caffe.TRAIN, weights=str(weights)), images)
              for path, images in [(im2col_path, inputs)]
              + [(net_path, nudge) for nudge in nudges(inputs)]]
    return {**float_spread(cpu[0], [other[0] for other in others]),
            **float_spread(cpu[1], [other[1] for other in others])}


def agreement_in_process(gpu, batch, tf32, shared):
    """agreement() in a child process with NVIDIA_TF32_OVERRIDE set for tf32=False."""
    env = dict(os.environ)
    if tf32:
        env.pop("NVIDIA_TF32_OVERRIDE", None)
    else:
        env["NVIDIA_TF32_OVERRIDE"] = "0"
    out = subprocess.run([sys.executable, str(TOOL), "--part", "agreement",
                          "--gpu", str(gpu), "--batch", str(batch), "--shared", str(shared)],
                         capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError("agreement run failed:\n" + (out.stdout + out.stderr)[-1500:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- gradients, demo

def tests_in_gpu_mode(gpu, tests, keyword=None):
    """{"passed", "summary", "output"} of the project's tests `tests` (selected by pytest's
    -k `keyword` if given) with their nets made in GPU mode on GPU `gpu`."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"--caffe-gpu={gpu}", *tests, *(["-k", keyword] if keyword else [])],
                         capture_output=True, text=True, cwd=REPO)
    summary = (out.stdout.strip().splitlines() or [""])[-1]
    return {"passed": out.returncode == 0, "summary": summary,
            "output": out.stdout[-3000:] if out.returncode else ""}


def gradient_checks(gpu):
    """The Python layers' gradient checks in GPU mode."""
    return tests_in_gpu_mode(gpu, ["tests/test_soft_labels.py", "tests/test_pose_3d.py",
                                   "tests/test_gradcheck.py"])


def kernel_checks(gpu):
    """The GPU kernels the project patches against the CPU and the numpy references of the
    CPU tests: max pooling with its index as a second top (CUDA patch 07; the single-top
    cases run cuDNN's pooling in GPU mode and are skipped there), and BatchNorm, Scale and
    ReLU through cuDNN (CUDA patch 11, tests/test_batchnorm_devices.py)."""
    return tests_in_gpu_mode(gpu, ["tests/test_caffe_cpu_layers.py",
                                   "tests/test_batchnorm_devices.py"],
                             keyword="max_pooling or batchnorm_devices")


def demo_on_gpu(gpu, lmdb, out):
    """Train the demo schedule on GPU `gpu` into a fresh run folder and evaluate it there."""
    run = out / "demo"
    shutil.rmtree(run, ignore_errors=True)
    started = time.monotonic()
    trained = subprocess.run([sys.executable, "tools/train.py", "--schedule", "demo",
                              "--lmdb", str(lmdb), "--run", str(run), "--gpus", str(gpu),
                              "--quiet"],
                             capture_output=True, text=True, cwd=REPO)
    seconds = time.monotonic() - started
    if trained.returncode != 0:
        return {"passed": False, "error": (trained.stdout + trained.stderr)[-2000:]}
    evaluated = subprocess.run([sys.executable, "tools/evaluate.py", "--run", str(run),
                                "--gpu", str(gpu), "--quiet"], capture_output=True, text=True,
                               cwd=REPO)
    if evaluated.returncode != 0:
        return {"passed": False, "train_seconds": seconds,
                "error": (evaluated.stdout + evaluated.stderr)[-2000:]}
    results = json.loads((run / "results.json").read_text())
    ours = results["mpjpe"]["frame_weighted"]
    floor = results["mean_pose_mpjpe"]["frame_weighted"]
    return {"passed": ours < floor, "train_seconds": round(seconds, 1),
            "mpjpe_mm": ours, "mean_pose_mpjpe_mm": floor, "frames": results["frames"],
            "goal_met": seconds < DEMO_GOAL_SECONDS}


# ---------------------------------------------------------------- speed, data

def caffe_gpu_steps(variant, gpu, batch, iterations):
    """Seconds of each of `iterations` solver steps (after two untimed ones) on GPU `gpu`
    (None: the CPU), on
    one batch set once (Input layers), as PyTorch's twin times its step: DummyData would
    draw 19 M Gaussian numbers on the CPU at every step of batch 128."""
    import caffe
    from google.protobuf import text_format
    from config import PAPER
    from prototxt.pose_net import write_net
    from solver.devices import use_device
    from solver.pose_solver import timing_solver
    cfg = PAPER.replace(batch_size=batch)
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        net_path = write_net(folder / "train.prototxt", cfg, variant, "train", data="input")
        solver_path = folder / "solver.prototxt"
        solver_path.write_text(text_format.MessageToString(timing_solver(cfg, net_path)))
        use_device(gpu)
        solver = caffe.SGDSolver(str(solver_path))
        for name, value in fixed_inputs(cfg, batch).items():
            solver.net.blobs[name].data[...] = value
        first_param = next(iter(solver.net.params.values()))[0]
        solver.step(2)
        times = []
        for _ in range(iterations):
            started = time.perf_counter()
            solver.step(1)
            first_param.data   # reading it to the host waits for the step's GPU work
            times.append(time.perf_counter() - started)
        return times
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def torch_python(choice=None):
    """An interpreter with PyTorch that sees a GPU: --torch-python, else the bench venv's,
    else python3 on PATH; None if none does."""
    candidates = [choice] if choice else [str(REPO / ".venv-bench" / "bin" / "python"),
                                          shutil.which("python3") or ""]
    for python in candidates:
        if python and Path(python).exists() and subprocess.run(
                [python, "-c", "import torch; assert torch.cuda.is_available()"],
                capture_output=True).returncode == 0:
            return python
    return None


def torch_gpu_steps(python, variant, batch, iterations):
    from config import PAPER
    from prototxt.pose_net import torch_arch
    out = subprocess.run([python, "tools/bench_torch.py",
                          "--arch", json.dumps(torch_arch(PAPER, variant)),
                          "--batch", str(batch), "--iterations", str(iterations),
                          "--warmup", "2", "--device", "cuda", "--variant", variant],
                         capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError("bench_torch.py failed: " + out.stderr[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed(gpu, batch, rounds, iterations, python):
    """Per variant: Caffe's and PyTorch's step medians over interleaved rounds."""
    from prototxt.pose_net import VARIANTS
    rows = {}
    for variant in VARIANTS:
        caffe_times, torch_times, torch_info = [], [], {}
        for _ in range(rounds):   # A, B, A, B: drifting clocks touch both alike
            caffe_times += caffe_steps_in_process(variant, gpu, batch, iterations)
            torch_info = torch_gpu_steps(python, variant, batch, iterations)
            torch_times += torch_info["step_seconds"]
        caffe_s, torch_s = statistics.median(caffe_times), statistics.median(torch_times)
        rows[variant] = {"caffe_step_s": caffe_s, "torch_step_s": torch_s,
                         "caffe_images_per_s": batch / caffe_s,
                         "torch_images_per_s": batch / torch_s,
                         "caffe_vs_torch": caffe_s / torch_s,
                         "caffe_spread_s": [min(caffe_times), max(caffe_times)],
                         "torch_spread_s": [min(torch_times), max(torch_times)],
                         "torch": {k: torch_info.get(k) for k in (
                             "torch_version", "device", "cudnn_allow_tf32",
                             "matmul_allow_tf32")}}
    return rows


def caffe_steps_in_process(variant, gpu, batch, iterations):
    """caffe_gpu_steps in a child process, so that each round starts from a fresh context."""
    out = subprocess.run([sys.executable, str(TOOL), "--part", "caffe-steps",
                          "--variant", variant, "--gpu", str(gpu), "--batch", str(batch),
                          "--iterations", str(iterations)], capture_output=True, text=True,
                         cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError("Caffe step timing failed: " + (out.stdout + out.stderr)[-1500:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def layer_times(gpu, batch, iterations, variant="full"):
    """{"forward_backward_ms", "per_type_ms"} of `caffe time` on GPU `gpu` (None: the CPU)."""
    from benchmarks.speed import caffe_time
    from config import PAPER
    from prototxt.pose_net import write_net
    from solver.caffe_cli import caffe_binary
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        net_path = write_net(folder / "train.prototxt", PAPER.replace(batch_size=batch),
                             variant, "train")
        total, per_type = caffe_time(caffe_binary(), net_path, iterations,
                                     args=() if gpu is None else (f"-gpu={gpu}",))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"variant": variant, "batch": batch, "forward_backward_ms": total,
            "per_type_ms": dict(sorted(per_type.items(), key=lambda kv: -kv[1]))}


def data_rates(lmdb, batch, seconds):
    from layers.h36m_data import auto_workers, images_per_second
    workers = auto_workers(1)
    return {"workers": workers,
            "processes_images_per_s": images_per_second(
                str(lmdb), "train", batch, seconds=seconds, workers=workers, processes=True,
                prefetch=max(4, workers)),
            "threads_images_per_s": images_per_second(
                str(lmdb), "train", batch, seconds=seconds, workers=workers)}


# ---------------------------------------------------------------- the whole check

def machine():
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True)
    from solver import devices
    info = devices.build_info()
    return {"gpus": out.stdout.strip().splitlines() if out.returncode == 0 else [],
            "cores": os.cpu_count(), "caffe_build": info.get("cuda_describe"),
            "caffe_libraries": info.get("cuda", {}).get("libraries")}


def agreement_part(args, report):
    shared = Path(tempfile.mkdtemp(prefix="gpu-check-agreement-"))
    try:
        exact = agreement_in_process(args.gpu, args.batch, False, shared)
        loose = agreement_in_process(args.gpu, args.batch, True, shared)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    ok = exact["max_ratio"] <= 1.0
    report["agreement"] = {"tf32_off": exact, "tf32_on": loose, "tolerance": AGREEMENT_TOLERANCE,
                           "noise_factor": NOISE_FACTOR, "nudge": NUDGE, "passed": ok}
    for name, part in (("tf32-off", exact), ("tf32-on", loose)):
        report_line("agreement", name, f"max_blob_rel {part['max_blob']:.2e}",
                    f"({part['worst_blob']})", f"max_grad_rel {part['max_gradient']:.2e}",
                    f"({part['worst_gradient']})", f"max_of_tolerance {part['max_ratio']:.2f}",
                    f"({part['worst_ratio']})")
    report_line("agreement", "PASS" if ok else "FAIL", f"tolerance max({AGREEMENT_TOLERANCE}, "
                f"{NOISE_FACTOR:g} x float noise)")
    return ok


def tests_part(name, tests):
    def part(args, report):
        result = report[name] = tests(args.gpu)
        report_line(name, "PASS" if result["passed"] else "FAIL", result["summary"])
        return result["passed"]
    return part


def lmdb_missing(args, name):
    """Report part `name` skipped if the LMDBs it reads are missing; whether they are."""
    if args.lmdb.exists():
        return False
    report_line(name, "SKIPPED", f"no LMDB at {args.lmdb} (make lmdb)")
    return True


def demo_part(args, report):
    if lmdb_missing(args, "demo"):
        return True
    demo = report["demo"] = demo_on_gpu(args.gpu, args.lmdb, args.out)
    if demo.get("mpjpe_mm") is not None:
        report_line("demo", "PASS" if demo["passed"] else "FAIL",
                    f"train_s {demo['train_seconds']}", f"mpjpe_mm {demo['mpjpe_mm']:.1f}",
                    f"mean_pose_mm {demo['mean_pose_mpjpe_mm']:.1f}",
                    f"goal_under_{DEMO_GOAL_SECONDS:.0f}s",
                    "met" if demo["goal_met"] else "missed")
    else:
        report_line("demo", "FAIL", demo["error"].splitlines()[-1:])
    return demo["passed"]


def speed_part(args, report):
    """A goal, reported as met or missed: never a failure of the check."""
    python = torch_python(args.torch_python)
    if not python:
        report_line("speed", "SKIPPED", "no PyTorch with CUDA found (--torch-python)")
        return True
    rows = speed(args.gpu, args.batch, args.rounds, args.iterations, python)
    report["speed"] = {"batch": args.batch, "goal": SPEED_GOAL, "variants": rows}
    for variant, row in rows.items():
        report_line("speed", variant, f"caffe_ms {1000 * row['caffe_step_s']:.1f}",
                    f"torch_ms {1000 * row['torch_step_s']:.1f}",
                    f"ratio {row['caffe_vs_torch']:.2f}",
                    f"caffe_img_s {row['caffe_images_per_s']:.0f}",
                    "goal", "met" if row["caffe_vs_torch"] <= SPEED_GOAL else "missed")
    return True


def layers_part(args, report):
    """A profile: reported, never a failure of the check."""
    try:
        layers = layer_times(args.gpu, args.batch, args.iterations)
    except RuntimeError as err:
        layers = {"error": str(err)}
    report["layers"] = layers
    report_line("layers", *([f"{layers['variant']} forward_backward_ms "
                             f"{layers['forward_backward_ms']:.1f}"]
                            + [f"{kind} {ms:.1f}" for kind, ms in layers["per_type_ms"].items()]
                            if "per_type_ms" in layers else ["FAILED", layers["error"][-300:]]))
    return True


def data_part(args, report):
    """A goal (at least the images/s of the fastest step the speed part timed, if it ran)."""
    if lmdb_missing(args, "data"):
        return True
    rates = report["data"] = data_rates(args.lmdb, args.batch, args.data_seconds)
    needed = max((row["caffe_images_per_s"] for row in report.get("speed", {}).get(
        "variants", {}).values()), default=None)
    rates["step_images_per_s"] = needed
    report_line("data", f"processes_img_s {rates['processes_images_per_s']:.0f}",
                f"threads_img_s {rates['threads_images_per_s']:.0f}",
                f"workers {rates['workers']}",
                f"step_img_s {needed:.0f}" if needed else "",
                ("goal " + ("met" if rates["processes_images_per_s"] >= needed
                            else "missed")) if needed else "")
    return True


# the parts in the order they run; each writes its section of the report and its GPUCHECK
# lines and returns whether it passed (the test parts look their checks up when they run)
PARTS = {"agreement": agreement_part,
         "gradients": tests_part("gradients", lambda gpu: gradient_checks(gpu)),
         "kernels": tests_part("kernels", lambda gpu: kernel_checks(gpu)),
         "demo": demo_part, "speed": speed_part, "layers": layers_part, "data": data_part}


def report_path(out, parts):
    """<out>/report.json for the whole check; a check of some parts writes beside it
    (report-speed-layers.json), so that it never replaces a whole check's report."""
    whole = list(parts) == list(PARTS)
    return out / ("report.json" if whole else f"report-{'-'.join(parts)}.json")


def check(args):
    """Run the parts named in args.parts (in PARTS's order), write the report; exit status 0
    when none of them failed."""
    report = {"machine": machine(), "parts": [name for name in PARTS if name in args.parts]}
    report_line("machine", json.dumps(report["machine"]))
    failures = [name for name in report["parts"] if not PARTS[name](args, report)]
    args.out.mkdir(parents=True, exist_ok=True)
    path = report_path(args.out, report["parts"])
    write_whole(path, json.dumps(report, indent=2) + "\n")
    report_line("report", path)
    report_line("PASS" if not failures else "FAIL", *failures)
    return 0 if not failures else 1


def run(args):
    """The check, or one --part of it, with the settings of tools/gpu_check.py's command
    line; the exit status (1: no usable GPU, or a part failed)."""
    reason = no_gpu_reason(args.gpu)
    if reason:
        print(f"gpu-check: {reason}", file=sys.stderr)
        return 1
    if args.part == "agreement":
        print(json.dumps(agreement(args.gpu, args.batch, args.shared)))
        return 0
    if args.part == "caffe-steps":
        print(json.dumps(caffe_gpu_steps(args.variant, args.gpu, args.batch, args.iterations)))
        return 0
    return check(args)

