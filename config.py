"""Every hyper-parameter of the reimplementation, with the paper's value and where it comes from.

Park, Hwang, Kwak, "3D Human Pose Estimation Using Convolutional Neural Networks with 2D Pose
Information", ECCV Workshops 2016 (arXiv:1608.03075). A comment names the section that gives a
value; `ASSUMPTION` marks a choice the paper does not make (its text gives no feature-map counts
or fc sizes, which only Fig. 1 and 2 show, nor which six joints are the roots, nor the test
frames), and every such choice is a field here.

    cfg = load_config()                                   # the paper's values
    cfg = load_config("my.json", ["batch_size=32"])       # overrides: a JSON file, then key=value
    cfg = PAPER.replace(batch_size=32)

Unknown keys are rejected; values are checked (`Config.validate`), and before a run folder is
written against Caffe's 32-bit iteration counts and this machine (`Config.check_run_limits`).
"""
import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

from data_prep.h36m import JOINTS_17
from solver.schedule import schedule


class ConfigError(ValueError):
    """A configuration that cannot be used, with the key and the fix in its message."""


INT32_LIMIT = 2 ** 31   # Caffe's integer parameters are 32-bit
# ASSUMPTION (engineering): the most data-loader workers per core of the machine that trains
# (loader_workers, all devices together): a worker decodes and augments on one core, so more
# of them add processes or threads and memory, not speed
LOADER_WORKERS_PER_CORE = 4
# the words --set takes for true and false (any other is refused, not taken for false)
BOOL_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


