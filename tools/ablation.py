#!/usr/bin/env python3
"""Table 2: train the four variants identically, evaluate each and print the comparison.

    .venv/bin/python tools/ablation.py --lmdb data/lmdb/synth-h36m-Discussion-...-Walking \\
        --schedule demo --out runs/ablation-demo

Every variant (baseline, multi-reg, 2d-cls, full; section 5) is trained by tools/train.py
with the same configuration and schedule into <out>/<variant>/ (an interrupted ablation
resumes where it stopped), then evaluated by tools/evaluate.py on the test split. Writes
<out>/table2.json and table2.csv (MPJPE in mm per action and action-wise average, the
mean-pose baseline and the paper's Table 2, which are its results on real Human3.6M) and
draws <out>/figures/: Fig. 4 and Fig. 5 for multi-reg (without 2D-cls) against full (with
2D-cls), the comparison of section 5, and the MPJPE bars of all variants.
"""
import argparse
import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")   # before pycaffe starts glog: no net dumps

from config import SCHEDULES, schedule_config  # noqa: E402
from prototxt.pose_net import VARIANTS  # noqa: E402
from solver.caffe_cli import CaffeError  # noqa: E402
from tools.evaluate import EvaluationError, evaluate, latest_weights, write_results  # noqa: E402
from evaluation.figures import action_bars_figure, save_figure  # noqa: E402
from evaluation.metrics import PAPER_TABLE2  # noqa: E402
from tools.report import ReportError, draw_report  # noqa: E402
from tools.train import train  # noqa: E402

# row labels of the paper's Table 2, by variant
TABLE2_ROWS = {"baseline": "Baseline CNN", "multi-reg": "Multi-reg", "2d-cls": "2D-cls",
               "full": "Multi-reg+2D-cls"}
# Fig. 4 and Fig. 5 compare the network without and with the 2D classification path
FIGURE_PAIR = {"without 2D-cls (multi-reg)": "multi-reg", "with 2D-cls (full)": "full"}


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


def write_table2(table, baseline_row, out):
    out.mkdir(parents=True, exist_ok=True)
    document = {"mpjpe_mm": table, "mean_pose_mpjpe_mm": baseline_row,
                "paper_table2_real_h36m": PAPER_TABLE2,
                "note": "paper values are the paper's results on real Human3.6M, not this run's"}
    (out / "table2.json").write_text(json.dumps(document, indent=2) + "\n")
    columns = list(next(iter(table.values())))
    with open(out / "table2.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", *columns])
        for variant, values in table.items():
            writer.writerow([variant, *(round(values[c], 2) for c in columns)])
        writer.writerow(["mean-pose", *(round(baseline_row[c], 2) for c in columns)])


def run_ablation(out, cfg, lmdb_dir, variants, batch_size=16):
    """Train and evaluate every variant; returns {variant: evaluate's results}."""
    results = {}
    for variant in variants:
        run = out / variant
        print(f"ablation: {variant}: training in {run}", flush=True)
        train(run, cfg, variant, lmdb_dir)
        print(f"ablation: {variant}: evaluating", flush=True)
        results[variant], poses = evaluate(run, latest_weights(run), lmdb_dir,
                                           batch_size=batch_size)
        write_results(results[variant], run, poses)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmdb", type=Path, required=True,
                        help="folder of `make lmdb` (for Table 2: its six actions)")
    parser.add_argument("--schedule", default="demo", choices=list(SCHEDULES),
                        help="paper (section 4) or demo (short, two CPU cores); "
                             "default: %(default)s")
    parser.add_argument("--out", type=Path,
                        help="ablation folder (default: runs/ablation-<schedule>)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="variants to train (default: all four)")
    parser.add_argument("--config", type=Path, help="JSON file of config overrides")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides after the schedule's, the same for every variant")
    args = parser.parse_args(argv)
    out = args.out or Path("runs") / f"ablation-{args.schedule}"
    try:
        cfg = schedule_config(args.schedule, args.config, args.set)
    except ValueError as err:
        parser.error(str(err))
    variants = list(dict.fromkeys(args.variants))
    try:
        results = run_ablation(out, cfg, args.lmdb, variants)
        table = table2(results)
        first = next(iter(results.values()))
        baseline_row = dict(first["mean_pose_mpjpe"]["per_action"],
                            Average=first["mean_pose_mpjpe"]["action_wise"])
        write_table2(table, baseline_row, out)
        paths = {}
        if all(v in results for v in FIGURE_PAIR.values()):
            paths = draw_report({label: out / v for label, v in FIGURE_PAIR.items()},
                                out / "figures")
        series = [(f"{v} ({TABLE2_ROWS[v]})", table[v]) for v in table]
        series.append(("mean pose (baseline)", baseline_row))
        paths["table2"] = save_figure(action_bars_figure(series, title="Table 2: MPJPE per variant"),
                                out / "figures" / "table2.png")
    except (CaffeError, EvaluationError, ReportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_table2(table, baseline_row))
    print("(paper rows: the paper's results on real Human3.6M, not this run's)")
    print(f"ablation: tables in {out / 'table2.json'} and table2.csv")
    for name, path in paths.items():
        print(f"ablation: {name} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
