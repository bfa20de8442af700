"""Data-pipeline benchmark (`make bench-data`): each figure measured in this one run.

1. LMDB building frames/s against decoding the same videos alone (goal: >= 80 %), on a subset
   of the raw dataset, with the same started worker processes (the build's own pool), in
   interleaved rounds (decode, build, decode, build, ...): the median of the rounds' ratios.
   Started beforehand, because on such a subset starting the processes (and their imports)
   took longer than the frames themselves, and hid the speed of either. Measured on the
   default tree and on the same subset at the real frame size (1000x1000, written on first
   use by make_synth --scale 1.0): the default tree is half size, where a frame decodes
   about four times faster while its crop costs the same, so the real dataset's build sees
   the second figure.
2. The H36MData loader's training images/s (JPEG decode, random crop, PCA colour shift, mean
   subtraction), with the settings training uses on this machine (config.py: the paper's
   batch, worker processes, as many as the layer picks for one solver, prefetch; goal:
   >= 2000 images/s), the same with worker threads beside it, and against the paper
   network's training images/s from `caffe time` (goal: >= 10x).
3. The synthetic generator's procedural motion: frames/s of 1,000 frames of Walking (a test
   once asserted this; speed belongs here).
Writes runs/bench/data.json and prints a table. Machines here are shared and noisy: compare
ratios from one run, not absolute numbers across runs.
"""
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from config import PAPER
from data_prep.make_lmdb import CropWorkers, build, parse_args as lmdb_args
from data_prep.make_synth import build as build_synth, parse_args as synth_args
from data_prep.reader import find_sequences
from data_prep.synth.motion import body_for_subject, generate_motion
from layers.h36m_data import auto_workers, images_per_second
from solver.caffe_cli import forward_backward_ms, run_caffe

GOALS = {"build_vs_decode": 0.8, "loader_images_per_s": 2000, "loader_vs_training": 10}
# make_synth's scale of the real videos' frame size
FULL_SIZE_SCALE = 1.0


def decode_video(path):
    """Decode every frame of a video; returns the number of frames."""
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.grab() and capture.retrieve()[0]:
        frames += 1
    capture.release()
    return frames


def decode_only(pool, videos):
    """(frames, seconds) of decoding the videos in the pool's processes."""
    started = time.perf_counter()
    frames = sum(pool.map(decode_video, videos))
    return frames, time.perf_counter() - started


def build_lmdb(pool, root, subjects, actions, workers):
    """(frames, seconds) of building the subset's LMDBs with the pool, into a temporary
    folder removed afterwards."""
    out = Path(tempfile.mkdtemp(prefix="bench-lmdb-")) / "ds"
    try:
        args = lmdb_args(["--root", str(root), "--out", str(out), "--train-subjects",
                          subjects[0], "--test-subjects", *subjects[1:], "--actions", *actions,
                          "--workers", str(workers), "--quiet"])
        started = time.perf_counter()
        manifest = build(args, pool)
        seconds = time.perf_counter() - started
        return sum(s["count"] for s in manifest["splits"].values()), seconds
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def build_vs_decode(root, subjects, actions, workers, rounds):
    """Per round: decoding frames/s, build frames/s and their ratio, in interleaved rounds
    with one started pool (warmed by a decode of every video, also paging them in)."""
    sequences, _ = find_sequences(root, subjects, actions)
    videos = [s.paths["video"] for s in sequences]
    results = []
    with CropWorkers(workers) as pool:
        decode_only(pool, videos)
        for _ in range(rounds):
            decoded, decode_seconds = decode_only(pool, videos)
            built, build_seconds = build_lmdb(pool, root, subjects, actions, workers)
            decode_rate, build_rate = decoded / decode_seconds, built / build_seconds
            results.append({"decode_frames_per_s": decode_rate, "build_frames_per_s": build_rate,
                            "build_vs_decode": build_rate / decode_rate})
    return results


def full_size_tree(root, subjects, actions):
    """root, holding the benchmark's subset at the real frame size: written there on first
    use (make_synth --scale 1.0; about 15 s on two cores); ValueError naming the fix when a
    tree there has another scale or lacks a subject or action of the subset."""
    root = Path(root)
    if not root.exists():
        build_synth(synth_args(["--out", str(root), "--subjects", *subjects, "--actions",
                                *actions, "--scale", str(FULL_SIZE_SCALE), "--quiet"]))
        return root
    try:
        made = json.loads((root / "metadata.json").read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{root}: no readable metadata.json of make_synth ({err}); remove "
                         "the folder and the benchmark writes it again") from None
    missing = sorted(set(subjects) - set(made.get("subjects", [])) |
                     set(actions) - set(made.get("actions", [])))
    if made.get("scale") != FULL_SIZE_SCALE or missing:
        raise ValueError(f"{root} holds a synthetic tree of scale {made.get('scale')}"
                         f"{', without ' + ' '.join(missing) if missing else ''}, not the "
                         f"subset at the real frame size (scale {FULL_SIZE_SCALE}): remove it, "
                         "or name another --full-size-root, and the benchmark writes it")
    return root


