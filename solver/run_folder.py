"""A training run's folder: the one place a run lives, from its nets to its results.

    <run>/config.json        variant, dataset folder, its sizes, the GPUs, the whole config
    <run>/train.prototxt     the variant's nets, reading the dataset (prototxt/pose_net.py)
    <run>/test.prototxt
    <run>/deploy.prototxt
    <run>/solver.prototxt    the paper's solver for the whole schedule (solver/pose_solver.py)
    <run>/snapshots/         iter_iter_<N>.caffemodel and .solverstate (Caffe's names)
    <run>/logs/train.log     Caffe's log, each resume appended (tools/train.py)
    <run>/results.json ...   evaluation/ writes its results and figures here

prepare_run writes (or checks) the folder; `make solver` also points solver/h36m.prototxt at
its solver (link_solver), so that `caffe train -solver solver/h36m.prototxt` trains this run
and `python tools/evaluate.py` finds it (default_run). Paths inside the files are absolute:
`caffe train` may run from anywhere. A run moved (or copied to another machine) still knows
its dataset: config.json also records the dataset's path relative to the run folder and its
manifest's fingerprint, and preparing the run again (`make solver`, tools/train.py) rewrites
the paths for the folder's new place, the newest .solverstate's included.
"""
import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
from pathlib import Path

from google.protobuf import text_format

from built_folders import (FolderError, build_lock, check_replaceable, temporary_file,
                           whole_file, write_whole)
from caffe.proto import caffe_pb2
from config import LMDB_KEYS, PAPER, ConfigError, apply_overrides
from data_prep.dataset import Dataset
from prototxt.pose_net import VARIANTS, gpu_batch, write_net
from solver.pose_solver import make_solver
from solver.schedule import schedule

SOLVER_LINK = Path("solver/h36m.prototxt")
SNAPSHOT_PREFIX = "snapshots/iter"      # Caffe adds _iter_<N>.caffemodel / .solverstate
# config.json keys that may differ on a rerun: the devices (the train net is rewritten for them)
RERUN_MAY_CHANGE = {"gpus"}
# and where the dataset lies, when its fingerprint shows it is the same one (moved)
DATASET_PLACE = {"dataset", "dataset_relative"}


class RunError(ValueError):
    """A run folder that cannot be used as asked, with the fix in the message."""


