#!/usr/bin/env python3
"""Write the embedded default dataset: a synthetic Human3.6M in the raw Human3.6M layout.

    .venv/bin/python -m data_prep.make_synth [--out data/synth-h36m] [--frames 24] ...

For every subject, action (both recordings) and camera it writes, exactly as the real dataset:
  Sx/Videos/<Action> <n>.<camera>.mp4                                  50 fps, OpenCV
  Sx/MyPoseFeatures/D3_Positions/<Action> <n>.cdf                      Pose (1, N, 96), world mm
  Sx/MyPoseFeatures/D3_Positions_mono/<Action> <n>.<camera>.cdf        Pose (1, N, 96), camera mm
  Sx/MyPoseFeatures/D2_Positions/<Action> <n>.<camera>.cdf             Pose (1, N, 64), pixels
  Sx/MySegmentsMat/ground_truth_bs/<Action> <n>.<camera>.mat           MATLAB v7.3 masks
and metadata.json with the cameras (intrinsics at the written resolution, extrinsics) and the
generator's settings. The 2D poses are the exact projection, with distortion, of the mono 3D
poses, which are the world poses in each camera's frame. The dataset is built in a temporary
folder beside --out and renamed when complete; an existing --out needs --force.
"""
import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.cli import add_build_options, reject_unknown
from data_prep.h36m import ACTIONS, FPS, J32, SUBJECTS, project, sequence_name, sequence_paths
from data_prep.synth import stable_seed
from data_prep.synth.motion import body_for_subject, generate_motion
from data_prep.synth.render import (appearance_for_subject, make_background, random_light,
                                    render_person)
from data_prep.synth.studio import studio_cameras
from data_prep.synth.writers import VideoWriter, write_mask_mat, write_pose_cdf

DEFAULT_OUT = Path("data/synth-h36m")


def sequence_motion(job):
    """World poses (N, 32, 3) of one recording: procedural, or from the job's BVH clip."""
    rng = np.random.default_rng(stable_seed(job["seed"], job["subject"], job["action"],
                                            job["subaction"], "motion"))
    body = body_for_subject(job["subject"])
    if job.get("bvh") is None:
        return generate_motion(job["action"], job["frames"], body, rng, fps=FPS)
    from data_prep.synth.bvh import read_bvh, retarget_to_h36m
    poses = retarget_to_h36m(read_bvh(job["bvh"]), fps=FPS)
    # loop the clip to the requested length, and move it to a random place in the area
    poses = poses[np.arange(job["frames"]) % len(poses)]
    offset = rng.uniform(-1000, 1000, size=2) - poses[0, J32["Hip"], :2]
    return poses + np.array([offset[0], offset[1], 0.0])


def write_sequence(job):
    """Write every file of one recording (all cameras); returns (stem, frames written)."""
    root = Path(job["root"])
    world = sequence_motion(job)
    stem = sequence_name(job["subject"], job["action"], job["subaction"])
    cameras = studio_cameras(job["scale"])
    appearance = appearance_for_subject(job["subject"])
    first = next(iter(cameras))
    write_pose_cdf(sequence_paths(root, job["subject"], stem, first)["d3_world"], world)
    for camera_id, placed in cameras.items():
        paths = sequence_paths(root, job["subject"], stem, camera_id)
        rng = np.random.default_rng(stable_seed(job["seed"], job["subject"], job["action"],
                                                job["subaction"], camera_id, "scene"))
        mono = placed.to_camera(world)
        if np.any(mono[..., 2] < 500):
            raise ValueError(f"{stem}: the person came within 0.5 m of camera {camera_id}")
        pixels = project(mono, placed.camera)
        camera = placed.camera
        light = random_light(rng)                     # one lighting for scene and person
        background = make_background(camera.width, camera.height, rng, light=light)
        masks = np.zeros((len(world), camera.height, camera.width), dtype=bool)
        with VideoWriter(paths["video"], camera.width, camera.height, FPS) as video:
            for i in range(len(world)):
                image, masks[i] = render_person(background, pixels[i], mono[i, :, 2], appearance,
                                                camera.focal[0], light)
                video.write(image)
        write_pose_cdf(paths["d3_mono"], mono)
        write_pose_cdf(paths["d2"], pixels)
        write_mask_mat(paths["mask"], masks)
    return stem, len(world)


def plan_jobs(args, root):
    jobs = []
    bvh_files = sorted(Path(args.bvh).glob("*.bvh")) if args.bvh else []
    for subject in args.subjects:
        for action in args.actions:
            for subaction in (1, 2):
                job = {"root": str(root), "subject": subject, "action": action,
                       "subaction": subaction, "frames": args.frames, "scale": args.scale,
                       "seed": args.seed}
                if bvh_files:
                    job["bvh"] = str(bvh_files[len(jobs) % len(bvh_files)])
                jobs.append(job)
    return jobs


def metadata(args, jobs):
    return {
        "generator": "data_prep/make_synth.py (synthetic Human3.6M, not real data)",
        "seed": args.seed, "frames_per_sequence": args.frames, "scale": args.scale, "fps": FPS,
        "subjects": list(args.subjects), "actions": list(args.actions),
        "bvh": sorted({Path(j["bvh"]).name for j in jobs if j.get("bvh")}),
        "cameras": {cid: placed.to_dict() for cid, placed in studio_cameras(args.scale).items()},
    }


def build(args):
    """Write the dataset into a temporary folder and rename it to args.out when complete."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        jobs = plan_jobs(args, work)
        (work / "metadata.json").write_text(json.dumps(metadata(args, jobs), indent=2) + "\n")
        frames = 0
        with worker_pool(max(1, min(args.workers, len(jobs)))) as pool:
            results = pool.imap_unordered(write_sequence, jobs)
            for _, count in tqdm(results, total=len(jobs), unit="seq", desc="synth",
                                 disable=args.quiet):
                frames += count
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(jobs), frames


def worker_pool(workers):
    """A process pool, or for one worker the same interface in this process."""
    return multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else _Serial()


class _Serial:
    """The Pool interface, in this process (one worker, and easier debugging)."""

    def imap_unordered(self, function, items):
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
                        help="frames per recording (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=0.5,
                        help="image size relative to the real 1000x1000 videos; intrinsics "
                             "scale with it (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--bvh", type=Path, metavar="DIR",
                        help="take the 3D motion from the .bvh files in DIR instead of the "
                             "procedural generator (files are used in turn, looped to --frames)")
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
    if args.out.exists() and not args.force:
        parser.error(f"{args.out} exists; pass --force to replace it")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        sequences, frames = build(args)
    except OSError as err:
        print(f"error: cannot write {args.out}: {err}", file=sys.stderr)
        return 1
    print(f"synth: wrote {sequences} recordings x 4 cameras ({frames} frames each camera) "
          f"to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
