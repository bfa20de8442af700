"""The dataset folder format (data_prep/dataset.py): records, statistics, the manifest check,
and a second dataset reader, in another raw layout, built and read through it unchanged."""
import json
import shutil

import cv2
import numpy as np
import pytest

from built_folders import exchange, temporary_file, whole_file, write_whole
from data_prep.dataset import (FORMAT_VERSION, Dataset, DatasetWriter, Sample, Statistics,
                               decode_image, decode_pose, encode_samples, image_record,
                               pose_record, pose_values, sample_key)
from layers.h36m_data import BatchLoader
from tests.tiny_dataset import CROP, COUNT, tiny_samples, write_tiny_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("format") / "tiny")


def test_keys_and_records_round_trip():
    assert sample_key(0) == b"00000000" and sample_key(1234567) == b"01234567"
    rng = np.random.default_rng(0)
    joints_2d, joints_3d = rng.normal(size=(17, 2)), rng.normal(size=(17, 3)) * 1000
    decoded_2d, decoded_3d = decode_pose(pose_record(pose_values(joints_2d, joints_3d)))
    np.testing.assert_array_equal(decoded_2d, joints_2d.astype(np.float32))
    np.testing.assert_array_equal(decoded_3d, joints_3d.astype(np.float32))
    with pytest.raises(ValueError, match="joints_2d"):
        pose_values(joints_2d[:16], joints_3d)
    image = rng.integers(0, 256, size=(8, 6, 3), dtype=np.uint8)
    png = cv2.imencode(".png", image)[1].tobytes()   # any encoding OpenCV reads, losslessly
    np.testing.assert_array_equal(decode_image(image_record(png, 8, 6)), image)


def test_statistics_merge_is_the_statistics_of_all_samples():
    samples = tiny_samples(6)
    whole = encode_samples(samples, 95).statistics
    parts = Statistics()
    for start, stop in ((0, 2), (2, 5), (5, 6)):
        parts.merge(encode_samples(samples[start:stop], 95).statistics)
    assert parts.samples == whole.samples == 6
    fields, merged = whole.manifest_fields(), parts.manifest_fields()
    np.testing.assert_allclose(merged["mean_pose_mm"], fields["mean_pose_mm"], rtol=1e-12)
    poses = np.array([s.joints_3d for s in samples], dtype=np.float64)
    np.testing.assert_allclose(fields["mean_pose_mm"], (poses - poses[:, :1]).mean(axis=0),
                               rtol=1e-12)
    pixels = np.concatenate([s.crop[::4, ::4].reshape(-1, 3) for s in samples]).astype(float)
    np.testing.assert_allclose(fields["mean_bgr"], pixels.mean(axis=0), rtol=1e-12)


def test_the_written_folder_reads_back(tiny):
    dataset = Dataset(tiny)
    assert dataset.manifest["format_version"] == FORMAT_VERSION
    assert dataset.count("train") == dataset.count("test") == COUNT
    rows = dataset.index("test")
    assert [row["key"] for row in rows] == [f"{i:08d}" for i in range(COUNT)]
    assert [row["action"] for row in rows[:2]] == ["Eating", "Walking"]
    samples = tiny_samples()
    with dataset.open("test") as reader:
        for index, image, joints_2d, joints_3d in reader.records([3, 1]):
            np.testing.assert_array_equal(joints_2d, samples[index].joints_2d)
            np.testing.assert_array_equal(joints_3d, samples[index].joints_3d)
            assert np.abs(image.astype(int) - samples[index].crop).mean() < 2   # JPEG
    with pytest.raises(ValueError, match="no split 'val'"):
        dataset.count("val")


