#!/usr/bin/env python3
"""Write the embedded default dataset: a synthetic Human3.6M in the raw Human3.6M layout.

    .venv/bin/python -m data_prep.make_synth [--out data/synth-h36m] [--frames 24] ...

For every subject, action (both recordings, under their real stems, h36m.STEMS) and camera it
writes, as the real dataset:
  Sx/Videos/<stem>.<camera>.mp4                                  50 fps, OpenCV
  Sx/MyPoseFeatures/D3_Positions/<stem>.cdf                      Pose (1, N, 96), world mm
  Sx/MyPoseFeatures/D3_Positions_mono/<stem>.<camera>.cdf        Pose (1, N, 96), camera mm
  Sx/MyPoseFeatures/D2_Positions/<stem>.<camera>.cdf             Pose (1, N, 64), pixels
  Sx/MySegmentsMat/ground_truth_bs/<stem>.<camera>.mat           MATLAB v7.3 masks, N frames
and metadata.json with the stems, frame sizes and cameras (intrinsics at the written resolution,
extrinsics), the generator's settings and the faults written. The 2D poses are Human3.6M's
projection, with distortion, of the mono 3D poses at full resolution, times --scale; the mono
poses are the world poses in each camera's frame. Frame sizes are the subject's (S7: 1000x1002
for every camera) times --scale, rounded to even numbers.

The 3D motion is procedural (data_prep/synth/motion.py), except for a share of the training
subjects' recordings (--train-bvh-share, of h36m.TRAIN_SUBJECTS): those move as real people do,
each a stretch of a motion capture clip of --train-bvh (CMU's, data_prep/training_motion) from
a random frame, moved onto the subject's body. The test subjects' motion stays procedural, and
--bvh (the real-motion test set) gives every recording its clips instead.

Unless --clean it also writes the real disks' faults (data_prep/synth/faults.py): every video a
few frames longer than its N poses (the person moving on), by the camera's real range; videos
about twice as long as the poses for S9's four half-posed recordings; per subject the `_ALL`
files of the first action (<Action>_ALL: video, D3, mono and D2 poses of both recordings one
after the other); and S11's "Directions" video from camera 54138969 truncated so that it cannot
be decoded.

The dataset is built in a temporary folder beside --out, holding --out's lock (one build at a
time), and swapped in whole when complete: a kill at any instant leaves --out as it was or
the new tree, and the next build removes what a killed one left. An existing --out needs
--force, and is replaced only if it is a synthetic dataset this toolkit wrote (its
metadata.json). BVH files are checked before any work: a value or frame time that no motion
has is an error naming the file and line.
"""
import argparse
import json
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from built_folders import (FolderError, build_lock, check_replaceable, remove_stale, replace,
                           temporary_sibling)
from child_processes import die_with_parent
from data_prep.cli import add_build_options, reject_unknown
from data_prep.h36m import (ACTIONS, BROKEN_VIDEO, CAMERAS, FPS, J32, SUBJECTS, TRAIN_SUBJECTS,
                            project, sequence_name, sequence_paths)
from data_prep.synth import stable_seed
from data_prep.synth.faults import (all_file_stem, break_video, is_half_posed, motion_frames,
                                    video_frame_counts)
from data_prep.synth.bvh import BvhError, read_bvh, retarget_to_h36m
from data_prep.synth.motion import ROOT_HALF, body_for_subject, generate_motion
from data_prep.synth.render import (appearance_for_subject, make_background, random_light,
                                    render_person)
from data_prep.synth.studio import studio_cameras
from data_prep.synth.writers import VideoWriter, write_mask_mat, write_pose_cdf

