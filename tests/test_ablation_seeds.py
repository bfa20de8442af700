"""Table 2 over several seeds (evaluation/statistics.py, evaluation/experiments.py,
tools/ablation.py): the statistics against hand computation, the seeds each run is prepared
with, the tables, CSV and JSON from fixed per-run results (training and evaluation replaced,
so these take seconds), and one tiny real ablation of two seeds end to end."""
import csv
import json
import math

import cv2
import pytest

import evaluation.experiments as experiments
from config import ConfigError, schedule_config
from evaluation.statistics import excludes_zero, mean_interval, paired_difference, t_quantile
from solver.run_folder import prepare_run
from tests.test_makefile import argument, planned
from tests.tiny_dataset import TINY
from tools.ablation import main as ablation_main

T_975_2 = 4.302652729749464   # Student's t, 97.5% quantile, 2 degrees of freedom (tables)
HALF = T_975_2 / math.sqrt(3)   # the 95% half-width of the mean of three values of sd 1

# action-wise MPJPE (mm) of each variant, by seed index: fixed results for the tests below
AVERAGES = {"baseline": [110.0, 112.0, 114.0], "multi-reg": [101.0, 102.0, 103.0],
            "2d-cls": [105.0, 106.0, 110.0], "full": [100.0, 104.0, 99.0]}
MEAN_POSE = {"Eating": 190.0, "Walking": 210.0}


# ------------------------------------------------------------------ statistics by hand

def test_mean_interval_of_three_values_by_hand():
    assert t_quantile(3) == pytest.approx(T_975_2, rel=1e-12)
    summary = mean_interval([10, 12, 14])
    half = T_975_2 * 2 / math.sqrt(3)
    assert summary["count"] == 3 and summary["mean"] == pytest.approx(12)
    assert summary["sd"] == pytest.approx(2)
    assert summary["half_width"] == pytest.approx(half)
    assert (summary["low"], summary["high"]) == pytest.approx((12 - half, 12 + half))
    assert summary["values"] == [10, 12, 14] and summary["confidence"] == 0.95
    assert excludes_zero(summary) is True
    json.dumps(summary)   # plain values


def test_paired_differences_by_hand():
    # full - multi-reg: -1, 2, -4: mean -1, sd 3; the interval holds 0
    spans_zero = paired_difference(AVERAGES["full"], AVERAGES["multi-reg"])
    assert spans_zero["values"] == [-1, 2, -4]
    assert (spans_zero["mean"], spans_zero["sd"]) == pytest.approx((-1, 3))
    assert (spans_zero["low"], spans_zero["high"]) == pytest.approx((-1 - 3 * HALF,
                                                                     -1 + 3 * HALF))
    assert spans_zero["excludes_zero"] is False
    # 2d-cls - baseline: -5, -6, -4: mean -5, sd 1; the interval lies below 0
    below = paired_difference(AVERAGES["2d-cls"], AVERAGES["baseline"])
    assert (below["mean"], below["sd"]) == pytest.approx((-5, 1))
    assert (below["low"], below["high"]) == pytest.approx((-5 - HALF, -5 + HALF))
    assert below["excludes_zero"] is True
    # the same seeds in other order pair otherwise: not the difference of the means' intervals
    unpaired = paired_difference([105.0, 110.0, 106.0], AVERAGES["baseline"])
    assert unpaired["mean"] == pytest.approx(-5) and unpaired["excludes_zero"] is False


def test_one_value_has_no_interval():
    summary = mean_interval([7.5])
    assert summary["mean"] == 7.5 and summary["count"] == 1
    assert summary["sd"] is summary["half_width"] is summary["low"] is summary["high"] is None
    assert excludes_zero(summary) is None
    assert paired_difference([3.0], [1.0])["excludes_zero"] is None


