"""Experiments that train, evaluate and draw: the demo, and the tables as lists of runs.

    demo(run, cfg, variant, dataset_dir, gpus)             train, evaluate, draw; summary lines
    ablation_experiment(out, cfg, dataset_dir, variants, seeds=N)   Table 2's run list
    table1_experiment(...) (evaluation/table1.py)          Table 1's run list
    carry_out(experiment, gpus=..., slurm=...)             train the list, then its table
    add_experiment_arguments(parser)                       a table command's common flags
    experiment_command(parser, args, make_experiment)      a tool's whole run: exit status
    train_and_evaluate(run, gpus)                          one run's whole job (a queue task)
    summarize(out)                                         the table of whatever has finished

A table is a list of runs (evaluation/queue.py): carry_out writes it to <out>/runs.json, then
trains and evaluates its runs here on the CPU one after another, over a machine's GPUs one
run per GPU at a time (the queue), or as a Slurm job array (evaluation/slurm.py); the table is
built from the runs that have finished, and the missing ones are named (MISSING lines). The
run folders make every step safe to stop and run again: a run resumes from its newest
snapshot, a finished run is left alone, and its results are not computed twice.

Ablation: every variant (baseline, multi-reg, 2d-cls, full; section 5) is trained with the same
configuration and schedule once per seed, into <out>/seed<s>/<variant>/, seed by seed in the
list (an interruption leaves whole seeds behind it), then evaluated on the test split. Seed
index s (0 to N-1) trains every variant with random_seed = R + s and data_seed = D + s, R and D
being the configuration's (1 and 0 unless --set changes them): the variants of one seed see
the same batches in the same order (the data layer's batches depend only on data_seed), and
the layers they share ahead of their differences (the convolutions, the 2D branch, fc1_3D)
start from the same random weights (Caffe draws them in net order from random_seed). One seed
trains exactly as the ablation did before seeds, one folder deeper (seed0/); an ablation
folder of that earlier layout (<out>/<variant>/) is refused, naming the move that keeps its
runs as seed 0's.

Writes <out>/table2.json and table2.csv: MPJPE in mm per action and action-wise average, the
mean over the seeds, beside the mean-pose baseline and the paper's Table 2 (its results on real
Human3.6M); then each variant's action-wise MPJPE over the seeds (mean, 95% Student's t
interval) and the differences paired by seed (full - multi-reg and 2d-cls - baseline, the
paper's claims that the 2D classification path helps, and full - baseline) with their
intervals and whether these leave out zero (evaluation/statistics.py). A table of some runs
only takes the mean over the seeds each variant has finished, and pairs only the seeds both
variants have. Draws <out>/figures/: Fig. 4 and Fig. 5 for seed 0's multi-reg (without 2D-cls)
against full (with 2D-cls), the comparison of section 5, the mean MPJPE bars of all variants
(table2.png) and the means and differences with their intervals (table2_seeds.png).
"""
import csv
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from built_folders import is_built
from config import ConfigError, schedule_config
from evaluation.evaluate import (EvaluationError, evaluate_run, results_folder, results_text,
                                 write_results)
from evaluation.figures import action_bars_figure, save_figure
from evaluation.metrics import PAPER_TABLE2
from evaluation.queue import (Experiment, QueueError, Run, add_queue_arguments, collect,
                              evaluated_results, queue_gpus, read_experiment, run_in_process,
                              run_on_gpus, run_state, write_experiment)
from evaluation.report import ReportError, draw_report
from evaluation.slurm import SlurmError, add_slurm_arguments, slurm_options, submit
from evaluation.statistics import CONFIDENCE, mean_interval, paired_difference
from evaluation.table1 import table1_summary
from prototxt.pose_net import VARIANTS
from solver.caffe_cli import CaffeError, quiet_caffe_log
from solver.devices import DeviceError, use_device
from solver.run_folder import RunError
from solver.training import command_status, train

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


def ablation_experiment(out, cfg, lmdb_dir, variants, seeds=1, schedule=None):
    """Table 2's run list: every variant once per seed index (seed_configs), seed by seed,
    in <out>/seed<s>/<variant>/; RunError for a folder of the layout before seeds, and
    ConfigError for a seed out of range, before anything is written."""
    check_layout(out)
    configs = seed_configs(cfg, seeds)
    runs = tuple(
        Run(name=f"seed{index}/{variant}",
            title=f"seed {index + 1} of {seeds} (random_seed {seed_cfg.random_seed}, data_seed "
                  f"{seed_cfg.data_seed}): {variant}",
            folder=seed_folder(out, index) / variant, variant=variant, lmdb=Path(lmdb_dir),
            config=seed_cfg.to_dict(), labels={"seed": index, "variant": variant})
        for index, seed_cfg in enumerate(configs) for variant in variants)
    settings = {"variants": list(variants), "schedule": schedule,
                "seeds": seed_record(configs, out), "seed_rule": seed_rule(cfg)}
    return Experiment(Path(out), "table2", runs, settings)