@dataclasses.dataclass(frozen=True)
class Config:
    # ---- pose representation
    num_joints: int = 17                 # Nj = 17 [sec. 3]
    grid_size: int = 16                  # Ng = 16: the 2D pose is Ng x Ng classes per joint [sec. 4]
    # ASSUMPTION (Fig. 3b, not in the text): pelvis, neck, right knee, left knee, left elbow,
    # right elbow, "so that most joints can either be the root node or their neighbor nodes"
    # [sec. 3.3]: with this choice every joint is a root or a neighbour of one.
    root_joints: tuple = (0, 9, 2, 5, 12, 15)
    single_root: int = 0                 # the baseline's one root "around the position of the hip" [sec. 3.3]

    # ---- input
    crop_size: int = 250                 # person crops resized to 250 x 250 [sec. 4]
    # ASSUMPTION: the square crop around the segmentation box is this much larger than the
    # box's longer side ("a person is located around the center of an image" [sec. 4])
    crop_margin: float = 0.2
    # ASSUMPTION: JPEG quality of the crops stored in the image LMDB
    jpeg_quality: int = 95
    input_size: int = 225                # random (train) / centre (test) 225 x 225 crop [sec. 3.1, 4]
    # "Data augmentation based on the principal component analysis of training images [25]"
    # [sec. 4]; ASSUMPTION: [25]'s (AlexNet's) strength, alpha_i ~ N(0, 0.1)
    pca_std: float = 0.1
    # ASSUMPTION: seed of the data layer's shuffles, random crops and colour shifts (a batch
    # depends only on it and its index)
    data_seed: int = 0

    # ---- network: ZFNet filter sizes and strides with fewer feature maps [sec. 3.1, Fig. 1]
    conv_kernels: tuple = (7, 5, 3, 3, 3)      # ZFNet [sec. 3.1]
    conv_strides: tuple = (2, 2, 1, 1, 1)      # ZFNet [sec. 3.1]
    conv_pads: tuple = (1, 0, 1, 1, 1)         # ZFNet (conv1 pad 1, conv3-5 pad 1)
    # ASSUMPTION (Fig. 1's numbers are lost): half of ZFNet's 96, 256, 384, 384, 256
    conv_channels: tuple = (48, 128, 192, 192, 128)
    pool_after: tuple = (0, 1, 4)              # three 3x3 stride-2 max-poolings after conv1, conv2, conv5 (ZFNet) [sec. 3.1]
    pool_kernel: int = 3                       # ZFNet
    pool_stride: int = 2                       # ZFNet
    # ASSUMPTION (Fig. 2's numbers are lost): widths of the hidden fc layers
    fc_2d_width: int = 1024                    # fc1_2D
    fc_3d_width: int = 1024                    # fc1_3D
    fc_probs_2d_width: int = 256               # fc_probs_2D
    dropout_ratio: float = 0.3                 # dropout on every fc layer [sec. 4]
    # ASSUMPTION (the paper gives no initialisation): MSRA for the convolutions and hidden fc
    # layers, Gaussians of these standard deviations for the output layers. The 3D heads
    # start small: with 0.01 their random outputs made the first 200 iterations of a short
    # run (batch 32) mostly undo the initial 3D loss, 30 times the mean pose's.
    init_std_2d_scores: float = 0.01           # fc2_2D
    init_std_3d_heads: float = 0.001           # fc2_3D_root<r>
    # ASSUMPTION (the paper gives one learning rate): the 3D heads learn at this multiple of
    # it. A head's step moves its output by about lr x |f|^2 times the error, and its input f
    # (1280 BatchNorm-ed, rectified features) has |f|^2 near 900, so at the full rate of
    # 0.01 the step overshoots (9 > 2 (1 + momentum)) and the 3D loss grew for the first
    # iterations until BatchNorm's scales shrank; at 0.1 x it is stable from the start.
    lr_mult_3d_heads: float = 0.1
    # ASSUMPTION: BatchNorm and dropout follow the hidden fc layers, not the output layers
    # (fc2_2D scores, fc2_3D regressions), where they would distort the targets.
    batchnorm_moving_average: float = 0.999    # ASSUMPTION: Caffe's BatchNorm default

    # ---- losses [sec. 3, eq. 5-6; sec. 4]
    lambda_2d: float = 0.1                     # lambda_2D, epochs 0-16 [sec. 4]
    lambda_2d_late: float = 0.01               # lambda_2D after epoch 16 [sec. 4]
    lambda_2d_switch_epoch: float = 16.0       # [sec. 4]; epoch-valued fields may be fractional
    lambda_3d: float = 0.5                     # lambda_3D [sec. 4]

    # ---- solver [sec. 4]
    batch_size: int = 128                      # [sec. 4]
    base_lr: float = 0.01                      # [sec. 4]
    lr_gamma: float = 0.5                      # "decreased by a factor of 0.5" [sec. 4]
    lr_step_epochs: float = 4.0                # "for every 4 epochs" [sec. 4]
    epochs: float = 28.0                       # [sec. 4]
    momentum: float = 0.9                      # [sec. 4]
    weight_decay: float = 0.001                # [sec. 4]
    random_seed: int = 1                       # ASSUMPTION: any fixed seed, for reproducibility
    snapshot_epochs: float = 4.0               # ASSUMPTION: a snapshot every 4 epochs and at the end
    display_iters: int = 20                    # ASSUMPTION: loss printed every 20 iterations
    test_epochs: float = 4.0                   # test losses "measured every 4 epochs" [sec. 5, Fig. 4]
    # ASSUMPTION: test images in each of the solver's test passes (the first ones in key
    # order); 0 = the whole test split
    test_images: int = 0

    # ---- scale recovery [sec. 4]: "we only used the length of joints in the torso"
    # ASSUMPTION: which torso bones (named by their child joint): pelvis-hips, pelvis-spine,
    # spine-thorax, thorax-shoulders (the paper names none; bones of data_prep/h36m.PARENTS_17)
    torso_bones: tuple = ("RHip", "LHip", "Spine", "Thorax", "LShoulder", "RShoulder")

    # ---- evaluation protocol
    # ASSUMPTION (the paper says MPJPE without the joints averaged over): MPJPE and P-MPJPE
    # averaged over all 17 joints after root alignment (the root's error of 0 included), as
    # the works the paper compares with and today's literature do (e.g. VideoPose3D, Pavllo et
    # al., CVPR 2019); 16: over the non-root joints only (17/16 of the 17-joint figure)
    evaluation_joints: int = 17

    # ---- data loading (layers/h36m_data.py): how the training batches are prepared, never
    # what they hold (a batch depends only on the seed and its index)
    # ASSUMPTION (engineering): workers preparing training batches; 0 = one per core left to
    # each GPU's process, at least 2
    loader_workers: int = 0
    # ASSUMPTION (engineering): worker processes instead of threads for the training batches
    # (threads share the GIL and cannot feed a GPU; docs/BENCHMARKS.md)
    loader_processes: bool = True
    # ASSUMPTION (engineering): training batches prepared ahead
    loader_prefetch: int = 4

    # ---- random-data nets (before the LMDB data layer exists, and for smoke runs)
    # ASSUMPTION: plausible ranges for DummyData joints (pixels of the input, mm).
    dummy_pose_std_mm: float = 300.0

    def replace(self, **changes):
        return dataclasses.replace(self, **changes).validate()

    def validate(self):
        def need(ok, message):
            if not ok:
                raise ConfigError(f"config: {message}")
        for field in dataclasses.fields(self):
            values = getattr(self, field.name)
            for value in values if isinstance(values, tuple) else (values,):
                need(not isinstance(value, float) or math.isfinite(value),
                     f"{field.name} must be a finite number, got {value}")
                # Caffe's parameters are 32-bit integers (protobuf refuses larger ones later,
                # without naming the key)
                need(not isinstance(value, int) or -INT32_LIMIT <= value < INT32_LIMIT,
                     f"{field.name} must fit in 32 bits, got {value}")
        need(self.num_joints == len(JOINTS_17), f"num_joints must be {len(JOINTS_17)} "
             "(the Human3.6M joint set)")
        need(len(set(self.root_joints)) == len(self.root_joints) >= 1,
             f"root_joints must be distinct, got {self.root_joints}")
        need(all(0 <= r < self.num_joints for r in self.root_joints + (self.single_root,)),
             "root_joints and single_root must index the 17 joints")
        need(0 < self.input_size <= self.crop_size, "need 0 < input_size <= crop_size")
        need(self.pca_std >= 0 and self.data_seed >= 0, "pca_std and data_seed must be >= 0")
        # Caffe takes a negative random_seed for "seed from the system": not reproducible
        need(self.random_seed >= 0, "random_seed must be >= 0")
        need(self.crop_margin >= 0, "crop_margin must be >= 0")
        need(1 <= self.jpeg_quality <= 100, "jpeg_quality must be within 1 and 100")
        need(set(self.torso_bones) <= set(JOINTS_17[1:]) and self.torso_bones,
             "torso_bones name non-root joints (at least one)")
        need(self.evaluation_joints in (16, 17), "evaluation_joints must be 17 (all joints) "
             "or 16 (the non-root ones)")
        need(2 <= self.grid_size <= self.input_size, "grid_size must be at least 2 and at most "
             "input_size (a cell of at least a pixel)")
        layers = len(self.conv_channels)
        need(len(self.conv_kernels) == len(self.conv_strides) == len(self.conv_pads) == layers,
             "conv_kernels, conv_strides, conv_pads and conv_channels need one entry per conv")
        need(all(0 <= p < layers for p in self.pool_after), "pool_after indexes conv layers")
        # sizes Caffe would refuse by aborting the process that builds the net
        need(min(self.conv_kernels + self.conv_strides + self.conv_channels, default=1) >= 1
             and min(self.conv_pads, default=0) >= 0, "conv_kernels, conv_strides and "
             "conv_channels must be >= 1, conv_pads >= 0")
        need(min(self.pool_kernel, self.pool_stride) >= 1, "pool_kernel and pool_stride must "
             "be >= 1")
        need(min(self.fc_2d_width, self.fc_3d_width, self.fc_probs_2d_width) >= 1,
             "fc_2d_width, fc_3d_width and fc_probs_2d_width must be >= 1")
        need(0 <= self.batchnorm_moving_average <= 1, "batchnorm_moving_average must be in "
             "[0, 1]")
        need(0 <= self.dropout_ratio < 1, "dropout_ratio must be in [0, 1)")
        need(self.lr_mult_3d_heads > 0, "lr_mult_3d_heads must be positive")
        need(self.init_std_2d_scores > 0 and self.init_std_3d_heads > 0,
             "init_std_2d_scores and init_std_3d_heads must be positive")
        need(min(self.lambda_2d, self.lambda_2d_late, self.lambda_3d) >= 0,
             "lambda_2d, lambda_2d_late and lambda_3d must be >= 0")
        need(self.batch_size >= 1 and min(self.epochs, self.lr_step_epochs,
                                           self.snapshot_epochs, self.test_epochs) > 0,
             "batch_size, epochs, lr_step_epochs, snapshot_epochs and test_epochs must be "
             "positive")
        need(self.test_images >= 0, "test_images must be >= 0 (0: the whole test split)")
        need(self.loader_workers >= 0 and self.loader_prefetch >= 1,
             "loader_workers must be >= 0 (0: automatic) and loader_prefetch >= 1")
        need(0 <= self.lambda_2d_switch_epoch <= self.epochs,
             "lambda_2d_switch_epoch must lie within the epochs")
        need(self.base_lr > 0 and 0 < self.lr_gamma <= 1, "base_lr > 0 and 0 < lr_gamma <= 1")
        need(0 <= self.momentum < 1 and self.weight_decay >= 0,
             "momentum must be in [0, 1) and weight_decay >= 0")
        need(self.display_iters >= 1, "display_iters must be >= 1")
        need(self.dummy_pose_std_mm > 0, "dummy_pose_std_mm must be positive")
        return self

    def check_run_limits(self, train_size, devices=1):
        """self, for a training run on train_size images over `devices` (GPUs; 1: the CPU);
        ConfigError naming the key where Caffe's 32-bit iteration counts or this machine
        cannot hold it (validate checks what holds on any machine). Called before a run
        folder is written, so that a refused config leaves none behind."""
        self._check_iterations(train_size)
        self._check_loader(devices)
        return self

    def _check_iterations(self, train_size):
        """ConfigError naming the epoch-valued key whose iterations pass Caffe's int32 (the
        solver's max_iter, stepsize, snapshot, test_interval)."""
        plan = schedule(self, train_size)
        for key, iterations in (("epochs", plan.max_iter), ("lr_step_epochs", plan.lr_step),
                                ("snapshot_epochs", plan.snapshot),
                                ("test_epochs", plan.test_interval)):
            if iterations >= INT32_LIMIT:
                raise ConfigError(
                    f"config: {key}={getattr(self, key):g} makes {iterations} iterations "
                    f"({plan.per_epoch} per epoch: {train_size} training images, batch_size "
                    f"{self.batch_size}), more than Caffe's 32-bit iteration count holds "
                    f"({INT32_LIMIT - 1}); choose {key} <= {(INT32_LIMIT - 1) // plan.per_epoch}")

    def _check_loader(self, devices):
        """ConfigError naming the loader keys when the training data loaders (one per device)
        ask for more workers than LOADER_WORKERS_PER_CORE per core of this machine, or for
        batches that neither the memory nor the folders of their slots can hold."""
        # the data layer imports Caffe, which config's other users need not load
        from layers.h36m_data import auto_workers, room_problem
        cores = os.cpu_count() or 1
        most = LOADER_WORKERS_PER_CORE * cores // devices
        if self.loader_workers > most:
            on = f" on each of {devices} devices" if devices > 1 else ""
            raise ConfigError(
                f"config: loader_workers={self.loader_workers}{on} is more than "
                f"{LOADER_WORKERS_PER_CORE} per core of this machine's {cores}; choose "
                f"loader_workers <= {most}, or 0 (one per core left to each device)")
        workers = self.loader_workers or auto_workers(devices)
        problem = room_problem(self.batch_size // devices, self.input_size, workers,
                               self.loader_prefetch, self.loader_processes, loaders=devices)
        if problem:
            kind = "processes" if self.loader_processes else "threads"
            each = f", a loader on each of {devices} devices" if devices > 1 else ""
            raise ConfigError(
                f"config: loader_workers={self.loader_workers}, loader_prefetch="
                f"{self.loader_prefetch}, batch_size={self.batch_size} (worker {kind}{each}): "
                f"{problem}; lower loader_prefetch, loader_workers or batch_size")

    def to_dict(self):
        return dataclasses.asdict(self)


