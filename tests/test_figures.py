"""The figures module: the Caffe log parser on a real `caffe train` log and on hand-written
snippets, and the plots (valid PNG files, legends naming every run)."""
import math

import cv2
import numpy as np
import pytest

from prototxt.smoke_net import make_smoke_net
from solver.smoke_solver import make_smoke_solver
from evaluation.figures import (action_bars_figure, loss_curve_figure, plot_action_bars,
                                plot_loss_curves, plot_qualitative)
from solver.caffe_cli import parse_caffe_log, run_caffe, train_losses

MULTI_OUTPUT_LOG = """\
I1125 10:00:00.000001  1234 solver.cpp:347] Iteration 0, Testing net (#0)
I1125 10:00:00.000002  1234 solver.cpp:414]     Test net output #0: loss_2D = 6.5 (* 1 = 6.5 loss)
I1125 10:00:00.000003  1234 solver.cpp:414]     Test net output #1: loss_3D = 40 (* 0.1 = 4 loss)
I1125 10:00:00.000004  1234 solver.cpp:414]     Test net output #2: accuracy = 0.25
I1125 10:00:00.000005  1234 solver.cpp:347] Iteration 0, Testing net (#1)
I1125 10:00:00.000006  1234 solver.cpp:414]     Test net output #0: loss_2D = 99 (* 1 = 99 loss)
I1125 10:00:00.000007  1234 solver.cpp:414]     Test net output #1: loss_3D = 99 (* 0.1 = 9.9 loss)
I1125 10:00:00.000008  1234 solver.cpp:239] Iteration 0 (0 iter/s, 0.1s/5 iters), loss = 12.5
I1125 10:00:00.000009  1234 solver.cpp:258]     Train net output #0: loss_2D = 7.5 (* 1 = 7.5 loss)
I1125 10:00:00.000010  1234 solver.cpp:258]     Train net output #1: loss_3D = 50 (* 0.1 = 5 loss)
I1125 10:00:00.000011  1234 sgd_solver.cpp:112] Iteration 0, lr = 0.01
I1125 10:00:00.000012  1234 solver.cpp:239] Iteration 5 (50 iter/s, 0.1s/5 iters), loss = 3.5e-1
I1125 10:00:00.000013  1234 solver.cpp:258]     Train net output #0: loss_2D = 0.25 (* 1 = 0.25 loss)
I1125 10:00:00.000014  1234 solver.cpp:258]     Train net output #1: loss_3D = 1 (* 0.1 = 0.1 loss)
I1125 10:00:00.000015  1234 sgd_solver.cpp:112] Iteration 5, lr = 0.01
I1125 10:00:00.000016  1234 solver.cpp:347] Iteration 10, Testing net (#0)
I1125 10:00:00.000017  1234 solver.cpp:414]     Test net output #0: loss_2D = 0.5 (* 1 = 0.5 loss)
I1125 10:00:00.000018  1234 solver.cpp:414]     Test net output #1: loss_3D = 2 (* 0.1 = 0.2 loss)
I1125 10:00:00.000019  1234 solver.cpp:347] Iteration 10, Testing net (#1)
I1125 10:00:00.000020  1234 solver.cpp:414]     Test net output #0: loss_2D = 98 (* 1 = 98 loss)
I1125 10:00:00.000021  1234 solver.cpp:327] Iteration 10, loss = 0.3
"""


def smoke_log_with_test_net(folder, iterations=20):
    """Train the smoke net for a few iterations with itself as test net (display 5, test every
    10 iterations) and return the log text."""
    net_path = folder / "net.prototxt"
    net_path.write_text(str(make_smoke_net(batch=4).to_proto()))
    solver = make_smoke_solver(net_path, folder / "snapshot", max_iter=iterations)
    solver.test_net.append(str(net_path))
    solver.test_iter.append(2)
    solver.test_interval = 10
    solver_path = folder / "solver.prototxt"
    solver_path.write_text(str(solver))
    run_caffe(["train", f"-solver={solver_path}"], folder / "train.log")
    return (folder / "train.log").read_text()


