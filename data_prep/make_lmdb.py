#!/usr/bin/env python3
"""Build the training and test LMDBs from a raw Human3.6M tree (real or synthetic).

    .venv/bin/python -m data_prep.make_lmdb [--root data/synth-h36m] [--out data/lmdb/synth-h36m]
        [--actions Walking ...] [--test-stride 1] [--force]

Per split (train: S1 S5 S6 S7 S8, test: S9 S11 by default) it writes a dataset folder in the
format of data_prep/dataset.py (image and pose LMDBs, the index, manifest.json) into --out;
each split's manifest section also reports its sequences, stride, skipped and truncated
sequences and frames without a person. The crop size, margin and JPEG quality come from the
config (--config, --set). Sequences are cropped in parallel worker processes; this process
writes through data_prep.dataset.DatasetWriter, which builds in a temporary folder beside
--out and renames it when complete, so an interrupted run leaves nothing half-built under
--out (and its leftovers are removed by the next run).
"""
import argparse
import multiprocessing
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from config import ConfigError, LMDB_KEYS, add_config_arguments, load_config, stage_overrides
from data_prep.crops import EmptyMask, person_crop
from data_prep.cli import add_build_options, reject_unknown
from data_prep.dataset import DatasetWriter, Sample, encode_samples
from data_prep.h36m import ACTIONS, TEST_SUBJECTS, TRAIN_SUBJECTS
from data_prep.reader import SequenceError, find_sequences, iter_frames, load_sequence

DEFAULT_ROOT = Path("data/synth-h36m")


def sequence_samples(sequence, data, stride, crop_size, margin, counts):
    """The Samples of every stride-th frame of a loaded sequence; frames whose mask shows no
    person are counted in counts["empty_masks"] and left out."""
    for frame, image, mask, joints_2d, joints_3d in iter_frames(data, stride):
        try:
            crop, mapped, _ = person_crop(image, mask, joints_2d, crop_size, margin)
        except EmptyMask:
            counts["empty_masks"] += 1
            continue
        row = dict(subject=sequence.subject, action=sequence.action, stem=sequence.stem,
                   camera=sequence.camera, frame=frame)
        yield Sample(crop, mapped, joints_3d, row)


def process_sequence(task):
    """Crop and encode every stride-th frame of one sequence (runs in a worker process).

    Returns a dict: "encoded" (EncodedSamples), "empty_masks", and "note" / "skip" messages."""
    sequence, stride, crop_size, margin, quality = task
    name = f"{sequence.subject}/{sequence.stem}.{sequence.camera}"
    counts = {"empty_masks": 0}
    try:
        data = load_sequence(sequence)
        encoded = encode_samples(sequence_samples(sequence, data, stride, crop_size, margin,
                                                  counts), quality)
    except SequenceError as err:
        return {"skip": f"{name}: {err}", "note": None, "empty_masks": 0,
                "encoded": encode_samples([], quality)}
    return {"skip": None, "note": f"{name}: {data.note}" if data.note else None,
            "empty_masks": counts["empty_masks"], "encoded": encoded}


def write_split(writer, split, sequences, stride, cfg, pool, quiet):
    """Crop the sequences in the pool and write them into the writer's split; returns the
    split's report for the manifest."""
    split_writer = writer.split(split)
    tasks = [(s, stride, cfg.crop_size, cfg.crop_margin, cfg.jpeg_quality) for s in sequences]
    report = {"sequences": 0, "stride": stride, "skipped": [], "truncated": [],
              "frames_without_person": 0}
    results = pool.imap(process_sequence, tasks)
    for result in tqdm(results, total=len(tasks), desc=f"lmdb {split}", unit="seq",
                       disable=quiet):
        if result["skip"]:
            report["skipped"].append(result["skip"])
            continue
        if result["note"]:
            report["truncated"].append(result["note"])
        report["sequences"] += 1
        report["frames_without_person"] += result["empty_masks"]
        split_writer.write(result["encoded"])
    return report


