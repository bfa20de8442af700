"""Experiments that train, evaluate and draw in one go: the demo and Table 2's ablation.

    demo(run, cfg, variant, dataset_dir, gpus)           train, evaluate, draw; the summary lines
    ablation(out, cfg, dataset_dir, variants, seeds=N)   Table 2: every variant trained alike

Ablation: every variant (baseline, multi-reg, 2d-cls, full; section 5) is trained with the same
configuration and schedule once per seed, into <out>/seed<s>/<variant>/ (an interrupted
ablation resumes where it stopped), then evaluated on the test split. Seed index s (0 to N-1)
trains every variant with random_seed = R + s and data_seed = D + s, R and D being the
configuration's (1 and 0 unless --set changes them): the variants of one seed see the same
batches in the same order (the data layer's batches depend only on data_seed), and the layers
they share ahead of their differences (the convolutions, the 2D branch, fc1_3D) start from the
same random weights (Caffe draws them in net order from random_seed). One seed trains exactly
as the ablation did before seeds, one folder deeper (seed0/); an ablation folder of that
earlier layout (<out>/<variant>/) is refused, naming the move that keeps its runs as seed 0's.

Writes <out>/table2.json and table2.csv: MPJPE in mm per action and action-wise average, the
mean over the seeds, beside the mean-pose baseline and the paper's Table 2 (its results on real
Human3.6M); then each variant's action-wise MPJPE over the seeds (mean, 95% Student's t
interval) and the differences paired by seed (full - multi-reg and 2d-cls - baseline, the
paper's claims that the 2D classification path helps, and full - baseline) with their
intervals and whether these leave out zero (evaluation/statistics.py). Draws <out>/figures/:
Fig. 4 and Fig. 5 for seed 0's multi-reg (without 2D-cls) against full (with 2D-cls), the
comparison of section 5, the mean MPJPE bars of all variants (table2.png) and the means and
differences with their intervals (table2_seeds.png).
"""
import csv
import json
import shlex
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from built_folders import is_built
from evaluation.evaluate import evaluate_run, results_folder, results_text, write_results
from evaluation.figures import action_bars_figure, save_figure
from evaluation.metrics import PAPER_TABLE2
from evaluation.report import draw_report
from evaluation.statistics import CONFIDENCE, mean_interval, paired_difference
from prototxt.pose_net import VARIANTS
from solver.run_folder import RunError
from solver.training import train

# row labels of the paper's Table 2, by variant
TABLE2_ROWS = {"baseline": "Baseline CNN", "multi-reg": "Multi-reg", "2d-cls": "2D-cls",
               "full": "Multi-reg+2D-cls"}
# Fig. 4 and Fig. 5 compare the network without and with the 2D classification path
FIGURE_PAIR = {"without 2D-cls (multi-reg)": "multi-reg", "with 2D-cls (full)": "full"}
# the differences paired by seed, first minus second: the paper's two claims that the 2D
# classification path helps (with and without multi-reg), then both additions together
PAIRED_DIFFERENCES = (("full", "multi-reg"), ("2d-cls", "baseline"), ("full", "baseline"))


def table2(results):
    """{variant: {action: mm, ..., "Average": action-wise mean}} from evaluate's results."""
    table = {}
    for variant, result in results.items():
        row = dict(result["mpjpe"]["per_action"])
        row["Average"] = result["mpjpe"]["action_wise"]
        table[variant] = row
    return table


def format_table2(table, baseline_row):
    """Text table: one line "TABLE2 <variant> <mm per action> <average>" per variant, then the
    mean pose and the paper's rows for the same actions (its results on real Human3.6M)."""
    columns = list(next(iter(table.values())))
    width = max(10, *(len(c) + 1 for c in columns))
    lines = [f"{'#':<6} {'variant':<26}" + "".join(f"{c:>{width}}" for c in columns)]

    def row(label, values):
        cells = "".join(f"{values[c]:>{width}.1f}" if c in values else f"{'-':>{width}}"
                        for c in columns)
        return f"TABLE2 {label:<26}{cells}"

    for variant, values in table.items():
        lines.append(row(f"{variant} ({TABLE2_ROWS[variant]})", values))
    lines.append(row("mean pose (baseline floor)", baseline_row))
    for variant, values in PAPER_TABLE2.items():
        paper = dict(values)
        shared = [c for c in columns if c in paper and c != "Average"]
        if shared:
            paper["Average"] = sum(paper[c] for c in shared) / len(shared)
        lines.append(row(f"paper {TABLE2_ROWS.get(variant, variant)}", paper))
    return "\n".join(lines)


