"""A trained run on a dataset split: MPJPE per action in the layout of Table 1.

The deploy net sees the centre input window of every image and outputs the average of its
root heads' zero-mean poses (eq. 7); the scale is recovered so that the torso bones have the
training set's mean lengths (section 4). Reported: MPJPE after root alignment (protocol 1, the
paper's metric) and P-MPJPE after a similarity Procrustes alignment without reflection
(protocol 2), per action (its subactions merged) and on average (frame-weighted and
action-wise); beside them the mean-pose baseline (the training set's mean pose, from the
dataset's manifest, predicted for every frame), the floor any learning must beat, and the
paper's Table 1 numbers, which are its results on real Human3.6M, not ours.

The protocol (Protocol) is named in every printed table and in results.json: the joints
averaged over (config evaluation_joints: all 17 by default, the root's 0 included, as today's
literature reports; or the 16 non-root ones), the test frames (SUBSETS: every frame, every 5th
or every 64th of each recording) and the cameras (all, or one by its id).

    results, poses = evaluate_run(RunFolder(path), protocol=Protocol("every-64th"))
    write_results(results, results_folder(folder, protocol), poses)
"""
import csv
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from caffe.proto import caffe_pb2
from data_prep.h36m import ACTIONS
from evaluation.metrics import (PAPER_TABLE1, format_table1, mpjpe, p_mpjpe, recover_scale,
                                summarize)
from layers.h36m_data import BatchLoader
from solver.run_folder import short_blobs
from solver.progress import terminal_size


class EvaluationError(ValueError):
    pass


# The test frames of the literature's protocols, by name: every n-th frame of a recording
SUBSETS = {"all": 1, "every-5th": 5, "every-64th": 64}


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Which test frames are evaluated, and over which joints the errors are averaged."""
    subset: str = "all"      # a key of SUBSETS
    camera: str = "all"      # "all", or a camera id
    joints: int = 17         # 17: every joint (the root's 0 included); 16: the non-root ones

    def __post_init__(self):
        if self.subset not in SUBSETS:
            raise EvaluationError(f"unknown subset {self.subset!r}; known: "
                                  f"{', '.join(SUBSETS)}")
        if self.joints not in (16, 17):
            raise EvaluationError(f"joints must be 16 or 17, got {self.joints}")

    def selects(self, row):
        """Whether the frame of an index row belongs to the protocol's test frames."""
        return (int(row["frame"]) % SUBSETS[self.subset] == 0
                and self.camera in ("all", row["camera"]))

    def describe(self):
        frames = {"all": "every frame", "every-5th": "every 5th frame",
                  "every-64th": "every 64th frame"}[self.subset]
        cameras = "all cameras" if self.camera == "all" else f"camera {self.camera}"
        joints = ("all 17 joints (root included)" if self.joints == 17
                  else "the 16 non-root joints")
        return f"mean over {joints}, root-aligned; {frames}, {cameras}"

    def tag(self):
        """A short name of a protocol other than the default ("" for the default)."""
        parts = [self.subset] if self.subset != "all" else []
        parts += [f"cam{self.camera}"] if self.camera != "all" else []
        parts += ["16joints"] if self.joints == 16 else []
        return "-".join(parts)


def check_weights(deploy, weights):
    """Refuse a caffemodel whose layers do not fit the deploy net, with a readable message
    (Caffe itself would abort the process on the first mismatching blob)."""
    import caffe
    if not Path(weights).exists():
        raise EvaluationError(f"{weights} does not exist")
    model = caffe_pb2.NetParameter()
    try:
        model.ParseFromString(Path(weights).read_bytes())
    except Exception:
        raise EvaluationError(f"{weights} is not a caffemodel") from None
    stored = {layer.name: [tuple(b.shape.dim) for b in layer.blobs] for layer in model.layer}
    net = caffe.Net(str(deploy), caffe.TEST)
    problems = [f"layer {layer}: blob {index} holds {held} values, its shape {needed}"
                for layer, index, held, needed in short_blobs(model)]
    for name, blobs in net.params.items():
        wanted = [tuple(b.data.shape) for b in blobs]
        if name not in stored:
            problems.append(f"layer {name} missing")
        elif stored[name] != wanted:
            problems.append(f"layer {name}: {stored[name]} in the file, {wanted} in the net")
    if problems:
        raise EvaluationError(f"{weights} does not match {deploy}: " + "; ".join(problems[:4]))


