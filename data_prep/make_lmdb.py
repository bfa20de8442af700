#!/usr/bin/env python3
"""Build the training and test LMDBs from a raw Human3.6M tree (real or synthetic).

    .venv/bin/python -m data_prep.make_lmdb [--root data/synth-h36m] [--out data/lmdb/synth-h36m]
        [--actions Walking ...] [--test-stride 1] [--drop-damaged] [--force]

Per split (train: S1 S5 S6 S7 S8, test: S9 S11 by default) it writes a dataset folder in the
format of data_prep/dataset.py (image and pose LMDBs, the index, manifest.json) into --out;
each split's manifest section also reports its sequences, stride, subjects, frames without a
person, frames kept whose 2D joints lie outside the mask's person (OFF_JOINTS, in sequences
not skipped for it) and:
  skipped          "<sequence>: <reason>" of each sequence left out for a missing or unreadable
                   file (S11 Directions, camera 54138969, is a known fault of many copies), or
                   for masks that disagree with its 2D poses (OFF_FRAMES)
  truncated        {"sequence", "poses", "video", "masks", "kept"} (frame counts) of each
                   sequence whose files disagree: every real video is longer than its poses
  half_posed       the same for the truncated sequences whose poses cover only about half of
                   their video (four S9 recordings); kept, their poses hold for their frames
  ignored          the `_ALL` files (duplicates of the others), left out as expected
  dropped_damaged  sequences left out by --drop-damaged: the recordings of h36m.DAMAGED (S9
                   Greeting, ...), which some works leave out as damaged; kept by default
The settings name the root, the crop margin, the actions and "drop_damaged". The printed
summary gives each split's counts, at most MAX_LINES_PRINTED lines per list and the range of
extra frames per camera; the manifest holds every entry.

The crop size, margin and JPEG quality come from the config (--config, --set). Sequences are
cropped in parallel worker processes; this process writes through
data_prep.dataset.DatasetWriter, which builds in a temporary folder beside --out and renames
it when complete, so an interrupted run leaves nothing half-built under --out (and its
leftovers are removed by the next run). It holds --out's lock meanwhile: a second build of the
same folder stops at once, naming this one's process. An existing --out is replaced only with
--force and only when it is a dataset this toolkit built (its manifest.json): never a raw
tree or any other folder. A disk without room for the next chunk stops the build with the
folder named, and nothing of it is left behind.
"""
import argparse
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2
import lmdb
from tqdm import tqdm

from built_folders import FolderError, check_replaceable
from child_processes import die_with_parent
from config import ConfigError, LMDB_KEYS, add_config_arguments, load_config, stage_overrides
from data_prep.crops import box_crop, joints_outside_box
from data_prep.cli import add_build_options, reject_unknown
from data_prep.dataset import DatasetWriter, DiskFull, Sample, encode_samples
from data_prep.h36m import ACTIONS, DAMAGED, TEST_SUBJECTS, TRAIN_SUBJECTS
from data_prep.reader import SequenceError, find_sequences, iter_person_boxes, load_sequence

DEFAULT_ROOT = Path("data/synth-h36m")
# Entries of a list (skips, half-posed or dropped sequences) that the summary prints; the
# real dataset truncates all of its 840 recordings x cameras, which only manifest.json lists.
MAX_LINES_PRINTED = 10
FILE_KINDS = ("video", "poses", "masks")
DAMAGED_NAMES = ", ".join(f"{subject} {stem}" for subject, stem in sorted(DAMAGED))
# Masks and poses that disagree: a frame is off when more than OFF_JOINTS of its 2D joints
# lie outside its mask's person box grown by BOX_TOLERANCE of the box's longer side on each
# side (a correct mask holds the whole person: on the synthetic trees no joint lies outside),
# and a sequence is skipped when more than OFF_FRAMES of its frames are off: a mask file
# stored untransposed (which a square frame's shape cannot tell) or of another recording.
BOX_TOLERANCE = 0.1
OFF_JOINTS = 0.25
OFF_FRAMES = 0.5


