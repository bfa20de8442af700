#!/usr/bin/env python3
"""Data-pipeline benchmark (`make bench-data`): each figure measured in this one run.

1. LMDB building frames/s against decoding the same videos alone (goal: >= 80 %), both with
   the same number of worker processes, on a subset of the raw dataset.
2. The H36MData loader's training images/s (JPEG decode, random crop, PCA colour shift, mean
   subtraction, threaded prefetch) against the paper network's training images/s from
   `caffe time` (goals: >= 10x, and >= 1000 images/s); and at the paper's batch 128 with the
   training default of worker processes beside threads, as many of each as training uses
   (what a GPU is fed with; `make gpu-check` measures it beside the GPU's step).
Writes runs/bench/data.json and prints a table. Machines here are shared and noisy: compare
ratios from one run, not absolute numbers across runs.
"""
import argparse
import json
import multiprocessing
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2

from data_prep.make_lmdb import main as make_lmdb
from data_prep.reader import find_sequences
from layers.h36m_data import auto_workers, images_per_second
from tools.caffe_cli import run_caffe


def decode_video(path):
    """Decode every frame of a video; returns the number of frames."""
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.grab() and capture.retrieve()[0]:
        frames += 1
    capture.release()
    return frames


def decode_only(root, subjects, actions, workers):
    sequences, _ = find_sequences(root, subjects, actions)
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        frames = sum(pool.map(decode_video, [s.paths["video"] for s in sequences]))
    return frames, time.perf_counter() - started


def build_lmdb(root, subjects, actions, workers):
    out = Path(tempfile.mkdtemp(prefix="bench-lmdb-")) / "ds"
    try:
        started = time.perf_counter()
        code = make_lmdb(["--root", str(root), "--out", str(out), "--train-subjects", subjects[0],
                          "--test-subjects", *subjects[1:], "--actions", *actions,
                          "--workers", str(workers), "--quiet"])
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError("make_lmdb failed")
        manifest = json.loads((out / "manifest.json").read_text())
        return sum(s["count"] for s in manifest["splits"].values()), seconds
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def training_images_per_second(model, iterations, log):
    run_caffe(["time", f"-model={model}", f"-iterations={iterations}"], log)
    text = Path(log).read_text()
    milliseconds = float(re.search(r"Average Forward-Backward: ([0-9.]+) ms", text).group(1))
    batch = int(re.search(r"Top shape: (\d+) 3 \d+ \d+", text).group(1))
    return batch / (milliseconds / 1000), batch, milliseconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/synth-h36m"),
                        help="raw dataset (default: %(default)s)")
    parser.add_argument("--lmdb", type=Path, default=Path("data/lmdb/synth-h36m"),
                        help="built LMDBs for the loader (default: %(default)s)")
    parser.add_argument("--subjects", nargs="+", default=["S1", "S9"],
                        help="subset for the build benchmark: first = train (default: S1 S9)")
    parser.add_argument("--actions", nargs="+", default=["Walking", "Sitting", "Phoning"],
                        help="subset for the build benchmark (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=Path("prototxt/full/train.prototxt"),
                        help="training net for `caffe time` (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=2, help="caffe time iterations")
    parser.add_argument("--workers", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--out", type=Path, default=Path("runs/bench/data.json"))
    args = parser.parse_args(argv)
    for path, fix in ((args.root, "make synth"), (args.lmdb, "make lmdb")):
        if not path.exists():
            parser.error(f"{path} not found: run `{fix}` first")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    decoded, decode_seconds = decode_only(args.root, args.subjects, args.actions, args.workers)
    built, build_seconds = build_lmdb(args.root, args.subjects, args.actions, args.workers)
    loader = images_per_second(args.lmdb, "train", 32, seconds=5)
    workers = auto_workers(1)
    paper_batch = {kind: images_per_second(args.lmdb, "train", 128, seconds=8, workers=workers,
                                           processes=kind == "processes")
                   for kind in ("threads", "processes")}
    network, batch, step_ms = training_images_per_second(args.model, args.iterations,
                                                         args.out.with_name("caffe_time.log"))
    report = {
        "workers": args.workers,
        "decode_only_frames_per_s": decoded / decode_seconds,
        "lmdb_build_frames_per_s": built / build_seconds,
        "build_vs_decode": (built / build_seconds) / (decoded / decode_seconds),
        "loader_images_per_s": loader,
        "loader_batch128_images_per_s": paper_batch, "loader_batch128_workers": workers,
        "training_images_per_s": network,
        "training_batch": batch, "training_step_ms": step_ms,
        "loader_vs_training": loader / network,
        "goals": {"build_vs_decode": 0.8, "loader_vs_training": 10, "loader_images_per_s": 1000},
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    rows = [("video decoding only", f"{report['decode_only_frames_per_s']:.0f} frames/s", ""),
            ("LMDB build", f"{report['lmdb_build_frames_per_s']:.0f} frames/s",
             f"{report['build_vs_decode']:.0%} of decoding (goal >= 80%)"),
            ("H36MData loader (train)", f"{loader:.0f} images/s", "goal >= 1000"),
            *((f"  batch 128, {workers} worker {kind}", f"{rate:.0f} images/s", "")
              for kind, rate in paper_batch.items()),
            (f"caffe time {args.model} (batch {batch})", f"{network:.1f} images/s",
             f"loader is {report['loader_vs_training']:.0f}x faster (goal >= 10x)")]
    for name, value, note in rows:
        print(f"bench-data: {name:<48} {value:>16}  {note}")
    print(f"bench-data: report in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