PAPER = Config().validate()

# The keys each stage reads besides the network's: a --set of any other key given to that
# stage would change nothing there, so it is refused (stage_overrides).
LMDB_KEYS = frozenset({"crop_size", "crop_margin", "jpeg_quality"})   # make_lmdb
EVALUATION_KEYS = frozenset({"torso_bones", "evaluation_joints"})      # evaluate, predict

# Training schedules, applied over PAPER (then a config file and key=value overrides).
SCHEDULES = {
    "paper": {},                               # section 4 as it is
    # ASSUMPTION, for two CPU cores: the paper's network and losses; only the epochs, the
    # batch and the learning-rate steps shrink (a smaller batch: more updates in the same
    # time). BatchNorm's running statistics forget faster, since with 0.999 a 400-iteration
    # run tested far worse than it trained (they still averaged the first iterations'
    # activations). 6 epochs of the synthetic set (5,400 iterations, about 17 min on two
    # cores), the learning rate halved at epoch 3, lambda_2D switched at epoch 4.5. With real
    # motion capture in half the training recordings, 4 epochs gave 0.61x the mean pose's
    # MPJPE on the real-motion test set; with 40 %, 6 epochs gave 0.58x (docs/RESULTS.md; one
    # run each).
    "demo": {"batch_size": 16, "epochs": 6.0, "lr_step_epochs": 3.0,
             "lambda_2d_switch_epoch": 4.5, "snapshot_epochs": 3.0, "display_iters": 20,
             "test_epochs": 1.0, "test_images": 960, "batchnorm_moving_average": 0.98},
    # ASSUMPTION, for Table 2 with seeds on two CPU cores (`make ablation SEEDS=3`, the default
    # schedule there: twelve trainings of 7.5-9 min on the six actions' 5,760 crops, about
    # 1 h 40 min with the evaluations): the demo's batch and BatchNorm; 6 epochs, the learning
    # rate halved every 1.5 epochs (three times), lambda_2D switched at 16/28 of the way
    # (epoch 3.4) as the paper's at epoch 16 of 28
    "ablation": {"batch_size": 16, "epochs": 6.0, "lr_step_epochs": 1.5,
                 "lambda_2d_switch_epoch": 3.4, "snapshot_epochs": 1.5, "display_iters": 20,
                 "test_epochs": 0.75, "test_images": 960, "batchnorm_moving_average": 0.98},
}