def worker_pool(workers):
    """Processes that crop the sequences, started fresh (spawn). Each keeps OpenCV to its
    share of the cores: the workers together keep every core busy already, and OpenCV's own
    threads (warpAffine's) would only add their overhead."""
    threads = max(1, multiprocessing.cpu_count() // workers)
    return multiprocessing.get_context("spawn").Pool(workers, initializer=cv2.setNumThreads,
                                                     initargs=(threads,))


def write_splits(args, cfg, writer, pool):
    """Write both splits through the writer and commit it; returns the manifest."""
    reports = {}
    for split, subjects in (("train", args.train_subjects), ("test", args.test_subjects)):
        sequences, skips = find_sequences(args.root, subjects, args.actions)
        stride = args.train_stride if split == "train" else args.test_stride
        report = write_split(writer, split, sequences, stride, cfg, pool, args.quiet)
        report["subjects"] = list(subjects)
        report["skipped"] = [f"{s.what}: {s.reason}" for s in skips] + report["skipped"]
        reports[split] = report
    settings = {"root": str(args.root), "crop_margin": cfg.crop_margin,
                "actions": list(args.actions)}
    return writer.commit(settings, reports)


def build(args, pool=None):
    """Build the dataset folder of args into args.out; returns the manifest. pool:
    worker_pool's processes to crop with (a benchmark keeps them started), else new ones."""
    cfg = args.config
    with DatasetWriter(args.out, cfg.crop_size, cfg.jpeg_quality) as writer:
        if pool is None:
            with worker_pool(args.workers) as pool:
                return write_splits(args, cfg, writer, pool)
        return write_splits(args, cfg, writer, pool)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Build the LMDBs of person crops and poses "
                                     "from a raw Human3.6M tree (real or synthetic).")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="Human3.6M root holding S1 ... S11 (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: data/lmdb/<root's name>)")
    parser.add_argument("--actions", nargs="+", default=list(ACTIONS),
                        help="canonical action names (default: all 15)")
    parser.add_argument("--train-subjects", nargs="+", default=list(TRAIN_SUBJECTS),
                        help="default: %(default)s")
    parser.add_argument("--test-subjects", nargs="+", default=list(TEST_SUBJECTS),
                        help="default: %(default)s")
    parser.add_argument("--train-stride", type=int, default=1,
                        help="use every n-th training frame (default: %(default)s)")
    parser.add_argument("--test-stride", type=int, default=1,
                        help="use every n-th test frame; 5 or 64 are common on the real "
                             "dataset (default: %(default)s)")
    add_config_arguments(parser, "config overrides that shape the crops: "
                         f"{', '.join(sorted(LMDB_KEYS))}")
    add_build_options(parser)
    args = parser.parse_args(argv)
    try:
        args.config = load_config(args.config, stage_overrides("make_lmdb", LMDB_KEYS, args.set))
    except ConfigError as err:
        parser.error(str(err))
    reject_unknown(parser, "action", args.actions, ACTIONS)
    if min(args.train_stride, args.test_stride, args.workers) < 1:
        parser.error("--train-stride, --test-stride and --workers must be at least 1")
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a folder; write the synthetic dataset with "
                     "`make synth` or point --root at Human3.6M")
    if args.out is None:
        args.out = Path("data/lmdb") / args.root.name
    if args.out.exists() and not args.force:
        parser.error(f"{args.out} exists; pass --force to replace it")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        manifest = build(args)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for split, section in manifest["splits"].items():
        print(f"lmdb {split}: {section['count']} crops from {section['sequences']} sequences, "
              f"{len(section['skipped'])} skipped, {len(section['truncated'])} truncated")
        for line in section["skipped"] + section["truncated"]:
            print(f"  {line}")
    print(f"lmdb: wrote {args.out} (manifest.json, train/test images, poses, index)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
