#!/usr/bin/env python3
"""PyTorch twin of the Caffe pose network, timed on the CPU or a GPU (the reference point for
Caffe's training step in `make bench` and `make gpu-check`).

    .venv-bench/bin/python tools/bench_torch.py --arch '<json>' --batch 32 \\
        --iterations 5 --warmup 2 --threads 2 --variant full [--device cuda] [--serve]

It runs in .venv-bench, which has PyTorch and neither Caffe nor the project on its path: main
puts the repository on sys.path before it imports benchmarks/torch_twin.py (the net, the
timing and the --serve protocol are described there).
"""
import argparse
import sys
import warnings
from pathlib import Path


def main(argv=None):
    # the bench environment has no NumPy, which torch only needs for conversions the twin never
    # makes; keep torch's import-time warning out of the caller's stderr
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    repo = str(Path(__file__).resolve().parent.parent)
    if repo not in sys.path:   # .venv-bench has no .pth file naming the repository
        sys.path.insert(0, repo)
    from benchmarks.twin_arch import ARCH_KEYS, parse_arch
    parser = argparse.ArgumentParser(
        description="Time the PyTorch twin of the Caffe pose net's training step on the CPU "
                    "or a GPU; prints one JSON object on stdout.")
    parser.add_argument("--arch", required=True,
                        help=f"JSON object with the net and solver settings; keys: "
                             f"{', '.join(ARCH_KEYS)}")
    parser.add_argument("--batch", type=int, default=32, help="images per step (default 32)")
    parser.add_argument("--iterations", type=int, default=5,
                        help="timed training steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed training steps before timing (default 2)")
    parser.add_argument("--threads", type=int, default=2,
                        help="intra-op CPU threads, torch.set_num_threads (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where the step runs; cuda: the first visible GPU (default: cpu)")
    parser.add_argument("--serve", action="store_true",
                        help="after the warm-up, answer train/infer/gemm commands on stdin "
                             "(see benchmarks/torch_twin.py) instead of timing --iterations")
    parser.add_argument("--variant", default="",
                        help="label copied into the output, e.g. full or baseline (the net "
                             "itself follows --arch's roots and cls_2d)")
    args = parser.parse_args(argv)
    for name, least in (("batch", 1), ("iterations", 1), ("warmup", 0), ("threads", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name} must be >= {least}")
    try:
        args.arch = parse_arch(args.arch)
    except ValueError as error:
        parser.error(str(error))
    from benchmarks import torch_twin   # torch: only once the command line is known good
    if args.device == "cuda" and not torch_twin.gpu_available():
        parser.error("--device cuda: PyTorch sees no GPU here")
    return torch_twin.run(args)


if __name__ == "__main__":
    sys.exit(main())
