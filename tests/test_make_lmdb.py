"""make_lmdb on a small dataset written in the real formats: keys, contents, statistics,
skip reports, Caffe's own Data layer, and what happens to earlier builds."""
import csv
import json
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import cdflib
import cv2
import lmdb
import numpy as np
import pytest

import caffe
from caffe import layers as L, params as P
from caffe.proto import caffe_pb2
from data_prep.h36m import JOINTS_17_FROM_32, PARENTS_17, sequence_paths
from data_prep.dataset import Dataset, colour_sums
from data_prep.make_lmdb import (build as build_lmdb, main as make_lmdb,
                                 parse_args as lmdb_args, worker_pool)
from data_prep.make_synth import main as make_synth

FRAMES = 4


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw") / "h36m"
    assert make_synth(["--out", str(root), "--subjects", "S1", "S9", "--actions", "Walking",
                       "--frames", str(FRAMES), "--scale", "0.2", "--workers", "1", "--quiet"]) == 0
    return root


def build(raw, out, *extra):
    return make_lmdb(["--root", str(raw), "--out", str(out), "--train-subjects", "S1",
                      "--test-subjects", "S9", "--actions", "Walking", "--workers", "1",
                      "--quiet", *extra])


@pytest.fixture(scope="module")
def built(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("lmdb") / "ds"
    assert build(raw, out) == 0
    return out


def read_lmdb(path):
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return {key.decode(): value for key, value in txn.cursor()}


def test_keys_counts_and_contents(raw, built):
    manifest = json.loads((built / "manifest.json").read_text())
    # 2 recordings x 4 cameras x 4 frames per split
    assert manifest["splits"]["train"]["count"] == manifest["splits"]["test"]["count"] == 32
    for split in ("train", "test"):
        images = read_lmdb(built / f"{split}_images")
        poses = read_lmdb(built / f"{split}_poses")
        assert sorted(images) == sorted(poses) == [f"{i:08d}" for i in range(32)]
        with open(built / f"{split}_index.csv") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows[::7]:
            datum = caffe_pb2.Datum.FromString(images[row["key"]])
            assert datum.encoded and (datum.channels, datum.height, datum.width) == (3, 250, 250)
            crop = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_COLOR)
            assert crop.shape == (250, 250, 3)
            values = np.array(caffe_pb2.Datum.FromString(poses[row["key"]]).float_data)
            assert values.size == 85
            joints_2d, joints_3d = values[:34].reshape(17, 2), values[34:].reshape(17, 3)
            assert ((joints_2d > 0) & (joints_2d < 250)).all()
            mono = cdflib.CDF(str(sequence_paths(raw, row["subject"], row["stem"], row["camera"])
                                  ["d3_mono"]))["Pose"].reshape(-1, 32, 3)
            np.testing.assert_allclose(joints_3d, mono[int(row["frame"]), list(JOINTS_17_FROM_32)])


def test_manifest_statistics(raw, built):
    manifest = json.loads((built / "manifest.json").read_text())
    bones, aligned = [], []
    with open(built / "train_index.csv") as handle:
        for row in csv.DictReader(handle):
            mono = cdflib.CDF(str(sequence_paths(raw, row["subject"], row["stem"], row["camera"])
                                  ["d3_mono"]))["Pose"].reshape(-1, 32, 3)
            # the statistics are those of the stored poses: float32, as readers get them
            joints = mono[int(row["frame"]), list(JOINTS_17_FROM_32)].astype(np.float32)
            joints = joints.astype(np.float64)
            bones.append([np.linalg.norm(joints[j] - joints[p]) for j, p in enumerate(PARENTS_17)
                          if p >= 0])
            aligned.append(joints - joints[0])
    expected = np.mean(bones, axis=0)
    np.testing.assert_allclose(list(manifest["bone_lengths_mm"].values()), expected, rtol=1e-9)
    np.testing.assert_allclose(manifest["mean_pose_mm"], np.mean(aligned, axis=0), atol=1e-9)
    vectors = np.array(manifest["pca"]["eigenvectors"])
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(3), atol=1e-9)
    values = manifest["pca"]["eigenvalues"]
    assert values == sorted(values, reverse=True) and values[0] > 0
    crops = [cv2.imdecode(np.frombuffer(caffe_pb2.Datum.FromString(v).data, np.uint8), 1)
             for v in read_lmdb(built / "train_images").values()]
    np.testing.assert_allclose(manifest["mean_bgr"], np.mean(crops, axis=(0, 1, 2)), atol=2.0)