def parse_value(field, text):
    """A command-line value for `field`, typed like its default."""
    default = field.default
    if isinstance(default, tuple):
        return tuple(type(default[0])(v) for v in text.split(",") if v.strip())
    if isinstance(default, bool):
        if text.lower() not in BOOL_WORDS:
            raise ValueError(text)
        return BOOL_WORDS[text.lower()]
    return type(default)(text)


def _kind(field):
    """The type of a field's values, in words."""
    if isinstance(field.default, tuple):
        return f"comma-separated {type(field.default[0]).__name__}s"
    return type(field.default).__name__


def _typed_value(field, text):
    try:
        return parse_value(field, text)
    except ValueError:
        raise ConfigError(f"config: {field.name}={text!r} is not of type {_kind(field)} "
                          f"(default: {field.default!r})") from None


def _of_type(example, value):
    """Whether a JSON value has the type of a field's default `example`: true is no number, an
    integer is a float."""
    if isinstance(example, bool) or isinstance(value, bool):
        return isinstance(example, bool) and isinstance(value, bool)
    if isinstance(example, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(example))


def _checked_value(field, value):
    """A value given as JSON (a config file, a run's config.json) for `field`, checked against
    the type of its default; ConfigError naming the key otherwise."""
    default = field.default
    if isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and all(_of_type(default[0], v) for v in value)
    else:
        ok = _of_type(default, value)
    if not ok:
        raise ConfigError(f"config: {field.name}={value!r} is not of type {_kind(field)} "
                          f"(default: {field.default!r})")
    return value