def test_parser_on_a_real_caffe_train_log(tmp_path):
    text = smoke_log_with_test_net(tmp_path)
    log = parse_caffe_log(text)
    assert [iteration for iteration, _ in log["train"]] == [0, 5, 10, 15, 20]
    # the output line's "loss" replaces the display line's total; both print the same float
    # sum, which may differ in the last printed digit
    parsed = [(iteration, values["loss"]) for iteration, values in log["train"]]
    expected = train_losses(text)
    assert [i for i, _ in parsed] == [i for i, _ in expected]
    assert [v for _, v in parsed] == pytest.approx([v for _, v in expected], rel=1e-5)
    assert all(set(values) == {"loss"} for _, values in log["train"])
    # test_initialization is on by default: iteration 0 is tested too
    assert [iteration for iteration, _ in log["test"]] == [0, 10, 20]
    assert all(set(values) == {"loss"} and math.isfinite(values["loss"])
               for _, values in log["test"])


def test_parser_keeps_unweighted_outputs_and_test_net_0_only():
    log = parse_caffe_log(MULTI_OUTPUT_LOG)
    assert log["train"] == [(0, {"loss": 12.5, "loss_2D": 7.5, "loss_3D": 50.0}),
                            (5, {"loss": 0.35, "loss_2D": 0.25, "loss_3D": 1.0}),
                            (10, {"loss": 0.3})]
    assert log["test"] == [(0, {"loss_2D": 6.5, "loss_3D": 40.0, "accuracy": 0.25}),
                           (10, {"loss_2D": 0.5, "loss_3D": 2.0})]


def test_parser_on_lines_without_glog_prefix_and_repeated_iterations():
    text = ("Iteration 0, loss = 7\n"
            "    Train net output #0: loss = 7 (* 1 = 7 loss)\n"
            "Iteration 0, loss = 8\n"
            "    Train net output #0: loss = 8 (* 1 = 8 loss)\n"
            "Iteration 0, lr = 0.1\n"
            "Iteration 5, loss = -nan\n")
    log = parse_caffe_log(text)
    assert log["train"][0] == (0, {"loss": 7.0})
    assert log["train"][1][0] == 5 and math.isnan(log["train"][1][1]["loss"])
    assert log["test"] == []


@pytest.mark.parametrize("cut", ["Test net output #1: loss_3D = 2 (* 0.1",
                                 "I1125 10:00:00.000016  1234 solver.cpp:347] Iteration 10, Test",
                                 "Train net output #1: loss_3D = 1 (* 0.1 = 0.1 loss)"])
def test_parser_on_a_log_cut_off_mid_way(cut):
    """Whatever the line where the log stops (even mid-way through a line, or mid-number),
    the parser returns what came before it and nothing half-read."""
    end = MULTI_OUTPUT_LOG.index(cut) + len(cut)
    for stop in (end, end - 3):
        log = parse_caffe_log(MULTI_OUTPUT_LOG[:stop])
        full = parse_caffe_log(MULTI_OUTPUT_LOG)
        for kind in ("train", "test"):
            for iteration, values in log[kind]:
                reference = dict(full[kind])[iteration]
                assert all(reference[name] == value for name, value in values.items())
    assert parse_caffe_log(MULTI_OUTPUT_LOG[:MULTI_OUTPUT_LOG.index("Iteration 10, Testing")]) \
        ["test"] == [(0, {"loss_2D": 6.5, "loss_3D": 40.0, "accuracy": 0.25})]


def assert_png(path, min_width=300, min_height=200):
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable image"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.shape[1] >= min_width and image.shape[0] >= min_height
    assert image.std() > 5   # not blank