def sequence_samples(sequence, data, stride, crop_size, margin, counts):
    """The Samples of every stride-th frame of a loaded sequence; frames whose mask shows no
    person are counted in counts["empty_masks"] and left out, those whose 2D joints lie
    outside the mask's person box (OFF_JOINTS) counted in counts["off"]."""
    for frame, image, box, joints_2d, joints_3d in iter_person_boxes(data, stride):
        if box is None:
            counts["empty_masks"] += 1
            continue
        counts["off"] += (joints_outside_box(joints_2d, box, BOX_TOLERANCE)
                          > OFF_JOINTS * len(joints_2d))
        crop, mapped, _ = box_crop(image, box, joints_2d, crop_size, margin)
        row = dict(subject=sequence.subject, action=sequence.action, stem=sequence.stem,
                   camera=sequence.camera, frame=frame)
        yield Sample(crop, mapped, joints_3d, row)


def process_sequence(task):
    """Crop and encode every stride-th frame of one sequence (runs in a worker process).

    Returns a dict: "encoded" (EncodedSamples), "empty_masks", "off" (frames kept whose 2D
    joints lie outside the mask's person, OFF_JOINTS), "skip" (a message, or None),
    "truncated" (SequenceData.truncation(): frame counts, or None) and "half_posed". Whatever
    goes wrong with the sequence's files, the sequence is skipped with the reason, never the
    build: the reader names the file for what it knows, and any other exception (cdflib and
    h5py raise MemoryError, OverflowError, TypeError ... on malformed files) is reported with
    its type."""
    sequence, stride, crop_size, margin, quality = task
    counts = {"empty_masks": 0, "off": 0}
    try:
        data = load_sequence(sequence)
        encoded = encode_samples(sequence_samples(sequence, data, stride, crop_size, margin,
                                                  counts), quality)
        cropped = len(encoded.entries)
        if counts["off"] > OFF_FRAMES * cropped:
            raise SequenceError(
                f"its masks and 2D poses disagree: in {counts['off']} of its {cropped} frames "
                f"more than {OFF_JOINTS:.0%} of the 2D joints lie outside the mask's person "
                f"(a mask file stored untransposed, or of another recording?): "
                f"{sequence.paths['mask']}, {sequence.paths['d2']}")
    except SequenceError as err:
        return skipped_sequence(sequence, str(err), quality)
    except Exception as err:   # noqa: BLE001 - one bad file must not end the whole build
        return skipped_sequence(sequence, f"unexpected {type(err).__name__} reading its files "
                                f"({', '.join(str(p) for p in sequence.paths.values())}): {err}",
                                quality)
    return {"skip": None, "truncated": data.truncation(), "half_posed": data.half_posed,
            "empty_masks": counts["empty_masks"], "off": counts["off"], "encoded": encoded}


def skipped_sequence(sequence, reason, quality):
    """process_sequence's result for a sequence left out for `reason`."""
    return {"skip": f"{sequence.name}: {reason}", "truncated": None, "half_posed": False,
            "empty_masks": 0, "off": 0, "encoded": encode_samples([], quality)}


def write_split(writer, split, sequences, stride, cfg, pool, quiet):
    """Crop the sequences in the pool and write them into the writer's split; returns the
    split's report for the manifest."""
    split_writer = writer.split(split)
    tasks = [(s, stride, cfg.crop_size, cfg.crop_margin, cfg.jpeg_quality) for s in sequences]
    report = {"sequences": 0, "stride": stride, "skipped": [], "truncated": [],
              "half_posed": [], "frames_without_person": 0, "frames_joints_outside_mask": 0}
    results = pool.results(process_sequence, tasks, lambda task, reason: skipped_sequence(
        task[0], reason, cfg.jpeg_quality))
    for result in tqdm(results, total=len(tasks), desc=f"lmdb {split}", unit="seq",
                       disable=quiet):
        if result["skip"]:
            report["skipped"].append(result["skip"])
            continue
        if result["truncated"]:
            report["truncated"].append(result["truncated"])
        if result["half_posed"]:
            report["half_posed"].append(result["truncated"])
        report["sequences"] += 1
        report["frames_without_person"] += result["empty_masks"]
        report["frames_joints_outside_mask"] += result["off"]
        split_writer.write(result["encoded"])
    return report


def start_worker(threads, parent):
    """A crop worker's start: OpenCV on `threads` threads, and an end with its parent (a
    killed make_lmdb leaves no worker waiting for tasks)."""
    die_with_parent(parent)
    cv2.setNumThreads(threads)