def build_summary(rounds):
    """The report's figures of build_vs_decode's rounds: medians, and the rounds."""
    return {"decode_only_frames_per_s": median_of(rounds, "decode_frames_per_s"),
            "lmdb_build_frames_per_s": median_of(rounds, "build_frames_per_s"),
            "build_vs_decode": median_of(rounds, "build_vs_decode"),
            "build_rounds": rounds}


def loader_settings():
    """The data layer's settings in training on this machine (prototxt/pose_net.py's train
    net from config.py, one solver): what the loader figure is measured with."""
    return {"batch_size": PAPER.batch_size,
            "workers": PAPER.loader_workers or auto_workers(1),
            "processes": PAPER.loader_processes, "prefetch": PAPER.loader_prefetch}


def loader_rate(lmdb_dir, settings, processes, seconds):
    """Training images/s of the loader with the settings, in worker processes or threads."""
    return images_per_second(lmdb_dir, "train", settings["batch_size"], seconds=seconds,
                             workers=settings["workers"], prefetch=settings["prefetch"],
                             processes=processes)


def training_images_per_second(model, iterations, log):
    run_caffe(["time", f"-model={model}", f"-iterations={iterations}"], log)
    text = Path(log).read_text()
    milliseconds = forward_backward_ms(text)
    batch = int(re.search(r"Top shape: (\d+) 3 \d+ \d+", text).group(1))
    return batch / (milliseconds / 1000), batch, milliseconds


def motion_frames_per_second(frames=1000, repeats=3):
    """Frames/s of the synthetic generator's procedural motion (Walking, subject S1's body),
    the best of `repeats` runs (the least disturbed by other work on a shared machine)."""
    best = float("inf")
    for repeat in range(repeats):
        body, rng = body_for_subject("S1"), np.random.default_rng(repeat)
        started = time.perf_counter()
        generate_motion("Walking", frames, body, rng)
        best = min(best, time.perf_counter() - started)
    return frames / best


def median_of(rounds, key):
    return statistics.median(r[key] for r in rounds)


def report_rows(report):
    """(name, value, note) lines of the printed table."""
    settings = report["loader_settings"]
    kind = "processes" if settings["processes"] else "threads"
    other = "threads" if settings["processes"] else "processes"
    builds = [("", report)]
    if "full_size" in report:
        builds.append((" at the real frame size (1000x1000)", report["full_size"]))
    rows = []
    for where, figures in builds:
        rounds = figures["build_rounds"]
        spread = ", ".join(f"{r['build_vs_decode']:.0%}" for r in rounds)
        rows += [
            (f"video decoding only{where}",
             f"{figures['decode_only_frames_per_s']:.0f} frames/s",
             f"median of {len(rounds)} rounds"),
            (f"LMDB build{where}", f"{figures['lmdb_build_frames_per_s']:.0f} frames/s",
             f"{figures['build_vs_decode']:.0%} of decoding (goal >= "
             f"{GOALS['build_vs_decode']:.0%}; rounds {spread})")]
    return rows + [
        (f"H36MData loader (train, batch {settings['batch_size']}, {settings['workers']} "
         f"worker {kind})", f"{report['loader_images_per_s']:.0f} images/s",
         f"goal >= {GOALS['loader_images_per_s']}; as training loads"),
        (f"  the same with worker {other}", f"{report['loader_other_kind_images_per_s']:.0f} "
         "images/s", ""),
        (f"caffe time (batch {report['training_batch']})",
         f"{report['training_images_per_s']:.1f} images/s",
         f"loader is {report['loader_vs_training']:.0f}x faster "
         f"(goal >= {GOALS['loader_vs_training']}x)"),
        ("synthetic motion (Walking, 1,000 frames)",
         f"{report['synth_motion_frames_per_s']:.0f} frames/s", "best of 3"),
    ]


def data_benchmark(root, lmdb_dir, subjects, actions, rounds, loader_seconds, model,
                   iterations, workers, out, full_size_root=None):
    """Measure everything, write the report to `out` (JSON) and return it; the build also on
    full_size_root (a tree of full_size_tree) where it is given."""
    out.parent.mkdir(parents=True, exist_ok=True)
    build_rounds = build_vs_decode(root, subjects, actions, workers, rounds)
    full_size = None
    if full_size_root is not None:
        full_size = {"root": str(full_size_root), **build_summary(
            build_vs_decode(full_size_root, subjects, actions, workers, rounds))}
    settings = loader_settings()
    loader = loader_rate(lmdb_dir, settings, settings["processes"], loader_seconds)
    other_kind = loader_rate(lmdb_dir, settings, not settings["processes"], loader_seconds)
    network, batch, step_ms = training_images_per_second(model, iterations,
                                                         out.with_name("caffe_time.log"))
    report = {
        "workers": workers,
        **build_summary(build_rounds),
        "loader_images_per_s": loader, "loader_settings": settings,
        "loader_other_kind_images_per_s": other_kind,
        "training_images_per_s": network,
        "training_batch": batch, "training_step_ms": step_ms,
        "loader_vs_training": loader / network,
        "synth_motion_frames_per_s": motion_frames_per_second(),
        "goals": GOALS,
    }
    if full_size is not None:
        report["full_size"] = full_size
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