def test_loss_curves_with_two_runs(tmp_path):
    without_cls = parse_caffe_log(MULTI_OUTPUT_LOG)
    with_cls = parse_caffe_log(MULTI_OUTPUT_LOG.replace("loss_3D = 50", "loss_3D = 30"))
    runs = {"Multi-reg": without_cls, "Multi-reg + 2D-cls": with_cls}
    figure = loss_curve_figure(runs)
    ax = figure.axes[0]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("Multi-reg (" in label for label in legend)
    assert any("Multi-reg + 2D-cls" in label for label in legend)
    assert ax.get_yscale() == "log"   # 1 .. 50 spans more than a decade
    train_line = ax.get_lines()[0]
    assert list(train_line.get_xdata()) == [0, 5] and list(train_line.get_ydata()) == [50, 1]
    path = plot_loss_curves(runs, tmp_path / "figures" / "fig4.png")
    assert path == tmp_path / "figures" / "fig4.png"
    assert_png(path)


def test_loss_curves_of_a_real_log_fall_back_to_the_total_loss(tmp_path):
    log = parse_caffe_log(smoke_log_with_test_net(tmp_path))
    figure = loss_curve_figure({"smoke": log})
    assert len(figure.axes[0].get_lines()[0].get_xdata()) == 5
    assert_png(plot_loss_curves({"smoke": log}, tmp_path / "smoke_loss.png", outputs=["loss"]))


def test_action_bars(tmp_path):
    ours = {"Directions": 80.0, "Eating": 95.5, "Average": 88.0}
    baseline = {"Directions": 150.0, "Eating": 160.0, "Average": 155.0}
    paper = {"Directions": 100.3, "Eating": 93.2, "Average": 117.3}
    figure = action_bars_figure([("ours", ours), ("mean pose", baseline),
                                 ("paper, real Human3.6M", paper)])
    ax = figure.axes[0]
    assert ax.get_ylabel() == "MPJPE (mm)"
    assert [label.get_text() for label in ax.get_xticklabels()] == list(ours)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert len(legend) == 3 and "real Human3.6M" in legend[2]
    # one bar per action and series, at the series' values; a missing action has no height
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [80.0, 95.5, 88.0, 150.0, 160.0, 155.0, 100.3, 93.2, 117.3]
    partial = action_bars_figure([("a", {"Walking": 1.0, "Eating": 2.0}), ("b", {"Eating": 3.0})])
    assert np.isnan(partial.axes[0].patches[2].get_height())
    path = plot_action_bars(ours, tmp_path / "bars" / "per_action.png", baseline, paper)
    assert_png(path)
    assert_png(plot_action_bars({"Walking": 70.0}, tmp_path / "one.png"))


def t_pose():
    """A standing 17-joint pose in camera mm (x right, y down, z forward), 4 m away."""
    pose = np.array([[0, 0, 0], [-130, 0, 0], [-130, 450, 0], [-130, 880, 0],
                     [130, 0, 0], [130, 450, 0], [130, 880, 0], [0, -230, 0], [0, -480, 0],
                     [0, -560, -60], [0, -680, 0], [170, -450, 0], [440, -450, 0],
                     [690, -450, 0], [-170, -450, 0], [-440, -450, 0], [-690, -450, 0]],
                    dtype=float)
    return pose + [0, 0, 4000]


def test_qualitative_figure(tmp_path):
    rng = np.random.default_rng(0)
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    crops[:, :, :32] = (255, 0, 0)   # BGR blue on the left half
    truth = np.stack([t_pose(), t_pose() * [1, 0.9, 1]])
    predictions = [truth + rng.normal(0, 60, truth.shape), truth + rng.normal(0, 20, truth.shape)]
    path = plot_qualitative(crops, truth, predictions, tmp_path / "fig5" / "qualitative.png")
    assert_png(path)
    image = cv2.imread(str(path))
    assert image.shape[1] > image.shape[0]   # 2 rows of 4 panels
    with pytest.raises(ValueError, match="labels"):
        plot_qualitative(crops, truth, predictions[:1], tmp_path / "bad.png")