class CropWorkers:
    """Processes that crop the sequences, started fresh (spawn), ending with this one. Each
    keeps OpenCV to its share of the cores: the workers together keep every core busy
    already, and OpenCV's own threads (warpAffine's) would only add their overhead.

    A worker that dies (killed for memory, a crash in a decoder's C code) costs its sequence
    only: `results` restarts the processes and reports that sequence as skipped."""

    def __init__(self, workers):
        self.workers = workers
        self.threads = max(1, multiprocessing.cpu_count() // workers)
        self.executor = self._start(workers)

    def _start(self, workers):
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=start_worker, initargs=(self.threads, os.getpid()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.executor.shutdown(cancel_futures=True)

    def submit(self, function, *args):
        return self.executor.submit(function, *args)

    def map(self, function, items):
        return self.executor.map(function, items, chunksize=1)

    def results(self, function, tasks, died):
        """function(task) for every task, in order; died(task, reason) stands for the result
        of a task whose worker process died. When a worker dies, the task the results had
        reached runs alone in a process of its own: if that dies too, it is the cause;
        either way the others run on in a new pool (each death isolates one task)."""
        pending = list(tasks)
        while pending:
            futures = [self.executor.submit(function, task) for task in pending]
            for reached, future in enumerate(futures):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    break
                yield result
            else:
                return
            self.executor.shutdown(cancel_futures=True)
            self.executor = self._start(self.workers)
            yield self._alone(function, pending[reached], died)
            pending = pending[reached + 1:]

    def _alone(self, function, task, died):
        with self._start(1) as single:
            try:
                return single.submit(function, task).result()
            except BrokenProcessPool:
                return died(task, "its worker process died while reading it (killed for "
                                  "memory, or a crash in a decoder's C code)")


def without_damaged(sequences, drop_damaged):
    """(sequences kept, sequences dropped): with drop_damaged, those of the recordings some
    works leave out as damaged (h36m.DAMAGED, every camera) are dropped."""
    if not drop_damaged:
        return sequences, []
    return ([s for s in sequences if not s.damaged], [s for s in sequences if s.damaged])


class EmptySplit(ValueError):
    """A split that no sample reached; `reports` holds each split's report (its skips)."""

    def __init__(self, message, reports):
        super().__init__(message)
        self.reports = reports


def write_failure(err, out):
    """The one line that says why writing `out` failed: the error's own where it names what
    failed, else (an OSError or LMDB's error without a path) naming the folder."""
    if isinstance(err, (DiskFull, ValueError)):
        return str(err)
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return (f"cannot write {out} (built beside it in {Path(out).parent}): {reason}; a full "
            "disk or a file size limit (ulimit -f) is the usual cause: free space there or "
            "choose another --out")


def write_splits(args, cfg, writer, pool):
    """Write both splits through the writer and commit it; returns the manifest. EmptySplit
    when every sequence of a split was skipped or dropped (its reasons in the reports)."""
    reports = {}
    for split, subjects in (("train", args.train_subjects), ("test", args.test_subjects)):
        sequences, skips = find_sequences(args.root, subjects, args.actions)
        sequences, dropped = without_damaged(sequences, args.drop_damaged)
        stride = args.train_stride if split == "train" else args.test_stride
        report = write_split(writer, split, sequences, stride, cfg, pool, args.quiet)
        report["subjects"] = list(subjects)
        report["skipped"] = ([f"{s.what}: {s.reason}" for s in skips if not s.ignored]
                             + report["skipped"])
        report["ignored"] = [s.what for s in skips if s.ignored]
        report["dropped_damaged"] = [s.name for s in dropped]
        report["count"] = writer.split(split).count
        reports[split] = report
    empty = [split for split, report in reports.items() if not report["count"]]
    if empty:
        raise EmptySplit(f"no samples in the {' and '.join(empty)} split(s) of {args.root}: "
                         "every sequence was skipped or dropped (the reasons above); nothing "
                         f"written to {args.out}", reports)
    settings = {"root": str(args.root), "crop_margin": cfg.crop_margin,
                "actions": list(args.actions), "drop_damaged": args.drop_damaged}
    return writer.commit(settings, reports)


def build(args, pool=None):
    """Build the dataset folder of args into args.out; returns the manifest. pool:
    CropWorkers to crop with (a benchmark keeps them started), else new ones."""
    cfg = args.config
    with DatasetWriter(args.out, cfg.crop_size, cfg.jpeg_quality) as writer:
        if pool is None:
            with CropWorkers(args.workers) as pool:
                return write_splits(args, cfg, writer, pool)
        return write_splits(args, cfg, writer, pool)


def _at_most(lines, indent):
    """The first MAX_LINES_PRINTED lines, indented, and a line saying how many more the
    manifest holds."""
    shown = [f"{indent}{line}" for line in lines[:MAX_LINES_PRINTED]]
    if len(lines) > MAX_LINES_PRINTED:
        shown.append(f"{indent}... {len(lines) - MAX_LINES_PRINTED} more in manifest.json")
    return shown


def _frame_counts(entry):
    """'poses 1447, video 2900, masks 1447: kept 1447' of a truncation entry."""
    return (f"poses {entry['poses']}, video {entry['video']}, masks {entry['masks']}: "
            f"kept {entry['kept']}")


def _span(values):
    """'2' or '2-8'."""
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"


def extra_frames_per_camera(entries):
    """Lines '55011271: 210 sequences, extra frames: video 2-8' of truncation entries, per
    camera (the part of a sequence's name after its last dot), naming each file kind that had
    frames beyond the kept ones with the range of how many."""
    by_camera = {}
    for entry in entries:
        by_camera.setdefault(entry["sequence"].rsplit(".", 1)[1], []).append(entry)
    lines = []
    for camera, group in sorted(by_camera.items()):
        extra = [f"{kind} {_span([e[kind] - e['kept'] for e in group])}" for kind in FILE_KINDS
                 if any(e[kind] > e["kept"] for e in group)]
        noun = "sequence" if len(group) == 1 else "sequences"
        lines.append(f"{camera}: {len(group)} {noun}, extra frames: {', '.join(extra)}")
    return lines


def split_summary(split, section):
    """The printed lines of one split's manifest section: its counts, then at most
    MAX_LINES_PRINTED lines of each list, and the extra frames per camera rather than a line
    per truncated sequence (the real dataset truncates every one)."""
    lines = [f"lmdb {split}: {section['count']} crops from {section['sequences']} sequences, "
             f"{len(section['skipped'])} skipped, {len(section['truncated'])} truncated"]
    lines += _at_most(section["skipped"], "  ")
    if section.get("ignored"):
        lines.append(f"  {len(section['ignored'])} _ALL files ignored (each action's recordings "
                     "in one file: duplicates of the others)")
    half_posed = {entry["sequence"] for entry in section["half_posed"]}
    # the half-posed ones would stretch their camera's range to half a video: listed apart
    truncated = [e for e in section["truncated"] if e["sequence"] not in half_posed]
    if truncated:
        lines.append("  truncated to the shortest of poses, video and masks (each in "
                     "manifest.json), per camera:")
        lines += [f"    {line}" for line in extra_frames_per_camera(truncated)]
    if half_posed:
        lines.append(f"  {len(half_posed)} half-posed (poses for about half of the video; kept, "
                     "the poses hold for their frames):")
        lines += _at_most([f"{e['sequence']}: {_frame_counts(e)}"
                           for e in section["half_posed"]], "    ")
    if section["dropped_damaged"]:
        lines.append(f"  {len(section['dropped_damaged'])} dropped as damaged (--drop-damaged):")
        lines += _at_most(section["dropped_damaged"], "    ")
    return lines


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
    parser.add_argument("--drop-damaged", action="store_true",
                        help="leave out the recordings that some works leave out as damaged "
                             f"(misaligned ground truth): {DAMAGED_NAMES}, every camera; the "
                             "manifest lists them under dropped_damaged (default: keep them)")
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
    try:
        check_replaceable(args.out, "dataset", args.force)
    except FolderError as err:
        parser.error(str(err))
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        manifest = build(args)
    except EmptySplit as err:
        for split, section in err.reports.items():
            print("\n".join(split_summary(split, section)))
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, OSError, lmdb.Error) as err:
        print(f"error: {write_failure(err, args.out)}", file=sys.stderr)
        return 1
    for split, section in manifest["splits"].items():
        print("\n".join(split_summary(split, section)))
    print(f"lmdb: wrote {args.out} (manifest.json, train/test images, poses, index)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
