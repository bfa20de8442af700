"""tools/report.py, tools/ablation.py and tools/demo.py end to end on the tiny dataset and a
narrow network (evaluation/report.py, evaluation/experiments.py)."""
import json

import cv2
import numpy as np
import pytest

from evaluation.experiments import format_table2, table2
from evaluation.report import ReportError, draw_report, read_crops, spread_examples
from tests.tiny_dataset import TINY
from tools.ablation import main as ablation_main
from tools.demo import main as demo_main

# trains narrow networks end to end: seconds each
pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def demo_run(lmdb_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("demo") / "run"
    assert demo_main(["--lmdb", str(lmdb_dir), "--run", str(run), "--quiet",
                      "--set", *TINY]) == 0
    return run


def png_shape(path):
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable image"
    return image.shape


def test_spread_examples_takes_middle_frames_of_spread_actions():
    actions = ["A"] * 4 + ["B"] * 3 + ["C"] * 5 + ["D"] * 2
    assert spread_examples(actions, 2) == [2, 13]          # middle of A (0-3) and of D (12-13)
    assert spread_examples(actions, 10) == [2, 5, 9, 13]   # every action once


def test_read_crops_are_the_centre_windows(lmdb_dir):
    from layers.h36m_data import BatchLoader
    crops = read_crops(lmdb_dir, "test", [3, 0], input_size=225)
    with BatchLoader(str(lmdb_dir), "test", batch_size=4, train=False) as loader:
        batch = loader.next_batch()
    mean = json.loads((lmdb_dir / "manifest.json").read_text())["mean_bgr"]
    for crop, slot in zip(crops, (3, 0)):
        np.testing.assert_allclose(crop.astype(np.float32) - np.asarray(mean, np.float32),
                                   batch.images[slot].transpose(1, 2, 0), atol=1e-4)


def test_demo_writes_results_figures_and_the_ratio(demo_run, capsys):
    results = json.loads((demo_run / "results.json").read_text())
    assert results["frames"] == 10
    assert (demo_run / "predictions.npz").exists()
    for name in ("fig4_loss.png", "fig5_qualitative.png", "mpjpe_per_action.png"):
        assert png_shape(demo_run / "figures" / name)[0] > 100
    # a second run resumes nothing (training finished), evaluates again and prints the ratio
    assert demo_main(["--lmdb", str(demo_run.parent.parent / "unused"), "--run", str(demo_run),
                      "--set", *TINY]) == 1     # a missing LMDB is a clear error ...
    assert "no manifest.json; build the dataset with `make lmdb`" in capsys.readouterr().err
    lmdb = json.loads((demo_run / "config.json").read_text())["dataset"]
    assert demo_main(["--lmdb", lmdb, "--run", str(demo_run), "--quiet", "--set", *TINY]) == 0
    out = capsys.readouterr().out
    ours = results["mpjpe"]["frame_weighted"]
    floor = results["mean_pose_mpjpe"]["frame_weighted"]
    assert f"demo: synthetic test set: MPJPE {ours:.1f} mm = {100 * ours / floor:.0f}% of the mean-pose baseline" in out
    assert "already finished" in out


def test_report_of_two_runs_and_its_errors(demo_run, lmdb_dir, tmp_path):
    paths = draw_report({"a": demo_run, "b": demo_run}, tmp_path / "figures", examples=2)
    height, width, _ = png_shape(paths["fig5"])
    assert height > 2 * 150 and width > 4 * 150          # 2 rows: crop, truth, a, b
    with pytest.raises(ReportError, match="results.json is missing: run `python tools/evaluate"):
        draw_report({"a": tmp_path}, tmp_path / "x")
    other = tmp_path / "other"
    other.mkdir()
    for name in ("results.json", "config.json"):
        (other / name).write_text((demo_run / name).read_text())
    with np.load(demo_run / "predictions.npz") as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["truth_mm"] = arrays["truth_mm"][:5]
    np.savez(other / "predictions.npz", **arrays)
    with pytest.raises(ReportError, match="evaluated on other frames"):
        draw_report({"a": demo_run, "b": other}, tmp_path / "y")


def test_ablation_prints_table2_and_draws_the_pair(lmdb_dir, tmp_path, capsys):
    out = tmp_path / "ablation"
    assert ablation_main(["--lmdb", str(lmdb_dir), "--out", str(out), "--variants",
                          "multi-reg", "full", "--quiet", "--set", *TINY]) == 0
    printed = capsys.readouterr().out
    document = json.loads((out / "table2.json").read_text())
    assert list(document["mpjpe_mm"]) == ["multi-reg", "full"]
    for variant in ("multi-reg", "full"):
        row = document["mpjpe_mm"][variant]
        result = json.loads((out / "seed0" / variant / "results.json").read_text())
        assert row["Average"] == pytest.approx(result["mpjpe"]["action_wise"])
        assert row["Walking"] == pytest.approx(result["mpjpe"]["per_action"]["Walking"])
        line = next(l for l in printed.splitlines() if l.startswith(f"TABLE2 {variant} ("))
        assert f"{row['Average']:.1f}" in line.split()[-1]
    assert "paper Multi-reg+2D-cls" in printed
    for name in ("fig4_loss.png", "fig5_qualitative.png", "mpjpe_per_action.png", "table2.png"):
        assert png_shape(out / "figures" / name)[0] > 100
    assert (out / "table2.csv").read_text().splitlines()[0] == "variant,Eating,Walking,Average"


def test_table2_layout_by_hand():
    results = {"full": {"mpjpe": {"per_action": {"Eating": 80.0, "Walking": 60.0},
                                  "action_wise": 70.0}}}
    table = table2(results)
    assert table == {"full": {"Eating": 80.0, "Walking": 60.0, "Average": 70.0}}
    lines = format_table2(table, {"Eating": 150.0, "Walking": 130.0, "Average": 140.0})
    full = next(l for l in lines.splitlines() if l.startswith("TABLE2 full"))
    assert full.split()[-3:] == ["80.0", "60.0", "70.0"]
    paper = next(l for l in lines.splitlines() if l.startswith("TABLE2 paper Multi-reg+2D-cls"))
    # the paper's average over the same actions: (89.96 + 62.64) / 2
    assert paper.split()[-3:] == ["90.0", "62.6", "76.3"]


def test_bad_arguments_are_refused(lmdb_dir, capsys):
    with pytest.raises(SystemExit):
        ablation_main(["--lmdb", str(lmdb_dir), "--variants", "tiny-net"])
    assert "invalid choice: 'tiny-net'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo_main(["--lmdb", str(lmdb_dir), "--set", "batchsize=2"])
    assert "unknown keys ['batchsize']" in capsys.readouterr().err
