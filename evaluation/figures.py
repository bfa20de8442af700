"""Figures of the paper from Caffe logs and evaluation results.

    plot_loss_curves(runs, path) Fig. 4: training and test 3D loss per iteration, one curve pair per run
    action_bars_figure(series)   MPJPE per action of several series (models, baseline, paper)
    plot_action_bars(...)        one model's MPJPE per action, beside a baseline and the paper's numbers
    draw_skeleton_3d(ax, pose)   one 17-joint 3D skeleton on matplotlib 3D axes
    plot_qualitative(...)        Fig. 5: input crop, ground truth and predicted skeletons per example

Every plot function creates the parent folders of its PNG and returns the path.
"""
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from data_prep.h36m import PARENTS_17, RIGHT_17

LEFT_17 = (4, 5, 6, 11, 12, 13)
LEFT_COLOUR, RIGHT_COLOUR, CENTRE_COLOUR = "tab:red", "tab:blue", "black"
DPI = 120

def _selected_outputs(run, outputs):
    """The output names whose sum is a run's 3D loss: the given ones, else every name starting
    with "loss_3D", else (a log without such outputs) the total "loss"."""
    if outputs is not None:
        return tuple(outputs)
    names = {name for kind in ("train", "test") for _, values in run[kind] for name in values}
    names_3d = sorted(name for name in names if name.startswith("loss_3D"))
    return tuple(names_3d) if names_3d else ("loss",)


def summed_curve(entries, names):
    """(iterations, values) of the sum of the named outputs over the entries that have them all
    and where the sum is finite."""
    points = [(iteration, sum(values[name] for name in names))
              for iteration, values in entries if all(name in values for name in names)]
    points = [(iteration, value) for iteration, value in points if math.isfinite(value)]
    return [p[0] for p in points], [p[1] for p in points]


def loss_curve_figure(runs, outputs=None, title="3D pose loss"):
    """Fig. 4 as a matplotlib Figure (see plot_loss_curves)."""
    figure = Figure(figsize=(7, 4.5))
    ax = figure.subplots()
    all_values = []
    for index, (label, run) in enumerate(runs.items()):
        colour = f"C{index}"
        names = _selected_outputs(run, outputs)
        train_x, train_y = summed_curve(run["train"], names)
        test_x, test_y = summed_curve(run["test"], names)
        ax.plot(train_x, train_y, "-", color=colour, label=f"{label} (train)")
        ax.plot(test_x, test_y, "--o", color=colour, markersize=4, label=f"{label} (test)")
        all_values += train_y + test_y
    positive = [value for value in all_values if value > 0]
    if positive and len(positive) == len(all_values) and max(positive) > 10 * min(positive):
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    figure.tight_layout()
    return figure


