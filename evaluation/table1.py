"""Table 1: one variant's MPJPE per action on the test split, trained as the paper trained it,
one model per action, or as one model for all actions.

    experiment = table1_experiment(out, cfg, "full", "data/lmdb/synth-h36m", ["Walking", ...])
    lines, unusable = table1_summary(experiment, results)   # {run name: results}

Runs (evaluation/queue.py): <out>/<action>/ trains on the dataset <lmdb_prefix>-<action>, the
one `make lmdb ACTIONS=<action>` builds, for each action; with actions ["all"] a single run
<out>/all/ trains on <lmdb_prefix>, the all-actions dataset. Each run is evaluated on its own
dataset's test split (evaluation/experiments.train_and_evaluate); the table takes action A's
MPJPE, P-MPJPE, mean-pose baseline and frame count from A's model (every action from the one
model with "all"), and averages them over the frames and over the actions as
evaluation/metrics.summarize does for one model.

Writes <out>/table1.json and table1.csv (per action, the averages, the run of each row, the
paper's Table 1 beside it: its results on real Human3.6M) and <out>/figures/table1.png.
"""
import csv
import json
from pathlib import Path

from built_folders import whole_file, write_whole
from evaluation.figures import action_bars_figure, save_figure
from evaluation.metrics import PAPER_TABLE1, combine_actions, format_table1
from evaluation.queue import Experiment, Run

ALL_ACTIONS = "all"


def table1_experiment(out, cfg, variant, lmdb_prefix, actions, schedule=None):
    """Table 1's run list: one run per action, or with actions ["all"] one for all actions."""
    out = Path(out)
    everything = list(actions) == [ALL_ACTIONS]
    names = [ALL_ACTIONS] if everything else list(dict.fromkeys(actions))
    runs = tuple(
        Run(name=name, title=f"{variant}, {'all actions' if everything else name}",
            folder=out / name, variant=variant,
            lmdb=Path(str(lmdb_prefix) if everything else f"{lmdb_prefix}-{name}"),
            config=cfg.to_dict(), labels={"action": name})
        for name in names)
    models = "one model for all actions" if everything else "one model per action"
    return Experiment(out, "table1", runs,
                      {"variant": variant, "schedule": schedule, "models": models})


def action_parts(experiment, results):
    """({action: the results that give its row}, {run name: why its results give none})."""
    parts, unusable = {}, {}
    for run in experiment.runs:
        if run.name not in results:
            continue
        found = results[run.name]
        action = run.labels["action"]
        per_action = found["mpjpe"]["per_action"]
        if action == ALL_ACTIONS:
            parts.update({name: found for name in per_action})
        elif action in per_action:
            parts[action] = found
        else:
            unusable[run.name] = (f"its test split ({found['lmdb']}) has no {action} frames: "
                                  "not the dataset of that action")
    return parts, unusable


def table1_summary(experiment, results):
    """The lines of Table 1 from the finished runs' results ({run name: evaluate_run's
    results}), its files written; and {run name: why} of finished runs that give no row."""
    parts, unusable = action_parts(experiment, results)
    if not parts:
        return [], unusable
    table = {key: combine_actions({action: found[key] for action, found in parts.items()})
             for key in ("mpjpe", "p_mpjpe", "mean_pose_mpjpe")}
    rows = {action: found["run"] for action, found in parts.items()}
    first = next(iter(parts.values()))
    settings = experiment.settings
    out = Path(experiment.out)
    write_table1(out, table, rows, first["protocol"], settings)
    figure = save_figure(action_bars_figure(
        [(f"{settings['variant']} ({settings['models']})", _with_average(table["mpjpe"])),
         ("mean pose (baseline)", _with_average(table["mean_pose_mpjpe"])),
         ("paper (real Human3.6M)", _paper_row(table["mpjpe"]["per_action"]))],
        title=f"Table 1: MPJPE per action, {settings['variant']}"),
        out / "figures" / "table1.png")
    schedule = f", {settings['schedule']} schedule" if settings.get("schedule") else ""
    lines = [f"# Table 1: {settings['variant']}, {settings['models']}{schedule}; protocol: "
             f"{first['protocol']['description']}; {first['split']} split",
             format_table1(table["mpjpe"], table["mean_pose_mpjpe"]),
             f"P-MPJPE frame-weighted {table['p_mpjpe']['frame_weighted']:.1f} mm, "
             f"action-wise {table['p_mpjpe']['action_wise']:.1f} mm",
             "(paper column: the paper's own results on real Human3.6M, not this run's)",
             f"table1: tables in {out / 'table1.json'} and table1.csv; figure {figure}"]
    return lines, unusable


def _paper_row(actions):
    """The paper's Table 1 for these actions, "Average" as printed for all 15, else over
    these (the paper's own results on real Human3.6M)."""
    row = {action: PAPER_TABLE1[action] for action in actions if action in PAPER_TABLE1}
    everything = set(PAPER_TABLE1) - {"Average"} <= set(row)
    row["Average"] = (PAPER_TABLE1["Average"] if everything or not row
                      else sum(row.values()) / len(row))
    return row


def _with_average(summary):
    """{action: mm, ..., "Average": action-wise mean} of a summary, for the bars."""
    return {**summary["per_action"], "Average": summary["action_wise"]}


def write_table1(out, table, rows, protocol, settings):
    """table1.json and table1.csv in out, each written whole."""
    document = {"variant": settings["variant"], "models": settings["models"],
                "schedule": settings.get("schedule"), "protocol": protocol,
                "mpjpe_mm": table["mpjpe"], "p_mpjpe_mm": table["p_mpjpe"],
                "mean_pose_mpjpe_mm": table["mean_pose_mpjpe"], "run_of_each_action": rows,
                "paper_table1_real_h36m": PAPER_TABLE1,
                "note": "paper values are the paper's results on real Human3.6M, not this "
                        "toolkit's"}
    write_whole(out / "table1.json", json.dumps(document, indent=2) + "\n")
    with whole_file(out / "table1.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["action", "frames", "mpjpe_mm", "p_mpjpe_mm", "mean_pose_mpjpe_mm",
                         "paper_mpjpe_mm_real_h36m", "run"])
        mpjpe, p_mpjpe, mean_pose = table["mpjpe"], table["p_mpjpe"], table["mean_pose_mpjpe"]
        for action, value in mpjpe["per_action"].items():
            writer.writerow([action, mpjpe["frames"][action], round(value, 2),
                             round(p_mpjpe["per_action"][action], 2),
                             round(mean_pose["per_action"][action], 2),
                             PAPER_TABLE1.get(action, ""), rows[action]])
        total = sum(mpjpe["frames"].values())
        for label, key, paper in (("Average(frame-weighted)", "frame_weighted", ""),
                                  ("Average(action-wise)", "action_wise",
                                   PAPER_TABLE1["Average"])):
            writer.writerow([label, total, round(mpjpe[key], 2), round(p_mpjpe[key], 2),
                             round(mean_pose[key], 2), paper, ""])
