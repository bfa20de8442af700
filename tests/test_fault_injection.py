"""Fault injection: every input the toolkit reads, damaged in the generated ways of
tests/fault_variants.py, gives a clear error naming the file (or the key, or the layer) or a
reported skip, and leaves what was already built as it was.

Inputs: the raw files of a sequence (video, 2D and mono 3D pose CDFs, mask file) through
make_lmdb; a dataset folder's manifest.json, index and LMDBs through data_prep.dataset; a run
folder's caffemodels and solverstates (resume, evaluation), its config.json, config files and
`--set` values; the Python layers' param_str; the images given to prediction. Reads that a
damaged file could crash in C (LMDB, Caffe) run in child processes, where a crash fails its
variant instead of ending pytest.
"""
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import cdflib
import cv2
import numpy as np
import pytest

from caffe.proto import caffe_pb2
from config import (EVALUATION_KEYS, LMDB_KEYS, Config, ConfigError, load_config,
                    stage_overrides)
from data_prep.dataset import Dataset
from data_prep.h36m import sequence_paths
from data_prep.make_lmdb import main as make_lmdb, process_sequence
from data_prep.reader import find_sequences
from data_prep.synth.writers import write_pose_cdf
from evaluation.predict import predict_pose, read_crop
from solver.run_folder import RunError, RunFolder
from tests import fault_variants as fv
from tests.tiny_dataset import TINY, sample_image
from tests.tiny_raw import lmdb_arguments, write_tiny_raw

REPO = Path(__file__).resolve().parents[1]
FRAMES = 8


# ---------------------------------------------------------------- shared helpers

def tree_digest(folder):
    """{path relative to folder: sha256} of every file under folder: what "nothing changed"
    compares."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_isolated(check_code, items, timeout=300):
    """{item name: result} of check(item) (defined by check_code) for each (name, item) of
    items, run in child processes: each result is a line of JSON on the child's stdout. A
    crash (an abort, SIGBUS, SIGSEGV) costs only the item it happened on, recorded as
    {"crashed": exit status, "stderr": its tail}; the items after it run in a new child."""
    program = check_code + _RUNNER
    results, pending = {}, list(items)
    while pending:
        child = subprocess.run([sys.executable, "-c", program, json.dumps(pending)], cwd=REPO,
                               capture_output=True, text=True, timeout=timeout)
        started = None
        for line in child.stdout.splitlines():
            message = json.loads(line)
            if "start" in message:
                started = message["start"]
            else:
                results[message["name"]] = message["result"]
                started = None
        if started is None:   # all done, or a failure outside the items (an import)
            assert child.returncode == 0, child.stderr[-3000:]
            break
        results[started] = {"crashed": child.returncode, "stderr": child.stderr[-3000:]}
        pending = pending[[name for name, _ in pending].index(started) + 1:]
    return results


_RUNNER = """
import json, sys
for name, item in json.loads(sys.argv[1]):
    print(json.dumps({"start": name}), flush=True)
    print(json.dumps({"name": name, "result": check(item)}), flush=True)
"""


# ---------------------------------------------------------------- raw files -> make_lmdb

@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """A tiny synthetic Human3.6M tree: S1 and S9, Walking (two recordings x 4 cameras)."""
    return write_tiny_raw(tmp_path_factory.mktemp("raw") / "h36m", FRAMES)


@pytest.fixture(scope="module")
def intact(raw):
    """The first S1 sequence, its process_sequence result and the raw tree's digest."""
    sequences, _ = find_sequences(raw, ["S1"], ["Walking"])
    sequence = sequences[0]
    result = process_sequence(task(sequence))
    assert result["skip"] is None and len(result["encoded"].entries) == FRAMES
    return sequence, result, tree_digest(raw)


def task(sequence):
    """process_sequence's task for a sequence: every frame, the paper's crops."""
    return (sequence, 1, 250, 0.2, 95)


def copied_sequence(sequence, root):
    """The sequence with its four files copied into a tree under root (damage goes there)."""
    paths = sequence_paths(root, sequence.subject, sequence.stem, sequence.camera)
    for kind in ("video", "d2", "d3_mono", "mask"):
        paths[kind].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sequence.paths[kind], paths[kind])
    return dataclasses.replace(sequence, paths=paths)


def header_size(kind, data):
    """How much of a raw file of `kind` is its format's header."""
    if kind == "video":
        return fv.mp4_header_size(data)
    return fv.MATLAB_FILE_HEADER_BYTES if kind == "mask" else fv.CDF_HEADER_BYTES


# What process_sequence makes of a variant: "skip" (a reported skip naming the damaged file)
# or a kept sequence whose samples are compared with the intact one's: "same" (every sample
# as before), "close" (poses within float32 rounding, crops the same), "first_5" (truncated
# to its shortest file, 5 frames: the same poses; the crops the same unless the video was
# re-encoded), "no_person" (kept, every frame counted as without a person).
HARMLESS_BYTE_FAULTS = {
    # the mp4's last byte is in the encoder's name tag that ends its index (moov); readers
    # stop at the boxes they know, so bytes after the last are never read
    "video": {"truncated_before_last_byte": "same", "garbage_appended": "same"},
    # a CDF's records are found by offsets from its header: its last bytes are padding of
    # its last record (0xff), and bytes after it are never read
    "d2": {"truncated_before_last_byte": "same", "garbage_appended": "same"},
    "d3_mono": {"truncated_before_last_byte": "same", "garbage_appended": "same"},
    # HDF5 refuses a file shorter than the end its superblock records, not a longer one
    "mask": {"garbage_appended": "same"},
}
POSE_OUTCOMES = {fault: "skip" for fault in fv.POSE_FAULTS}
POSE_OUTCOMES["float32"] = "close"           # the same poses in another float type
MASK_OUTCOMES = {fault: "skip" for fault in fv.MASK_FAULTS}
MASK_OUTCOMES.update(float_zeros_and_ones="same",   # the same 0/1 values in another type
                     fewer_masks="first_5",         # truncated and reported, as real files are
                     all_background="no_person")    # counted in frames_without_person