def deploy_net(deploy, weights):
    """The deploy net with the weights, checked first (their shapes before Caffe reads them,
    their values after: NaN or inf weights would give NaN poses, not an error)."""
    import caffe
    check_weights(deploy, weights)
    net = caffe.Net(str(deploy), str(weights), caffe.TEST)
    bad = [name for name, blobs in net.params.items()
           if not all(np.isfinite(blob.data).all() for blob in blobs)]
    if bad:
        raise EvaluationError(f"{weights} holds NaN or inf weights (layers {', '.join(bad[:4])}): "
                              "a diverged run's snapshot? Choose an earlier one (--weights)")
    return net


def check_poses(poses, weights):
    """EvaluationError naming the weights when any network pose (N, 17, 3) is not finite:
    finite weights can still overflow (those of a diverged run's last snapshot, which the
    NaN check of deploy_net passes), and NaN poses would give NaN results, not an error."""
    bad = int((~np.isfinite(np.asarray(poses)).reshape(len(poses), -1).all(axis=1)).sum())
    if bad:
        raise EvaluationError(f"{weights} gives non-finite poses for {bad} of {len(poses)} "
                              "frames (weights that overflow: a diverged run's snapshot?); "
                              "choose an earlier one (--weights)")


def predict_split(net, dataset, split, samples, batch_size, input_size, quiet=False):
    """(network poses (N, 17, 3), true poses (N, 17, 3) mm, sample indices (N,)) of the given
    samples of a split, with a progress bar over the frames."""
    count = len(samples)
    predictions, truth, indices = [], [], []
    # the terminal's size given: tqdm shows nothing in one that reports 0 x 0 (`script`, CI)
    columns, lines = terminal_size(sys.stderr)
    with BatchLoader(dataset.directory, split, batch_size, input_size=input_size, train=False,
                     shuffle=False, pca_std=0, samples=samples) as loader, \
            tqdm(total=count, desc=f"evaluate {split}", unit="frame", disable=quiet,
                 ncols=columns, nrows=lines) as bar:
        while len(truth) < count:
            batch = loader.next_batch()
            net.blobs["data"].reshape(*batch.images.shape)
            net.blobs["data"].data[...] = batch.images
            predictions.extend(net.forward()["pose_3D"].copy())
            truth.extend(batch.joints_3d)
            indices.extend(batch.indices)
            bar.update(min(len(batch.indices), count - bar.n))
    return (np.array(predictions[:count]), np.array(truth[:count]),
            np.array(indices[:count], dtype=np.int64))


def protocol_samples(index, protocol, limit=None):
    """Sample indices of a split's index rows that the protocol evaluates (the first `limit`)."""
    samples = [i for i, row in enumerate(index) if protocol.selects(row)]
    if not samples:
        raise EvaluationError(f"no test frames for the protocol: {protocol.describe()}")
    return samples[:limit] if limit else samples


