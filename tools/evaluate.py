#!/usr/bin/env python3
"""Evaluate a trained model on the test LMDB: MPJPE per action in the layout of Table 1.

    .venv/bin/python tools/evaluate.py --run runs/full-demo [--weights FILE] [--lmdb DIR] [--gpu N]

The deploy net sees the centre 225x225 crop of every test image and outputs the average of
its root heads' zero-mean poses (eq. 7); the scale is recovered so that the torso bones have
the training set's mean lengths (section 4). Reported: MPJPE after root alignment (protocol
1, the paper's metric) and P-MPJPE after a similarity Procrustes alignment without reflection
(protocol 2), per action and on average (frame-weighted and action-wise), over the 16
non-root joints; beside them the mean-pose baseline (the training set's mean pose predicted
for every frame), the floor any learning must beat, and the paper's Table 1 numbers, which
are its results on real Human3.6M, not ours. Writes results.json, results.csv and
predictions.npz (predicted and true poses in mm, actions, in LMDB key order) into the run
folder (or --out).
"""
import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")   # before pycaffe starts glog: no net dumps
import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from data_prep.h36m import ACTIONS  # noqa: E402
from layers.h36m_data import BatchLoader, decode_pose  # noqa: E402
from solver.devices import DeviceError, use_device  # noqa: E402
from evaluation.metrics import (PAPER_TABLE1, format_table1, mean_pose, mpjpe, p_mpjpe,  # noqa: E402
                                recover_scale, summarize)


class EvaluationError(ValueError):
    pass


def check_weights(deploy, weights):
    """Refuse a caffemodel whose layers do not fit the deploy net, with a readable message
    (Caffe itself would abort the process on the first mismatching blob)."""
    if not Path(weights).exists():
        raise EvaluationError(f"{weights} does not exist")
    model = caffe_pb2.NetParameter()
    try:
        model.ParseFromString(Path(weights).read_bytes())
    except Exception:
        raise EvaluationError(f"{weights} is not a caffemodel") from None
    stored = {layer.name: [tuple(b.shape.dim) for b in layer.blobs] for layer in model.layer}
    net = caffe.Net(str(deploy), caffe.TEST)
    problems = []
    for name, blobs in net.params.items():
        wanted = [tuple(b.data.shape) for b in blobs]
        if name not in stored:
            problems.append(f"layer {name} missing")
        elif stored[name] != wanted:
            problems.append(f"layer {name}: {stored[name]} in the file, {wanted} in the net")
    if problems:
        raise EvaluationError(f"{weights} does not match {deploy}: " + "; ".join(problems[:4]))


def test_actions(lmdb_dir, split):
    with open(Path(lmdb_dir) / f"{split}_index.csv") as handle:
        return [row["action"] for row in csv.DictReader(handle)]


def training_mean_pose(lmdb_dir):
    import lmdb
    with lmdb.open(str(Path(lmdb_dir) / "train_poses"), readonly=True, lock=False) as env:
        with env.begin() as txn:
            poses = np.array([decode_pose(value)[1] for _, value in txn.cursor()])
    return mean_pose(poses)


def predict(deploy, weights, lmdb_dir, split, batch_size, limit=None):
    """(predicted poses in mm (N, 17, 3), ground truth (N, 17, 3)) in key order."""
    net = caffe.Net(str(deploy), str(weights), caffe.TEST)
    manifest = json.loads((Path(lmdb_dir) / "manifest.json").read_text())
    count = manifest["splits"][split]["count"] if limit is None else min(
        limit, manifest["splits"][split]["count"])
    predictions, truth = [], []
    with BatchLoader(lmdb_dir, split, batch_size, train=False, shuffle=False, pca_std=0) as loader:
        while len(truth) < count:
            batch = loader.next_batch()
            net.blobs["data"].reshape(*batch.images.shape)
            net.blobs["data"].data[...] = batch.images
            predictions.extend(net.forward()["pose_3D"].copy())
            truth.extend(batch.joints_3d)
    predictions, truth = np.array(predictions[:count]), np.array(truth[:count])
    return recover_scale(predictions, manifest["bone_lengths_mm"]), truth


