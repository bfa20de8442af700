"""Evaluation metrics for 3D poses on Human3.6M, in pure numpy.

Poses are arrays (..., 17, 3) in millimetres over the joints of `data_prep.h36m.JOINTS_17`
(joint 0, the pelvis, is the root).

    poses_mm = recover_scale(net_poses, manifest["bone_lengths_mm"])   # section 4 of the paper
    errors = mpjpe(poses_mm, truth)                                    # (N,) protocol 1
    table = summarize(errors, actions)                                 # per action, averages
    print(format_table1(table))

Protocols:
  * MPJPE (protocol 1, the paper's metric): both poses are translated so that their roots
    coincide, then the Euclidean joint errors are averaged. By default over all 17 joints,
    the root's error of 0 included, as the works the paper compares with and today's
    literature report; include_root=False averages over the 16 non-root joints, which gives
    17/16 of the default value.
  * P-MPJPE (protocol 2): the prediction is first aligned to the ground truth by the
    similarity transform (scale, proper rotation, translation) that minimises the squared
    error, then the joint errors are averaged (over all joints by default).

The scale of a network prediction (zero-mean, Frobenius norm 1) is recovered as in section 4:
"the length of connected joints in the estimated shape is equal to the pre-calculated average
length ... we only used the length of joints in the torso."
"""
import numpy as np

from config import PAPER
from data_prep.h36m import ACTIONS, JOINTS_17, PARENTS_17, bone_lengths

# The paper's own results on REAL Human3.6M (MPJPE, mm), not this toolkit's: Table 1, row
# "Our method". Note that the paper's "Average" (117.34) is not exactly the plain mean of its
# 15 per-action values (117.47); both are reproduced as printed.
PAPER_TABLE1 = {
    "Directions": 100.34, "Discussion": 116.19, "Eating": 89.96, "Greeting": 116.49,
    "Phoning": 115.34, "Photo": 149.55, "Posing": 117.57, "Purchases": 106.94,
    "Sitting": 137.21, "SittingDown": 190.82, "Smoking": 105.78, "Waiting": 125.12,
    "WalkDog": 131.90, "Walking": 62.64, "WalkTogether": 96.18, "Average": 117.34,
}

# The paper's ablation on REAL Human3.6M (MPJPE, mm), not this toolkit's: Table 2. baseline:
# one root, 2D classification not fed to the 3D part; multi-reg: several roots; 2d-cls: 2D
# classification results fed to the 3D part; full: both (= Table 1's values).
_TABLE2_ACTIONS = ("Discussion", "Eating", "Greeting", "Phoning", "Photo", "Walking")
PAPER_TABLE2 = {
    variant: dict(zip(_TABLE2_ACTIONS, values)) for variant, values in {
        "baseline": (125.45, 95.21, 120.69, 119.66, 153.76, 72.55),
        "multi-reg": (122.71, 94.67, 119.70, 119.25, 153.54, 71.19),
        "2d-cls": (118.19, 91.39, 118.19, 115.84, 149.97, 64.27),
        "full": (116.19, 89.96, 116.49, 115.34, 149.55, 62.64),
    }.items()
}


