#!/usr/bin/env python3
"""Evaluate a trained run on its test split (or another dataset's): MPJPE per action in the
layout of Table 1.

    python tools/evaluate.py [--run RUN] [--subset all|every-5th|every-64th] [--camera ID]
        [--joints 17|16] [--weights FILE] [--lmdb DIR] [--test-lmdb DIR] [--limit N]
        [--batch N] [--out DIR] [--gpu N] [--quiet]

Without --run it evaluates the run that solver/h36m.prototxt belongs to (what `caffe train
-solver solver/h36m.prototxt` trained). Metrics and protocols: evaluation/evaluate.py; the
protocol is printed above the table and named in results.json. Writes results.json,
results.csv and predictions.npz (predicted and true poses in mm, actions, sample indices) into
the run folder for the default protocol (every frame, all cameras, 17 joints), else into
<run>/eval-<protocol>[-first<N>]/ (or --out), which is checked to take files before the
work. Weights of another variant than the run's are refused; a batch larger than the frames
evaluated is capped at them (and said), one the memory cannot hold is refused.

--test-lmdb DIR evaluates the run's model on another dataset's split (one of the same crop
size and joints: MPI-INF-3DHP's, a real-motion test set built by make_lmdb) with the run's
training statistics (bone lengths, mean pixel, mean pose), and prints both mean-pose
baselines (the run's training mean pose, and the other dataset's own train-split mean pose)
with the ratios of the MPJPE to them. Its files go to <run>/eval-on-<DIR's folder
name>[-<protocol>][-first<N>]/ (or --out, which may not be the run folder: the run's own
results.json stays). --lmdb still names the run's own dataset, moved.
"""
import argparse
import sys
from pathlib import Path

from config import (EVALUATION_KEYS, ConfigError, add_config_arguments, apply_overrides,
                    stage_overrides)
from evaluation.evaluate import (SUBSETS, EvaluationError, Protocol, add_pass_arguments,
                                 check_output_folder, check_pass_arguments,
                                 evaluate_run, results_folder, results_text, write_results)
from solver.caffe_cli import quiet_caffe_log
from solver.devices import DeviceError, use_device
from solver.run_folder import RunError, add_model_arguments, find_run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    add_pass_arguments(parser)
    parser.add_argument("--subset", default="all", choices=list(SUBSETS),
                        help="test frames: every frame, or every 5th or 64th of each recording "
                             "(default: %(default)s)")
    parser.add_argument("--camera", default="all",
                        help="one camera's frames by its id, e.g. 54138969 (default: all)")
    parser.add_argument("--joints", type=int, choices=(17, 16),
                        help="average the errors over all 17 joints (root included, as today's "
                             "literature) or the 16 non-root ones (default: the run's config, "
                             "evaluation_joints, 17)")
    parser.add_argument("--test-lmdb", type=Path, metavar="DIR",
                        help="evaluate on another dataset's split (same crop size and joints), "
                             "with the run's training statistics; results in "
                             "<run>/eval-on-<DIR's folder name>")
    parser.add_argument("--out", type=Path, help="where the results go (default: the run "
                        "folder, or <run>/eval-first<N> with --limit, <run>/eval-on-<name> "
                        "with --test-lmdb)")
    add_config_arguments(parser, "evaluation settings over the run's config: "
                         f"{', '.join(sorted(EVALUATION_KEYS))}", config_file=False)
    args = parser.parse_args(argv)
    check_pass_arguments(parser, args)
    quiet_caffe_log()
    try:
        use_device(args.gpu)   # first: a bad --gpu is the message, whatever else is missing
        folder = find_run(args.run, args.lmdb)
        overrides = stage_overrides("evaluate", EVALUATION_KEYS, args.set)
        if args.joints:
            overrides.append(f"evaluation_joints={args.joints}")
        cfg = apply_overrides(folder.config(), overrides)
        protocol = Protocol(args.subset, args.camera, cfg.evaluation_joints)
        out = args.out or results_folder(folder, protocol, args.limit, args.test_lmdb)
        check_other_dataset_output(out, folder, args.test_lmdb)
        check_output_folder(out)   # before the work, not after it
        results, poses = evaluate_run(folder, args.weights, args.split, args.batch, args.limit,
                                      cfg, args.quiet, args.subset, args.camera, args.test_lmdb)
    except (ConfigError, DeviceError, EvaluationError, RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        write_results(results, out, poses)
    except OSError as err:   # writable when checked, then not (a full disk)
        print(f"error: cannot write the results into {out}: {err.strerror}", file=sys.stderr)
        return 1
    print(results_text(results))
    on = f" on {results['lmdb']}" if args.test_lmdb else ""
    print(f"evaluate: {folder.path}, weights {results['weights']}{on}; results in "
          f"{out / 'results.json'} and results.csv")
    return 0


def check_other_dataset_output(out, folder, test_lmdb):
    """EvaluationError when an evaluation on another dataset (test_lmdb) would write into
    the run folder itself, over the run's own results.json."""
    if test_lmdb is not None and Path(out).resolve() == folder.path.resolve():
        raise EvaluationError(f"--out {out} is the run folder: the results on "
                              f"{test_lmdb} would replace the run's own results.json; "
                              "choose another folder (--out), or drop --out for "
                              "<run>/eval-on-<its folder name>")


if __name__ == "__main__":
    sys.exit(main())