def seed_configs(cfg, seeds):
    """The config of each seed index s in range(seeds): cfg with random_seed and data_seed
    both advanced by s, the same for every variant (ConfigError before any training when a
    seed leaves Caffe's 32 bits)."""
    if seeds < 1:
        raise ValueError(f"an ablation needs at least 1 seed, got {seeds}")
    return [cfg.replace(random_seed=cfg.random_seed + s, data_seed=cfg.data_seed + s)
            for s in range(seeds)]


def seed_folder(out, index):
    """The folder of seed index `index`'s runs: <out>/seed<index>."""
    return Path(out) / f"seed{index}"


def seed_rule(cfg):
    """The rule that gives each seed index its seeds, in words, for cfg's base seeds."""
    return (f"seed index s: random_seed = {cfg.random_seed} + s, data_seed = {cfg.data_seed} "
            "+ s, the same for every variant")


def check_layout(out):
    """RunError for an ablation folder of the layout before seeds (run folders <out>/<variant>/),
    naming the move that keeps those runs: they trained with seed index 0's seeds."""
    out = Path(out)
    old = [variant for variant in VARIANTS if is_built(out / variant, "run")]
    if old:
        seed0 = seed_folder(out, 0)
        moves = " && ".join(f"mv {shlex.quote(str(out / v))} {shlex.quote(str(seed0 / v))}"
                            for v in old)
        raise RunError(f"{out} holds runs of the one-seed layout ({', '.join(old)} directly in "
                       f"it), which trained with seed 0's seeds: keep them by moving them into "
                       f"{seed0}/ (mkdir -p {shlex.quote(str(seed0))} && {moves}; the next run "
                       "resumes them there), or choose another --out")


def run_ablation(out, cfg, lmdb_dir, variants, seeds=1, batch_size=16, quiet=False):
    """Train and evaluate every variant once per seed index, seed by seed (an interruption
    leaves whole seeds behind it); returns [{variant: evaluate_run's results}] by seed index."""
    check_layout(out)
    configs = seed_configs(cfg, seeds)
    per_seed = []
    for index, seed_cfg in enumerate(configs):
        results = {}
        for variant in variants:
            run = seed_folder(out, index) / variant
            print(f"ablation: seed {index + 1} of {seeds} (random_seed {seed_cfg.random_seed}, "
                  f"data_seed {seed_cfg.data_seed}): {variant}: training in {run}", flush=True)
            folder = train(run, seed_cfg, variant, lmdb_dir, quiet=quiet)
            print(f"ablation: seed {index + 1} of {seeds}: {variant}: evaluating", flush=True)
            results[variant], poses = evaluate_run(folder, batch_size=batch_size, quiet=quiet)
            write_results(results[variant], folder.path, poses)
        per_seed.append(results)
    return per_seed


def mean_table(tables):
    """The mean over seeds of table2's tables (one per seed), cell by cell."""
    return {variant: {column: float(np.mean([table[variant][column] for table in tables]))
                      for column in row}
            for variant, row in tables[0].items()}


def seed_statistics(per_seed, confidence=CONFIDENCE):
    """{"action_wise": {variant: mean_interval over the seeds}, "differences": {"a - b":
    paired_difference with "first" and "second"}} of run_ablation's results, the differences
    of PAIRED_DIFFERENCES whose two variants were trained."""
    variants = list(per_seed[0])
    values = {v: [results[v]["mpjpe"]["action_wise"] for results in per_seed] for v in variants}
    differences = {f"{first} - {second}": {**paired_difference(values[first], values[second],
                                                               confidence),
                                           "first": first, "second": second}
                   for first, second in PAIRED_DIFFERENCES if {first, second} <= set(values)}
    return {"confidence": confidence,
            "action_wise": {v: mean_interval(values[v], confidence) for v in variants},
            "differences": differences}


