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

Another dataset (test_lmdb: one of the same crop size and joints, MPI-INF-3DHP's or a
real-motion test set built by make_lmdb) is evaluated with the run's own training statistics:
its torso bone lengths recover the scale, its mean pixel is subtracted from the input, its
mean pose is the baseline; beside it the other dataset's own mean-pose baseline (the mean pose
of that dataset's train split, as its manifest records) and the ratios of the MPJPE to both.
Its results go to <run>/eval-on-<dataset folder name>[-<protocol>]/, never over the run's own.

    results, poses = evaluate_run(folder, subset="every-64th")
    write_results(results, results_folder(folder, Protocol("every-64th")), poses)
"""
import contextlib
import csv
import dataclasses
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from built_folders import whole_file, write_whole
from caffe.proto import caffe_pb2
from data_prep.dataset import Dataset
from evaluation.metrics import (PAPER_TABLE1, format_table1, mpjpe, p_mpjpe, recover_scale,
                                summarize)
from layers.h36m_data import (BatchLoader, available_memory, batch_bytes, batches_held,
                              mebibytes)
from prototxt.pose_net import VARIANTS
from solver.run_folder import short_blobs
from solver.progress import terminal_size


class EvaluationError(ValueError):
    pass


# The test frames of the literature's protocols, by name: every n-th frame of a recording
SUBSETS = {"all": 1, "every-5th": 5, "every-64th": 64}
# the evaluation's data loader: worker threads and batches prepared ahead (BatchLoader's)
LOADER_WORKERS = 2
LOADER_PREFETCH = 4
# ASSUMPTION (measured): Caffe's test-time forward pass holds about this many times the bytes
# of the net's blobs (BatchNorm keeps buffers of its input's size): 2.6 for the paper's net
FORWARD_MEMORY_FACTOR = 3


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


def weights_variant(names):
    """The VARIANTS name whose nets have the layers `names` of a caffemodel (its root heads
    fc2_3D_root<r>: several for multi-reg; fc_probs_2D for 2D-cls), or None."""
    heads = sum(bool(re.fullmatch(r"fc2_3D_root\d+", name)) for name in names)
    kind = (heads > 1, "fc_probs_2D" in names)
    return next((name for name, flags in VARIANTS.items() if heads and flags == kind), None)


def check_weights(deploy, weights, variant=None):
    """Refuse a caffemodel whose layers do not fit the deploy net (of the run's `variant`),
    with a readable message (Caffe itself would abort the process on the first mismatching
    blob, and would take a superset without a word: a multi-reg model's extra root heads in
    a baseline net)."""
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
    # learned layers of the kinds the deploy net learns, but not its own (the train net's
    # extra learned layers, such as lambda_2D's iteration count, are of other kinds)
    kinds = {layer.type for layer in net.layers if len(layer.blobs)}
    extra = [layer.name for layer in model.layer
             if layer.blobs and layer.type in kinds and layer.name not in net.params]
    if extra:
        more = f" and {len(extra) - 4} more" if len(extra) > 4 else ""
        problems.append(f"layers {', '.join(extra[:4])}{more} in the file, not in the net")
    if problems:
        held = weights_variant(list(stored))
        run = f" (a {variant} net)" if variant else ""
        fix = (f"; the file holds a {held} model: evaluate it with a {held} run (--run), or "
               f"give weights of a {variant} run (--weights)"
               if variant and held and held != variant else "")
        raise EvaluationError(f"{weights} does not match {deploy}{run}: "
                              + "; ".join(problems[:4]) + fix)


def deploy_net(deploy, weights, variant=None):
    """The deploy net (of the run's `variant`) with the weights, checked first (their
    layers and shapes before Caffe reads them, their values after: NaN or inf weights would
    give NaN poses, not an error)."""
    import caffe
    check_weights(deploy, weights, variant)
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


def predict_split(net, dataset, split, samples, batch_size, input_size, quiet=False,
                  mean_bgr=None, forward=None, desc=None):
    """(network poses (N, 17, 3), true poses (N, 17, 3) mm, sample indices (N,)) of the given
    samples of a split, with a progress bar over the frames. mean_bgr: the mean pixel the net
    was trained with, subtracted from the input instead of the dataset's own (default).
    forward(net, frames): the batch's poses from the net with its input set (default: a
    plain forward pass); frames: how many of the batch's images are samples' (the last
    batch may be padded). desc: the progress bar's label (default: evaluate <split>)."""
    count = len(samples)
    # the loader subtracts the dataset's own mean pixel; this turns it into the model's
    shift = np.zeros((3, 1, 1), np.float32) if mean_bgr is None else \
        (dataset.mean_bgr - np.asarray(mean_bgr, np.float32)).reshape(3, 1, 1)
    predictions, truth, indices = [], [], []
    # the terminal's size given: tqdm shows nothing in one that reports 0 x 0 (`script`, CI)
    columns, lines = terminal_size(sys.stderr)
    with BatchLoader(dataset.directory, split, batch_size, input_size=input_size, train=False,
                     shuffle=False, pca_std=0, samples=samples, workers=LOADER_WORKERS,
                     prefetch=LOADER_PREFETCH) as loader, \
            tqdm(total=count, desc=desc or f"evaluate {split}", unit="frame", disable=quiet,
                 ncols=columns, nrows=lines) as bar:
        while len(truth) < count:
            batch = loader.next_batch()
            net.blobs["data"].reshape(*batch.images.shape)
            np.add(batch.images, shift, out=net.blobs["data"].data)
            frames = min(len(batch.indices), count - len(truth))
            poses = forward(net, frames) if forward else net.forward()["pose_3D"]
            predictions.extend(poses.copy())
            truth.extend(batch.joints_3d)
            indices.extend(batch.indices)
            bar.update(frames)
    return (np.array(predictions[:count]), np.array(truth[:count]),
            np.array(indices[:count], dtype=np.int64))


