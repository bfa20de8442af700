"""Figures of the paper from Caffe logs and evaluation results.

    parse_caffe_log(text)        train / test outputs per iteration of a `caffe train` log
    plot_loss_curves(runs, path) Fig. 4: training and test 3D loss per iteration, one curve pair per run
    action_bars_figure(series)   MPJPE per action of several series (models, baseline, paper)
    plot_action_bars(...)        one model's MPJPE per action, beside a baseline and the paper's numbers
    draw_skeleton_3d(ax, pose)   one 17-joint 3D skeleton on matplotlib 3D axes
    plot_qualitative(...)        Fig. 5: input crop, ground truth and predicted skeletons per example

Every plot function creates the parent folders of its PNG, closes its figure and returns the path.
"""
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from data_prep.h36m import PARENTS_17, RIGHT_17  # noqa: E402

LEFT_17 = (4, 5, 6, 11, 12, 13)
LEFT_COLOUR, RIGHT_COLOUR, CENTRE_COLOUR = "tab:red", "tab:blue", "black"
DPI = 120

_VALUE = r"(-?nan|-?inf|[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)"
# "Iteration 20 (97 iter/s, 0.05s/5 iters), loss = 0.25" (BVLC since 2017), or
# "Iteration 20, loss = 0.25" (older Caffe; also the final line after training)
TRAIN_DISPLAY = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = " + _VALUE + r"\s*$")
# "Iteration 10, Testing net (#0)"
TEST_START = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
# "    Train net output #0: loss_3D = 4.2 (* 0.1 = 0.42 loss)"; the weight part is absent for
# outputs that are not losses (an accuracy, say)
NET_OUTPUT = re.compile(r"(Train|Test) net output #\d+: (\S+) = " + _VALUE +
                        r"(?: \(\* " + _VALUE + r" = " + _VALUE + r" loss\))?\s*$")


def _complete_lines(text):
    """The lines of a log, without a last line that the writer had not finished (no newline)."""
    lines = text.splitlines()
    if lines and not text.endswith(("\n", "\r")):
        lines.pop()
    return lines


def parse_caffe_log(text):
    """Outputs of a `caffe train` log per iteration:

        {"train": [(iteration, {name: value})], "test": [(iteration, {name: value})]}

    A train entry comes from each display line ("Iteration N (...), loss = X" or the older
    "Iteration N, loss = X", which is also the final line) and holds "loss": X, the weighted
    total, plus the unweighted value of each "Train net output" line after it (an output named
    "loss" thus overrides the total, which equals it for a weight of 1). A test entry comes from
    each "Testing net (#0)" block; other test nets are skipped. An iteration seen twice keeps its
    first entry; a test block without outputs and an unfinished last line are dropped, so a log
    cut off mid-way parses to what it holds. Entries are sorted by iteration.
    """
    entries = {"train": {}, "test": {}}
    current = None   # the outputs dict that the next "net output" lines belong to, or None
    current_kind = None
    for line in _complete_lines(text):
        display = TRAIN_DISPLAY.search(line)
        if display:
            iteration, total = int(display.group(1)), float(display.group(2))
            current_kind = "train"
            if iteration in entries["train"]:
                current = {}   # a repeated iteration: its outputs go nowhere
            else:
                current = entries["train"][iteration] = {"loss": total}
            continue
        test = TEST_START.search(line)
        if test:
            iteration, net_index = int(test.group(1)), int(test.group(2))
            if net_index == 0 and iteration not in entries["test"]:
                current, current_kind = entries["test"].setdefault(iteration, {}), "test"
            else:
                current, current_kind = None, None
            continue
        output = NET_OUTPUT.search(line)
        if output and current is not None and output.group(1).lower() == current_kind:
            current[output.group(2)] = float(output.group(3))
    return {kind: sorted((iteration, outputs) for iteration, outputs in by_iteration.items()
                         if outputs)
            for kind, by_iteration in entries.items()}


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
    """Fig. 4 as an open matplotlib figure (see plot_loss_curves); the caller closes it."""
    figure, ax = plt.subplots(figsize=(7, 4.5))
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
    """Save a figure as a PNG (creating the folders), close it and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def plot_loss_curves(runs, path, outputs=None, title="3D pose loss"):
    """Fig. 4: per run ({label: parse_caffe_log result}), the training (solid) and test (dashed,
    markers) curves of the summed 3D loss against the iteration; the 3D loss is the sum of the
    outputs named in outputs, by default of those starting with "loss_3D" (the total "loss" for
    a log without any). The y axis is logarithmic when the values span more than a decade."""
    return save_figure(loss_curve_figure(runs, outputs, title), path)


def action_bars_figure(series, title="MPJPE per action"):
    """Grouped bars of MPJPE per action as an open matplotlib figure; series is a list of
    (label, {action: mm}); the actions are those of the first series, in its order, and an
    action missing from a later series has no bar there."""
    actions = list(series[0][1])
    figure, ax = plt.subplots(figsize=(max(7, 0.18 * len(actions) * len(series) + 2), 4.5))
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
    """Fig. 5 as an open matplotlib figure (see plot_qualitative)."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(predictions)} prediction sets but {len(labels)} labels")
    ground_truth = np.asarray(ground_truth, dtype=float)
    predictions = [np.asarray(prediction, dtype=float) for prediction in predictions]
    count, columns = len(crops), 2 + len(predictions)
    figure = plt.figure(figsize=(2.6 * columns, 2.6 * count))
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