DEFAULT_OUT = Path("data/synth-h36m")
# ASSUMPTION (the synthetic stand-in only): real motion capture for the training subjects, so
# that a model trained on the synthetic set has seen how real people move. CMU clips of actors
# other than the real-motion test set's (data_prep/real_motion), in a fifth of the training
# recordings: with the demo schedule, shares of 0.1, 0.2 and 0.4 gave 0.61x, 0.58x and 0.58x
# the mean pose's MPJPE on the real-motion test set, and 0.47x, 0.46x and 0.50x on the
# synthetic one (0.68x and 0.43x without clips at 4 epochs; docs/RESULTS.md, one run each).
DEFAULT_TRAIN_BVH = Path(__file__).resolve().parent / "training_motion"
DEFAULT_TRAIN_BVH_SHARE = 0.2
KIND = "synthetic dataset"   # what built_folders knows a tree of make_synth by (metadata.json)
NEAREST_TO_CAMERA_MM = 500.0


class SynthError(Exception):
    """A one-line error for the user, raised in a worker or here: one string, so that it
    pickles back from a worker process as it is."""


def sequence_motion(job):
    """World poses (M, 32, 3) of one recording, M = job["motion_frames"]: procedural, or the
    job's BVH clip moved onto the subject's body (its own bone lengths, as the procedural
    motion has them)."""
    rng = np.random.default_rng(stable_seed(job["seed"], job["subject"], job["action"],
                                            job["subaction"], "motion"))
    body = body_for_subject(job["subject"])
    frames = job["motion_frames"]
    if job.get("bvh") is None:
        return generate_motion(job["action"], frames, body, rng, fps=FPS)
    poses = retarget_to_h36m(read_bvh(job["bvh"]), body, fps=FPS)
    if job.get("bvh_random_start"):
        return clip_stretch(poses, frames, rng)
    # loop the clip to the requested length, and move it to a random place in the area
    poses = poses[np.arange(frames) % len(poses)]
    offset = rng.uniform(-1000, 1000, size=2) - poses[0, J32["Hip"], :2]
    return poses + np.array([offset[0], offset[1], 0.0])


def clip_stretch(poses, frames, rng):
    """`frames` poses of a retargeted clip from a random frame on, placed at a random spot where
    the pelvis stays within the procedural motion's area (motion.ROOT_HALF). A clip shorter
    than `frames` repeats, each repetition centred on the same spot: the clip's end and start
    are at different places, and running on from one to the other would cross the area."""
    start = rng.integers(max(1, len(poses) - frames + 1))
    index = start + np.arange(frames)
    repetition = index // len(poses)
    poses = poses[index % len(poses)].copy()
    for number in np.unique(repetition):
        part = repetition == number
        poses[part, :, :2] -= poses[part, J32["Hip"], :2].mean(axis=0)
    low, high = poses[:, J32["Hip"], :2].min(axis=0), poses[:, J32["Hip"], :2].max(axis=0)
    room_low, room_high = -ROOT_HALF - low, ROOT_HALF - high
    # a stretch wider than the area stays centred on it
    offset = np.where(room_low <= room_high, rng.uniform(np.minimum(room_low, room_high),
                                                         np.maximum(room_low, room_high)), 0.0)
    return poses + np.array([offset[0], offset[1], 0.0])


def job_motion(job):
    """World poses of a job: its recording's motion, or for `_ALL` files the posed frames of
    the action's recordings one after the other."""
    if "parts" in job:
        return np.concatenate([sequence_motion(part)[:part["poses"]] for part in job["parts"]])
    return sequence_motion(job)


def run_job(job):
    """write_sequence, as a worker runs it: a BVH file's error becomes a SynthError, the
    one line the user sees."""
    try:
        return write_sequence(job)
    except BvhError as err:
        raise SynthError(err.one_line) from None