def test_caffe_data_layer_reads_the_image_lmdb(built, tmp_path):
    spec = caffe.NetSpec()
    spec.data, spec.label = L.Data(source=str(built / "train_images"), backend=P.Data.LMDB,
                                   batch_size=4, ntop=2)
    path = tmp_path / "net.prototxt"
    path.write_text(str(spec.to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    net.forward()
    assert net.blobs["data"].data.shape == (4, 3, 250, 250)
    assert net.blobs["data"].data.std() > 5


def test_bad_sequences_are_reported_and_skipped(raw, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(raw, broken)
    video = sequence_paths(broken, "S9", "Walking 1", "55011271")["video"]
    video.write_bytes(b"not a video")
    out = tmp_path / "ds"
    assert build(broken, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    skipped = manifest["splits"]["test"]["skipped"]
    assert len(skipped) == 1 and "S9/Walking 1.55011271" in skipped[0]
    assert manifest["splits"]["test"]["count"] == 32 - FRAMES


def test_existing_output_and_interrupted_runs(raw, built, tmp_path, capsys):
    out = tmp_path / "ds"
    shutil.copytree(built, out)
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(SystemExit):
        build(raw, out)
    assert "exists; pass --force" in capsys.readouterr().err
    assert (out / "manifest.json").read_bytes() == before
    # a half-written LMDB left by an interrupted run sits in a temporary folder beside --out
    stale = tmp_path / ".fresh.tmp-interrupted"
    (stale / "train_images").mkdir(parents=True)
    (stale / "train_images" / "data.mdb").write_bytes(b"\0" * 1024)
    assert build(raw, tmp_path / "fresh") == 0
    assert not stale.exists()
    assert json.loads((tmp_path / "fresh" / "manifest.json").read_text())["splits"]["train"]["count"] == 32
    assert build(raw, out, "--force") == 0


def test_a_started_pool_builds_the_same_lmdbs(raw, built, tmp_path):
    # as the benchmark builds: with worker processes it keeps started; the same bytes
    out = tmp_path / "ds"
    args = lmdb_args(["--root", str(raw), "--out", str(out), "--train-subjects", "S1",
                      "--test-subjects", "S9", "--actions", "Walking", "--workers", "2"])
    with worker_pool(2) as pool:
        build_lmdb(args, pool)
        assert pool.apply(cv2.getNumThreads) == max(1, multiprocessing.cpu_count() // 2)
    for name in ("train_images", "train_poses", "test_images", "test_poses"):
        assert read_lmdb(out / name) == read_lmdb(built / name)
    for name in ("train_index.csv", "test_index.csv", "manifest.json"):
        assert (out / name).read_bytes() == (built / name).read_bytes()


def test_colour_sums_are_those_of_the_pixels_bit_for_bit():
    rng = np.random.default_rng(0)
    for size in (250, 37):
        crop = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        rgb = crop[::4, ::4, ::-1].reshape(-1, 3).astype(np.float64)
        count, total, outer = colour_sums(crop)
        assert count == len(rgb)
        assert total.tobytes() == rgb.sum(axis=0).tobytes()
        assert outer.tobytes() == (rgb.T @ rgb).tobytes()


def test_config_shapes_the_crops_and_other_keys_are_refused(raw, built, tmp_path, capsys):
    out = tmp_path / "small"
    assert build(raw, out, "--set", "crop_size=240", "jpeg_quality=80") == 0
    dataset = Dataset(out)
    assert dataset.crop_size == 240 and dataset.manifest["jpeg_quality"] == 80
    with dataset.open("train") as reader:
        _, image, joints_2d, _ = next(reader.records([0]))
    assert image.shape == (240, 240, 3)
    with Dataset(built).open("train") as reader:
        _, full_image, full_joints_2d, _ = next(reader.records([0]))
    # the same crop at another size: the joints scale with it
    np.testing.assert_allclose(joints_2d * 250 / 240, full_joints_2d, atol=0.5)
    with pytest.raises(SystemExit):
        build(raw, tmp_path / "other", "--set", "batch_size=4")
    assert "make_lmdb --set batch_size: 'batch_size' changes nothing there" in \
        capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_the_worker_processes_do_not_import_caffe():
    # a spawned worker imports this module; caffe would cost it about a second
    code = "import sys, data_prep.make_lmdb; print('caffe' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "False"