VIDEO_OUTCOMES = {fault: "skip" for fault in fv.VIDEO_FAULTS}
VIDEO_OUTCOMES["fewer_frames"] = "first_5"


def assert_outcome(result, outcome, damaged, intact_result):
    """process_sequence's result is the expected outcome for a variant of the file `damaged`."""
    if outcome == "skip":
        assert result["skip"] and str(damaged) in result["skip"], result["skip"]
        assert not result["encoded"].entries
        return
    assert result["skip"] is None, result["skip"]
    entries, before = result["encoded"].entries, intact_result["encoded"].entries
    if outcome == "no_person":
        assert not entries and result["empty_masks"] == FRAMES
        return
    if outcome == "first_5":
        assert result["truncated"]["kept"] == 5 and len(entries) == 5
        before = before[:5]
    assert [row for _, _, row in entries] == [row for _, _, row in before]
    if outcome == "close":
        np.testing.assert_allclose([v for _, v, _ in entries], [v for _, v, _ in before],
                                   rtol=1e-6, atol=1e-3)
    else:
        assert all((v == w).all() for (_, v, _), (_, w, _) in zip(entries, before))
    if outcome in ("same", "close") or damaged.suffix == ".mat":
        assert [jpeg for jpeg, _, _ in entries] == [jpeg for jpeg, _, _ in before]


def damaged_variant_result(intact, tmp_path, kind, damage):
    """process_sequence's result for the intact sequence with its `kind` file damaged by
    damage(path); returns (result, the damaged path). No exception may escape."""
    sequence, _, _ = intact
    copy = copied_sequence(sequence, tmp_path / "h36m")
    path = copy.paths[kind]
    damage(path)
    return process_sequence(task(copy)), path


@pytest.mark.parametrize("fault", fv.BYTE_FAULTS)
@pytest.mark.parametrize("kind", ["video", "d2", "d3_mono", "mask"])
def test_byte_faults_of_raw_files(raw, intact, tmp_path, kind, fault):
    def damage(path):
        fv.damage_file(path, fault, header_size(kind, path.read_bytes()))
    result, path = damaged_variant_result(intact, tmp_path, kind, damage)
    assert_outcome(result, HARMLESS_BYTE_FAULTS[kind].get(fault, "skip"), path, intact[1])
    assert tree_digest(raw) == intact[2]


@pytest.mark.parametrize("fault", fv.POSE_FAULTS)
@pytest.mark.parametrize("kind", ["d2", "d3_mono"])
def test_pose_cdf_faults(raw, intact, tmp_path, kind, fault):
    coordinates = 2 if kind == "d2" else 3

    def damage(path):
        poses = cdflib.CDF(str(path))["Pose"].reshape(-1, 32, coordinates)
        fv.write_pose_fault(path, poses, fault)
    result, path = damaged_variant_result(intact, tmp_path, kind, damage)
    assert_outcome(result, POSE_OUTCOMES[fault], path, intact[1])
    assert tree_digest(raw) == intact[2]


@pytest.mark.parametrize("fault", fv.MASK_FAULTS)
def test_mask_file_faults(raw, intact, tmp_path, fault):
    result, path = damaged_variant_result(
        intact, tmp_path, "mask", lambda path: fv.write_mask_fault(path, fv.read_masks(path),
                                                                   fault))
    assert_outcome(result, MASK_OUTCOMES[fault], path, intact[1])
    assert tree_digest(raw) == intact[2]


@pytest.mark.parametrize("moved, skipped", [(0, False), (4, False), (5, True), (8, True)])
def test_poses_that_the_masks_disagree_with(raw, intact, tmp_path, moved, skipped):
    # the 2D joints of `moved` of the 8 frames lie elsewhere in the frame than the mask's
    # person: a few such frames are kept, most of them make the sequence a reported skip
    def damage(path):
        poses = cdflib.CDF(str(path))["Pose"].reshape(-1, 32, 2).copy()
        poses[:moved] += (60.0, 0.0)    # past the person's box (about 35 x 80 px)
        write_pose_cdf(path, poses)
    result, path = damaged_variant_result(intact, tmp_path, "d2", damage)
    if skipped:
        assert f"in {moved} of its {FRAMES} frames" in result["skip"]
        assert str(path) in result["skip"] and "masks and 2D poses disagree" in result["skip"]
        assert not result["encoded"].entries
    else:
        assert result["skip"] is None and len(result["encoded"].entries) == FRAMES
        assert result["off"] == moved     # counted in frames_joints_outside_mask
    assert tree_digest(raw) == intact[2]


@pytest.mark.parametrize("fault", fv.VIDEO_FAULTS)
def test_video_faults(raw, intact, tmp_path, fault):
    def damage(path):
        frames, fps = fv.read_video(path)
        fv.write_video_fault(path, frames, fps, fault)
    result, path = damaged_variant_result(intact, tmp_path, "video", damage)
    assert_outcome(result, VIDEO_OUTCOMES[fault], path, intact[1])
    assert tree_digest(raw) == intact[2]


# one damaged file of each kind, each in a sequence of its own, both splits
MIXED_DAMAGE = [("S1", "Walking", "54138969", "video", "random_after_header"),
                ("S1", "Walking 1", "55011271", "d2", "nan_in_a_frame"),
                ("S9", "Walking", "58860488", "d3_mono", "truncated_at_50pct"),
                ("S9", "Walking 1", "60457274", "mask", "values_255")]