def _interval_text(summary):
    """'mean  -2.0 mm  95% CI [ -5.1,   1.1]', or the mean and 'no interval (one seed)'."""
    mean = f"mean {summary['mean']:7.1f} mm"
    if summary["low"] is None:
        return f"{mean}  no interval (one seed)"
    level = f"{100 * summary['confidence']:g}%"
    return f"{mean}  {level} CI [{summary['low']:7.1f}, {summary['high']:7.1f}]"


def _verdict(summary):
    """Whether a paired difference's interval leaves out zero, and which variant it favours."""
    if summary["excludes_zero"] is None:
        return ""
    level = f"{100 * summary['confidence']:g}%"
    if not summary["excludes_zero"]:
        return f"  includes 0: no difference shown at {level}"
    better = summary["first"] if summary["mean"] < 0 else summary["second"]
    return f"  excludes 0: {better} lower (better) at {level}"


def format_seed_statistics(statistics):
    """Text: one line "SEEDS <variant> ..." per variant (mean action-wise MPJPE over the seeds,
    its interval, sd and per-seed values), then "PAIRED <a> - <b> ..." per paired difference;
    statistics: seed_statistics' with seed_record's "seeds"."""
    seeds = statistics["seeds"]
    count = len(seeds)
    if count == 1:
        heading = (f"# action-wise MPJPE (mm) of one seed (random_seed {seeds[0]['random_seed']}, "
                   f"data_seed {seeds[0]['data_seed']}): no interval with one seed (--seeds 2 "
                   "or more gives them)")
    else:
        level = f"{100 * statistics['confidence']:g}%"
        heading = (f"# action-wise MPJPE (mm) over {count} seeds: mean and {level} interval "
                   f"(Student's t, {count - 1} degrees of freedom); seed s: random_seed "
                   f"{seeds[0]['random_seed']} + s, data_seed {seeds[0]['data_seed']} + s")
    lines = [heading]
    for variant, summary in statistics["action_wise"].items():
        spread = f"  sd {summary['sd']:5.1f}" if summary["sd"] is not None else ""
        each = " ".join(f"{value:.1f}" for value in summary["values"])
        lines.append(f"SEEDS {variant + ' (' + TABLE2_ROWS[variant] + ')':<26} "
                     f"{_interval_text(summary)}{spread}  by seed {each}")
    if statistics["differences"]:
        lines.append("# paired by seed: differences of action-wise MPJPE (mm; below 0: the "
                     "first variant's error is lower)")
    for name, summary in statistics["differences"].items():
        lines.append(f"PAIRED {name:<26}{_interval_text(summary)}{_verdict(summary)}")
    return "\n".join(lines)


def seed_record(configs, out):
    """table2.json's list of the seeds: index, folder, random_seed and data_seed of each."""
    return [{"index": s, "folder": str(seed_folder(out, s)), "random_seed": c.random_seed,
             "data_seed": c.data_seed} for s, c in enumerate(configs)]