def mean_table(tables):
    """The mean over seeds of table2's tables (one per seed), cell by cell, each variant's
    over the seeds whose table holds it."""
    variants = dict.fromkeys(variant for table in tables for variant in table)
    means = {}
    for variant in variants:
        rows = [table[variant] for table in tables if variant in table]
        means[variant] = {column: float(np.mean([row[column] for row in rows]))
                          for column in rows[0]}
    return means


def seed_statistics(per_seed, confidence=CONFIDENCE):
    """{"action_wise": {variant: mean_interval over the seeds}, "differences": {"a - b":
    paired_difference with "first" and "second"}} of the results by seed index ([{variant:
    evaluate_run's results}]), the differences of PAIRED_DIFFERENCES whose two variants were
    trained. Each summary names the seed indices of its values ("seed_indices"): a variant's
    finished seeds, and for a difference the seeds both variants have finished."""
    variants = list(dict.fromkeys(v for results in per_seed for v in results))

    def by_seed(*names):
        seeds = [s for s, results in enumerate(per_seed) if all(n in results for n in names)]
        return seeds, [[per_seed[s][n]["mpjpe"]["action_wise"] for s in seeds] for n in names]

    action_wise, differences = {}, {}
    for variant in variants:
        seeds, (values,) = by_seed(variant)
        action_wise[variant] = {**mean_interval(values, confidence), "seed_indices": seeds}
    for first, second in PAIRED_DIFFERENCES:
        seeds, (firsts, seconds) = by_seed(first, second)
        if seeds:
            differences[f"{first} - {second}"] = {
                **paired_difference(firsts, seconds, confidence), "first": first,
                "second": second, "seed_indices": seeds}
    return {"confidence": confidence, "action_wise": action_wise, "differences": differences}


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
                         *_by_seed_column(summary, seeds, cell)])


def _by_seed_column(summary, seeds, cell):
    """A summary's values in the columns of their seeds, "" where a seed has none."""
    values = dict(zip(summary.get("seed_indices", range(seeds)), summary["values"], strict=True))
    return [cell(values.get(seed)) for seed in range(seeds)]


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
            ax.plot([position] * len(summary["values"]), summary["values"], ".",
                    color="grey", alpha=0.7)
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


def table2_summary(experiment, results):
    """Table 2 of the finished runs' results ({run name: evaluate_run's results}): its files
    written, the lines to print (the mean table, the intervals and paired differences, then
    the files), and {} (every finished run has its place in the table)."""
    out, settings = Path(experiment.out), experiment.settings
    seeds = len(settings["seeds"])
    per_seed = [{} for _ in range(seeds)]
    for run in experiment.runs:
        if run.name in results:
            per_seed[run.labels["seed"]][run.labels["variant"]] = results[run.name]
    tables = [table2(found) for found in per_seed]
    table = mean_table(tables)
    statistics = seed_statistics(per_seed)
    statistics.update(seeds=settings["seeds"], rule=settings["seed_rule"])
    first = next(found for by_variant in per_seed for found in by_variant.values())
    baseline_row = dict(first["mean_pose_mpjpe"]["per_action"],
                        Average=first["mean_pose_mpjpe"]["action_wise"])
    protocol = first["protocol"]
    write_table2(table, baseline_row, out, protocol, statistics, tables)
    paths = {}
    if all(v in per_seed[0] for v in FIGURE_PAIR.values()):
        paths = draw_report({label: seed_folder(out, 0) / v for label, v in FIGURE_PAIR.items()},
                            out / "figures")
    series = [(f"{v} ({TABLE2_ROWS[v]})", table[v]) for v in table]
    series.append(("mean pose (baseline)", baseline_row))
    over = f"mean over {seeds} seeds" if seeds > 1 else "one seed"
    if len(results) < len(experiment.runs):
        over += ", of the runs that have finished"
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
            *(f"ablation: {name} {path}" for name, path in paths.items())], {}


# the summary of each kind of run list (Experiment.table)
SUMMARIES = {"table1": table1_summary, "table2": table2_summary}


def train_and_evaluate(run, gpus=(), quiet=False, batch_size=16):
    """One run's whole job: train it to its end (resuming; a finished run is left alone),
    then evaluate it on its test split on the first of gpus (() = the CPU) unless its
    results.json is of its final weights already; returns evaluate_run's results."""
    folder = train(run.folder, run.cfg(), run.variant, run.lmdb, gpus, quiet=quiet)
    results = evaluated_results(folder)
    if results is None:
        if gpus:
            use_device(gpus[0])
        print(f"evaluate: {run.name} on its test split", flush=True)
        # the bar, rewritten in place in a terminal, would be a line per update in a file
        # (the queue's log of the run, a Slurm task's output)
        bar = not quiet and sys.stderr.isatty()
        results, poses = evaluate_run(folder, batch_size=batch_size, quiet=not bar)
        write_results(results, folder.path, poses)
    return results