def write_sequence(job):
    """Write every file of one job (all cameras); returns (stem, pose frames of a recording
    written per camera: 0 for `_ALL` files)."""
    world = job_motion(job)
    cameras = studio_cameras(job["scale"], job["subject"])
    # the world poses are one file for all cameras: any camera names its path
    world_path = sequence_paths(job["root"], job["subject"], job["stem"],
                                next(iter(cameras)))["d3_world"]
    write_pose_cdf(world_path, world[:job["poses"]])
    appearance = appearance_for_subject(job["subject"])
    for camera_id, placed in cameras.items():
        write_camera(job, world, camera_id, placed, appearance)
    return job["stem"], 0 if "parts" in job else job["poses"]


def write_camera(job, world, camera_id, placed, appearance):
    """The video, mono and 2D poses and masks of one job seen by one camera. The video shows
    the first job["video_frames"][camera_id] frames of `world`, the other files the first
    job["poses"]; the 2D poses are Human3.6M's projection at full resolution, times --scale."""
    paths = sequence_paths(job["root"], job["subject"], job["stem"], camera_id)
    rng = np.random.default_rng(stable_seed(job["seed"], job["subject"], job["stem"],
                                            camera_id, "scene"))
    mono = placed.to_camera(world[:job["video_frames"][camera_id]])
    near = np.flatnonzero((mono[..., 2] < NEAREST_TO_CAMERA_MM).any(axis=-1))
    if len(near):
        raise SynthError(f"{motion_source(job, near[0])}: the person comes within "
                         f"{NEAREST_TO_CAMERA_MM / 1000:g} m of camera {camera_id} (or behind "
                         f"it) in {job['subject']}'s \"{job['stem']}\", frame {near[0]}: the "
                         "motion leaves the capture area; choose motion that stays within "
                         "about 2 m of where it starts")
    pixels = project(mono, CAMERAS[camera_id], job["scale"])
    camera = placed.camera
    light = random_light(rng)                     # one lighting for scene and person
    background = make_background(camera.width, camera.height, rng, light=light)
    poses = job["poses"]
    masks = np.zeros((poses if job["masks"] else 0, camera.height, camera.width), dtype=bool)
    with VideoWriter(paths["video"], camera.width, camera.height, FPS) as video:
        for i in range(len(mono)):
            image, mask = render_person(background, pixels[i], mono[i, :, 2], appearance,
                                        camera.focal[0], light)
            video.write(image)
            if i < len(masks):                    # masks are per pose frame, as the poses
                masks[i] = mask
    if camera_id == job["broken_camera"]:
        break_video(paths["video"])
    write_pose_cdf(paths["d3_mono"], mono[:poses])
    write_pose_cdf(paths["d2"], pixels[:poses])
    if job["masks"]:
        write_mask_mat(paths["mask"], masks)


def motion_source(job, frame):
    """Where the motion of a job's `frame` comes from: its BVH file, or the generator."""
    for part in job.get("parts", ()):
        if frame < part["poses"]:
            return motion_source(part, frame)
        frame -= part["poses"]
    return job.get("bvh") or "the procedural motion"


def recording_job(args, root, subject, action, subaction):
    """The job of one recording, with its faults unless --clean: longer videos, and the
    camera of h36m.BROKEN_VIDEO broken."""
    stem = sequence_name(subject, action, subaction)
    broken = not args.clean and (subject, stem) == BROKEN_VIDEO[:2]
    return {"root": str(root), "subject": subject, "action": action, "subaction": subaction,
            "stem": stem, "poses": args.frames,
            "motion_frames": motion_frames(subject, stem, args.frames),
            "video_frames": video_frame_counts(args.seed, subject, stem, args.frames,
                                               args.clean),
            "broken_camera": BROKEN_VIDEO[2] if broken else None, "masks": True,
            "scale": args.scale, "seed": args.seed}


def all_files_job(recordings):
    """The job of a subject's `_ALL` files of the recordings' action: the recordings' posed
    frames one after the other, in videos and pose files (no masks), without faults."""
    first = recordings[0]
    poses = sum(part["poses"] for part in recordings)
    return {"root": first["root"], "subject": first["subject"],
            "stem": all_file_stem(first["subject"], first["action"]), "parts": recordings,
            "poses": poses, "video_frames": {camera_id: poses for camera_id in CAMERAS},
            "broken_camera": None, "masks": False, "scale": first["scale"],
            "seed": first["seed"]}


