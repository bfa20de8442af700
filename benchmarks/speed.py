"""Speed of the paper's network on this machine: Caffe's training step against PyTorch's and
against the machine's limit, before and after the project's speed changes (tools/bench.py is
its command line, `make bench` runs it).

Every figure comes from this one run (machines here are shared and drift by 25 % within
minutes, so only figures of one run are compared, and the frameworks are timed interleaved):
  - the machine: processor, cores, the OpenBLAS Caffe loads and the kernel (core) it runs,
    and the float32 matrix-product rate (4096^3, best of 3) of every library at hand: Caffe's
    GEMM (oneDNN's sgemm in the optimised build), Caffe's OpenBLAS, numpy's and PyTorch's. The
    best of them is the machine's rate; a step's limit is its FLOPs divided by that rate;
  - per Table 2 variant: the training step's FLOPs (convolutions and inner products, forward
    and backward, from the net's blob shapes); the solver step (forward, backward, update;
    images made once, as PyTorch's are) of the optimised Caffe, of Caffe without the speed
    changes (setup/caffe_setup.py --without-speedups, built on first use) and of PyTorch
    (tools/bench_torch.py in .venv-bench, made on first use), each a server process timed in
    turn: --rounds rounds of --steps steps each, A, B, C, A, B, C ...; the medians, their
    spread (the lowest and highest round median) and the ratios Caffe / PyTorch and
    Caffe / limit;
  - per variant and layer kind, `caffe time`'s forward + backward milliseconds before and
    after, for the layers each speed change rewrote, and the Python layers' share;
  - deploy inference (batch --deploy-batch, multi-root average included) of both Caffe builds
    and PyTorch, interleaved the same way;
  - the peak memory (maximum resident set) of the paper's batch-128 training step, before
    and after;
  - the data figures of `make bench-data` if runs/bench/data.json exists.
run() writes a JSON report and prints a table with greppable lines; the Caffe servers are
tools/bench.py --serve-caffe processes (caffe_server here), PyTorch's tools/bench_torch.py
--serve (benchmarks/torch_twin.py).
"""
import ctypes
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.timing import timed
from built_folders import write_whole

REPO = Path(__file__).resolve().parent.parent
# the command line that starts the servers: the Caffe one (--serve-caffe) and PyTorch's twin
BENCH_TOOL = REPO / "tools" / "bench.py"
TORCH_TOOL = REPO / "tools" / "bench_torch.py"

BENCH_VENV = REPO / ".venv-bench"
# PyTorch for the comparison only, never for the project (pinned there; pip takes it from the
# package index, or from a folder of wheels given as a cache: tools/bench.py --torch-wheels)
BENCH_REQUIREMENTS = REPO / "benchmarks" / "requirements.txt"
FORWARD_BACKWARD = re.compile(r"Average Forward-Backward: ([0-9.]+) ms")
LAYER_TIME = re.compile(r"\]\s+(\S+)\s+(forward|backward): ([0-9.]+) ms")
# the layer kinds each kept speed change rewrote (setup/patches/debian/NN-*.patch)
CHANGES = {"07+11 convolutions through oneDNN (Winograd for 3x3)": ("Convolution",),
           "07 inner products on oneDNN's sgemm": ("InnerProduct",),
           # patch 13 has the BatchNorm layers do the Scale and ReLU after them: one line
           "05+06+08+13 BatchNorm, Scale and ReLU on OpenMP, fused": ("BatchNorm", "Scale",
                                                                    "ReLU"),
           "05+08+10 max pooling by rows on OpenMP": ("Pooling",)}
GEMM_SIZE = 4096


# ---------------------------------------------------------------- matrix-product rates