def apply_overrides(cfg, overrides):
    """overrides: a dict, or a list of "key=value" strings; unknown keys raise ConfigError."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    if not isinstance(overrides, dict):
        pairs = {}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"config: override {item!r} is not key=value")
            pairs[key.strip()] = value.strip()
        overrides = {k: _typed_value(fields[k], v) if k in fields else v for k, v in pairs.items()}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"config: unknown keys {unknown}; known keys: {sorted(fields)}")
    for key, value in overrides.items():
        _checked_value(fields[key], value)
    typed = {k: tuple(v) if isinstance(fields[k].default, tuple) else v
             for k, v in overrides.items()}
    return cfg.replace(**typed)


def whole_number(minimum, unit=""):
    """An argparse type: a whole number of at least `minimum` (`unit` names it in the error,
    e.g. "seed")."""
    def parse(text):
        try:
            count = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if count < minimum:
            raise argparse.ArgumentTypeError(f"need at least {minimum}{' ' + unit if unit else ''}"
                                             f", got {count}")
        return count
    return parse


# what each schedule is for, as a command's --help names it
SCHEDULE_PURPOSES = {"paper": "section 4", "demo": "short, for two CPU cores",
                     "ablation": "Table 2 with seeds on two CPU cores"}


def add_schedule_argument(parser, default="paper"):
    """A command's --schedule: the name of one of SCHEDULES."""
    named = ", ".join(f"{name} ({SCHEDULE_PURPOSES.get(name, 'config.py')})"
                      for name in SCHEDULES)
    parser.add_argument("--schedule", default=default, choices=list(SCHEDULES),
                        help=f"config.SCHEDULES: {named}; default: %(default)s")