def plan_jobs(args, root):
    """A job per recording and, unless --clean, per subject one for the `_ALL` files of the
    first action."""
    jobs = []
    bvh_files, train_files = motion_files(args), training_motion_files(args)
    trained = 0   # training subjects' recordings planned so far
    for subject in args.subjects:
        for action in args.actions:
            recordings = [recording_job(args, root, subject, action, subaction)
                          for subaction in (1, 2)]
            for job in recordings:
                if bvh_files:
                    job["bvh"] = str(bvh_files[count_recordings(jobs) % len(bvh_files)])
                elif train_files and subject in TRAIN_SUBJECTS:
                    clip = takes_training_clip(trained, args.train_bvh_share)
                    if clip is not None:
                        job["bvh"] = str(train_files[clip % len(train_files)])
                        job["bvh_random_start"] = True
                    trained += 1
                jobs.append(job)
            if not args.clean and action == args.actions[0]:
                jobs.append(all_files_job(recordings))
    return jobs


def motion_files(args):
    """The BVH files of --bvh, in the order the recordings take them; none without it."""
    return sorted(Path(args.bvh).glob("*.bvh")) if args.bvh else []


def training_motion_files(args):
    """The BVH files of --train-bvh, in the order the training recordings take them; none
    with --bvh (it sets every recording's motion), a share of 0 or no training subject."""
    if args.bvh or not args.train_bvh or args.train_bvh_share == 0 or \
            not set(args.subjects) & set(TRAIN_SUBJECTS):
        return []
    return sorted(Path(args.train_bvh).glob("*.bvh"))


def takes_training_clip(index, share):
    """Which clip (counting from 0) the training subjects' recording number `index` takes,
    or None where it is procedural: `share` of the recordings, evenly spread (every second
    one for 0.5, from the second on)."""
    taken_before, taken_after = int(index * share), int((index + 1) * share)
    return taken_before if taken_after > taken_before else None


def check_motion_files(args):
    """SynthError naming the file (and line) unless every BVH file that the recordings take
    reads and retargets: checked here, before any work, so that no worker meets it."""
    recordings = len(args.subjects) * len(args.actions) * 2
    for path in motion_files(args)[:recordings] + training_motion_files(args)[:recordings]:
        try:
            retarget_to_h36m(read_bvh(path), fps=FPS)
        except BvhError as err:
            raise SynthError(err.one_line) from None
        except OSError as err:
            raise SynthError(f"{path}: cannot read it: {err.strerror or err}") from None


def count_recordings(jobs):
    """Jobs that write a recording (not `_ALL` files)."""
    return sum("parts" not in job for job in jobs)


def metadata(args, jobs):
    """metadata.json: settings, the stems and frame sizes written, the cameras and faults."""
    recordings = [job for job in jobs if "parts" not in job]
    return {
        "generator": "data_prep/make_synth.py (synthetic Human3.6M, not real data)",
        "seed": args.seed, "frames_per_sequence": args.frames, "scale": args.scale, "fps": FPS,
        "subjects": list(args.subjects), "actions": list(args.actions),
        "stems": {subject: [job["stem"] for job in recordings if job["subject"] == subject]
                  for subject in args.subjects},
        "frame_sizes": {subject: {cid: [placed.camera.width, placed.camera.height]
                                  for cid, placed in studio_cameras(args.scale, subject).items()}
                        for subject in args.subjects},
        "bvh": sorted({Path(j["bvh"]).name for j in jobs if j.get("bvh")}),
        "train_bvh_share": args.train_bvh_share if training_motion_files(args) else 0.0,
        "cameras": {cid: placed.to_dict() for cid, placed in studio_cameras(args.scale).items()},
        "faults": faults_written(args, jobs),
    }


