#!/usr/bin/env python3
"""Figures of evaluated runs: loss curves (Fig. 4), qualitative skeletons (Fig. 5), MPJPE bars.

    .venv/bin/python tools/report.py --run runs/full-demo --out runs/full-demo/figures
    .venv/bin/python tools/report.py --run runs/ablation/multi-reg --label "without 2D-cls" \\
        --run runs/ablation/full --label "with 2D-cls" --out runs/ablation/figures

Each run is a folder of tools/train.py that tools/evaluate.py has evaluated (results.json and
predictions.npz). Writes into --out:
  fig4_loss.png          training (solid) and test (dashed) 3D loss of every run (Fig. 4)
  fig5_qualitative.png   test crops, ground truth and each run's prediction (Fig. 5), left limbs
                         red, right limbs blue, the examples spread over the actions
  mpjpe_per_action.png   MPJPE per action of every run beside the mean-pose baseline and the
                         paper's Table 1 (its results on real Human3.6M)
"""
import argparse
import json
import sys
from pathlib import Path

import lmdb
import numpy as np

from config import PAPER
from layers.h36m_data import crop_offsets, decode_image, lmdb_key
from evaluation.figures import (action_bars_figure, parse_caffe_log, plot_loss_curves,
                           plot_qualitative, save_figure)
from evaluation.metrics import PAPER_TABLE1, root_align


class ReportError(ValueError):
    pass


def run_log(run):
    """parse_caffe_log of a run's stage 1 and stage 2 logs, one after the other."""
    logs = [Path(run) / "logs" / f"stage{stage}.log" for stage in (1, 2)]
    text = "".join(path.read_text() for path in logs if path.exists())
    if not text:
        raise ReportError(f"{Path(run) / 'logs'} has no stage1.log or stage2.log: train first")
    return parse_caffe_log(text)


def load_evaluation(run):
    """(results.json as a dict, predictions.npz as a dict of arrays) of an evaluated run."""
    results, poses = Path(run) / "results.json", Path(run) / "predictions.npz"
    for path in (results, poses):
        if not path.exists():
            raise ReportError(f"{path} is missing: run tools/evaluate.py --run {run} first")
    with np.load(poses) as stored:
        arrays = {name: stored[name] for name in stored.files}
    return json.loads(results.read_text()), arrays


def spread_examples(actions, count):
    """Indices of `count` frames spread over the actions: the middle frame of every count-th
    action group in the order the actions first appear (all groups when there are fewer)."""
    actions = np.asarray(actions)
    groups = list(dict.fromkeys(actions.tolist()))
    chosen = [groups[int(i)] for i in np.linspace(0, len(groups) - 1, min(count, len(groups)))]
    picks = []
    for action in dict.fromkeys(chosen):
        frames = np.flatnonzero(actions == action)
        picks.append(int(frames[len(frames) // 2]))
    return picks


def read_crops(lmdb_dir, split, indices, input_size=PAPER.input_size):
    """The network's centre input windows (BGR uint8) of the given samples."""
    env = lmdb.open(str(Path(lmdb_dir) / f"{split}_images"), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            crops = []
            for index in indices:
                image = decode_image(txn.get(lmdb_key(index)))
                dy, dx = crop_offsets(None, image.shape[0], input_size, train=False)
                crops.append(image[dy:dy + input_size, dx:dx + input_size])
    finally:
        env.close()
    return crops


def draw_report(runs, out, examples=6):
    """Draw the three figures of the runs ({label: run folder}) into out; returns their paths."""
    out = Path(out)
    evaluations = {label: load_evaluation(run) for label, run in runs.items()}
    first_results, first_poses = next(iter(evaluations.values()))
    frames = len(first_poses["truth_mm"])
    for label, (results, poses) in evaluations.items():
        if len(poses["truth_mm"]) != frames or not np.allclose(poses["truth_mm"],
                                                                 first_poses["truth_mm"]):
            raise ReportError(f"run {label!r} was evaluated on other frames than the first run; "
                              "evaluate all runs on the same LMDB split")
    paths = {"fig4": plot_loss_curves({label: run_log(run) for label, run in runs.items()},
                                      out / "fig4_loss.png",
                                      title="3D loss (sum over root heads)")}

    picks = spread_examples(first_poses["actions"], examples)
    crops = read_crops(first_results["lmdb"], first_results["split"], picks)
    truth = root_align(first_poses["truth_mm"][picks])
    predictions = [root_align(poses["predictions_mm"][picks])
                   for _, poses in evaluations.values()]
    paths["fig5"] = plot_qualitative(crops, truth, predictions, out / "fig5_qualitative.png",
                                     labels=tuple(evaluations))

    series = [(label, results["mpjpe"]["per_action"])
              for label, (results, _) in evaluations.items()]
    series.append(("mean pose (baseline)", first_results["mean_pose_mpjpe"]["per_action"]))
    series.append(("Park et al. 2016 (paper, real Human3.6M)",
                   {a: PAPER_TABLE1[a] for a in first_results["mpjpe"]["per_action"]
                    if a in PAPER_TABLE1}))
    paths["bars"] = save_figure(action_bars_figure(series, title="MPJPE per action (root-aligned)"),
                          out / "mpjpe_per_action.png")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, action="append", required=True,
                        help="an evaluated run folder (repeat for several runs)")
    parser.add_argument("--label", action="append", default=[],
                        help="legend label of each --run, in order (default: the folder name)")
    parser.add_argument("--out", type=Path, help="folder of the PNGs (default: <first run>/figures)")
    parser.add_argument("--examples", type=int, default=6,
                        help="test frames in Fig. 5 (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.run):
        parser.error(f"{len(args.label)} --label for {len(args.run)} --run")
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    labels = args.label or [run.name for run in args.run]
    if len(set(labels)) != len(labels):
        parser.error(f"labels must differ, got {labels}")
    try:
        paths = draw_report(dict(zip(labels, args.run)), args.out or args.run[0] / "figures",
                            args.examples)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"report: {name} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