def caffe_library(prefix):
    """Resolved path of the shared library named prefix* that pycaffe's _caffe.so loads (as
    the loader resolves it, RUNPATH included), or None. Other copies may be mapped in the
    same process (OpenCV's wheel brings an OpenBLAS of its own): this is Caffe's. pycaffe is
    found, not imported, so that a library can be loaded before it (tests/processor_kinds)."""
    extension = Path(importlib.util.find_spec("caffe").origin).resolve().parent / "_caffe.so"
    out = subprocess.run(["ldd", str(extension)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name, _, rest = line.strip().partition(" => ")
        if name.startswith(prefix) and rest.startswith("/"):
            return str(Path(rest.split(" (")[0]).resolve())
    return None


def best_seconds(function, repeats=3):
    """Best of `repeats` timed calls, after one untimed call (threads start, pages fault)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def gemm_rates(size=GEMM_SIZE):
    """{library: GFLOP/s} of C = A B for float32 size^3 through each matrix-product library
    Caffe links (OpenBLAS's cblas_sgemm, oneDNN's dnnl_sgemm; dlopen gives the copy already
    loaded), each result checked against numpy; and the OpenBLAS core name."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    c = np.empty((size, size), np.float32)
    pointer = lambda m: m.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    calls, core = {}, None
    path = caffe_library("libopenblas")
    if path:
        blas = ctypes.CDLL(path)
        blas.openblas_get_corename.restype = ctypes.c_char_p
        core = blas.openblas_get_corename().decode()
        calls["openblas"] = lambda: blas.cblas_sgemm(
            101, 111, 111, size, size, size, ctypes.c_float(1.0), pointer(a), size, pointer(b),
            size, ctypes.c_float(0.0), pointer(c), size)
    path = caffe_library("libdnnl")
    if path:
        dnnl = ctypes.CDLL(path)
        n = ctypes.c_int64(size)
        calls["onednn"] = lambda: dnnl.dnnl_sgemm(
            ctypes.c_char(b"N"), ctypes.c_char(b"N"), n, n, n, ctypes.c_float(1.0), pointer(a),
            n, pointer(b), n, ctypes.c_float(0.0), pointer(c), n)
    rates = {}
    for name, call in calls.items():
        rates[name] = 2.0 * size ** 3 / best_seconds(call) / 1e9
        np.testing.assert_allclose(c[:2, :3], a[:2] @ b[:, :3], rtol=1e-3, atol=1e-2)
    return rates, core


def numpy_gemm_rate(size=GEMM_SIZE):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    return 2.0 * size ** 3 / best_seconds(lambda: a @ b) / 1e9


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


# ---------------------------------------------------------------- the Caffe server

def caffe_server(args):
    """Answer train/infer/gemm commands on stdin, one JSON line each (the protocol of
    benchmarks/torch_twin.serve), with the pycaffe found first on sys.path: the optimised
    build through the venv, the one without speed changes through PYTHONPATH."""
    import caffe
    from google.protobuf import text_format
    from config import PAPER
    from prototxt.pose_net import write_net
    from solver.pose_solver import timing_solver

    cfg = PAPER.replace(batch_size=args.batch)
    scratch = Path(tempfile.mkdtemp(prefix="bench-caffe-"))
    train = write_net(scratch / "train.prototxt", cfg, args.variant, "train", data="input")
    (scratch / "solver.prototxt").write_text(
        text_format.MessageToString(timing_solver(cfg, train)))
    solver = caffe.SGDSolver(str(scratch / "solver.prototxt"))
    rng = np.random.default_rng(0)   # fixed inputs, made once (PyTorch's are too)
    size, joints = cfg.input_size, cfg.num_joints
    inputs = {"data": rng.normal(0, 50, (args.batch, 3, size, size)),
              "joints_2D": rng.uniform(0, size, (args.batch, joints, 2)),
              "joints_3D": rng.normal(0, 300, (args.batch, joints, 3))}
    for name, value in inputs.items():
        solver.net.blobs[name].data[...] = value
    for _ in range(args.warmup):
        solver.step(1)
    if args.peak_memory:
        solver.step(1)
        print(json.dumps({"max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                          / 1024}), flush=True)
        return 0
    deploy = write_net(scratch / "deploy.prototxt", cfg, args.variant, "deploy")
    print(json.dumps({"ready": True, "caffe": caffe.__file__}), flush=True)
    deploy_net = None
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "train":
            answer = {"seconds": timed(lambda: solver.step(1), int(words[1]))}
        elif words[0] == "update":   # the solver's update alone, on the last step's diffs
            answer = {"seconds": timed(solver.apply_update, int(words[1]))}
        elif words[0] == "infer":
            batch, times = int(words[1]), int(words[2])
            if deploy_net is None:
                deploy_net = caffe.Net(str(deploy), caffe.TEST)
                deploy_net.blobs["data"].reshape(batch, 3, size, size)
                deploy_net.reshape()
                deploy_net.blobs["data"].data[...] = rng.normal(0, 50, (batch, 3, size, size))
                deploy_net.forward()
            answer = {"seconds": timed(deploy_net.forward, times)}
        elif words[0] == "gemm":
            rates, core = gemm_rates(int(words[1]))
            answer = {"gflops": rates, "openblas_core": core}
        else:
            answer = {"error": f"unknown command {words[0]!r}"}
        print(json.dumps(answer), flush=True)
    return 0



class Server:
    """A benchmark server process (Caffe's or PyTorch's) driven by one-line commands."""

    def __init__(self, name, command, env=None):
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.hello = self.read()

    def read(self):
        line = self.process.stdout.readline()
        if not line:
            error = self.process.stderr.read()[-1500:]
            raise RuntimeError(f"the {self.name} benchmark process ended: {error}")
        return json.loads(line)

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.read()
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(timeout=60)


def caffe_command(variant, batch, extra=()):
    return [sys.executable, str(BENCH_TOOL), "--serve-caffe", "--variant", variant,
            "--batch", str(batch), *extra]


def torch_command(python, variant, batch, threads, warmup=1):
    """The PyTorch twin's server (tools/bench_torch.py --serve) in the interpreter `python`,
    for one variant of the paper's net."""
    from config import PAPER
    from prototxt.pose_net import torch_arch
    return [str(python), str(TORCH_TOOL), "--serve", "--arch",
            json.dumps(torch_arch(PAPER, variant)), "--batch", str(batch), "--warmup",
            str(warmup), "--threads", str(threads), "--variant", variant]


def with_build(python_dir):
    """The environment that makes a server import the pycaffe in `python_dir` (None: the
    venv's own), and run its `caffe` tool's Python layers with this venv."""
    env = dict(os.environ, GLOG_minloglevel="2")
    if python_dir is not None:
        # the build as it was: OpenBLAS on the core it picks by itself
        env.pop("OPENBLAS_CORETYPE", None)
        env["PYTHONPATH"] = f"{python_dir}:{REPO}"
        # Caffe's embedded Python finds its prefix through the `python3` on PATH
        env["PATH"] = f"{Path(sys.prefix) / 'bin'}:{env['PATH']}"
    return env


def interleaved(servers, command, rounds):
    """{name: [every step's seconds]} and {name: [each round's median]} of `command` sent
    to each server in turn, `rounds` times."""
    steps = {s.name: [] for s in servers}
    medians = {s.name: [] for s in servers}
    for _ in range(rounds):
        for server in servers:
            seconds = server.ask(command)["seconds"]
            steps[server.name] += seconds
            medians[server.name].append(statistics.median(seconds))
    return steps, medians


def summary(steps, medians):
    """median seconds and the spread of the round medians, per server."""
    return {name: {"median_seconds": statistics.median(values),
                   "round_medians_seconds": [min(medians[name]), max(medians[name])],
                   "steps": len(values)} for name, values in steps.items()}


# ---------------------------------------------------------------- `caffe time` per layer

def caffe_time(caffe_tool, model, iterations, env=None, args=()):
    """(average forward + backward ms, {layer type: ms}) of `caffe time` on a model; args:
    more of the tool's flags ("-gpu=0")."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    from solver.caffe_cli import failure_excerpt
    env = dict(env or os.environ)
    env.pop("GLOG_minloglevel", None)
    result = subprocess.run([str(caffe_tool), "time", f"-model={model}",
                             f"-iterations={iterations}", *args], capture_output=True,
                            text=True, env=env)
    output = result.stdout + result.stderr
    if result.returncode != 0 or not FORWARD_BACKWARD.search(output):
        raise RuntimeError(f"caffe time failed with {caffe_tool}:\n"
                           + failure_excerpt(output, lines=5))
    net = caffe_pb2.NetParameter()
    text_format.Parse(Path(model).read_text(), net)
    return parse_caffe_time(output, {layer.name: layer.type for layer in net.layer})


def parse_caffe_time(output, types):
    """(average forward + backward ms, {layer type: forward + backward ms}) from the log of
    `caffe time`; types: {layer name: type} (a name not in it counts as "other")."""
    per_type = {}
    for name, _, ms in LAYER_TIME.findall(output):
        kind = types.get(name, "other")
        per_type[kind] = per_type.get(kind, 0.0) + float(ms)
    return float(FORWARD_BACKWARD.search(output).group(1)), per_type


def unoptimised_build():
    """Folder of the build without the speed changes (built on first use, ~6 min)."""
    out = subprocess.run([sys.executable, str(REPO / "setup" / "caffe_setup.py"),
                          "--without-speedups", "--venv", str(REPO / ".venv")],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("the build without speed changes failed: " + out.stderr[-800:])
    return Path(out.stdout.strip().splitlines()[-1])


def bench_python(wheels=None):
    """The .venv-bench interpreter with benchmarks/requirements.txt's PyTorch, made on first
    use (and again when the pin changes); wheels: a folder pip may take it from first."""
    python = BENCH_VENV / "bin" / "python"
    pinned = BENCH_VENV / "requirements.txt"
    if (python.exists() and pinned.exists()
            and pinned.read_text() == BENCH_REQUIREMENTS.read_text()
            and subprocess.run([str(python), "-c", "import torch"],
                               capture_output=True).returncode == 0):
        return python
    print("bench: making .venv-bench with PyTorch (first use only)", flush=True)
    base = subprocess.run([sys.executable, "-c", "import sys; print(sys.base_prefix)"],
                          capture_output=True, text=True).stdout.strip()
    subprocess.run([f"{base}/bin/python3", "-m", "venv", str(BENCH_VENV)], check=True)
    cache = ["--find-links", str(wheels)] if wheels else []
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *cache, "-r",
                    str(BENCH_REQUIREMENTS)], check=True)
    shutil.copyfile(BENCH_REQUIREMENTS, pinned)
    return python


# ---------------------------------------------------------------- the run

def processor():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def start_servers(args, variant, before):
    """The Caffe (after, before) and PyTorch servers for one variant, warmed up."""
    warm = ["--warmup", "1"]
    servers = [Server("caffe", caffe_command(variant, args.batch, warm), with_build(None))]
    if not args.skip_torch:
        servers.append(Server("pytorch", torch_command(bench_python(args.torch_wheels), variant,
                                                       args.batch, args.threads)))
    if before is not None:
        servers.append(Server("caffe_before", caffe_command(variant, args.batch, warm),
                              with_build(before / "python")))
    return servers


def peak_memory(python_dir, variant, batch):
    """Maximum resident MiB of a process that makes the solver and takes two steps."""
    out = subprocess.run(caffe_command(variant, batch, ["--warmup", "1", "--peak-memory"]),
                         capture_output=True, text=True, env=with_build(python_dir), cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError("peak-memory run failed: " + out.stderr[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])["max_rss_mib"]


def progress(message):
    print(message, flush=True)


def run_bench(args, log=progress):
    import caffe
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    from config import PAPER
    from prototxt.pose_net import write_net

    before = None if args.skip_before else unoptimised_build()
    caffe_tool = Path(sys.prefix) / "bin" / "caffe"   # the venv's wrapper: BLAS core set
    report = {"processor": processor(), "machine_cores": os.cpu_count(), "batch": args.batch,
              "threads": args.threads, "rounds": args.rounds, "steps_per_round": args.steps,
              "variants": {}}
    cfg = PAPER.replace(batch_size=args.batch)
    rates = {"numpy": numpy_gemm_rate()}
    with tempfile.TemporaryDirectory() as scratch:
        for index, variant in enumerate(args.variants):
            servers = start_servers(args, variant, before)
            try:
                if index == 0:   # each library's matrix-product rate, once
                    for server in servers:
                        answer = server.ask(f"gemm {GEMM_SIZE}")
                        if server.name == "pytorch":
                            rates["pytorch"] = answer["gflops"]
                        elif server.name == "caffe":
                            rates.update({f"caffe_{k}": v for k, v in answer["gflops"].items()})
                            report["openblas_core"] = answer["openblas_core"]
                        else:
                            report["openblas_core_before"] = answer["openblas_core"]
                            rates["caffe_before_openblas"] = answer["gflops"]["openblas"]
                    report["gemm_gflops"] = rates
                    report["machine_gflops"] = max(rates.values())
                    report["machine_gflops_from"] = max(rates, key=rates.get)
                    log("bench: sgemm " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
                        + " GFLOP/s")
                steps, medians = interleaved(servers, f"train {args.steps}", args.rounds)
                row = {"step": summary(steps, medians)}
                # the SGD update alone (patch 12), after the timed steps: it moves the weights
                row["update"] = summary(*interleaved(
                    [s for s in servers if s.name != "pytorch"], f"update {args.steps}",
                    args.rounds))
                if index == 0:
                    steps, medians = interleaved(
                        servers, f"infer {args.deploy_batch} {args.steps}", args.rounds)
                    report["deploy"] = summary(steps, medians)
            finally:
                for server in servers:
                    server.close()
            model = write_net(Path(scratch) / f"{variant}.prototxt", cfg, variant, "train")
            net_param = caffe_pb2.NetParameter()
            text_format.Parse(model.read_text(), net_param)
            flops = step_flops(net_param, caffe.Net(str(model), caffe.TRAIN))
            row["step_gflop"] = flops / 1e9
            row["limit_seconds"] = flops / 1e9 / report["machine_gflops"]
            row["caffe_time_ms"], row["layer_ms_after"] = caffe_time(caffe_tool, model,
                                                                     args.steps * 2)
            if before is not None:
                row["caffe_time_before_ms"], row["layer_ms_before"] = caffe_time(
                    before / "bin" / "caffe", model, args.steps * 2,
                    with_build(before / "python"))
            caffe_s = row["step"]["caffe"]["median_seconds"]
            row["caffe_images_per_second"] = args.batch / caffe_s
            row["caffe_vs_limit"] = caffe_s / row["limit_seconds"]
            if "pytorch" in row["step"]:
                row["caffe_vs_pytorch"] = caffe_s / row["step"]["pytorch"]["median_seconds"]
            if "caffe_before" in row["step"]:
                row["before_vs_after"] = row["step"]["caffe_before"]["median_seconds"] / caffe_s
            report["variants"][variant] = row
            log(f"bench: {variant} done")
        report["peak_memory_batch"] = args.memory_batch
        report["peak_memory_mib"] = {"after": peak_memory(None, "full", args.memory_batch)}
        if before is not None:
            report["peak_memory_mib"]["before"] = peak_memory(before / "python", "full",
                                                              args.memory_batch)
    data = REPO / "runs" / "bench" / "data.json"
    if data.exists():
        report["data"] = json.loads(data.read_text())
    return report


# ---------------------------------------------------------------- the table

def format_report(report):
    rates = report["gemm_gflops"]
    lines = [f"MACHINE {report['processor']}, {report['machine_cores']} cores; OpenBLAS core "
             f"{report.get('openblas_core')} (before: {report.get('openblas_core_before', '-')})",
             "GEMM " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
             + f" GFLOP/s; the machine's rate: {report['machine_gflops']:.0f} "
             f"({report['machine_gflops_from']})",
             f"# batch {report['batch']}; medians of {report['rounds']} interleaved rounds of "
             f"{report['steps_per_round']} steps, [lowest, highest] round median",
             f"{'#':<6}{'variant':<11}{'GFLOP':>7}{'limit_s':>9}{'before_s':>10}{'caffe_s':>9}"
             f"{'torch_s':>9}{'img/s':>7}{'vs_torch':>10}{'vs_limit':>10}{'speedup':>9}"
             "  spread caffe / torch"]

    def seconds(row, name):
        step = row["step"].get(name)
        return step["median_seconds"] if step else None

    def cell(value, width, fmt=".2f"):
        return f"{value:>{width}{fmt}}" if value is not None else f"{'-':>{width}}"

    for variant, row in report["variants"].items():
        spread = "  ".join("[{:.2f}, {:.2f}]".format(*row["step"][n]["round_medians_seconds"])
                           for n in ("caffe", "pytorch") if n in row["step"])
        lines.append(f"SPEED {variant:<11}{row['step_gflop']:>7.1f}{row['limit_seconds']:>9.2f}"
                     + cell(seconds(row, "caffe_before"), 10) + cell(seconds(row, "caffe"), 9)
                     + cell(seconds(row, "pytorch"), 9)
                     + cell(row["caffe_images_per_second"], 7, ".1f")
                     + cell(row.get("caffe_vs_pytorch"), 10) + cell(row["caffe_vs_limit"], 10)
                     + cell(row.get("before_vs_after"), 9) + "  " + spread)
    for variant, row in report["variants"].items():
        after = row["layer_ms_after"]
        total = sum(ms for kind, ms in after.items() if kind not in ("DummyData", "Input"))
        lines.append(f"PYTHON {variant:<10} Python layers {after.get('Python', 0.0):.0f} ms of "
                     f"{total:.0f} ms per step ({100 * after.get('Python', 0.0) / total:.0f} %, "
                     "caffe time, data layers left out)")
        if "layer_ms_before" not in row:
            continue
        for change, kinds in CHANGES.items():
            old = sum(row["layer_ms_before"].get(k, 0.0) for k in kinds)
            new = sum(after.get(k, 0.0) for k in kinds)
            lines.append(f"CHANGE {variant:<10} {change}: {'+'.join(kinds)} "
                         f"{old:.0f} -> {new:.0f} ms per step")
        update = row.get("update", {})
        if "caffe_before" in update:
            lines.append(f"CHANGE {variant:<10} 12 SGD update in one pass on OpenMP: "
                         f"apply_update {1000 * update['caffe_before']['median_seconds']:.0f} "
                         f"-> {1000 * update['caffe']['median_seconds']:.0f} ms per step")
    deploy = report["deploy"]
    for name, step in deploy.items():
        lines.append(f"DEPLOY {name:<13} {report['deploy_batch'] / step['median_seconds']:.1f} "
                     f"images/s (batch {report['deploy_batch']}, multi-root average included)")
    memory = report["peak_memory_mib"]
    lines.append(f"MEMORY peak of the batch-{report['peak_memory_batch']} step: "
                 + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items()))
    if "data" in report:
        data = report["data"]
        full = (f" (at the real frame size {data['full_size']['build_vs_decode']:.2f})"
                if "full_size" in data else "")
        lines.append(f"DATA LMDB build {data['lmdb_build_frames_per_s']:.0f} frames/s = "
                     f"{data['build_vs_decode']:.2f} of decoding{full}; loader "
                     f"{data['loader_images_per_s']:.0f} images/s")
    return "\n".join(lines)


def run(args):
    """The whole benchmark with the settings of tools/bench.py's command line: the JSON
    report in args.out and the table on stdout; the exit status (1: a run failed)."""
    try:
        report = run_bench(args)
    except (RuntimeError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    report["deploy_batch"] = args.deploy_batch
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_whole(args.out, json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    print(f"bench: report in {args.out}")
    return 0