def write_table2(table, baseline_row, out, protocol=None, statistics=None, per_seed_tables=None):
    """table2.json and table2.csv in out: the per-action table (the mean over the seeds) with
    the mean pose's row; given seed_statistics (with "seeds" and "rule" added) also the
    per-seed tables, the intervals and the paired differences. table2.csv holds the
    per-action table, then after an empty row a second table of the intervals: one row per
    variant and per paired difference (mean, sd, interval, excludes_zero, each seed's value)."""
    out.mkdir(parents=True, exist_ok=True)
    document = {"protocol": protocol, "mpjpe_mm": table, "mean_pose_mpjpe_mm": baseline_row,
                "paper_table2_real_h36m": PAPER_TABLE2,
                "note": "mpjpe_mm: the mean over the seeds; paper values are the paper's "
                        "results on real Human3.6M, not this run's"}
    if statistics is not None:
        document.update({"seeds": statistics["seeds"], "seed_rule": statistics["rule"],
                         "confidence": statistics["confidence"],
                         "per_seed_mpjpe_mm": per_seed_tables,
                         "action_wise_mpjpe_mm": statistics["action_wise"],
                         "paired_differences_mm": statistics["differences"]})
    (out / "table2.json").write_text(json.dumps(document, indent=2) + "\n")
    columns = list(next(iter(table.values())))
    with open(out / "table2.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", *columns])
        for variant, values in table.items():
            writer.writerow([variant, *(round(values[c], 2) for c in columns)])
        writer.writerow(["mean-pose", *(round(baseline_row[c], 2) for c in columns)])
        if statistics is not None:
            writer.writerow([])
            _write_interval_rows(writer, statistics)


def _write_interval_rows(writer, statistics):
    """table2.csv's second table: action-wise MPJPE over the seeds and paired differences."""
    level = f"ci{round(100 * statistics['confidence'])}"
    seeds = len(statistics["seeds"])
    writer.writerow(["action_wise_mm", "seeds", "mean", "sd", f"{level}_low", f"{level}_high",
                     "excludes_zero", *(f"seed{s}" for s in range(seeds))])

    def cell(value):
        return "" if value is None else round(value, 2)

    rows = [*statistics["action_wise"].items(), *statistics["differences"].items()]
    for name, summary in rows:
        excluded = summary.get("excludes_zero")
        writer.writerow([name, summary["count"], cell(summary["mean"]), cell(summary["sd"]),
                         cell(summary["low"]), cell(summary["high"]),
                         "" if excluded is None else str(excluded).lower(),
                         *(cell(v) for v in summary["values"])])


def seed_intervals_figure(statistics):
    """Two panels: each variant's mean action-wise MPJPE over the seeds with its interval
    (each seed's value a dot), and the paired differences with theirs beside zero."""
    figure = Figure(figsize=(10, 4.5))
    means_ax, differences_ax = figure.subplots(1, 2, width_ratios=[3, 2])
    count = len(statistics["seeds"])
    level = f"{100 * statistics['confidence']:g}%"
    panels = ((means_ax, statistics["action_wise"], "action-wise MPJPE (mm)"),
              (differences_ax, statistics["differences"], "paired difference (mm)"))
    for ax, summaries, label in panels:
        for position, summary in enumerate(summaries.values()):
            error = None if summary["half_width"] is None else [[summary["half_width"]]] * 2
            ax.errorbar([position], [summary["mean"]], yerr=error, fmt="o", capsize=6,
                        color=f"C{position}", markersize=7)
            ax.plot([position] * count, summary["values"], ".", color="grey", alpha=0.7)
        ax.set_xticks(range(len(summaries)))
        ax.set_xticklabels(list(summaries), rotation=20, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.6, max(len(summaries), 1) - 0.4)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
    if statistics["differences"]:
        differences_ax.axhline(0, color="black", linewidth=0.8)
    differences_ax.set_title("paired by seed (below 0: first is lower)", fontsize=10)
    interval = (f"mean and {level} interval over {count} seeds (Student's t)" if count > 1
                else "one seed: no interval")
    means_ax.set_title(f"Table 2: {interval}", fontsize=10)
    figure.tight_layout()
    return figure