def test_bad_values_are_refused():
    for values in ([], [1.0, float("nan")], [[1.0, 2.0]]):
        with pytest.raises(ValueError):
            mean_interval(values)
    with pytest.raises(ValueError, match="equal counts"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 2 values"):
        t_quantile(1)


# ------------------------------------------------------------------ seeds and layout

def test_seed_configs_advance_both_seeds_alike():
    cfg = schedule_config("demo", None, ["random_seed=5", "data_seed=9"])
    configs = experiments.seed_configs(cfg, 3)
    assert [(c.random_seed, c.data_seed) for c in configs] == [(5, 9), (6, 10), (7, 11)]
    assert configs[0] == cfg   # seed index 0: the configuration as given
    assert experiments.seed_rule(cfg) == ("seed index s: random_seed = 5 + s, data_seed = 9 "
                                          "+ s, the same for every variant")
    with pytest.raises(ValueError, match="at least 1 seed"):
        experiments.seed_configs(cfg, 0)
    with pytest.raises(ConfigError, match="random_seed must fit in 32 bits"):
        experiments.seed_configs(cfg.replace(random_seed=2 ** 31 - 1), 2)


def fixed_results(seed, variant):
    """evaluate_run's results of a run with AVERAGES' action-wise MPJPE: Eating 5 mm below it,
    Walking 5 mm above."""
    average = AVERAGES[variant][seed]
    return {"protocol": {"description": "fixed results"}, "split": "test",
            "mpjpe": {"per_action": {"Eating": average - 5, "Walking": average + 5},
                      "action_wise": average},
            "mean_pose_mpjpe": {"per_action": dict(MEAN_POSE), "action_wise": 200.0}}


@pytest.fixture
def fixed_runs(monkeypatch):
    """Training replaced by preparing the run folder (its config.json, nets and solver),
    evaluation by fixed_results of its seed and variant (written nowhere), Fig. 4 and Fig. 5
    by nothing (they need trained runs); returns the list of (seed folder, variant) each run
    was prepared in."""
    prepared = []

    def prepare_only(run, cfg, variant, lmdb_dir, gpus=(), force=False, quiet=False):
        prepared.append((run.parent.name, variant))
        return prepare_run(run, cfg, variant, lmdb_dir, gpus, force)

    def evaluate(folder, batch_size=16, quiet=False):
        seed = int(folder.path.parent.name.removeprefix("seed"))
        return fixed_results(seed, folder.variant()), None

    monkeypatch.setattr(experiments, "train", prepare_only)
    monkeypatch.setattr(experiments, "evaluate_run", evaluate)
    monkeypatch.setattr(experiments, "write_results", lambda results, out, poses: None)
    monkeypatch.setattr(experiments, "draw_report", lambda runs, out: {})
    return prepared


def run_main(lmdb_dir, out, *flags):
    return ablation_main(["--lmdb", str(lmdb_dir), "--out", str(out), "--quiet",
                          "--set", *TINY, *flags])


def test_each_seed_gives_every_variant_the_same_seeds(lmdb_dir, tmp_path, fixed_runs):
    out = tmp_path / "ablation"
    assert run_main(lmdb_dir, out, "--seeds", "3") == 0
    assert fixed_runs == [(f"seed{s}", v) for s in range(3) for v in AVERAGES]
    seeds = {}
    for s in range(3):
        for variant in AVERAGES:
            description = json.loads((out / f"seed{s}" / variant / "config.json").read_text())
            assert description["variant"] == variant
            config = description["config"]
            seeds.setdefault(s, set()).add((config["random_seed"], config["data_seed"]))
    # the demo schedule's seeds (random_seed 1, data_seed 0) advanced by the seed index
    assert seeds == {0: {(1, 0)}, 1: {(2, 1)}, 2: {(3, 2)}}


def test_tables_from_fixed_results(lmdb_dir, tmp_path, fixed_runs, capsys):
    out = tmp_path / "ablation"
    assert run_main(lmdb_dir, out, "--seeds", "3") == 0
    printed = capsys.readouterr().out
    document = json.loads((out / "table2.json").read_text())
    # the per-action table is the mean over the seeds
    assert document["mpjpe_mm"]["baseline"] == pytest.approx(
        {"Eating": 107.0, "Walking": 117.0, "Average": 112.0})
    assert document["mpjpe_mm"]["full"]["Average"] == pytest.approx(101.0)
    assert document["mean_pose_mpjpe_mm"] == {**MEAN_POSE, "Average": 200.0}
    assert [seed["random_seed"] for seed in document["seeds"]] == [1, 2, 3]
    assert [seed["data_seed"] for seed in document["seeds"]] == [0, 1, 2]
    assert document["per_seed_mpjpe_mm"][2]["2d-cls"]["Average"] == 110.0
    baseline = document["action_wise_mpjpe_mm"]["baseline"]
    assert (baseline["mean"], baseline["sd"], baseline["low"], baseline["high"]) == \
        pytest.approx((112, 2, 112 - 2 * HALF, 112 + 2 * HALF))
    differences = document["paired_differences_mm"]
    assert list(differences) == ["full - multi-reg", "2d-cls - baseline", "full - baseline"]
    assert differences["full - multi-reg"]["excludes_zero"] is False
    assert differences["2d-cls - baseline"]["excludes_zero"] is True
    # full - baseline: -10, -8, -15: mean -11, sd sqrt(13)
    full_baseline = differences["full - baseline"]
    assert (full_baseline["mean"], full_baseline["sd"]) == pytest.approx((-11, math.sqrt(13)))
    assert full_baseline["high"] == pytest.approx(-11 + math.sqrt(13) * HALF)
    assert full_baseline["excludes_zero"] is True

    rows = list(csv.reader((out / "table2.csv").read_text().splitlines()))
    assert rows[0] == ["variant", "Eating", "Walking", "Average"]
    assert rows[1] == ["baseline", "107.0", "117.0", "112.0"]
    assert rows[5] == ["mean-pose", "190.0", "210.0", "200.0"]
    assert rows[6] == []
    assert rows[7] == ["action_wise_mm", "seeds", "mean", "sd", "ci95_low", "ci95_high",
                       "excludes_zero", "seed0", "seed1", "seed2"]
    assert rows[8] == ["baseline", "3", "112.0", "2.0", f"{112 - 2 * HALF:.2f}",
                       f"{112 + 2 * HALF:.2f}", "", "110.0", "112.0", "114.0"]
    assert rows[13] == ["2d-cls - baseline", "3", "-5.0", "1.0", f"{-5 - HALF:.2f}",
                        f"{-5 + HALF:.2f}", "true", "-5.0", "-6.0", "-4.0"]

    lines = printed.splitlines()
    assert "# MPJPE (mm) per action: mean over 3 seeds" in lines
    full_row = next(line for line in lines if line.startswith("TABLE2 full ("))
    assert full_row.split()[-3:] == ["96.0", "106.0", "101.0"]
    seeds_row = next(line for line in lines if line.startswith("SEEDS baseline"))
    assert f"mean   112.0 mm  95% CI [{112 - 2 * HALF:7.1f}, {112 + 2 * HALF:7.1f}]" in seeds_row
    assert seeds_row.endswith("sd   2.0  by seed 110.0 112.0 114.0")
    paired = {line.split()[1] + line.split()[2] + line.split()[3]: line
              for line in lines if line.startswith("PAIRED ")}
    assert "includes 0: no difference shown at 95%" in paired["full-multi-reg"]
    assert "excludes 0: 2d-cls lower (better) at 95%" in paired["2d-cls-baseline"]
    assert "excludes 0: full lower (better) at 95%" in paired["full-baseline"]
    figure = cv2.imread(str(out / "figures" / "table2_seeds.png"))
    assert figure is not None and figure.shape[0] > 100
    assert f"ablation: table2_seeds {out / 'figures' / 'table2_seeds.png'}" in lines


def test_one_seed_says_there_is_no_interval(lmdb_dir, tmp_path, fixed_runs, capsys):
    out = tmp_path / "ablation"
    assert run_main(lmdb_dir, out, "--variants", "2d-cls", "baseline") == 0
    assert fixed_runs == [("seed0", "2d-cls"), ("seed0", "baseline")]
    printed = capsys.readouterr().out
    assert "no interval with one seed (--seeds 2 or more gives them)" in printed
    line = next(line for line in printed.splitlines() if line.startswith("PAIRED 2d-cls"))
    assert line.endswith("mean    -5.0 mm  no interval (one seed)")
    document = json.loads((out / "table2.json").read_text())
    assert document["paired_differences_mm"]["2d-cls - baseline"]["excludes_zero"] is None
    assert list(document["paired_differences_mm"]) == ["2d-cls - baseline"]
    rows = list(csv.reader((out / "table2.csv").read_text().splitlines()))
    assert rows[-1] == ["2d-cls - baseline", "1", "-5.0", "", "", "", "", "-5.0"]


def test_the_layout_before_seeds_is_refused_with_the_move(lmdb_dir, tmp_path, fixed_runs,
                                                          capsys):
    out = tmp_path / "ablation"
    (out / "full").mkdir(parents=True)
    (out / "full" / "config.json").write_text(json.dumps(
        {"variant": "full", "dataset": str(lmdb_dir), "config": {}}))
    assert run_main(lmdb_dir, out, "--seeds", "2") == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "one-seed layout (full directly in it)" in error
    assert f"mv {out / 'full'} {out / 'seed0' / 'full'}" in error
    assert fixed_runs == []


def test_bad_seed_counts_are_refused(lmdb_dir, tmp_path, capsys):
    for flags, message in ((["--seeds", "0"], "need at least 1 seed, got 0"),
                           (["--seeds", "two"], "'two' is not a whole number"),
                           (["--seeds", "2", "--set", "random_seed=2147483647"],
                            "--seeds 2: config: random_seed must fit in 32 bits")):
        with pytest.raises(SystemExit):
            ablation_main(["--lmdb", str(lmdb_dir), "--out", str(tmp_path), *flags])
        assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_make_ablation_passes_seeds():
    assert argument(planned("ablation", SEEDS=3), "tools/ablation.py", "--seeds") == "3"
    assert argument(planned("ablation"), "tools/ablation.py", "--seeds") == "1"


# ------------------------------------------------------------------ end to end

@pytest.mark.slow
def test_two_seeds_end_to_end(lmdb_dir, tmp_path, capsys):
    out = tmp_path / "ablation"
    flags = ("--seeds", "2", "--variants", "multi-reg", "full")
    assert run_main(lmdb_dir, out, *flags) == 0
    capsys.readouterr()
    document = json.loads((out / "table2.json").read_text())
    averages = {}
    for variant in ("multi-reg", "full"):
        for s in range(2):
            run = out / f"seed{s}" / variant
            config = json.loads((run / "config.json").read_text())["config"]
            assert (config["random_seed"], config["data_seed"]) == (1 + s, s)
            result = json.loads((run / "results.json").read_text())
            averages.setdefault(variant, []).append(result["mpjpe"]["action_wise"])
        assert averages[variant][0] != averages[variant][1]   # the seeds trained differently
        assert document["mpjpe_mm"][variant]["Average"] == pytest.approx(
            sum(averages[variant]) / 2)
        assert document["action_wise_mpjpe_mm"][variant]["values"] == averages[variant]
    difference = document["paired_differences_mm"]["full - multi-reg"]
    assert difference["values"] == pytest.approx(
        [f - m for f, m in zip(averages["full"], averages["multi-reg"])])
    for name in ("fig4_loss.png", "fig5_qualitative.png", "table2.png", "table2_seeds.png"):
        assert cv2.imread(str(out / "figures" / name)) is not None
    # a rerun resumes: every run has finished, and the same numbers come back
    assert run_main(lmdb_dir, out, *flags) == 0
    assert capsys.readouterr().out.count("already finished") == 4
    assert json.loads((out / "table2.json").read_text()) == document
