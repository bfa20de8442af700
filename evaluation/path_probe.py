"""How much a trained model's 3D regression uses its 2D path (the 2D-cls and full variants of
Table 2): the MPJPE on a split as trained, then twice more with one input of the 3D heads held
at its mean over the split's frames:

- `probs_2D` held: the 2D path (probs_2D -> fc_probs_2D) carries nothing about the image, the
  3D heads see the image only through fc1_3D. The rise over the trained MPJPE is what the
  heads take from the 2D probabilities that fc1_3D does not give them.
- `fc1_3D` held: the image reaches the 3D heads only through the 2D path.

A held blob is set after the layers that write it (in place: BatchNorm, Scale, ReLU, dropout)
and the net runs on from the layer after them, so everything else is as trained. The mean is
over the frames evaluated, from a first pass; the MPJPE is computed as evaluate_run's (the
run's bone lengths recover the scale; 17 or 16 joints as the run's config says).
"""
import numpy as np

from evaluation.evaluate import (EvaluationError, Protocol, check_poses, deploy_net,
                                 evaluation_batch, predict_split, protocol_samples)
from evaluation.metrics import mpjpe, recover_scale
from prototxt.pose_net import VARIANTS

# the blobs held at their mean, in the order they are probed: the 2D path's input to the
# 3D branch, and the 3D branch's own image feature
HELD_BLOBS = ("probs_2D", "fc1_3D")
# the variants with a 2D path into the 3D regression (VARIANTS: (multi-reg, 2D-cls))
PATH_VARIANTS = tuple(name for name, (_, cls_2d) in VARIANTS.items() if cls_2d)


def writer_span(net, blob):
    """(the last layer that writes `blob`, the layer after it) in the net's order."""
    names = list(net._layer_names)
    last = max(i for i, name in enumerate(names) if blob in net.top_names[name])
    if last + 1 == len(names):
        raise EvaluationError(f"no layer runs after {blob} in the deploy net")
    return names[last], names[last + 1]


def blob_sums(net, sums):
    """A forward(net, frames) for predict_split that also adds each HELD_BLOBS blob's values
    over the batch's sample frames into sums (float64)."""
    def forward(net, frames):
        poses = net.forward()["pose_3D"]
        for name in HELD_BLOBS:
            total = net.blobs[name].data[:frames].sum(axis=0, dtype=np.float64)
            sums[name] = sums.get(name, 0) + total
        return poses
    return forward


def held_at(net, blob, value):
    """A forward(net, frames) for predict_split with `blob` set to `value` (one frame's
    shape) for every frame once its layers have run."""
    last, after = writer_span(net, blob)

    def forward(net, frames):
        net.forward(end=last)
        net.blobs[blob].data[...] = value
        return net.forward(start=after)["pose_3D"]
    return forward


def probe_2d_path(folder, weights=None, split="test", batch_size=16, limit=None, cfg=None,
                  quiet=False):
    """The probe's results dict for a run (a RunFolder) of a variant with the 2D path, its
    latest weights by default: the MPJPE as trained, with each HELD_BLOBS blob at its mean,
    the rise of each over the trained one, and the mean pose's, on every frame of the split
    (the first `limit`). EvaluationError for a variant without the path."""
    variant = folder.variant()
    if variant not in PATH_VARIANTS:
        raise EvaluationError(f"{folder.path} is a {variant} run, which has no 2D path into "
                              f"the 3D regression; probe a run of {' or '.join(PATH_VARIANTS)}")
    cfg = cfg or folder.config()
    protocol = Protocol("all", "all", cfg.evaluation_joints)
    dataset = folder.dataset()
    if split not in dataset.manifest["splits"]:
        raise EvaluationError(f"{dataset.directory} has no {split!r} split")
    samples = protocol_samples(dataset.index(split), protocol, limit)
    weights = weights or folder.latest_weights()
    net = deploy_net(folder.deploy_path, weights, variant)
    batch_size = evaluation_batch(batch_size, len(samples), net, cfg.input_size)
    with_root = protocol.joints == 17

    def error(forward, desc):
        raw, truth, _ = predict_split(net, dataset, split, samples, batch_size,
                                      cfg.input_size, quiet, forward=forward, desc=desc)
        check_poses(raw, weights)
        poses = recover_scale(raw, dataset.bone_lengths_mm, cfg.torso_bones)
        return float(mpjpe(poses, truth, include_root=with_root).mean()), truth

    sums = {}
    trained, truth = error(blob_sums(net, sums), "probe: as trained")
    held = {name: error(held_at(net, name, sums[name] / len(samples)),
                        f"probe: {name} at its mean")[0] for name in HELD_BLOBS}
    floor = mpjpe(np.broadcast_to(dataset.mean_pose_mm, truth.shape), truth,
                  include_root=with_root)
    return {
        "run": str(folder.path), "variant": variant, "weights": str(weights),
        "lmdb": str(dataset.directory), "split": split, "frames": len(samples),
        "protocol": f"{protocol.describe()}; MPJPE frame-weighted, mm",
        "mpjpe_mm": {"as_trained": trained,
                     **{f"{name}_at_mean": value for name, value in held.items()},
                     "mean_pose": float(floor.mean())},
        "rise_mm": {f"{name}_at_mean": value - trained for name, value in held.items()},
    }


def probe_text(results):
    """The printed form of probe_2d_path's results."""
    errors, rises = results["mpjpe_mm"], results["rise_mm"]
    lines = [f"# {results['variant']} run {results['run']}, {results['frames']} frames of "
             f"the {results['split']} split; {results['protocol']}",
             f"{'3D heads see':<42} {'MPJPE':>8} {'rise':>8}",
             f"{'both paths, as trained':<42} {errors['as_trained']:8.1f} {'':>8}"]
    for name, label in (("probs_2D", "fc1_3D only (probs_2D at its mean)"),
                        ("fc1_3D", "the 2D path only (fc1_3D at its mean)")):
        key = f"{name}_at_mean"
        lines.append(f"{label:<42} {errors[key]:8.1f} {rises[key]:+8.1f}")
    lines.append(f"{'(the training mean pose for every frame)':<42} {errors['mean_pose']:8.1f}")
    return "\n".join(lines)