def damage_raw_file(root, subject, stem, camera, kind, fault):
    """Damage one raw file of the tree at root; returns its path."""
    path = sequence_paths(root, subject, stem, camera)[kind]
    if fault in fv.BYTE_FAULTS:
        fv.damage_file(path, fault, header_size(kind, path.read_bytes()))
    elif kind == "mask":
        fv.write_mask_fault(path, fv.read_masks(path), fault)
    else:
        coordinates = 2 if kind == "d2" else 3
        fv.write_pose_fault(path, cdflib.CDF(str(path))["Pose"].reshape(-1, 32, coordinates),
                            fault)
    return path


def build(root, out, *extra):
    return make_lmdb(lmdb_arguments(root, out, *extra))


@pytest.fixture(scope="module")
def mixed_build(raw, tmp_path_factory):
    """(tree with MIXED_DAMAGE, the dataset folder make_lmdb built from it, damaged paths)."""
    base = tmp_path_factory.mktemp("mixed")
    root = base / "h36m"
    shutil.copytree(raw, root)
    damaged = [damage_raw_file(root, *entry) for entry in MIXED_DAMAGE]
    before = tree_digest(root)
    assert build(root, base / "lmdb") == 0
    assert tree_digest(root) == before   # the build only reads its root
    return root, base / "lmdb", damaged


@pytest.mark.slow
def test_a_build_skips_each_damaged_file_and_keeps_the_others(mixed_build):
    _, out, damaged = mixed_build
    manifest = json.loads((out / "manifest.json").read_text())
    for split, entries in (("train", MIXED_DAMAGE[:2]), ("test", MIXED_DAMAGE[2:])):
        skipped = manifest["splits"][split]["skipped"]
        assert len(skipped) == 2, skipped
        for (subject, stem, camera, _, _), path in zip(entries, damaged[:2] if split == "train"
                                                       else damaged[2:]):
            assert any(s.startswith(f"{subject}/{stem}.{camera}: ") and str(path) in s
                       for s in skipped), (path, skipped)
        index = Dataset(out).index(split)
        kept = {(row["subject"], row["stem"], row["camera"]) for row in index}
        assert len(kept) == 8 - 2 and not kept & {entry[:3] for entry in entries}
        assert len(index) == (8 - 2) * FRAMES


@pytest.mark.slow
def test_a_forced_build_that_fails_leaves_the_old_output_as_it_was(mixed_build, tmp_path,
                                                                   capsys):
    root, built, _ = mixed_build
    out = tmp_path / "lmdb"
    shutil.copytree(built, out)
    before = tree_digest(out)
    broken = tmp_path / "h36m"
    shutil.copytree(root, broken)
    for path in (broken / "S9" / "Videos").glob("*.mp4"):   # every test sequence
        fv.damage_file(path, "truncated_at_50pct", 0)
    assert build(broken, out, "--force") == 1
    assert "no samples in the test split" in capsys.readouterr().err
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h36m", "lmdb"]   # no leftovers


# ---------------------------------------------------------------- dataset folder

MANIFEST_KEYS = ["format_version", "crop_size", "joints", "splits", "mean_bgr", "pca",
                 "bone_lengths_mm", "mean_pose_mm"]
# values at nested places of the manifest: non-finite, of other types, out of range
MANIFEST_EDITS = {
    "mean_pose_mm_nan_in_a_joint": (["mean_pose_mm", 3, 1], math.nan),
    "mean_pose_mm_16_joints": (["mean_pose_mm"], [[0.0, 0.0, 0.0]] * 16),
    "mean_bgr_nan_in_a_channel": (["mean_bgr", 0], math.nan),
    "mean_bgr_overflow": (["mean_bgr", 0], fv.OVERFLOW),
    "mean_bgr_four_values": (["mean_bgr"], [1.0, 2.0, 3.0, 4.0]),
    "mean_bgr_booleans": (["mean_bgr"], [True, False, True]),
    "mean_bgr_strings": (["mean_bgr"], ["1", "2", "3"]),
    "pca_eigenvalue_infinity": (["pca", "eigenvalues", 1], math.inf),
    "pca_eigenvector_minus_infinity": (["pca", "eigenvectors", 0, 0], -math.inf),
    "pca_two_eigenvalues": (["pca", "eigenvalues"], [1.0, 2.0]),
    "bone_length_nan": (["bone_lengths_mm", "LHip"], math.nan),
    "bone_length_string": (["bone_lengths_mm", "LHip"], "120"),
    "count_string": (["splits", "train", "count"], "10"),
    "count_zero": (["splits", "train", "count"], 0),
    "count_negative": (["splits", "train", "count"], -1),
    "count_fraction": (["splits", "train", "count"], 10.5),
    "count_true": (["splits", "train", "count"], True),
    "count_too_many": (["splits", "train", "count"], 11),
    "count_too_few": (["splits", "train", "count"], 9),
    "count_overflow": (["splits", "train", "count"], fv.OVERFLOW),
    "split_not_an_object": (["splits", "train"], 5),
    "no_test_split": (["splits", "test"], None),
    "crop_size_true": (["crop_size"], True),
    "crop_size_zero": (["crop_size"], 0),
    "crop_size_float": (["crop_size"], 250.0),
    "crop_size_huge": (["crop_size"], 10 ** 20),
    "joints_16": (["joints"], ["Pelvis"] * 16),
}