@pytest.mark.parametrize("change, message", [
    (lambda m: "{not json", "manifest.json is unreadable"),
    (lambda m: {**m, "format_version": 1}, "format version 1 .this toolkit reads 2."),
    (lambda m: {k: v for k, v in m.items() if k != "mean_pose_mm"}, "mean_pose_mm must be"),
    (lambda m: {**m, "mean_bgr": [1, 2, float("nan")]}, "mean_bgr must be 3 finite"),
    (lambda m: {**m, "splits": {"train": m["splits"]["train"]}}, "splits must hold"),
    (lambda m: {**m, "bone_lengths_mm": {"RHip": 1.0}}, "bone_lengths_mm needs"),
])
def test_a_bad_manifest_is_refused_with_the_fix(tiny, tmp_path, change, message):
    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    changed = change(json.loads((copy / "manifest.json").read_text()))
    (copy / "manifest.json").write_text(changed if isinstance(changed, str) else
                                        json.dumps(changed))
    with pytest.raises(ValueError, match=message) as error:
        Dataset(copy)
    assert str(copy) in str(error.value) and "make lmdb LMDB_FLAGS=--force" in str(error.value)


def test_an_empty_split_is_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(ValueError, match="no samples in the test split"):
        with DatasetWriter(tmp_path / "out", CROP, 95) as writer:
            writer.split("train").add(tiny_samples(2), 95)
            writer.commit()
    assert list(tmp_path.iterdir()) == []