def evaluate(run, weights, lmdb_dir, split="test", batch_size=16, limit=None, gpu=None):
    """Results dict and poses of the run's deploy net with `weights` on GPU `gpu` (None: the
    CPU)."""
    use_device(gpu)
    deploy = Path(run) / "deploy.prototxt"
    if not deploy.exists():
        raise EvaluationError(f"{deploy} missing: train with tools/train.py first")
    manifest_path = Path(lmdb_dir) / "manifest.json"
    if not manifest_path.exists():
        raise EvaluationError(f"{manifest_path} missing: build the LMDBs with `make lmdb`")
    if split not in json.loads(manifest_path.read_text())["splits"]:
        raise EvaluationError(f"{lmdb_dir} has no {split!r} split")
    check_weights(deploy, weights)
    predictions, truth = predict(deploy, weights, lmdb_dir, split, batch_size, limit)
    actions = np.array(test_actions(lmdb_dir, split)[:len(truth)])
    baseline = np.broadcast_to(training_mean_pose(lmdb_dir), truth.shape)
    results = {
        "weights": str(weights), "lmdb": str(lmdb_dir), "split": split, "frames": len(truth),
        "protocol": "root-aligned MPJPE over the 16 non-root joints (mm); P-MPJPE with a "
                    "similarity Procrustes alignment without reflection",
        "mpjpe": summarize(mpjpe(predictions, truth), actions),
        "p_mpjpe": summarize(p_mpjpe(predictions, truth), actions),
        "mean_pose_mpjpe": summarize(mpjpe(baseline, truth), actions),
        "paper_table1_real_h36m": PAPER_TABLE1,
    }
    return results, {"predictions_mm": predictions, "truth_mm": truth, "actions": actions}


def write_results(results, out, poses=None):
    """results.json, results.csv and (given the poses of evaluate) predictions.npz in out."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if poses is not None:
        np.savez_compressed(out / "predictions.npz", **poses)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["action", "frames", "mpjpe_mm", "p_mpjpe_mm", "mean_pose_mpjpe_mm",
                         "paper_mpjpe_mm_real_h36m"])
        for action in [a for a in ACTIONS if a in results["mpjpe"]["per_action"]]:
            writer.writerow([action, results["mpjpe"]["frames"][action],
                             round(results["mpjpe"]["per_action"][action], 2),
                             round(results["p_mpjpe"]["per_action"][action], 2),
                             round(results["mean_pose_mpjpe"]["per_action"][action], 2),
                             PAPER_TABLE1.get(action, "")])


def latest_weights(run):
    models = sorted((Path(run) / "snapshots").glob("*.caffemodel"),
                    key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
    if not models:
        raise EvaluationError(f"no caffemodel in {Path(run) / 'snapshots'}: train first")
    return models[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder of tools/train.py")
    parser.add_argument("--weights", type=Path, help="caffemodel (default: the run's latest)")
    parser.add_argument("--lmdb", type=Path, help="LMDB folder (default: the run's)")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--batch", type=int, default=16, help="images per forward pass")
    parser.add_argument("--limit", type=int, help="evaluate only the first N frames")
    parser.add_argument("--out", type=Path, help="where results.json/csv go (default: --run)")
    parser.add_argument("--gpu", type=int, metavar="N",
                        help="run the net on GPU N (needs the GPU build; default: the CPU)")
    args = parser.parse_args(argv)
    try:
        use_device(args.gpu)   # first: a bad --gpu is the message, whatever else is missing
        config = json.loads((args.run / "config.json").read_text()) \
            if (args.run / "config.json").exists() else {}
        lmdb_dir = args.lmdb or Path(config.get("lmdb", "data/lmdb/synth-h36m"))
        weights = args.weights or latest_weights(args.run)
        results, poses = evaluate(args.run, weights, lmdb_dir, args.split, args.batch,
                                  args.limit, args.gpu)
    except (EvaluationError, DeviceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    write_results(results, args.out or args.run, poses)
    print(format_table1(results["mpjpe"], results["mean_pose_mpjpe"]))
    print(f"P-MPJPE frame-weighted {results['p_mpjpe']['frame_weighted']:.1f} mm, "
          f"action-wise {results['p_mpjpe']['action_wise']:.1f} mm")
    print("(paper column: the paper's results on real Human3.6M, not this run's)")
    print(f"evaluate: results in {(args.out or args.run) / 'results.json'} and results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