def manifest_variants(lmdb_dir):
    """{name: bytes} of the damaged manifests of the tiny dataset."""
    data = (lmdb_dir / "manifest.json").read_bytes()
    document = json.loads(data)
    variants = {fault: fv.damaged_bytes(fault, data, fv.JSON_HEADER_BYTES)
                for fault in fv.BYTE_FAULTS}
    variants.update({name: text.encode() for name, text
                     in fv.json_faults(document, MANIFEST_KEYS).items()})
    variants.update({name: fv.json_with(document, *edit).encode()
                     for name, edit in MANIFEST_EDITS.items()})
    return variants


def read_everything(folder):
    """Everything a reader of a dataset folder reads: the manifest's values, both splits'
    records and index rows."""
    data = Dataset(folder)
    values = (data.crop_size, data.mean_bgr, data.pca, data.bone_lengths_mm, data.mean_pose_mm)
    for split in ("train", "test"):
        with data.open(split) as reader:
            records = list(reader.records(range(data.count(split))))
        assert len(records) == len(data.index(split))
    return values


# the manifest's last byte is its final newline
HARMLESS_MANIFEST_FAULTS = {"truncated_before_last_byte"}
MANIFEST_VARIANT_COUNT = len(fv.BYTE_FAULTS) + 2 + 6 * len(MANIFEST_KEYS) + len(MANIFEST_EDITS)


def test_damaged_manifests_are_refused_naming_the_file(lmdb_dir, tmp_path):
    """Each variant in a copy of the dataset folder: a ValueError (what every tool catches)
    naming the dataset folder and its manifest, never another exception or a silent read."""
    before = tree_digest(lmdb_dir)
    variants = manifest_variants(lmdb_dir)
    assert len(variants) == MANIFEST_VARIANT_COUNT
    failures = []
    for name, data in variants.items():
        folder = tmp_path / name
        shutil.copytree(lmdb_dir, folder)
        (folder / "manifest.json").write_bytes(data)
        try:
            read_everything(folder)
        except ValueError as error:
            if name in HARMLESS_MANIFEST_FAULTS or not (
                    str(folder) in str(error) and "manifest" in str(error)):
                failures.append(f"{name}: {error}")
        except Exception as error:   # noqa: BLE001 - any other kind is a failure to report
            failures.append(f"{name}: {type(error).__name__}: {error}")
        else:
            if name not in HARMLESS_MANIFEST_FAULTS:
                failures.append(f"{name}: read without an error")
        shutil.rmtree(folder)
    assert not failures, "\n".join(failures)
    assert tree_digest(lmdb_dir) == before


def test_damaged_index_files_are_refused_naming_the_file(lmdb_dir, tmp_path):
    before = tree_digest(lmdb_dir)
    for fault in fv.BYTE_FAULTS:
        folder = tmp_path / fault
        shutil.copytree(lmdb_dir, folder)
        fv.damage_file(folder / "train_index.csv", fault, len("key,"))
        if fault == "truncated_before_last_byte":   # the last row's line end, "\r\n"'s "\n"
            assert Dataset(folder).index("train") == Dataset(lmdb_dir).index("train")
            continue
        with pytest.raises(ValueError, match=f"dataset {folder}: .*train_index.csv"):
            Dataset(folder).index("train")
    assert tree_digest(lmdb_dir) == before


_READ_DATASET = """
import hashlib
from data_prep.dataset import Dataset

def check(folder):
    try:
        data = Dataset(folder)
        digest = hashlib.sha256()
        for split in ("train", "test"):
            with data.open(split) as reader:
                for _, image, joints_2d, joints_3d in reader.records(range(data.count(split))):
                    for array in (image, joints_2d, joints_3d):
                        digest.update(array.tobytes())
        return {"digest": digest.hexdigest()}
    except Exception as error:
        return {"error": type(error).__name__, "message": str(error)}
"""
LMDBS = ("train_images", "train_poses")
# LMDB finds its pages from its meta pages: bytes after its last page are never read
HARMLESS_LMDB_FAULTS = {"garbage_appended"}


@pytest.fixture(scope="module")
def damaged_lmdb_reads(lmdb_dir, tmp_path_factory):
    """{variant: what a child process read}: every record of the dataset with one LMDB's
    data.mdb damaged (LMDB maps its file: a cut-short one can end the reading process)."""
    base = tmp_path_factory.mktemp("lmdb-faults")
    items = [("intact", str(lmdb_dir))]
    for name in LMDBS:
        for fault in fv.BYTE_FAULTS:
            folder = base / f"{name}-{fault}"
            shutil.copytree(lmdb_dir, folder)
            fv.damage_file(folder / name / "data.mdb", fault, fv.LMDB_HEADER_BYTES)
            items.append((folder.name, str(folder)))
    before = tree_digest(lmdb_dir)
    results = run_isolated(_READ_DATASET, items)
    assert tree_digest(lmdb_dir) == before
    return base, results


@pytest.mark.parametrize("fault", fv.BYTE_FAULTS)
@pytest.mark.parametrize("name", LMDBS)
def test_damaged_lmdbs_are_refused_naming_them(damaged_lmdb_reads, name, fault):
    base, results = damaged_lmdb_reads
    result = results[f"{name}-{fault}"]
    assert "crashed" not in result, result
    if fault in HARMLESS_LMDB_FAULTS:
        assert result == results["intact"]
    else:
        assert result["error"] == "ValueError", result
        assert f"dataset {base / f'{name}-{fault}'}" in result["message"]
        assert f"LMDB {name}" in result["message"], result["message"]