@dataclasses.dataclass(frozen=True)
class RunFolder:
    path: Path
    # the run's dataset found elsewhere than config.json says (tools' --lmdb): it must be the
    # same dataset, moved (its fingerprint is checked)
    dataset_dir: Path | None = None

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))   # a str is welcome too

    @property
    def config_path(self):
        return self.path / "config.json"

    @property
    def solver_path(self):
        return self.path / "solver.prototxt"

    @property
    def deploy_path(self):
        return self.path / "deploy.prototxt"

    @property
    def log_path(self):
        return self.path / "logs" / "train.log"

    @property
    def snapshots(self):
        return self.path / "snapshots"

    def description(self):
        """config.json as a dict of the keys run_description writes, "config" an object and
        "dataset" a path; RunError naming the file otherwise (no run, or a damaged file)."""
        try:
            description = json.loads(self.config_path.read_text())
        except FileNotFoundError:
            raise RunError(f"{self.path} is not a run folder (no config.json): prepare it with "
                           "`make solver` or train with tools/train.py") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise self._damaged(f"is unreadable ({error})") from None
        if not isinstance(description, dict):
            raise self._damaged(f"holds a {type(description).__name__}, not an object")
        missing = sorted(DESCRIPTION_KEYS - set(description))
        if missing:
            raise self._damaged(f"lacks {', '.join(missing)}")
        if not isinstance(description["config"], dict):
            raise self._damaged("has a \"config\" that is not an object of key: value")
        if not isinstance(description["dataset"], str):
            raise self._damaged("has a \"dataset\" that is not a path")
        for key in DATASET_RECORD:
            if key in description and not isinstance(description[key], str):
                raise self._damaged(f"has a \"{key}\" that is not a string")
        return description

    def _damaged(self, problem):
        return RunError(f"{self.config_path} {problem}; prepare the run again with --force")

    def config(self):
        """The run's Config; RunError naming config.json for a value that is not one."""
        try:
            return apply_overrides(PAPER, self.description()["config"])
        except ConfigError as error:
            raise self._damaged(str(error).removeprefix("config: ")) from None

    def dataset(self):
        """The Dataset the run trains on: at dataset_dir when given, else where config.json
        names it, else at the path it records relative to the run folder (a run moved with its
        dataset, as a copied repository moves them). Each place's dataset must have the
        fingerprint config.json records. RunError naming config.json when none will do
        (moved elsewhere, removed, damaged or rebuilt otherwise), with the fix."""
        description = self.description()
        if self.dataset_dir is not None:
            places = [Path(self.dataset_dir)]
        else:
            places = [Path(description["dataset"])]
            if isinstance(description.get("dataset_relative"), str):
                places.append(self.path / description["dataset_relative"])
        recorded, problems = description.get("dataset_fingerprint"), []
        for place in dict.fromkeys(Path(os.path.abspath(p)) for p in places):
            try:
                dataset = Dataset(place)
            except ValueError as error:
                problems.append(str(error))
                continue
            if recorded is None or dataset.fingerprint == recorded:
                return dataset
            problems.append(f"dataset {place} is not the one the run was prepared for (its "
                            "manifest differs: rebuilt since, or another dataset)")
        fix = ("give the dataset's folder with --lmdb" if self.dataset_dir is None else
               "give the folder of the dataset the run was prepared for")
        raise RunError("; ".join(problems) + f"\n  (the dataset of the run in "
                       f"{self.config_path}; moved? {fix})")

    def variant(self):
        return self.description()["variant"]

    def schedule(self):
        return schedule(self.config(), self.description()["train_size"])

    def solver(self):
        """The run's SolverParameter."""
        solver = caffe_pb2.SolverParameter()
        text_format.Merge(self.solver_path.read_text(), solver)
        return solver

    def _snapshots(self, suffix):
        found = []
        for path in self.snapshots.glob(f"*_iter_*{suffix}"):
            match = re.search(rf"_iter_(\d+){re.escape(suffix)}$", path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest_state(self):
        """(iteration, path) of the newest complete .solverstate (with its caffemodel), or
        None. A snapshot cut short by a kill is passed over for the one before it."""
        return next(((iteration, path) for iteration, path
                     in reversed(self._snapshots(".solverstate")) if complete_snapshot(path)),
                    None)

    def set_aside_from(self, iteration):
        """Move the snapshots of `iteration` and later into snapshots/diverged/ (their weights
        gave a non-finite loss), out of reach of resume and evaluation; returns their new
        paths."""
        moved = []
        for suffix in (".caffemodel", ".solverstate"):
            for found, path in self._snapshots(suffix):
                if found >= iteration:
                    (self.snapshots / "diverged").mkdir(exist_ok=True)
                    moved.append(path.rename(self.snapshots / "diverged" / path.name))
        return moved

    def point_state_at_its_model(self):
        """Make the newest complete .solverstate name the caffemodel beside it, if it names
        another path: Caffe's resume reads the weights from the path the state names, which
        after a move is the old place (gone, or another run's). Rewritten whole."""
        latest = self.latest_state()
        if latest is None:
            return
        path = latest[1]
        state = caffe_pb2.SolverState()
        state.ParseFromString(path.read_bytes())
        beside = str(path.parent.resolve() / Path(state.learned_net).name)
        if state.learned_net != beside:
            state.learned_net = beside
            write_whole(path, state.SerializeToString())

    def latest_weights(self):
        """The newest complete .caffemodel; RunError when there is none."""
        for _, path in reversed(self._snapshots(".caffemodel")):
            if complete_model(path):
                return path
        raise RunError(f"no complete caffemodel in {self.snapshots}: train first "
                       f"(`caffe train -solver {self.solver_path}` or tools/train.py)")


def complete_model(path):
    """Whether a .caffemodel reads whole (a kill while Caffe writes one leaves it cut short,
    which protobuf refuses or reads without its last layers' weights)."""
    model = caffe_pb2.NetParameter()
    try:
        model.ParseFromString(Path(path).read_bytes())
    except Exception:   # protobuf's DecodeError, or a file gone meanwhile
        return False
    return bool(model.layer) and not short_blobs(model)


def short_blobs(model):
    """(layer name, blob index, values held, values its shape needs) of every blob of a
    NetParameter whose values do not fill its shape (Caffe aborts on such a blob)."""
    return [(layer.name, index, _values(blob), math.prod(blob.shape.dim))
            for layer in model.layer for index, blob in enumerate(layer.blobs)
            if not _whole(blob)]


def _values(blob):
    return len(blob.data) or len(blob.double_data)


def _whole(blob):
    return _values(blob) == math.prod(blob.shape.dim)


def complete_snapshot(path):
    """Whether a .solverstate reads whole and its caffemodel does too (Caffe writes the
    caffemodel first, then the solverstate that names it)."""
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(Path(path).read_bytes())
    except Exception:
        return False
    # Caffe writes both files beside each other (the snapshot prefix): look there; and its
    # Restore aborts on a history (momentum) blob of fewer values than its shape
    return (state.HasField("iter") and all(_whole(blob) for blob in state.history)
            and complete_model(Path(path).parent / Path(state.learned_net).name))


@contextlib.contextmanager
def locked(run):
    """Hold the run folder's lock (<run>.lock beside it, so that --force may replace the
    folder; built_folders.build_lock) while the block runs; RunError at once, naming the
    process, when another one holds it."""
    try:
        with build_lock(run, what="in use"):
            yield
    except FolderError as err:
        raise RunError(str(err)) from None


# The keys every run's config.json has (run_description), and those that runs prepared before
# the dataset's relative path and fingerprint were recorded lack.
DESCRIPTION_KEYS = {"variant", "dataset", "train_size", "test_size", "gpus", "config"}
DATASET_RECORD = ("dataset_relative", "dataset_fingerprint")


def run_description(cfg, variant, dataset, gpus, run):
    """config.json's content for a run in folder `run` (absolute)."""
    place = dataset.directory.resolve()
    return {"variant": variant, "dataset": str(place),
            "dataset_relative": os.path.relpath(place, run),
            "dataset_fingerprint": dataset.fingerprint,
            "train_size": dataset.count("train"), "test_size": dataset.count("test"),
            "gpus": list(gpus), "config": cfg.to_dict()}


def _differences(old, new):
    """The keys (config keys by name) in which two descriptions differ; the dataset's place
    only where the old one has no fingerprint to tell whether it is the same dataset."""
    may_change = RERUN_MAY_CHANGE | {"config"}
    may_change |= DATASET_PLACE if "dataset_fingerprint" in old else set(DATASET_RECORD)
    keys = [k for k in set(old) | set(new) if k not in may_change and old.get(k) != new.get(k)]
    old_cfg, new_cfg = old.get("config", {}), json.loads(json.dumps(new["config"]))
    keys += [f"config.{k}" for k in set(old_cfg) | set(new_cfg) if old_cfg.get(k) != new_cfg.get(k)]
    return sorted(keys)


def check_dataset_settings(cfg, dataset):
    """RunError unless the config's crop settings (LMDB_KEYS) are those the dataset was built
    with: the run's config.json must describe the data it trains on."""
    for key in sorted(LMDB_KEYS):
        built = dataset.manifest.get(key)
        if built is not None and built != getattr(cfg, key):
            raise RunError(f"config {key} {getattr(cfg, key)} but {dataset.directory} was "
                           f"built with {built}: give `--set {key}={built}` (the data's "
                           f"value), or build the dataset with `make lmdb LMDB_FLAGS=\"--set "
                           f"{key}={getattr(cfg, key)}\"`")


# what prepare_run writes before config.json, its last file, and the temporary files a kill
# while writing one leaves: a folder holding no more than these is a run whose preparation was
# interrupted
_RUN_FILES = ("train.prototxt", "test.prototxt", "deploy.prototxt", "solver.prototxt")
RUN_ENTRIES = {*_RUN_FILES, "snapshots", "logs",
               *(temporary_file(name).name for name in (*_RUN_FILES, "config.json"))}


def _check_replaceable(path, force):
    try:
        check_replaceable(path, "run", force)
    except FolderError as err:
        raise RunError(str(err)) from None


def prepare_run(run, cfg, variant, dataset_dir, gpus=(), force=False):
    """Write the run folder's nets, solver and config.json for training `variant` on the
    dataset; returns its RunFolder. An existing run of the same configuration is kept (its
    snapshots and logs; the train net is rewritten for `gpus`), its paths written for where
    the run and the dataset lie now (the same dataset moved: an equal fingerprint); one of
    another configuration is refused, or with force removed first."""
    if variant not in VARIANTS:
        raise RunError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    dataset = Dataset(dataset_dir)
    check_dataset_settings(cfg, dataset)
    gpu_batch(cfg, max(1, len(gpus)))   # refuses a batch that does not split, before writing
    # and what Caffe's iteration counts or this machine cannot hold (ConfigError naming the key)
    cfg.check_run_limits(dataset.count("train"), max(1, len(gpus)))
    folder = RunFolder(Path(run).resolve())
    description = run_description(cfg, variant, dataset, gpus, folder.path)
    if folder.config_path.exists():
        differences = _differences(folder.description(), description)
        if differences and not force:
            raise RunError(f"{run} holds a run of another configuration (differs in "
                           f"{', '.join(differences)}): choose another run folder, or pass "
                           "--force to replace it")
        if differences:
            _check_replaceable(folder.path, force)
            shutil.rmtree(folder.path)
    elif folder.path.exists() and not set(os.listdir(folder.path)) <= RUN_ENTRIES:
        _check_replaceable(folder.path, force)   # a folder that is not a run: refused
    for sub in (folder.path, folder.snapshots, folder.log_path.parent):
        sub.mkdir(parents=True, exist_ok=True)
    data, train_size = str(dataset.directory.resolve()), dataset.count("train")
    share = max(1, len(gpus))
    write_net(folder.path / "train.prototxt", cfg, variant, "train", data=data, gpus=share,
              train_size=train_size)
    write_net(folder.path / "test.prototxt", cfg, variant, "test", data=data,
              train_size=train_size)
    write_net(folder.deploy_path, cfg, variant, "deploy", train_size=train_size)
    solver = make_solver(cfg, folder.path / "train.prototxt", folder.path / SNAPSHOT_PREFIX,
                         train_size, test_net=folder.path / "test.prototxt",
                         test_size=dataset.count("test"))
    write_whole(folder.solver_path, str(solver))
    write_whole(folder.config_path, json.dumps(description, indent=2) + "\n")
    folder.point_state_at_its_model()
    return folder


def link_solver(solver_path, link=SOLVER_LINK):
    """Point `link` (solver/h36m.prototxt) at a run's solver by a relative symbolic link."""
    link = Path(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    with whole_file(link) as tmp:
        tmp.symlink_to(os.path.relpath(Path(solver_path).resolve(), link.parent.resolve()))


def default_run(link=SOLVER_LINK):
    """The run that `link` (solver/h36m.prototxt) points at: what `caffe train -solver
    solver/h36m.prototxt` trains. RunError when there is no such link."""
    link = Path(link)
    if not link.exists():
        raise RunError(f"no run given and no {link}: name a run folder (--run), or prepare "
                       "one with `make solver` (or `make lmdb`, which writes it the first time)")
    return RunFolder(link.resolve().parent)


def find_run(run=None, dataset_dir=None):
    """The RunFolder a tool acts on: `run`, or default_run() when it is None; its dataset at
    dataset_dir when given (RunFolder.dataset_dir)."""
    folder = RunFolder(run) if run is not None else default_run()
    return dataclasses.replace(folder, dataset_dir=dataset_dir)


def add_model_arguments(parser):
    """The flags that name a trained model for find_run and its weights (--run, --weights,
    --lmdb), for the tools that use one (evaluate, predict)."""
    parser.add_argument("--run", type=Path,
                        help=f"run folder (default: the run of {SOLVER_LINK})")
    parser.add_argument("--weights", type=Path, help="caffemodel (default: the run's latest)")
    parser.add_argument("--lmdb", type=Path, metavar="DIR",
                        help="the run's dataset where it lies now, if it was moved elsewhere "
                             "than the run's config.json says (checked to be the same dataset)")


def prepare_solver(run, cfg, variant, dataset_dir, gpus=(), link=SOLVER_LINK, force=False):
    """`make solver`: prepare_run, then point `link` at the run's solver; returns what to
    tell the user."""
    with locked(run):   # not while a process trains in it: --force would remove its files
        folder = prepare_run(run, cfg, variant, dataset_dir, gpus, force=force)
    link_solver(folder.solver_path, link)
    plan = folder.schedule()
    return (f"solver: {link} -> {folder.solver_path}: {plan.max_iter} iterations "
            f"({plan.per_epoch} per epoch), lambda_2D {cfg.lambda_2d} until iteration "
            f"{plan.lambda_2d_switch}, then {cfg.lambda_2d_late}; nets reading {dataset_dir}\n"
            f"solver: train with `caffe train -solver {link}` (venv activated) or `make train "
            f"RUN={run}`; then `python tools/evaluate.py` evaluates it")