def summary(experiment, results, missing):
    """The table of the finished runs ({run name: results}) and a MISSING line per run that
    is not in it ({run name: why}, with any that the table finds unusable); returns (the
    lines to print, whether every run is in the table)."""
    if experiment.table not in SUMMARIES:
        raise QueueError(f"{experiment.list_path}: no table is built of a list of "
                         f"{experiment.table!r} (known: {', '.join(SUMMARIES)})")
    missing, lines = dict(missing), []
    if results:
        table_lines, unusable = SUMMARIES[experiment.table](experiment, results)
        lines += table_lines
        missing.update(unusable)
    lines += [f"MISSING {run.name}: {missing[run.name]}" for run in experiment.runs
              if run.name in missing]
    if missing:
        counted = len(experiment.runs) - len(missing)
        lines.append(f"summary: {counted} of {len(experiment.runs)} runs in the table, "
                     f"{len(missing)} missing (MISSING lines); the same command again trains "
                     "them, and `python tools/experiment.py summary "
                     f"{experiment.out}` builds the table anew")
    return lines, not missing


def report(lines, complete):
    """Print a summary's lines; 0 when every run is in the table, else 1 after a one-line
    error (the MISSING lines above it name the runs)."""
    print("\n".join(lines), flush=True)
    if complete:
        return 0
    print("error: not every run has finished (MISSING lines above): the table holds those "
          "that have, if any; the same command again trains the others", file=sys.stderr)
    return 1


def summarize(out):
    """summary() of the run list in `out` from its run folders as they are now."""
    experiment = read_experiment(out)
    return summary(experiment, *collect(experiment))


def not_finished(experiment):
    """The indices of the runs that have not finished and been evaluated."""
    return [index for index, run in enumerate(experiment.runs) if not run_state(run).done]


def carry_out(experiment, gpus=(), fake_gpus=False, slurm=None, quiet=False):
    """Write the run list and carry it out: with slurm (SlurmOptions) submit the runs that
    have not finished as a job array, and the table as a job after it; with gpus the queue,
    one run per GPU at a time (fake_gpus: each on the CPU all the same); else every run here,
    on the CPU, one after another. Then the table of what has finished. Returns (the lines
    to print, whether every run is in the table; True for a submission)."""
    write_experiment(experiment)
    if slurm is not None or gpus:
        indices = not_finished(experiment)
        done = len(experiment.runs) - len(indices)
        if done:
            print(f"{experiment.table}: {done} of {len(experiment.runs)} runs have finished "
                  "already", flush=True)
        if slurm is not None and indices:
            return submit(experiment, indices, slurm), True
        failures = (run_on_gpus(experiment, indices, gpus, fake_gpus, quiet)
                    if indices and gpus else {})
        results, missing = collect(experiment)
        missing.update({name: f"failed: {why}" for name, why in failures.items()})
        return summary(experiment, results, missing)
    results, failures = run_in_process(
        experiment.runs, lambda run: train_and_evaluate(run, quiet=quiet), experiment.table)
    return summary(experiment, results,
                   {name: f"failed: {why}" for name, why in failures.items()})


# what a table's command reports in one line before it exits with status 1
COMMAND_ERRORS = (CaffeError, DeviceError, EvaluationError, QueueError, ReportError, RunError,
                  SlurmError, ValueError)


def add_experiment_arguments(parser):
    """A table command's ways to carry out its run list (--gpus, --fake-gpus, --slurm...) and
    --quiet, after its own arguments."""
    add_queue_arguments(parser)
    add_slurm_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def experiment_command(parser, args, make_experiment):
    """The whole of a table's command line (tools/table1.py, tools/ablation.py): the config
    of args.schedule with args.config and args.set, the Slurm options or the queue's GPUs
    (exclusive), make_experiment(cfg) -> Experiment, carried out and reported. A bad option
    is a usage error through parser; returns the exit status (solver.training.command_status):
    0 when the table is complete, 1 on an error told in one line or a missing run, 130 when
    interrupted."""
    try:
        cfg = schedule_config(args.schedule, args.config, args.set)
        slurm = slurm_options(args)
    except (ConfigError, ValueError) as err:
        parser.error(str(err))
    if slurm is not None and args.gpus:
        parser.error("--gpus and --slurm exclude each other (Slurm gives each task its GPUs: "
                     "--slurm-gpus)")
    quiet_caffe_log()

    def work():
        experiment = make_experiment(cfg)
        return report(*carry_out(experiment, queue_gpus(args), args.fake_gpus, slurm,
                                 args.quiet))

    return command_status(work, COMMAND_ERRORS)


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