@pytest.mark.parametrize("fault", list(fv.LMDB_RECORD_FAULTS))
def test_damaged_lmdb_records_are_refused_naming_the_lmdb_and_key(lmdb_dir, tmp_path, fault):
    """One record of a copy of the dataset rewritten (a valid LMDB holding a damaged record):
    reading it is a ValueError naming the LMDB and the key, not a silent wrong read."""
    import lmdb
    before = tree_digest(lmdb_dir)
    folder = tmp_path / "lmdb"
    shutil.copytree(lmdb_dir, folder)
    name = f"train_{fv.LMDB_RECORD_FAULTS[fault]}"
    with lmdb.open(str(folder / name)) as env, env.begin(write=True) as transaction:
        transaction.put(b"00000003", fv.lmdb_record_fault(transaction.get(b"00000003"), fault))
    data = Dataset(folder)
    with data.open("train") as reader:
        assert len(list(reader.records(range(3)))) == 3   # the records before it read
        with pytest.raises(ValueError, match=f"dataset {folder}: record 00000003 of LMDB "
                                             f"{name} is unreadable"):
            list(reader.records([3]))
    assert tree_digest(lmdb_dir) == before


# ---------------------------------------------------------------- run folders

@pytest.fixture(scope="module")
def tiny_run(lmdb_dir, tmp_path_factory):
    """A run folder trained on the tiny dataset: snapshots of iterations 5 and 10."""
    from config import schedule_config
    from solver.training import train
    run = tmp_path_factory.mktemp("run") / "run"
    train(run, schedule_config("paper", overrides=TINY), "full", lmdb_dir, quiet=True)
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == [
        "iter_iter_10.caffemodel", "iter_iter_10.solverstate", "iter_iter_5.caffemodel",
        "iter_iter_5.solverstate"]
    return run


def damaged_run(tiny_run, tmp_path, file_name, damage):
    """A copy of the tiny run with snapshots/file_name damaged by damage(path)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    damage(run / "snapshots" / file_name)
    return RunFolder(run)


# caffemodels that do not read whole are passed over; the others are refused by evaluation
PASSED_OVER_MODEL_FAULTS = ("blob_data_short", "blob_shape_wrong", "no_layers")


@pytest.mark.slow
@pytest.mark.parametrize("fault", fv.BYTE_FAULTS + PASSED_OVER_MODEL_FAULTS)
def test_a_damaged_newest_caffemodel_is_passed_over(tiny_run, tmp_path, fault):
    before = tree_digest(tiny_run)

    def damage(path):
        if fault in fv.BYTE_FAULTS:
            fv.damage_file(path, fault, fv.PROTOBUF_HEADER_BYTES)
        else:
            path.write_bytes(fv.caffemodel_fault(path.read_bytes(), fault))
    folder = damaged_run(tiny_run, tmp_path, "iter_iter_10.caffemodel", damage)
    copied = tree_digest(folder.path)
    assert folder.latest_weights().name == "iter_iter_5.caffemodel"
    # its solverstate names it: resuming from it would load the damaged weights
    assert folder.latest_state()[1].name == "iter_iter_5.solverstate"
    assert tree_digest(folder.path) == copied and tree_digest(tiny_run) == before


@pytest.mark.slow
@pytest.mark.parametrize("fault", fv.BYTE_FAULTS)
def test_a_damaged_newest_solverstate_is_passed_over(tiny_run, tmp_path, fault):
    before = tree_digest(tiny_run)
    folder = damaged_run(tiny_run, tmp_path, "iter_iter_10.solverstate",
                         lambda path: fv.damage_file(path, fault, fv.PROTOBUF_HEADER_BYTES))
    copied = tree_digest(folder.path)
    assert folder.latest_state()[1].name == "iter_iter_5.solverstate"
    assert folder.latest_weights().name == "iter_iter_10.caffemodel"   # its weights are fine
    assert tree_digest(folder.path) == copied and tree_digest(tiny_run) == before


@pytest.mark.slow
def test_a_solverstate_with_a_short_history_blob_is_passed_over(tiny_run, tmp_path):
    def damage(path):
        state = caffe_pb2.SolverState.FromString(path.read_bytes())
        del state.history[-1].data[-1]
        path.write_bytes(state.SerializeToString())
    folder = damaged_run(tiny_run, tmp_path, "iter_iter_10.solverstate", damage)
    assert folder.latest_state()[1].name == "iter_iter_5.solverstate"


_EVALUATE = """
import contextlib, io
from tools.evaluate import main