def faults_written(args, jobs):
    """The real dataset's faults in this tree (none with --clean), for tests to check the
    reader against: video frames beyond the poses per subject, stem and camera (twice the
    poses and more for half-posed recordings), the half-posed recordings, the broken video and
    the `_ALL` files, by their paths under the root."""
    recordings = [job for job in jobs if "parts" not in job]
    faults = {"clean": args.clean, "video_extra_frames": {}, "half_posed": [],
              "broken_video": [], "all_files": []}
    if args.clean:
        return faults
    for job in recordings:
        subject, stem = job["subject"], job["stem"]
        faults["video_extra_frames"].setdefault(subject, {})[stem] = {
            cid: frames - job["poses"] for cid, frames in job["video_frames"].items()}
        if is_half_posed(subject, stem):
            faults["half_posed"].append({"subject": subject, "stem": stem})
        if job["broken_camera"]:
            path = sequence_paths("", subject, stem, job["broken_camera"])["video"]
            faults["broken_video"].append({"subject": subject, "stem": stem,
                                           "camera": job["broken_camera"],
                                           "path": path.as_posix()})
    for job in jobs:
        if "parts" in job:
            faults["all_files"] += all_file_paths(job)
    return faults


def all_file_paths(job):
    """Paths, under the root, of the files an `_ALL` job writes."""
    paths = set()
    for camera_id in CAMERAS:
        files = sequence_paths("", job["subject"], job["stem"], camera_id)
        paths.update(files[kind].as_posix() for kind in ("video", "d3_world", "d3_mono", "d2"))
    return sorted(paths)


def build(args):
    """Write the dataset into a temporary folder beside args.out and swap it in when complete,
    holding out's lock throughout. FolderError where another build holds it, or where --out
    became something that may not be replaced since the arguments were checked."""
    out = Path(args.out)
    with build_lock(out, "being written"):
        check_replaceable(out, KIND, args.force)
        remove_stale(out)            # what a killed build left: no build uses it now
        work = temporary_sibling(out)
        try:
            jobs = plan_jobs(args, work)
            (work / "metadata.json").write_text(json.dumps(metadata(args, jobs), indent=2)
                                                + "\n")
            frames = write_jobs(jobs, args.workers, args.quiet)
            replace(work, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return count_recordings(jobs), frames


def write_jobs(jobs, workers, quiet):
    """Run every job in the workers; returns the pose frames written per camera."""
    frames = 0
    with worker_pool(max(1, min(workers, len(jobs)))) as pool:
        for _, count in tqdm(pool.results(run_job, jobs), total=len(jobs), unit="seq",
                             desc="synth", disable=quiet):
            frames += count
    return frames


def worker_pool(workers):
    """The worker processes, or for one worker the same interface in this process."""
    if workers == 1:
        return _Serial()
    return _Workers(workers)


def _start_worker(parent):
    """Set up a worker process: one thread for OpenCV, and an end with its parent (a killed
    make_synth leaves no worker writing on). The pool keeps every core busy already, and
    OpenCV's own threads on top of it only compete for the cores (about a sixth of the time
    on two); the files written are the same bytes."""
    die_with_parent(parent)
    cv2.setNumThreads(1)


class _Workers:
    """Processes that run the jobs, started fresh (spawn). A concurrent.futures pool, not a
    multiprocessing.Pool: where a worker dies (killed, out of memory) this one learns it
    (BrokenProcessPool) instead of waiting for its job forever, and an error stops the build
    without terminating workers halfway through sending a result."""

    def __init__(self, workers):
        self.executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(os.getpid(),))

    def results(self, function, items):
        """function(item) of every item, as they complete; the first error raised ends it."""
        for future in as_completed([self.executor.submit(function, item) for item in items]):
            yield future.result()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # the jobs not started are dropped; those running end first (a job is short)
        self.executor.shutdown(cancel_futures=True)
        return False


