#!/usr/bin/env python3
"""Build the training and test LMDBs from a raw Human3.6M tree (real or synthetic).

    .venv/bin/python -m data_prep.make_lmdb [--root data/synth-h36m] [--out data/lmdb/synth-h36m]
        [--actions Walking ...] [--test-stride 1] [--force]

Per split (train: S1 S5 S6 S7 S8, test: S9 S11 by default) it writes into --out:
  <split>_images/   LMDB of caffe Datum, JPEG-encoded 250x250 BGR person crops (Caffe's own
                    format: its Data layer reads it)
  <split>_poses/    LMDB with the same keys; Datum float_data = 17 x (x, y) joints in crop
                    pixels, then 17 x (x, y, z) joints in camera coordinates (mm)
  <split>_index.csv key, subject, action, file stem, camera, frame of every entry
  manifest.json     counts, skipped and truncated sequences, the training set's mean bone
                    lengths (scale recovery), mean pixel and RGB PCA (colour augmentation)
Sequences are processed in parallel; the LMDBs are written by this process, in a temporary
folder beside --out that is renamed when complete, so an interrupted run leaves nothing
half-built under --out (and its leftovers are removed by the next run).
"""
import argparse
import csv
import json
import multiprocessing
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import lmdb
import numpy as np
from tqdm import tqdm

from config import PAPER
from data_prep.crops import EmptyMask, person_crop
from data_prep.cli import add_build_options, reject_unknown
from data_prep.h36m import ACTIONS, JOINTS_17, PARENTS_17, TEST_SUBJECTS, TRAIN_SUBJECTS
from data_prep.reader import SequenceError, find_sequences, iter_frames, load_sequence

DEFAULT_ROOT = Path("data/synth-h36m")
MAP_SIZE = 1 << 40          # LMDB's address space; the files only grow as data is written
PCA_PIXEL_STRIDE = 4        # every 4th pixel in each direction feeds the colour statistics


def _caffe_pb2():
    """Caffe's protobuf module, imported on first use: only this process writes Datums, and
    importing caffe would cost each worker process about a second."""
    from caffe.proto import caffe_pb2
    return caffe_pb2


def encode_jpeg(crop, quality):
    """JPEG bytes of a BGR crop."""
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()


def image_datum(jpeg, height, width):
    """Serialized Datum of a JPEG-encoded height x width BGR crop."""
    datum = _caffe_pb2().Datum(channels=3, height=height, width=width, encoded=True,
                               data=jpeg, label=0)
    return datum.SerializeToString()


def pose_values(joints_2d, joints_3d):
    """The 85 values of a pose Datum: 17 x (x, y) in crop pixels, then 17 x (x, y, z) in mm."""
    return np.concatenate([joints_2d.ravel(), joints_3d.ravel()]).astype(np.float64)


def pose_datum(values):
    """Serialized Datum of a pose's values (float_data)."""
    datum = _caffe_pb2().Datum(channels=values.size, height=1, width=1)
    datum.float_data.extend(values.tolist())
    return datum.SerializeToString()


def colour_sums(crop):
    """Count, sum and sum of outer products of the RGB values (0-255) of a crop's pixels.
    As planes, not pixels: reductions over three interleaved values are slow in numpy. The
    sums are of integers far below 2 ** 53, exact in any order."""
    rgb = crop[::PCA_PIXEL_STRIDE, ::PCA_PIXEL_STRIDE, ::-1].transpose(2, 0, 1)
    planes = rgb.reshape(3, -1).astype(np.float64)
    return planes.shape[1], planes.sum(axis=1), np.einsum("ik,jk->ij", planes, planes)


CHILDREN = np.array([j for j, p in enumerate(PARENTS_17) if p >= 0])
PARENTS = np.array([p for p in PARENTS_17 if p >= 0])


def bone_lengths(joints):
    """(17,) length of each joint's bone to its parent (0 for the root), same units."""
    lengths = np.zeros(len(PARENTS_17))
    lengths[CHILDREN] = np.linalg.norm(joints[CHILDREN] - joints[PARENTS], axis=-1)
    return lengths


def process_sequence(task):
    """Crop every stride-th frame of one sequence (runs in a worker process).

    Returns a dict: entries [(JPEG bytes, pose values, index row)], colour sums, bone
    length sums, and note / skip messages."""
    sequence, stride, crop_size, margin, quality = task
    result = {"entries": [], "pixels": 0, "rgb_sum": np.zeros(3), "rgb_outer": np.zeros((3, 3)),
              "bones": np.zeros(len(PARENTS_17)), "skip": None, "note": None, "empty_masks": 0}
    name = f"{sequence.subject}/{sequence.stem}.{sequence.camera}"
    try:
        data = load_sequence(sequence)
        result["note"] = f"{name}: {data.note}" if data.note else None
        for frame, image, mask, joints_2d, joints_3d in iter_frames(data, stride):
            try:
                crop, mapped, _ = person_crop(image, mask, joints_2d, crop_size, margin)
            except EmptyMask:
                result["empty_masks"] += 1
                continue
            row = [sequence.subject, sequence.action, sequence.stem, sequence.camera, frame]
            result["entries"].append((encode_jpeg(crop, quality),
                                      pose_values(mapped, joints_3d), row))
            count, total, outer = colour_sums(crop)
            result["pixels"] += count
            result["rgb_sum"] += total
            result["rgb_outer"] += outer
            result["bones"] += bone_lengths(joints_3d)
    except SequenceError as err:
        result["skip"] = f"{name}: {err}"
        result["entries"] = []
    return result