def check(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as error:
            code = error.code
    return {"code": code, "stdout": out.getvalue()[-2000:], "stderr": err.getvalue()[-2000:]}
"""
EXPLICIT_WEIGHT_FAULTS = fv.BYTE_FAULTS + fv.CAFFEMODEL_FAULTS


@pytest.fixture(scope="module")
def evaluations(tiny_run, tmp_path_factory):
    """{variant: tools/evaluate.py's exit code and output}, in child processes (pycaffe
    aborts the process on weights it cannot use): each damaged caffemodel given as
    --weights, and the default weights of a run whose newest caffemodel is damaged."""
    base = tmp_path_factory.mktemp("weights")
    weights = (tiny_run / "snapshots" / "iter_iter_10.caffemodel").read_bytes()
    items = []
    for fault in EXPLICIT_WEIGHT_FAULTS:
        path = base / f"{fault}.caffemodel"
        path.write_bytes(fv.damaged_bytes(fault, weights, fv.PROTOBUF_HEADER_BYTES)
                         if fault in fv.BYTE_FAULTS else fv.caffemodel_fault(weights, fault))
        items.append((fault, ["--run", str(tiny_run), "--weights", str(path), "--quiet",
                              "--out", str(base / fault)]))
    run = base / "run"
    shutil.copytree(tiny_run, run)
    fv.damage_file(run / "snapshots" / "iter_iter_10.caffemodel", "truncated_at_90pct", 0)
    items.append(("default", ["--run", str(run), "--quiet", "--out", str(base / "default")]))
    before = tree_digest(tiny_run)
    results = run_isolated(_EVALUATE, items)
    assert tree_digest(tiny_run) == before
    return base, results


@pytest.mark.slow
@pytest.mark.parametrize("fault", EXPLICIT_WEIGHT_FAULTS)
def test_damaged_weights_given_to_evaluation_are_refused_naming_them(evaluations, fault):
    base, results = evaluations
    result = results[fault]
    assert "crashed" not in result, result
    assert result["code"] == 1, result
    assert f"error: {base / fault}.caffemodel " in result["stderr"], result["stderr"]
    if fault == "overflowing_weights":   # finite: refused for the poses they give
        assert "gives non-finite poses for 10 of 10 frames" in result["stderr"]
    assert not (base / fault).exists()   # no results written


@pytest.mark.slow
def test_evaluation_passes_over_a_damaged_newest_caffemodel(evaluations):
    base, results = evaluations
    assert results["default"]["code"] == 0, results["default"]
    written = json.loads((base / "default" / "results.json").read_text())
    assert Path(written["weights"]).name == "iter_iter_5.caffemodel"


def test_non_finite_poses_are_refused_naming_the_weights_and_how_many():
    from evaluation.evaluate import EvaluationError, check_poses
    poses = np.zeros((3, 17, 3))
    check_poses(poses, "w.caffemodel")
    poses[1, 4, 2], poses[2, 0, 0] = np.inf, np.nan
    with pytest.raises(EvaluationError, match=r"^w.caffemodel gives non-finite poses for 2 "
                                              r"of 3 frames"):
        check_poses(poses, "w.caffemodel")


# ---------------------------------------------------------------- configuration

# Values of each key out of its range (as --set text): each must be refused naming the key.
OUT_OF_RANGE = {
    "num_joints": ["16", "0"], "grid_size": ["1", "0", "226"],
    "root_joints": ["17", "-1", "0,0", ""], "single_root": ["17", "-1"],
    "crop_size": ["0", "224", "2147483648"], "crop_margin": ["-0.1"],
    "jpeg_quality": ["0", "101"], "input_size": ["0", "251"], "pca_std": ["-0.1"],
    "data_seed": ["-1", "2147483648"], "conv_kernels": ["0,5,3,3,3", "7,5,3,3"],
    "conv_strides": ["0,2,1,1,1"], "conv_pads": ["-1,0,1,1,1"],
    "conv_channels": ["0,128,192,192,128"], "pool_after": ["5", "-1"], "pool_kernel": ["0"],
    "pool_stride": ["0"], "fc_2d_width": ["0"], "fc_3d_width": ["0"],
    "fc_probs_2d_width": ["0"], "dropout_ratio": ["1", "-0.1"],
    "init_std_2d_scores": ["0"], "init_std_3d_heads": ["-0.001"], "lr_mult_3d_heads": ["0"],
    "batchnorm_moving_average": ["1.5", "-0.1"], "lambda_2d": ["-0.1"],
    "lambda_2d_late": ["-0.01"], "lambda_2d_switch_epoch": ["-1", "29"], "lambda_3d": ["-0.5"],
    "batch_size": ["0", "-1", "2147483648"], "base_lr": ["0", "-0.01"],
    "lr_gamma": ["0", "1.5"], "lr_step_epochs": ["0"], "epochs": ["0", "-1"],
    "momentum": ["1", "-0.1"], "weight_decay": ["-0.001"], "random_seed": ["-1"],
    "snapshot_epochs": ["0"], "display_iters": ["0"], "test_epochs": ["0"],
    "test_images": ["-1"], "torso_bones": ["Pelvis", ""], "evaluation_joints": ["15", "18"],
    "loader_workers": ["-1"], "loader_processes": [], "loader_prefetch": ["0"],
    "dummy_pose_std_mm": ["0"],
}
NON_FINITE = ["nan", "inf", "-inf"]


def wrong_types(field):
    """--set text of another type than the key's: text, a fraction where integers go, a list
    where one value goes."""
    default = field.default
    element = default[0] if isinstance(default, tuple) else default
    values = ["x"]
    if not isinstance(element, float):
        values.append("1.5")
    if not isinstance(default, tuple) or isinstance(element, str):
        values.append("1,2")
    return values


def set_variants():
    """(key, --set value) of every key's non-finite, wrong-type and out-of-range values."""
    return [(field.name, value) for field in dataclasses.fields(Config)
            for value in NON_FINITE + wrong_types(field) + OUT_OF_RANGE[field.name]]


def test_every_config_key_has_its_out_of_range_values():
    assert set(OUT_OF_RANGE) == {field.name for field in dataclasses.fields(Config)}


@pytest.mark.parametrize("key, value", set_variants())
def test_bad_set_values_are_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        load_config(None, [f"{key}={value}"])


@pytest.mark.parametrize("stage, keys", [("make_lmdb", LMDB_KEYS),
                                         ("evaluate", EVALUATION_KEYS)])
def test_set_keys_a_stage_does_not_read_are_refused_naming_them(stage, keys):
    for key in ["batchsize", *sorted({f.name for f in dataclasses.fields(Config)} - keys)]:
        with pytest.raises(ConfigError, match=f"--set {key}: "):
            stage_overrides(stage, keys, [f"{key}=1"])


CONFIG_FILE = {"batch_size": 32, "base_lr": 0.02, "root_joints": [0, 9],
               "loader_processes": False, "torso_bones": ["RHip", "LHip"]}


def config_file_variants():
    """{name: bytes} of damaged config files (--config): byte faults and wrong JSON values
    (a missing key is no fault there: the paper's value stays)."""
    data = (json.dumps(CONFIG_FILE, indent=2) + "\n").encode()
    variants = {fault: fv.damaged_bytes(fault, data, fv.JSON_HEADER_BYTES)
                for fault in fv.BYTE_FAULTS}
    variants.update({name: text.encode() for name, text
                     in fv.json_faults(CONFIG_FILE, list(CONFIG_FILE)).items()
                     if not name.startswith("missing_")})
    return variants


def test_damaged_config_files_are_refused_naming_the_file(tmp_path):
    failures = []
    for name, data in config_file_variants().items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        try:
            cfg = load_config(path)
        except ConfigError as error:
            if str(path) not in str(error) or name == "truncated_before_last_byte":
                failures.append(f"{name}: {error}")
        except Exception as error:   # noqa: BLE001 - any other kind is a failure to report
            failures.append(f"{name}: {type(error).__name__}: {error}")
        else:   # the last byte is the final newline
            if name != "truncated_before_last_byte" or cfg.batch_size != 32:
                failures.append(f"{name}: read as {cfg}")
    assert not failures, "\n".join(failures)


def run_config_variants(description):
    """{name: bytes} of a run's damaged config.json: byte faults, wrong JSON at its top
    level, and wrong values inside its "config"."""
    data = (json.dumps(description, indent=2) + "\n").encode()
    variants = {fault: fv.damaged_bytes(fault, data, fv.JSON_HEADER_BYTES)
                for fault in fv.BYTE_FAULTS if fault != "truncated_before_last_byte"}
    # the dataset is found by "dataset", else by "dataset_relative": a damaged "dataset" must
    # be named where there is no relative path to fall back on
    alone = {key: value for key, value in description.items() if key != "dataset_relative"}
    variants.update({name: text.encode() for name, text
                     in fv.json_faults(alone, ["config", "dataset"]).items()})
    # the optional keys (older runs lack them) hold strings, and another fingerprint is another
    # dataset; a relative path to nothing is passed over for "dataset"
    for name, text in fv.json_faults(description, ["dataset_fingerprint",
                                                   "dataset_relative"]).items():
        if not name.startswith("missing_") and name != "dataset_relative_string":
            variants[name] = text.encode()
    for key in ("batch_size", "base_lr", "root_joints", "loader_processes"):
        for kind, value in (("string", "x"), ("null", None), ("nan", math.nan),
                            ("infinity", math.inf), ("list", [1.5])):
            variants[f"config.{key}_{kind}"] = fv.json_with(description, ["config", key],
                                                            value).encode()
    return variants


@pytest.mark.slow
def test_a_damaged_run_config_is_refused_naming_the_file_or_key(tiny_run, tmp_path):
    """RunFolder.config() and .dataset() on each variant: a ValueError (what the tools catch)
    naming config.json or, for a value inside "config", the key."""
    before = tree_digest(tiny_run)
    description = json.loads((tiny_run / "config.json").read_text())
    failures, unnamed = [], set()
    for name, data in run_config_variants(description).items():
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_bytes(data)
        folder = RunFolder(run)
        # a fault of "config" leaves the dataset readable, and one of "dataset" the config
        reads = [read for read, spared in ((folder.config, ("dataset_", "missing_dataset")),
                                           (folder.dataset, ("config", "missing_config")))
                 if not name.startswith(spared)]
        key = name.split(".")[1].rsplit("_", 1)[0] if name.startswith("config.") else None
        for read in reads:
            try:
                read()
            except (RunError, ConfigError, ValueError) as error:
                if str(folder.config_path) not in str(error) and (key is None or
                                                                  key not in str(error)):
                    unnamed.add(name)
            except Exception:   # noqa: BLE001 - TypeError, KeyError: a traceback in the tools
                unnamed.add(name)
            else:
                failures.append(f"{name}: {read.__name__}() read it")
    assert not failures, "\n".join(failures)
    assert not unnamed, sorted(unnamed)
    assert tree_digest(tiny_run) == before


# ---------------------------------------------------------------- param_str of the layers

# (module, layer, bottom shapes, tops, a valid param_str's params); "DATASET": the tiny dataset
LAYERS = [("layers.soft_labels", "SoftLabelLoss", [(2, 17, 256), (2, 17, 2)], 1,
           {"grid_size": 16, "image_size": 225}),
          ("layers.pose_3d", "RootTargets", [(2, 17, 3)], 1, {"roots": [0]}),
          ("layers.pose_3d", "MultiRootAverage", [(2, 48)], 1,
           {"roots": [0], "num_joints": 17}),
          ("layers.loss_schedule", "ScheduledLossWeight", [(1,)], 2,
           {"schedule": [[0, 0.1], [5, 0.01]]}),
          ("layers.h36m_data", "H36MData", [], 3,
           {"dir": "DATASET", "split": "train", "batch_size": 2, "input_size": 225,
            "shuffle": True, "seed": 0, "pca_std": 0.1, "workers": 1, "processes": False,
            "prefetch": 1, "limit": 0})]
# Values each key is tried with; those of the key's own type are left out (OWN_TYPE).
VALUES = {"string": "x", "list": [1], "null": None, "true": True, "fraction": 2.5,
          "object": {}, "fractions": [1.5], "pairs_of_strings": [["a", 1]], "nan": math.nan,
          "infinity": math.inf, "minus_infinity": -math.inf, "overflow": fv.OVERFLOW}
OWN_TYPE = {"dir": {"string"}, "split": {"string"}, "image_size": {"fraction"},
            "pca_std": {"fraction"}, "roots": {"list"}, "shuffle": {"true"},
            "processes": {"true"}}


def param_str_variants():
    """(layer entry, variant name, param_str) of every layer: its valid param_str cut short
    or with garbage after it, each required key missing, each key of another type or not
    finite. (Not JSON, a JSON list and an unknown key: tests/test_layer_params.py.)"""
    variants = []
    for entry in LAYERS:
        params = entry[4]
        text = json.dumps(params)
        for fault in fv.TRUNCATIONS + ("garbage_appended", "random_after_header"):
            variants.append((entry, fault, fv.damaged_bytes(fault, text.encode(), 1)
                             .decode("latin-1")))
        for key in params:
            if key in ("dir", "split", "batch_size") or entry[1] != "H36MData":
                variants.append((entry, f"missing_{key}",
                                 json.dumps({k: v for k, v in params.items() if k != key})))
            for name, value in VALUES.items():
                if name not in OWN_TYPE.get(key, ()):
                    variants.append((entry, f"{key}_{name}", fv.json_with(params, [key], value)))
    return variants


PARAM_STR_VARIANTS = param_str_variants()


@pytest.mark.parametrize("entry, name, param_str", PARAM_STR_VARIANTS,
                         ids=[f"{entry[1]}-{name}" for entry, name, _ in PARAM_STR_VARIANTS])
def test_bad_param_strs_are_refused_naming_the_layer_and_key(lmdb_dir, entry, name,
                                                             param_str):
    from tests.gradcheck import layer_net
    module, layer, bottoms, tops, params = entry
    param_str = param_str.replace('"DATASET"', json.dumps(str(lmdb_dir)))
    key = next((k for k in params if name.startswith((f"{k}_", f"missing_{k}"))), None)
    with pytest.raises(Exception, match=layer) as error:
        layer_net(module, layer, bottoms, param_str, n_tops=tops)
    assert key is None or key in str(error.value), str(error.value)


def test_the_valid_param_strs_of_the_variants_are_accepted(lmdb_dir):
    """The variants' starting points are valid: each variant's error is its damage's."""
    from tests.gradcheck import layer_net
    for module, layer, bottoms, tops, params in LAYERS[:4]:
        layer_net(module, layer, bottoms, json.dumps(params), n_tops=tops)
    from layers.h36m_data import layer_params
    assert layer_params(json.dumps({**LAYERS[4][4], "dir": str(lmdb_dir)}), train=True)


# ---------------------------------------------------------------- images for prediction

# Outcome of each image: "refused" (ValueError naming the file) or "predicted". Kept: a JPEG
# without its end marker's last byte (every pixel is there), bytes after a JPEG's end marker
# or a PNG's IEND chunk (never read), and valid images of any size or colour type: the
# prediction resizes them (a 1 x 1 crop is no damage, only a poor crop).
HARMLESS_IMAGE_FAULTS = {".jpg": {"truncated_before_last_byte", "garbage_appended"},
                         ".png": {"garbage_appended"}}
VALID_IMAGES = ("intact.jpg", "intact.png", "one_pixel.png", "grey.png", "grey.jpg")


def write_images(folder):
    """The prediction test's images: intact ones, their byte faults, a text file named .jpg,
    a 1 x 1 and grey images; returns {file name: "refused" or "predicted"}."""
    folder.mkdir(parents=True, exist_ok=True)
    crop = sample_image(3, (120, 100))
    outcomes = {}
    for suffix in (".jpg", ".png"):
        data = cv2.imencode(suffix, crop)[1].tobytes()
        header = fv.jpeg_header_size(data) if suffix == ".jpg" else fv.PNG_HEADER_BYTES
        for fault in fv.BYTE_FAULTS:
            (folder / f"{fault}{suffix}").write_bytes(fv.damaged_bytes(fault, data, header))
            outcomes[f"{fault}{suffix}"] = ("predicted" if fault in HARMLESS_IMAGE_FAULTS[suffix]
                                            else "refused")
    (folder / "text.jpg").write_text("not an image\n")
    outcomes["text.jpg"] = "refused"
    cv2.imwrite(str(folder / "intact.jpg"), crop)
    cv2.imwrite(str(folder / "intact.png"), crop)
    cv2.imwrite(str(folder / "one_pixel.png"), crop[:1, :1])
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(folder / "grey.png"), grey)
    cv2.imwrite(str(folder / "grey.jpg"), grey)
    outcomes.update({name: "predicted" for name in VALID_IMAGES})
    return outcomes