def save_figure(figure, path):
    """Save a figure as a PNG (creating the folders) and return the path. Figures are made
    without pyplot, so nothing global (backend, open figures) is touched or left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


def plot_loss_curves(runs, path, outputs=None, title="3D pose loss"):
    """Fig. 4: per run ({label: parse_caffe_log result}), the training (solid) and test (dashed,
    markers) curves of the summed 3D loss against the iteration; the 3D loss is the sum of the
    outputs named in outputs, by default of those starting with "loss_3D" (the total "loss" for
    a log without any). The y axis is logarithmic when the values span more than a decade."""
    return save_figure(loss_curve_figure(runs, outputs, title), path)


def action_bars_figure(series, title="MPJPE per action"):
    """Grouped bars of MPJPE per action as a matplotlib Figure; series is a list of
    (label, {action: mm}); the actions are those of the first series, in its order, and an
    action missing from a later series has no bar there."""
    actions = list(series[0][1])
    figure = Figure(figsize=(max(7, 0.18 * len(actions) * len(series) + 2), 4.5))
    ax = figure.subplots()
    width = 0.8 / len(series)
    positions = np.arange(len(actions))
    for index, (name, values) in enumerate(series):
        heights = [values.get(action, np.nan) for action in actions]
        ax.bar(positions + (index - (len(series) - 1) / 2) * width, heights, width,
               label=name, color=f"C{index}")
    ax.set_xticks(positions)
    ax.set_xticklabels(actions, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_ylabel("MPJPE (mm)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    tallest = np.nanmax([value for _, values in series for value in values.values()] + [1.0])
    ax.set_ylim(0, tallest * (1.1 + 0.1 * len(series)))   # room for the legend above the bars
    ax.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure


def plot_action_bars(per_action, path, baseline=None, paper=None, label="this model",
                     baseline_label="mean pose (baseline)",
                     paper_label="Park et al. 2016 (paper, real Human3.6M)"):
    """Bars of one model's MPJPE (mm) per action, in the order of per_action ({action: mm}),
    beside the optional baseline (mean pose) and paper ({action: mm}, the paper's numbers on
    real Human3.6M) values; an action missing from one of them has no bar there."""
    series = [(label, per_action)]
    if baseline is not None:
        series.append((baseline_label, baseline))
    if paper is not None:
        series.append((paper_label, paper))
    return save_figure(action_bars_figure(series), path)


def bone_colour(joint):
    """Colour of the bone that ends at a joint: left red, right blue, centre black."""
    if joint in LEFT_17:
        return LEFT_COLOUR
    if joint in RIGHT_17:
        return RIGHT_COLOUR
    return CENTRE_COLOUR


def draw_skeleton_3d(ax, pose, title=""):
    """Draw a (17, 3) camera-frame pose (x right, y down, z forward) on 3D axes, upright: the
    plot's axes are (x, z, -y). Equal aspect, no tick labels. Returns the axes."""
    pose = np.asarray(pose, dtype=float).reshape(17, 3)
    shown = np.stack([pose[:, 0], pose[:, 2], -pose[:, 1]], axis=1)
    for joint, parent in enumerate(PARENTS_17):
        if parent >= 0:
            segment = shown[[parent, joint]]
            ax.plot(segment[:, 0], segment[:, 1], segment[:, 2], color=bone_colour(joint),
                    linewidth=2)
    ax.scatter(shown[:, 0], shown[:, 1], shown[:, 2], color="tab:green", s=6)
    centre = (shown.max(axis=0) + shown.min(axis=0)) / 2
    half = max(float(np.ptp(shown, axis=0).max()) / 2, 1e-6) * 1.1
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=10, azim=-75)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.set_zticklabels([])
    ax.set_title(title, fontsize=9)
    return ax


def qualitative_figure(crops, ground_truth, predictions,
                       labels=("without 2D-cls", "with 2D-cls")):
    """Fig. 5 as a matplotlib Figure (see plot_qualitative)."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(predictions)} prediction sets but {len(labels)} labels")
    ground_truth = np.asarray(ground_truth, dtype=float)
    predictions = [np.asarray(prediction, dtype=float) for prediction in predictions]
    count, columns = len(crops), 2 + len(predictions)
    figure = Figure(figsize=(2.6 * columns, 2.6 * count))
    for row in range(count):
        image_ax = figure.add_subplot(count, columns, row * columns + 1)
        image_ax.imshow(np.asarray(crops[row])[..., ::-1])
        image_ax.set_axis_off()
        image_ax.set_title("input", fontsize=9)
        draw_skeleton_3d(figure.add_subplot(count, columns, row * columns + 2, projection="3d"),
                         ground_truth[row], "ground truth")
        for column, (label, prediction) in enumerate(zip(labels, predictions)):
            error = np.linalg.norm(prediction[row] - ground_truth[row], axis=-1).mean()
            ax = figure.add_subplot(count, columns, row * columns + 3 + column, projection="3d")
            draw_skeleton_3d(ax, prediction[row], f"{label}\nMPJPE {error:.1f}")
    figure.tight_layout()
    return figure


def plot_qualitative(crops, ground_truth, predictions, path,
                     labels=("without 2D-cls", "with 2D-cls")):
    """Fig. 5: one row per example with the input crop (BGR uint8, shown as RGB), the
    ground-truth skeleton and one skeleton per prediction set (each (K, 17, 3), titled with its
    label and its mean joint error in the poses' unit)."""
    return save_figure(qualitative_figure(crops, ground_truth, predictions, labels), path)