def test_commit_replaces_an_older_folder_whole(tiny, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tiny, out)
    with DatasetWriter(out, CROP, 95) as writer:
        for split in ("train", "test"):
            writer.split(split).add(tiny_samples(3), 95)
        writer.commit()
    assert Dataset(out).count("train") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_fingerprint_follows_the_manifest_not_the_folder_or_its_formatting(tiny, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(tiny, moved)
    assert Dataset(moved).fingerprint == Dataset(tiny).fingerprint
    manifest = json.loads((moved / "manifest.json").read_text())
    # the same content written with other key order and spacing
    (moved / "manifest.json").write_text(json.dumps(dict(reversed(manifest.items()))))
    assert Dataset(moved).fingerprint == Dataset(tiny).fingerprint
    manifest["mean_bgr"][0] += 0.5
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert Dataset(moved).fingerprint != Dataset(tiny).fingerprint
    assert len(Dataset(moved).fingerprint) == 64


# ---------------------------------------------------------------- folders and files built whole

def test_exchange_swaps_two_folders(tmp_path):
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        (tmp_path / name / name).write_text(name)
    if not exchange(tmp_path / "first", tmp_path / "second"):
        pytest.skip("this filesystem cannot exchange paths (commit's fallback is tested below)")
    assert [p.name for p in (tmp_path / "first").iterdir()] == ["second"]
    assert [p.name for p in (tmp_path / "second").iterdir()] == ["first"]


def test_commit_swaps_the_folders_in_one_step_or_recovers_from_a_kill_between(tmp_path,
                                                                              monkeypatch):
    """Where the system cannot exchange two paths at once, commit moves the old folder
    aside first; a kill between its two renames leaves no `out` but the aside folder, which
    the next writer puts back before anything else."""
    out = write_tiny_dataset(tmp_path / "ds")
    old = (out / "manifest.json").read_bytes()
    aside = tmp_path / ".ds.tmp-killed-old"
    out.rename(aside)                                    # the state such a kill leaves
    (tmp_path / ".ds.tmp-killed").mkdir()                # and the new build, not yet moved
    writer = DatasetWriter(out, CROP, 95)
    writer.close()
    assert (out / "manifest.json").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    monkeypatch.setattr("built_folders.exchange", lambda first, second: False)
    (out / "marker").write_text("old")
    write_tiny_dataset(out)                               # the fallback's two renames
    assert not (out / "marker").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_write_whole_replaces_a_file_and_leaves_nothing_beside_it(tmp_path):
    path = tmp_path / "results.json"
    write_whole(path, "old\n")
    write_whole(path, b"new\n")
    assert path.read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_failed_writer_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "predictions.npz"
    write_whole(path, b"old")
    with pytest.raises(OSError, match="disk full"):
        with whole_file(path) as tmp:
            tmp.write_bytes(b"part")
            raise OSError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.npz"]


def test_whole_file_serves_writers_that_name_or_create_the_file_themselves(tmp_path):
    """A killed writer's temporary file is removed before a writer that refuses an existing
    file runs; numpy's savez keeps the temporary name, whose suffix is the target's."""
    path = tmp_path / "predictions.npz"
    temporary_file(path).write_bytes(b"left by a killed writer")
    with whole_file(path) as tmp:
        with open(tmp, "xb") as handle:
            handle.write(b"x")
    with whole_file(path) as tmp:
        np.savez_compressed(tmp, a=np.arange(3))
    assert np.load(path)["a"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.npz"]


# ---------------------------------------------------------------- a second dataset reader

def write_other_layout(root, frames=6, size=(320, 240)):
    """A tiny raw dataset in a layout of its own (not Human3.6M's): per sequence a folder of
    PNG frames and one annotations.json with the 2D joints in frame pixels and the 3D joints
    in metres, one person per frame, as datasets such as MPI-INF-3DHP keep them."""
    rng = np.random.default_rng(3)
    width, height = size
    for sequence, activity in (("seq1", "Walking"), ("seq2", "Sitting")):
        folder = root / sequence
        folder.mkdir(parents=True)
        annotations = []
        for frame in range(frames):
            joints_2d = rng.uniform([100, 60], [220, 180], size=(17, 2))
            image = np.full((height, width, 3), 30 + 20 * frame, dtype=np.uint8)
            cv2.circle(image, tuple(int(v) for v in joints_2d[0]), 4, (255, 255, 255), -1)
            cv2.imwrite(str(folder / f"frame{frame:04d}.png"), image)
            annotations.append({"file": f"frame{frame:04d}.png", "joints_2d": joints_2d.tolist(),
                                "joints_3d_m": rng.normal(0, 0.3, size=(17, 3)).tolist()})
        (folder / "annotations.json").write_text(json.dumps(
            {"activity": activity, "camera": "cam0", "frames": annotations}))


def other_layout_samples(root, sequences, crop_size):
    """The reader of that layout: a square crop around the joints, resized to crop_size, the
    joints mapped into it and the 3D joints in mm."""
    for sequence in sequences:
        annotations = json.loads((root / sequence / "annotations.json").read_text())
        for frame, entry in enumerate(annotations["frames"]):
            image = cv2.imread(str(root / sequence / entry["file"]))
            joints_2d = np.array(entry["joints_2d"])
            centre = (joints_2d.min(axis=0) + joints_2d.max(axis=0)) / 2
            half = 80
            x0, y0 = (centre - half).astype(int)
            square = image[y0:y0 + 2 * half, x0:x0 + 2 * half]
            scale = crop_size / (2 * half)
            crop = cv2.resize(square, (crop_size, crop_size), interpolation=cv2.INTER_AREA)
            row = {"subject": sequence, "action": annotations["activity"], "stem": sequence,
                   "camera": annotations["camera"], "frame": frame}
            yield Sample(crop, (joints_2d - [x0, y0]) * scale,
                         np.array(entry["joints_3d_m"]) * 1000.0, row)


def test_a_second_reader_builds_a_dataset_the_loader_reads(tmp_path):
    raw = tmp_path / "other"
    write_other_layout(raw)
    out = tmp_path / "lmdb"
    with DatasetWriter(out, CROP, 90) as writer:
        writer.split("train").add(other_layout_samples(raw, ["seq1"], CROP), 90)
        writer.split("test").add(other_layout_samples(raw, ["seq2"], CROP), 90)
        writer.commit({"source": str(raw)})
    dataset = Dataset(out)
    assert dataset.count("train") == dataset.count("test") == 6
    assert {row["action"] for row in dataset.index("test")} == {"Sitting"}
    expected = list(other_layout_samples(raw, ["seq2"], CROP))
    with BatchLoader(out, "test", batch_size=6, train=False) as loader:
        batch = loader.next_batch()
    for slot, index in enumerate(batch.indices):
        # the centre 225 window of the 250 crop: joints move by 12 pixels
        np.testing.assert_allclose(batch.joints_2d[slot], expected[index].joints_2d - 12,
                                   atol=1e-4)
        np.testing.assert_allclose(batch.joints_3d[slot], expected[index].joints_3d, rtol=1e-6)
        brightness = batch.images[slot].sum(axis=0)
        ys, xs = np.nonzero(brightness > brightness.max() - 100)
        np.testing.assert_allclose([xs.mean(), ys.mean()], batch.joints_2d[slot, 0], atol=1.5)