def colour_statistics(pixels, rgb_sum, rgb_outer):
    """Mean pixel (BGR) and the PCA of the RGB covariance, as AlexNet's colour augmentation."""
    mean_rgb = rgb_sum / pixels
    covariance = rgb_outer / pixels - np.outer(mean_rgb, mean_rgb)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    return {"mean_bgr": mean_rgb[::-1].tolist(),
            "pca": {"eigenvalues": np.sqrt(np.maximum(eigenvalues[order], 0)).tolist(),
                    "variances": eigenvalues[order].tolist(),
                    "eigenvectors": eigenvectors[:, order].tolist(),
                    "space": "RGB, 0-255; eigenvalues are standard deviations (AlexNet's lambda)"}}


def open_for_writing(path):
    """A new LMDB that writes one commit per sequence without waiting for the disk each
    time (a flush per commit took longer than cropping the synthetic sequences): the
    caller flushes once when done, and an interrupted build is discarded whole anyway."""
    return lmdb.open(str(path), map_size=MAP_SIZE, subdir=True, sync=False)


def write_split(split, sequences, args, out, pool):
    """Write one split's LMDBs and index; returns its manifest section and statistics."""
    images, poses = (open_for_writing(out / f"{split}_{kind}") for kind in ("images", "poses"))
    stride = args.train_stride if split == "train" else args.test_stride
    tasks = [(s, stride, PAPER.crop_size, PAPER.crop_margin, PAPER.jpeg_quality)
             for s in sequences]
    section = {"count": 0, "sequences": 0, "stride": stride, "skipped": [], "truncated": [],
               "frames_without_person": 0}
    totals = {"pixels": 0, "rgb_sum": np.zeros(3), "rgb_outer": np.zeros((3, 3)),
              "bones": np.zeros(len(PARENTS_17))}
    with open(out / f"{split}_index.csv", "w", newline="") as handle:
        index = csv.writer(handle)
        index.writerow(["key", "subject", "action", "stem", "camera", "frame"])
        results = pool.imap(process_sequence, tasks)
        for result in tqdm(results, total=len(tasks), desc=f"lmdb {split}", unit="seq",
                           disable=args.quiet):
            if result["skip"]:
                section["skipped"].append(result["skip"])
                continue
            if result["note"]:
                section["truncated"].append(result["note"])
            section["sequences"] += 1
            section["frames_without_person"] += result["empty_masks"]
            with images.begin(write=True) as image_txn, poses.begin(write=True) as pose_txn:
                for jpeg, pose, row in result["entries"]:
                    key = f"{section['count']:08d}".encode()
                    image_txn.put(key, image_datum(jpeg, PAPER.crop_size, PAPER.crop_size))
                    pose_txn.put(key, pose_datum(pose))
                    index.writerow([key.decode(), *row])
                    section["count"] += 1
            for name in totals:
                totals[name] = totals[name] + result[name]
    for env in (images, poses):
        env.sync(True)      # the one flush to disk (see open_for_writing)
        env.close()
    return section, totals


def worker_pool(workers):
    """Processes that crop the sequences, started fresh (spawn). Each keeps OpenCV to its
    share of the cores: the workers together keep every core busy already, and OpenCV's own
    threads (warpAffine's) would only add their overhead."""
    threads = max(1, multiprocessing.cpu_count() // workers)
    return multiprocessing.get_context("spawn").Pool(workers, initializer=cv2.setNumThreads,
                                                     initargs=(threads,))


def write_splits(args, work, pool):
    """Write both splits into the folder `work`; returns the manifest."""
    manifest = {"root": str(args.root), "crop_size": PAPER.crop_size,
                "crop_margin": PAPER.crop_margin, "joints": list(JOINTS_17),
                "parents": list(PARENTS_17), "actions": list(args.actions), "splits": {}}
    for split, subjects in (("train", args.train_subjects), ("test", args.test_subjects)):
        sequences, skips = find_sequences(args.root, subjects, args.actions)
        section, totals = write_split(split, sequences, args, work, pool)
        section["subjects"] = list(subjects)
        section["skipped"] = [f"{s.what}: {s.reason}" for s in skips] + section["skipped"]
        manifest["splits"][split] = section
        if split == "train":
            if section["count"] == 0:
                raise ValueError(f"no training frames in {args.root} for subjects "
                                 f"{' '.join(subjects)} and the chosen actions")
            manifest.update(colour_statistics(totals["pixels"], totals["rgb_sum"],
                                              totals["rgb_outer"]))
            manifest["bone_lengths_mm"] = {
                JOINTS_17[j]: totals["bones"][j] / section["count"]
                for j, p in enumerate(PARENTS_17) if p >= 0}
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build(args, pool=None):
    """Build the LMDBs of args into args.out; returns the manifest. pool: worker_pool's
    processes to crop with (a benchmark keeps them started), else new ones for this build."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)        # left by an interrupted run
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        if pool is None:
            with worker_pool(args.workers) as pool:
                manifest = write_splits(args, work, pool)
        else:
            manifest = write_splits(args, work, pool)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


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
    add_build_options(parser)
    args = parser.parse_args(argv)
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