def add_pass_arguments(parser):
    """The flags of a tool that runs a run's deploy net over a split (tools/evaluate.py,
    tools/probe_2d_path.py): --split, --batch, --limit, --gpu, --quiet; checked by
    check_pass_arguments."""
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--batch", type=int, default=16,
                        help="images per forward pass (at most the frames evaluated; "
                             "default: %(default)s)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N frames "
                        "(results beside those of all of them)")
    parser.add_argument("--gpu", type=int, metavar="N",
                        help="run the net on GPU N (needs the GPU build; default: the CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_pass_arguments(parser, args):
    """parser.error (usage, exit 2) for a --limit or --batch under 1."""
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.batch < 1:
        parser.error("--batch must be at least 1")


def evaluation_batch(batch_size, frames, net, input_size):
    """The batch an evaluation of `frames` frames runs with: batch_size, capped at the
    frames (a larger batch would only hold copies; said on stderr); EvaluationError when
    this machine's memory cannot hold it (the net's blobs, as the deploy net holds them for
    one frame, and the loader's batches)."""
    if batch_size < 1:
        raise EvaluationError(f"the batch must be at least 1 frame, got {batch_size} (--batch)")
    if batch_size > frames:
        print(f"evaluate: batches of {frames} frames, not {batch_size}: the protocol has only "
              f"{frames} frames", file=sys.stderr)
        batch_size = frames
    blobs = 4 * sum(blob.count for blob in net.blobs.values()) // net.blobs["data"].num
    per_frame = (FORWARD_MEMORY_FACTOR * blobs + batches_held(LOADER_WORKERS, LOADER_PREFETCH,
                                                              False) * batch_bytes(1, input_size))
    free = available_memory()
    if free is not None and batch_size * per_frame > free:
        raise EvaluationError(
            f"a batch of {batch_size} frames needs about {mebibytes(batch_size * per_frame)} "
            f"of memory (the net's blobs and the loader's batches), and this machine has "
            f"{mebibytes(free)} available; choose a batch of at most {free // per_frame} "
            "frames (--batch)")
    return batch_size


def protocol_samples(index, protocol, limit=None):
    """Sample indices of a split's index rows that the protocol evaluates (the first `limit`)."""
    samples = [i for i, row in enumerate(index) if protocol.selects(row)]
    if not samples:
        raise EvaluationError(f"no test frames for the protocol: {protocol.describe()}")
    return samples[:limit] if limit else samples


def dataset_name(directory):
    """The name an evaluation on another dataset goes by: its folder's name."""
    return Path(os.path.abspath(directory)).name or "root"


def other_dataset(directory, training):
    """The Dataset at `directory` to evaluate a model trained on `training` (a Dataset) on;
    EvaluationError naming both unless it has the crops and joints the model was trained on
    (a model sees input windows of crops of one size, and regresses one skeleton)."""
    try:
        dataset = Dataset(directory)
    except ValueError as error:
        raise EvaluationError(f"{error} (--test-lmdb)") from None
    if dataset.crop_size != training.crop_size:
        size = training.crop_size
        raise EvaluationError(
            f"{dataset.directory} holds {dataset.crop_size} x {dataset.crop_size} crops, the "
            f"run's dataset {training.directory} {size} x {size}: the model takes crops of the "
            f"size it was trained on; build the test set with `make lmdb LMDB_FLAGS=\"--set "
            f"crop_size={size}\"`")
    for key in ("joints", "parents"):
        if dataset.manifest.get(key) != training.manifest.get(key):
            raise EvaluationError(
                f"{dataset.directory} has other {key} than the run's dataset "
                f"{training.directory} ({dataset.manifest.get(key)} and "
                f"{training.manifest.get(key)}): the model regresses the skeleton it was "
                "trained on")
    return dataset


def evaluate_run(folder, weights=None, split="test", batch_size=16, limit=None, cfg=None,
                 quiet=False, subset="all", camera="all", test_lmdb=None):
    """Results dict and poses of the run's deploy net (its latest weights by default) on a
    split of its dataset, or of another dataset's (test_lmdb: its folder), under the protocol
    of subset, camera and cfg.evaluation_joints. The run's training statistics recover the
    scale, centre the input and give the mean-pose baseline in either case.
    cfg: the run's config with evaluation overrides (EVALUATION_KEYS)."""
    cfg = cfg or folder.config()
    protocol = Protocol(subset, camera, cfg.evaluation_joints)
    training = folder.dataset()
    dataset = training if test_lmdb is None else other_dataset(test_lmdb, training)
    if split not in dataset.manifest["splits"]:
        raise EvaluationError(f"{dataset.directory} has no {split!r} split")
    if not folder.deploy_path.exists():
        raise EvaluationError(f"{folder.deploy_path} missing: prepare the run with "
                              "`make solver` or tools/train.py")
    weights = Path(weights) if weights else folder.latest_weights()
    index = dataset.index(split)
    samples = protocol_samples(index, protocol, limit)
    net = deploy_net(folder.deploy_path, weights, folder.variant())
    batch_size = evaluation_batch(batch_size, len(samples), net, cfg.input_size)
    raw, truth, indices = predict_split(net, dataset, split, samples, batch_size,
                                        cfg.input_size, quiet, training.mean_bgr)
    check_poses(raw, weights)
    predictions = recover_scale(raw, training.bone_lengths_mm, cfg.torso_bones)
    actions = np.array([index[i]["action"] for i in indices])
    baseline = np.broadcast_to(training.mean_pose_mm, truth.shape)
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
    if test_lmdb is not None:
        own_baseline = np.broadcast_to(dataset.mean_pose_mm, truth.shape)
        results["other_dataset"] = other_dataset_results(
            dataset, training, results["mpjpe"],
            summarize(mpjpe(own_baseline, truth, include_root=with_root), actions),
            results["mean_pose_mpjpe"])
    poses = {"predictions_mm": predictions, "truth_mm": truth, "actions": actions,
             "indices": indices}
    return results, poses


def other_dataset_results(dataset, training, ours, own_baseline, run_baseline):
    """results.json's "other_dataset": what was evaluated with which statistics, the other
    dataset's own mean-pose baseline and the ratios of our MPJPE to both baselines
    (frame-weighted)."""
    return {
        "name": dataset_name(dataset.directory), "lmdb": str(dataset.directory),
        "fingerprint": dataset.fingerprint, "training_lmdb": str(training.directory),
        "statistics": "the run's training dataset's (training_lmdb): torso bone lengths for "
                      "the scale recovery, the mean pixel of the input, the mean pose of "
                      "mean_pose_mpjpe",
        "own_mean_pose": "the mean pose of this dataset's own train split (its manifest), "
                         "predicted for every frame",
        "own_mean_pose_mpjpe": own_baseline,
        "mpjpe_ratio": {"to_run_mean_pose": _ratio(ours, run_baseline),
                        "to_own_mean_pose": _ratio(ours, own_baseline)},
    }


def _ratio(ours, baseline):
    """Frame-weighted MPJPE over the baseline's, or None where the baseline's is 0 (test
    poses that are all the mean pose)."""
    floor = baseline["frame_weighted"]
    return ours["frame_weighted"] / floor if floor > 0 else None


def results_folder(folder, protocol=Protocol(), limit=None, test_lmdb=None):
    """Where an evaluation's files go: the run folder for the default protocol on the whole
    split of the run's dataset, a folder of its own (eval-[on-<dataset>-]<protocol>
    [-first<N>]) for any other, so that another protocol, a quick look or another dataset
    (test_lmdb, by its folder's name) never replaces the full results."""
    parts = (f"on-{dataset_name(test_lmdb)}" if test_lmdb is not None else "",
             protocol.tag(), f"first{limit}" if limit else "")
    tag = "-".join(part for part in parts if part)
    return folder.path / f"eval-{tag}" if tag else folder.path


def check_output_folder(folder, flag="--out", output=None):
    """EvaluationError naming `output` (a file to go into the folder; default: the folder)
    unless files can be written into `folder`, found out by doing so before any work: its
    missing folders made and a file created in it, then all removed again (os.access would
    answer for the permission bits alone, which root passes, not for a read-only mount, a
    full disk or a path under a file)."""
    folder = Path(folder)
    what = output or f"into {folder}"
    lowest = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if lowest is not None and not lowest.is_dir():
        raise EvaluationError(f"cannot write {what}: {lowest} is a file, not a folder; choose "
                              f"another place ({flag})")
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    made = []
    try:
        for path in reversed(missing):
            path.mkdir()
            made.append(path)
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise EvaluationError(f"cannot write {what}: {error.strerror}; choose a place that "
                              f"can be written to ({flag})") from None
    finally:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()


def write_results(results, out, poses=None):
    """results.json, results.csv and (given the poses of evaluate_run) predictions.npz in
    out, each written whole (built_folders.whole_file)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_whole(out / "results.json", json.dumps(results, indent=2) + "\n")
    if poses is not None:
        with whole_file(out / "predictions.npz") as tmp:
            np.savez_compressed(tmp, **poses)
    with whole_file(out / "results.csv") as tmp:
        _write_csv(results, tmp)


def _write_csv(results, path):
    """results.csv's rows: per action (Human3.6M's first, as summarize orders them; another
    dataset's actions too), our MPJPE and P-MPJPE, the mean pose's, on another dataset its
    own mean pose's, the paper's."""
    other = results.get("other_dataset")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["action", "frames", "mpjpe_mm", "p_mpjpe_mm", "mean_pose_mpjpe_mm",
                         *(["own_mean_pose_mpjpe_mm"] if other else []),
                         "paper_mpjpe_mm_real_h36m"])
        for action in results["mpjpe"]["per_action"]:
            own = [round(other["own_mean_pose_mpjpe"]["per_action"][action], 2)] if other else []
            writer.writerow([action, results["mpjpe"]["frames"][action],
                             round(results["mpjpe"]["per_action"][action], 2),
                             round(results["p_mpjpe"]["per_action"][action], 2),
                             round(results["mean_pose_mpjpe"]["per_action"][action], 2),
                             *own, PAPER_TABLE1.get(action, "")])


def _percent(ratio):
    """A ratio as a printed percentage ("-" for none)."""
    return "-" if ratio is None else f"{100 * ratio:.0f}%"


def results_text(results):
    """The printed form of evaluate_run's results: the protocol, Table 1's layout, P-MPJPE;
    on another dataset both mean-pose baselines and the ratios of our MPJPE to them."""
    protocol = results["protocol"]
    frames = f", the first {protocol['limit']} of them" if protocol["limit"] else ""
    other = results.get("other_dataset")
    if other is None:
        head = [f"# protocol: {protocol['description']}{frames}; {results['split']} split"]
        table = format_table1(results["mpjpe"], results["mean_pose_mpjpe"])
    else:
        head = [f"# protocol: {protocol['description']}{frames}; {results['split']} split of "
                f"{other['name']} ({other['lmdb']})",
                f"# with the run's training statistics (bone lengths, mean pixel, mean pose) "
                f"of {other['training_lmdb']}",
                "# run_mean: the run's training mean pose; data_mean: the mean pose of "
                f"{other['name']}'s own train split"]
        table = format_table1(results["mpjpe"], baselines={
            "run_mean": results["mean_pose_mpjpe"], "data_mean": other["own_mean_pose_mpjpe"]})
    lines = [*head, table,
             f"P-MPJPE frame-weighted {results['p_mpjpe']['frame_weighted']:.1f} mm, "
             f"action-wise {results['p_mpjpe']['action_wise']:.1f} mm "
             f"({protocol['joints']} joints)"]
    if other is not None:
        ours, ratio = results["mpjpe"]["frame_weighted"], other["mpjpe_ratio"]
        lines.append(
            f"MPJPE {ours:.1f} mm (frame-weighted) = {_percent(ratio['to_run_mean_pose'])} of "
            f"the run's training mean pose ({results['mean_pose_mpjpe']['frame_weighted']:.1f} "
            f"mm), {_percent(ratio['to_own_mean_pose'])} of {other['name']}'s own mean pose "
            f"({other['own_mean_pose_mpjpe']['frame_weighted']:.1f} mm)")
    lines.append("(paper column: the paper's own results on real Human3.6M, not this run's)")
    return "\n".join(lines)