def ablation(out, cfg, lmdb_dir, variants, quiet=False, seeds=1):
    """Table 2 for the variants over `seeds` seed indices; returns the lines to print (the
    mean table, the intervals and paired differences, then the files)."""
    configs = seed_configs(cfg, seeds)   # refuses a seed out of range before any training
    per_seed = run_ablation(out, cfg, lmdb_dir, variants, seeds, quiet=quiet)
    tables = [table2(results) for results in per_seed]
    table = mean_table(tables)
    statistics = seed_statistics(per_seed)
    statistics.update(seeds=seed_record(configs, out), rule=seed_rule(cfg))
    first = per_seed[0][variants[0]]
    baseline_row = dict(first["mean_pose_mpjpe"]["per_action"],
                        Average=first["mean_pose_mpjpe"]["action_wise"])
    protocol = first["protocol"]
    write_table2(table, baseline_row, out, protocol, statistics, tables)
    paths = {}
    if all(v in variants for v in FIGURE_PAIR.values()):
        paths = draw_report({label: seed_folder(out, 0) / v for label, v in FIGURE_PAIR.items()},
                            out / "figures")
    series = [(f"{v} ({TABLE2_ROWS[v]})", table[v]) for v in table]
    series.append(("mean pose (baseline)", baseline_row))
    over = f"mean over {seeds} seeds" if seeds > 1 else "one seed"
    paths["table2"] = save_figure(
        action_bars_figure(series, title=f"Table 2: MPJPE per variant ({over})"),
        out / "figures" / "table2.png")
    paths["table2_seeds"] = save_figure(seed_intervals_figure(statistics),
                                        out / "figures" / "table2_seeds.png")
    return [f"# protocol: {protocol['description']}; {first['split']} split",
            f"# MPJPE (mm) per action: {over}",
            format_table2(table, baseline_row),
            "(paper rows: the paper's results on real Human3.6M, not this run's)",
            format_seed_statistics(statistics),
            f"ablation: tables in {out / 'table2.json'} and table2.csv"
            + ("; Fig. 4 and Fig. 5 of seed 0's runs" if "fig4" in paths else ""),
            *(f"ablation: {name} {path}" for name, path in paths.items())]


def demo(run, cfg, variant, lmdb_dir, gpus=(), quiet=False, real_lmdb=None):
    """Train with cfg into run (resuming), evaluate on the test split and, given real_lmdb (a
    real-motion test set: `make real-motion`), on that one too; draw the figures; returns the
    lines to print (the tables, the ratios to the mean pose, the files)."""
    start = time.monotonic()
    folder = train(run, cfg, variant, lmdb_dir, gpus, quiet=quiet)
    trained = time.monotonic()
    print(f"demo: trained in {(trained - start) / 60:.1f} min; evaluating", flush=True)
    results, poses = evaluate_run(folder, quiet=quiet)
    write_results(results, folder.path, poses)
    lines = [results_text(results), "demo: synthetic test set: " + ratio_line(results),
             f"demo: results {folder.path / 'results.json'} and results.csv"]
    if real_lmdb is not None:
        real, real_poses = evaluate_run(folder, quiet=quiet, test_lmdb=real_lmdb)
        out = results_folder(folder, test_lmdb=real_lmdb)
        write_results(real, out, real_poses)
        lines += [results_text(real), "demo: real motion (CMU motion capture rendered onto the "
                  "held-out subjects): " + ratio_line(real),
                  f"demo: results {out / 'results.json'} and results.csv"]
    evaluated = time.monotonic()
    print(f"demo: evaluated in {(evaluated - trained) / 60:.1f} min; drawing", flush=True)
    figures = draw_report({f"{variant} (demo)": folder.path}, folder.path / "figures")
    return [*lines, *(f"demo: {name} {path}" for name, path in figures.items()),
            f"demo: {(time.monotonic() - start) / 60:.1f} min after the LMDBs were built"]


def ratio_line(results):
    """'MPJPE 98.1 mm = 54% of the mean-pose baseline (181.2 mm); P-MPJPE 70.3 mm; 2880 test
    frames' of an evaluation (the baseline: the run's training mean pose)."""
    ours, floor = results["mpjpe"]["frame_weighted"], results["mean_pose_mpjpe"]["frame_weighted"]
    return (f"MPJPE {ours:.1f} mm = {100 * ours / floor:.0f}% of the mean-pose baseline "
            f"({floor:.1f} mm); P-MPJPE {results['p_mpjpe']['frame_weighted']:.1f} mm; "
            f"{results['frames']} test frames")