class _Serial:
    """The _Workers interface, in this process (one worker, and easier debugging)."""

    def results(self, function, items):
        return map(function, items)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Write a synthetic Human3.6M dataset in the raw Human3.6M layout and formats "
                    "(videos, CDF poses, MATLAB v7.3 masks).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="dataset root to write (default: %(default)s)")
    parser.add_argument("--subjects", nargs="+", default=list(SUBJECTS), metavar="S",
                        help="subjects (default: all seven, S1 S5 S6 S7 S8 S9 S11)")
    parser.add_argument("--actions", nargs="+", default=list(ACTIONS), metavar="ACTION",
                        help="actions by their canonical names (default: all 15)")
    parser.add_argument("--frames", type=int, default=24,
                        help="pose frames per recording; the videos have a few more unless "
                             "--clean (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=0.5,
                        help="image size relative to the real 1000x1000 and 1000x1002 videos "
                             "(rounded to even sizes); intrinsics and 2D poses scale with it "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--bvh", type=Path, metavar="DIR",
                        help="take the 3D motion from the .bvh files in DIR instead of the "
                             "procedural generator (files are used in turn, looped to --frames)")
    parser.add_argument("--train-bvh", default=str(DEFAULT_TRAIN_BVH), metavar="DIR",
                        help="motion capture for the training subjects: --train-bvh-share of "
                             "their recordings take a stretch of a .bvh file in DIR (in turn) "
                             "from a random frame; 'none': procedural motion only (default: "
                             "the CMU clips of data_prep/training_motion)")
    parser.add_argument("--train-bvh-share", type=float, default=DEFAULT_TRAIN_BVH_SHARE,
                        metavar="F",
                        help="share of the training subjects' recordings that take --train-bvh "
                             "motion, 0 to 1 (default: %(default)s)")
    parser.add_argument("--clean", action="store_true",
                        help="leave out the real dataset's faults, for experiments: videos "
                             "exactly as long as the poses (S9's half-posed recordings "
                             "included), no _ALL files, no broken S11 video (default: write "
                             "them, as the real disks have them; metadata.json lists them)")
    add_build_options(parser)
    args = parser.parse_args(argv)
    reject_unknown(parser, "action", args.actions, ACTIONS)
    reject_unknown(parser, "subject", args.subjects, SUBJECTS)
    if args.frames < 1:
        parser.error(f"--frames must be at least 1, got {args.frames}")
    if not 0.05 <= args.scale <= 1.0:
        parser.error(f"--scale must be within 0.05 and 1, got {args.scale}")
    if args.bvh is not None and not sorted(args.bvh.glob("*.bvh")):
        parser.error(f"--bvh {args.bvh}: no .bvh files there")
    if not 0.0 <= args.train_bvh_share <= 1.0:
        parser.error(f"--train-bvh-share must be within 0 and 1, got {args.train_bvh_share}")
    args.train_bvh = None if args.train_bvh.lower() == "none" else Path(args.train_bvh)
    if args.train_bvh is not None and not sorted(args.train_bvh.glob("*.bvh")):
        parser.error(f"--train-bvh {args.train_bvh}: no .bvh files there (give 'none' for "
                     f"procedural motion only)")
    try:
        check_replaceable(args.out, KIND, args.force)
    except FolderError as err:
        parser.error(str(err))
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        check_motion_files(args)
        sequences, frames = build(args)
    except (SynthError, FolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except BrokenProcessPool:
        print(f"error: a worker process died (killed, or out of memory) while writing "
              f"{args.out}; nothing was written there: run again", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: cannot write {args.out}: {err}", file=sys.stderr)
        return 1
    faults = "without faults (--clean)" if args.clean else \
        "with the real dataset's faults (metadata.json: faults)"
    print(f"synth: wrote {sequences} recordings x 4 cameras ({frames} pose frames each camera) "
          f"{faults} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
