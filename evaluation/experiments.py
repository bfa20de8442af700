"""Experiments that train, evaluate and draw in one go: the demo and Table 2's ablation.

    demo(run, cfg, variant, dataset_dir, gpus)   train, evaluate, draw; returns the summary lines
    ablation(out, cfg, dataset_dir, variants)     Table 2: every variant trained alike, compared

Ablation: every variant (baseline, multi-reg, 2d-cls, full; section 5) is trained with the same
configuration and schedule into <out>/<variant>/ (an interrupted ablation resumes where it
stopped), then evaluated on the test split. Writes <out>/table2.json and table2.csv (MPJPE in
mm per action and action-wise average, the mean-pose baseline and the paper's Table 2, which
are its results on real Human3.6M) and draws <out>/figures/: Fig. 4 and Fig. 5 for multi-reg
(without 2D-cls) against full (with 2D-cls), the comparison of section 5, and the MPJPE bars
of all variants.
"""
import csv
import json
import time

from evaluation.evaluate import evaluate_run, results_text, write_results
from evaluation.figures import action_bars_figure, save_figure
from evaluation.metrics import PAPER_TABLE2
from evaluation.report import draw_report
from solver.training import train

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


def write_table2(table, baseline_row, out, protocol=None):
    out.mkdir(parents=True, exist_ok=True)
    document = {"protocol": protocol, "mpjpe_mm": table, "mean_pose_mpjpe_mm": baseline_row,
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


def run_ablation(out, cfg, lmdb_dir, variants, batch_size=16, quiet=False):
    """Train and evaluate every variant; returns {variant: evaluate_run's results}."""
    results = {}
    for variant in variants:
        run = out / variant
        print(f"ablation: {variant}: training in {run}", flush=True)
        folder = train(run, cfg, variant, lmdb_dir, quiet=quiet)
        print(f"ablation: {variant}: evaluating", flush=True)
        results[variant], poses = evaluate_run(folder, batch_size=batch_size, quiet=quiet)
        write_results(results[variant], folder.path, poses)
    return results


def ablation(out, cfg, lmdb_dir, variants, quiet=False):
    """Table 2 for the variants; returns the lines to print (table, then the files)."""
    results = run_ablation(out, cfg, lmdb_dir, variants, quiet=quiet)
    table = table2(results)
    first = next(iter(results.values()))
    baseline_row = dict(first["mean_pose_mpjpe"]["per_action"],
                        Average=first["mean_pose_mpjpe"]["action_wise"])
    protocol = first["protocol"]
    write_table2(table, baseline_row, out, protocol)
    paths = {}
    if all(v in results for v in FIGURE_PAIR.values()):
        paths = draw_report({label: out / v for label, v in FIGURE_PAIR.items()},
                            out / "figures")
    series = [(f"{v} ({TABLE2_ROWS[v]})", table[v]) for v in table]
    series.append(("mean pose (baseline)", baseline_row))
    paths["table2"] = save_figure(action_bars_figure(series, title="Table 2: MPJPE per variant"),
                                  out / "figures" / "table2.png")
    return [f"# protocol: {protocol['description']}; {first['split']} split",
            format_table2(table, baseline_row),
            "(paper rows: the paper's results on real Human3.6M, not this run's)",
            f"ablation: tables in {out / 'table2.json'} and table2.csv",
            *(f"ablation: {name} {path}" for name, path in paths.items())]


def demo(run, cfg, variant, lmdb_dir, gpus=(), quiet=False):
    """Train with cfg into run (resuming), evaluate on the test split, draw the figures;
    returns the lines to print (the table, the ratio to the mean pose, the files)."""
    start = time.monotonic()
    folder = train(run, cfg, variant, lmdb_dir, gpus, quiet=quiet)
    trained = time.monotonic()
    print(f"demo: trained in {(trained - start) / 60:.1f} min; evaluating", flush=True)
    results, poses = evaluate_run(folder, quiet=quiet)
    write_results(results, folder.path, poses)
    evaluated = time.monotonic()
    print(f"demo: evaluated in {(evaluated - trained) / 60:.1f} min; drawing", flush=True)
    figures = draw_report({f"{variant} (demo)": folder.path}, folder.path / "figures")
    ours, floor = results["mpjpe"]["frame_weighted"], results["mean_pose_mpjpe"]["frame_weighted"]
    return [results_text(results),
            f"demo: MPJPE {ours:.1f} mm = {100 * ours / floor:.0f}% of the mean-pose baseline "
            f"({floor:.1f} mm); P-MPJPE {results['p_mpjpe']['frame_weighted']:.1f} mm; "
            f"{results['frames']} test frames",
            f"demo: results {folder.path / 'results.json'} and results.csv",
            *(f"demo: {name} {path}" for name, path in figures.items()),
            f"demo: {(time.monotonic() - start) / 60:.1f} min after the LMDBs were built"]