@pytest.mark.slow
def test_damaged_images_are_refused_and_the_others_predicted(tiny_run, tmp_path):
    """read_crop then predict_pose on every image of a folder: each damaged one a ValueError
    naming it, every other a finite pose; the run folder as it was."""
    before = tree_digest(tiny_run)
    outcomes = write_images(tmp_path / "images")
    folder = RunFolder(tiny_run)
    failures = []
    for name, outcome in sorted(outcomes.items()):
        path = tmp_path / "images" / name
        try:
            pose = predict_pose(read_crop(path), folder)
        except ValueError as error:
            if outcome != "refused" or str(path) not in str(error):
                failures.append(f"{name}: {error}")
        else:
            if outcome != "predicted" or pose.shape != (17, 3) or not np.isfinite(pose).all():
                failures.append(f"{name}: predicted {pose.shape}")
    assert not failures, "\n".join(failures)
    assert tree_digest(tiny_run) == before


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    "text.jpg", "empty.png", "truncated_at_50pct.jpg"])
def test_the_predict_tool_refuses_a_damaged_image(tiny_run, tmp_path, name):
    from tools.predict import main as predict_main
    write_images(tmp_path / "images")
    path = tmp_path / "images" / name
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = predict_main([str(path), "--run", str(tiny_run)])
        except SystemExit as error:
            code = error.code
    assert code != 0 and str(path) in err.getvalue()