def evaluate_run(folder, weights=None, split="test", batch_size=16, limit=None, cfg=None,
                 quiet=False, subset="all", camera="all"):
    """Results dict and poses of the run's deploy net (its latest weights by default) on a
    split of its dataset, under the protocol of subset, camera and cfg.evaluation_joints.
    cfg: the run's config with evaluation overrides (EVALUATION_KEYS)."""
    cfg = cfg or folder.config()
    protocol = Protocol(subset, camera, cfg.evaluation_joints)
    dataset = folder.dataset()
    if split not in dataset.manifest["splits"]:
        raise EvaluationError(f"{dataset.directory} has no {split!r} split")
    if not folder.deploy_path.exists():
        raise EvaluationError(f"{folder.deploy_path} missing: prepare the run with "
                              "`make solver` or tools/train.py")
    weights = Path(weights) if weights else folder.latest_weights()
    index = dataset.index(split)
    samples = protocol_samples(index, protocol, limit)
    net = deploy_net(folder.deploy_path, weights)
    raw, truth, indices = predict_split(net, dataset, split, samples, batch_size,
                                        cfg.input_size, quiet)
    check_poses(raw, weights)
    predictions = recover_scale(raw, dataset.bone_lengths_mm, cfg.torso_bones)
    actions = np.array([index[i]["action"] for i in indices])
    baseline = np.broadcast_to(dataset.mean_pose_mm, truth.shape)
    with_root = protocol.joints == 17
    results = {
        "run": str(folder.path), "weights": str(weights), "lmdb": str(dataset.directory),
        "split": split, "frames": len(truth),
        "protocol": {"description": protocol.describe(), "joints": protocol.joints,
                     "subset": protocol.subset, "camera": protocol.camera,
                     "limit": limit,
                     "metrics": "MPJPE after root alignment (protocol 1); P-MPJPE after a "
                                "similarity Procrustes alignment without reflection "
                                "(protocol 2); mm"},
        "mpjpe": summarize(mpjpe(predictions, truth, include_root=with_root), actions),
        "p_mpjpe": summarize(p_mpjpe(predictions, truth, include_root=with_root), actions),
        "mean_pose_mpjpe": summarize(mpjpe(baseline, truth, include_root=with_root), actions),
        "paper_table1_real_h36m": PAPER_TABLE1,
    }
    poses = {"predictions_mm": predictions, "truth_mm": truth, "actions": actions,
             "indices": indices}
    return results, poses


def results_folder(folder, protocol=Protocol(), limit=None):
    """Where an evaluation's files go: the run folder for the default protocol on the whole
    split, a folder of its own (eval-<protocol>[-first<N>]) for any other, so that another
    protocol or a quick look never replaces the full results."""
    tag = "-".join(part for part in (protocol.tag(), f"first{limit}" if limit else "") if part)
    return folder.path / f"eval-{tag}" if tag else folder.path


def write_results(results, out, poses=None):
    """results.json, results.csv and (given the poses of evaluate_run) predictions.npz in
    out, each written whole (a temporary file renamed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out / "results.json")
    if poses is not None:
        tmp = out / "predictions.tmp.npz"
        np.savez_compressed(tmp, **poses)
        tmp.replace(out / "predictions.npz")
    tmp = out / "results.csv.tmp"
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["action", "frames", "mpjpe_mm", "p_mpjpe_mm", "mean_pose_mpjpe_mm",
                         "paper_mpjpe_mm_real_h36m"])
        for action in [a for a in ACTIONS if a in results["mpjpe"]["per_action"]]:
            writer.writerow([action, results["mpjpe"]["frames"][action],
                             round(results["mpjpe"]["per_action"][action], 2),
                             round(results["p_mpjpe"]["per_action"][action], 2),
                             round(results["mean_pose_mpjpe"]["per_action"][action], 2),
                             PAPER_TABLE1.get(action, "")])
    tmp.replace(out / "results.csv")


def results_text(results):
    """The printed form of evaluate_run's results: the protocol, Table 1's layout, P-MPJPE."""
    protocol = results["protocol"]
    frames = f", the first {protocol['limit']} of them" if protocol["limit"] else ""
    return "\n".join([
        f"# protocol: {protocol['description']}{frames}; {results['split']} split",
        format_table1(results["mpjpe"], results["mean_pose_mpjpe"]),
        f"P-MPJPE frame-weighted {results['p_mpjpe']['frame_weighted']:.1f} mm, "
        f"action-wise {results['p_mpjpe']['action_wise']:.1f} mm ({protocol['joints']} joints)",
        "(paper column: the paper's own results on real Human3.6M, not this run's)"])