def _as_poses(poses, name="poses"):
    """poses as a float array (..., J, 3)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim < 2 or poses.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., joints, 3), got {poses.shape}")
    return poses


def _as_frames(pred, gt):
    """pred and gt as float arrays (N, J, 3) of the same shape (one pose (J, 3) -> N = 1)."""
    pred, gt = _as_poses(pred, "pred"), _as_poses(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ in shape")
    return pred.reshape(-1, *pred.shape[-2:]), gt.reshape(-1, *gt.shape[-2:])


def recover_scale(poses, mean_bone_lengths, torso_bones=PAPER.torso_bones, names=JOINTS_17,
                  parents=PARENTS_17):
    """poses scaled (about the origin), each so that the summed length of its torso bones
    equals the summed training-set mean length of those bones (paper section 4).

    mean_bone_lengths: {child joint name: mean length in mm} (the LMDB manifest's
    "bone_lengths_mm"); torso_bones: the child joints naming the torso bones. A pose whose
    torso bones have zero total length cannot be scaled: ValueError."""
    poses = _as_poses(poses)
    missing = [bone for bone in torso_bones if bone not in mean_bone_lengths]
    if missing:
        raise ValueError(f"mean_bone_lengths lacks the torso bones {missing}")
    torso = [list(names).index(bone) for bone in torso_bones]
    target = float(sum(mean_bone_lengths[bone] for bone in torso_bones))
    predicted = bone_lengths(poses, parents)[..., torso].sum(axis=-1)
    if np.any(predicted <= 0) or not np.all(np.isfinite(predicted)):
        raise ValueError("cannot recover the scale of a pose whose torso bones have zero "
                         f"(or non-finite) total length: {np.count_nonzero(~(predicted > 0))} "
                         "such pose(s)")
    return poses * (target / predicted)[..., None, None]


def root_align(poses, root=0):
    """poses translated so that the root joint is at the origin."""
    poses = _as_poses(poses)
    return poses - poses[..., root:root + 1, :]


def _mean_joint_error(pred, gt, skip_joint=None):
    """Per-frame mean Euclidean joint error (N,), leaving out joint skip_joint if given."""
    errors = np.linalg.norm(pred - gt, axis=-1)
    if skip_joint is not None:
        errors = np.delete(errors, skip_joint, axis=-1)
    return errors.mean(axis=-1)


def mpjpe(pred, gt, root=0, include_root=True):
    """Mean per-joint position error (mm) of each frame after translating both poses so that
    their roots coincide (protocol 1), (N,).

    include_root=True (the default, the literature's convention) averages over all J joints,
    the root counting with its error of 0; include_root=False over the J - 1 non-root joints,
    whose errors are the only informative ones (J / (J - 1) of the default)."""
    pred, gt = _as_frames(pred, gt)
    return _mean_joint_error(root_align(pred, root), root_align(gt, root),
                             None if include_root else root)


def procrustes_align(pred, gt):
    """pred aligned to gt, (N, J, 3): per frame, the similarity transform s * R + t (s >= 0,
    R a rotation with det +1, so no reflection) minimising the summed squared joint error
    (Umeyama 1991: orthogonal Procrustes via SVD with the sign fix). A degenerate prediction
    (all joints at one point) is mapped onto the centroid of gt."""
    pred, gt = _as_frames(pred, gt)
    pred_mean, gt_mean = pred.mean(axis=1, keepdims=True), gt.mean(axis=1, keepdims=True)
    pred_centred, gt_centred = pred - pred_mean, gt - gt_mean
    # Row vectors: gt_centred ~ s * pred_centred @ R with R = U D V^T from the SVD of the
    # cross-covariance pred_centred^T gt_centred = U S V^T, D = diag(1, 1, sign det(U V^T)).
    u, singular, vt = np.linalg.svd(np.swapaxes(pred_centred, 1, 2) @ gt_centred)
    sign = np.sign(np.linalg.det(u @ vt))
    sign[sign == 0] = 1.0
    fix = np.ones_like(singular)
    fix[:, -1] = sign
    rotation = (u * fix[:, None, :]) @ vt
    pred_variance = np.sum(pred_centred ** 2, axis=(1, 2))
    safe_variance = np.where(pred_variance > 0, pred_variance, 1.0)
    scale = np.where(pred_variance > 0, np.sum(singular * fix, axis=1) / safe_variance, 0.0)
    return scale[:, None, None] * pred_centred @ rotation + gt_mean


def p_mpjpe(pred, gt, root=0, include_root=True):
    """Mean per-joint position error (mm) of each frame after procrustes_align (protocol 2),
    (N,); include_root=True (the default) averages over all joints, False over the joints
    other than the root."""
    pred, gt = _as_frames(pred, gt)
    return _mean_joint_error(procrustes_align(pred, gt), gt, None if include_root else root)


def mean_pose(train_poses, root=0):
    """The training set's mean root-aligned pose (J, 3) in mm: the mean-pose baseline predicts
    it for every test frame."""
    train_poses = _as_poses(train_poses)
    return root_align(train_poses.reshape(-1, *train_poses.shape[-2:]), root).mean(axis=0)


def _action_order(actions):
    """The distinct actions, those of ACTIONS in its order, then any others sorted."""
    present = set(actions)
    return [a for a in ACTIONS if a in present] + sorted(present - set(ACTIONS))


def summarize(errors, actions):
    """Per-action and overall means of per-frame errors (N,) labelled by actions (N,):
    {"per_action": {action: mean}, "frame_weighted": mean over all frames,
     "action_wise": mean of the per-action means, "frames": {action: frame count}},
    actions in the order of ACTIONS (only those present). Plain floats and ints (JSON-ready)."""
    errors = np.asarray(errors, dtype=np.float64).reshape(-1)
    actions = np.asarray(actions).reshape(-1)
    if len(errors) != len(actions):
        raise ValueError(f"{len(errors)} errors but {len(actions)} action labels")
    if len(errors) == 0:
        raise ValueError("no frames to summarize")
    order = _action_order(actions.tolist())
    per_action = {a: float(errors[actions == a].mean()) for a in order}
    return {
        "per_action": per_action,
        "frame_weighted": float(errors.mean()),
        "action_wise": float(np.mean(list(per_action.values()))),
        "frames": {a: int(np.count_nonzero(actions == a)) for a in order},
    }


def combine_actions(parts):
    """One summary in summarize's layout from {action: a summary that holds that action},
    each action's mean and frame count taken from its own part (Table 1 of one model per
    action; one model's summary for every action gives its own values again)."""
    order = _action_order(list(parts))
    per_action = {a: float(parts[a]["per_action"][a]) for a in order}
    frames = {a: int(parts[a]["frames"][a]) for a in order}
    total = sum(frames.values())
    return {
        "per_action": per_action,
        "frame_weighted": sum(per_action[a] * frames[a] for a in order) / total,
        "action_wise": float(np.mean(list(per_action.values()))),
        "frames": frames,
    }


def format_table1(summary, baseline_summary=None, baselines=None):
    """A text table in the layout of the paper's Table 1: one line per action
    "MPJPE <action> <ours> [<baselines>...] <paper> <frames>", then the frame-weighted and
    action-wise averages. The paper column holds its results on real Human3.6M.

    baseline_summary: the mean-pose baseline's summary (column "mean_pose"); baselines: more
    baseline columns, {column header: summary}, in order (another dataset's mean pose)."""
    columns = {} if baseline_summary is None else {"mean_pose": baseline_summary}
    columns.update(baselines or {})
    widths = {header: max(10, len(header)) for header in columns}

    def cell(value, width, digits):
        return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"

    def row(label, ours, baseline_values, paper, frames):
        cells = [f"MPJPE {label:<23}", cell(ours, 9, 1)]
        cells += [cell(value, widths[name], 1) for name, value in zip(columns, baseline_values)]
        cells += [cell(paper, 12, 2), f"{frames:>8}"]
        return " ".join(cells)

    header = [f"{'#':<5} {'action':<23}", f"{'ours_mm':>9}"]
    header += [f"{name:>{widths[name]}}" for name in columns]
    header += [f"{'paper_h36m':>12}", f"{'frames':>8}"]
    lines = [" ".join(header)]
    for action, error in summary["per_action"].items():
        lines.append(row(action, error,
                         [base["per_action"].get(action) for base in columns.values()],
                         PAPER_TABLE1.get(action), summary["frames"][action]))
    total = sum(summary["frames"].values())
    lines.append(row("Average(frame-weighted)", summary["frame_weighted"],
                     [base["frame_weighted"] for base in columns.values()], None, total))
    lines.append(row("Average(action-wise)", summary["action_wise"],
                     [base["action_wise"] for base in columns.values()],
                     PAPER_TABLE1["Average"], total))
    return "\n".join(lines)