def add_config_arguments(parser, set_help, config_file=True):
    """A command's --config (a JSON file of overrides) and --set key=value flags."""
    if config_file:
        parser.add_argument("--config", type=Path, help="JSON file of config overrides")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help=set_help)


def stage_overrides(stage, keys, overrides):
    """The key=value overrides of a stage that reads only `keys`; ConfigError for the others."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in keys:
            known = {f.name for f in dataclasses.fields(Config)}
            why = "is no config key" if key not in known else "changes nothing there"
            raise ConfigError(f"config: {stage} --set {key}: {key!r} {why}; {stage} reads "
                              f"{', '.join(sorted(keys))}")
    return list(overrides)


def load_config(path=None, overrides=()):
    """The paper's configuration, updated by a JSON file and then by key=value overrides."""
    cfg = PAPER
    if path is not None:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"config: cannot read {path}: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config: {path} must hold a JSON object of key: value, got "
                              f"{type(data).__name__}")
        try:
            cfg = apply_overrides(cfg, data)
        except ConfigError as err:
            raise ConfigError(f"config: {path}: {str(err).removeprefix('config: ')}") from None
    return apply_overrides(cfg, list(overrides))



def schedule_config(schedule="paper", path=None, overrides=()):
    """The paper's configuration updated by a JSON file, then by a schedule of SCHEDULES,
    then by key=value overrides."""
    return apply_overrides(load_config(path).replace(**SCHEDULES[schedule]), list(overrides))
