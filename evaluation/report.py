"""Figures of evaluated runs: loss curves (Fig. 4), qualitative skeletons (Fig. 5), MPJPE bars.

    paths = draw_report({"without 2D-cls": run_a, "with 2D-cls": run_b}, out_folder)

Each run is a run folder (solver/run_folder.py) that evaluation/evaluate.py has evaluated
(results.json and predictions.npz). Writes into the out folder:
  fig4_loss.png          training (solid) and test (dashed) 3D loss of every run (Fig. 4)
  fig5_qualitative.png   test crops, ground truth and each run's prediction (Fig. 5), left limbs
                         red, right limbs blue, the examples spread over the actions
  mpjpe_per_action.png   MPJPE per action of every run beside the mean-pose baseline and the
                         paper's Table 1 (its results on real Human3.6M)
"""
import json
from pathlib import Path

import numpy as np

from config import PAPER
from data_prep.dataset import Dataset
from layers.h36m_data import crop_offsets
from evaluation.figures import action_bars_figure, plot_loss_curves, plot_qualitative, save_figure
from evaluation.metrics import PAPER_TABLE1, root_align
from solver.caffe_cli import parse_caffe_log
from solver.run_folder import RunFolder


class ReportError(ValueError):
    pass


def run_log(run):
    """parse_caffe_log of a run's training log."""
    log = RunFolder(Path(run)).log_path
    if not log.exists():
        raise ReportError(f"{log} is missing: train with tools/train.py (`caffe train` run by "
                          "hand writes its log to the terminal)")
    return parse_caffe_log(log.read_text())


def load_evaluation(run):
    """(results.json as a dict, predictions.npz as a dict of arrays) of an evaluated run."""
    results, poses = Path(run) / "results.json", Path(run) / "predictions.npz"
    for path in (results, poses):
        if not path.exists():
            raise ReportError(f"{path} is missing: run `python tools/evaluate.py --run {run}` "
                              "first")
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
    crops = []
    with Dataset(lmdb_dir).open(split) as reader:
        for _, image, _, _ in reader.records(indices):
            dy, dx = crop_offsets(None, image.shape[0], input_size, train=False)
            crops.append(image[dy:dy + input_size, dx:dx + input_size])
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
    crops = read_crops(first_results["lmdb"], first_results["split"],
                       first_poses["indices"][picks])
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
    title = f"MPJPE per action ({first_results['protocol']['description']})"
    paths["bars"] = save_figure(action_bars_figure(series, title=title),
                          out / "mpjpe_per_action.png")
    return paths
