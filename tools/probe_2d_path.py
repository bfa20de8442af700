#!/usr/bin/env python3
"""How much a trained 2d-cls or full model's 3D regression uses its 2D path.

    python tools/probe_2d_path.py [--run RUN] [--weights FILE] [--lmdb DIR] [--split test]
        [--limit N] [--batch N] [--out FILE] [--gpu N] [--quiet]

Evaluates the run's model three times on every frame of the split: as trained, with probs_2D
held at its mean over those frames (the 3D heads then see the image through fc1_3D alone),
and with fc1_3D held at its mean (through the 2D path alone). A large rise with probs_2D held
means the heads lean on the 2D probabilities; evaluation/path_probe.py says how. Prints the
three MPJPEs and writes them to <run>/probe_2d_path.json (probe_2d_path-first<N>.json with
--limit; or --out), which a later probe of the run replaces. Without --run, the run of
solver/h36m.prototxt.
"""
import argparse
import json
import sys
from pathlib import Path

from built_folders import write_whole
from evaluation.evaluate import (EvaluationError, add_pass_arguments, check_output_folder,
                                 check_pass_arguments)
from evaluation.path_probe import probe_2d_path, probe_text
from solver.caffe_cli import quiet_caffe_log
from solver.devices import DeviceError, use_device
from solver.run_folder import RunError, add_model_arguments, find_run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    add_pass_arguments(parser)
    parser.add_argument("--out", type=Path, help="the JSON file (default: "
                        "<run>/probe_2d_path.json, or probe_2d_path-first<N>.json with --limit)")
    args = parser.parse_args(argv)
    check_pass_arguments(parser, args)
    quiet_caffe_log()
    try:
        use_device(args.gpu)
        folder = find_run(args.run, args.lmdb)
        name = f"probe_2d_path{f'-first{args.limit}' if args.limit else ''}.json"
        out = args.out or folder.path / name
        if out.is_dir():
            raise EvaluationError(f"cannot write {out}: it is a folder; name the JSON file "
                                  "(--out)")
        check_output_folder(out.parent, output=out)   # before the work, not after it
        results = probe_2d_path(folder, args.weights, args.split, args.batch, args.limit,
                                quiet=args.quiet)
    except (DeviceError, EvaluationError, RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        write_whole(out, json.dumps(results, indent=2) + "\n")
    except OSError as err:   # writable when checked, then not (a full disk)
        print(f"error: cannot write {out}: {err.strerror}", file=sys.stderr)
        return 1
    print(probe_text(results))
    print(f"probe_2d_path: results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
