"""make_lmdb on a small dataset written in the real formats: keys, contents, statistics,
skip reports, Caffe's own Data layer, and what happens to earlier builds; the real dataset's
faults (longer videos, half-posed and damaged recordings, S11's broken video) and how the
manifest and the printed summary report them."""
import contextlib
import csv
import io
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
from data_prep.h36m import BROKEN_VIDEO, CAMERAS, JOINTS_17_FROM_32, PARENTS_17, sequence_paths
from data_prep.dataset import Dataset, colour_sums
from data_prep.make_lmdb import (MAX_LINES_PRINTED, CropWorkers, build as build_lmdb,
                                 main as make_lmdb, parse_args as lmdb_args, split_summary)
from data_prep.make_synth import main as make_synth
from tests.dying_task import square_or_die
from tests.h36m_facts import video_frames
from tests.tiny_raw import lmdb_arguments, write_tiny_raw
from data_prep.reader import count_masks, read_pose_cdf
from data_prep.synth.writers import VideoWriter

FRAMES = 4


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return write_tiny_raw(tmp_path_factory.mktemp("raw") / "h36m", FRAMES)


def build(raw, out, *extra):
    return make_lmdb(lmdb_arguments(raw, out, *extra))


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
    with CropWorkers(2) as pool:
        build_lmdb(args, pool)
        assert pool.submit(cv2.getNumThreads).result() == max(1, multiprocessing.cpu_count() // 2)
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


# ---- the real dataset's faults, written into a small synthetic tree by the tests themselves

LONGER = ("S1", "Greeting 1", "55011271")     # a video 2 frames longer than its poses
HALF_POSED = ("S9", "Greeting", "54138969")   # a video twice as long as its poses
REPORT_KEYS = {"count", "sequences", "stride", "skipped", "truncated", "half_posed",
               "frames_without_person", "frames_joints_outside_mask", "subjects",
               "dropped_damaged", "ignored"}


def rewrite_video(path, n_frames):
    """Write a video again with n_frames frames: its own frames, repeated from the first."""
    frames = video_frames(path)
    height, width = frames[0].shape[:2]
    with VideoWriter(path, width, height, 50) as video:
        for index in range(n_frames):
            video.write(frames[index % len(frames)])


def pose_count(root, sequence):
    """Frames in the pose files of a (subject, stem, camera)."""
    return len(read_pose_cdf(sequence_paths(root, *sequence)["d2"], 2))


def truncation_entry(root, sequence, video):
    """The manifest's entry for a (subject, stem, camera) whose video has `video` frames."""
    poses, masks = pose_count(root, sequence), count_masks(sequence_paths(root, *sequence)["mask"])
    return {"sequence": "{}/{}.{}".format(*sequence), "poses": poses, "video": video,
            "masks": masks, "kept": min(poses, video, masks)}


def random_bytes():
    """Bytes that no decoder takes for a video."""
    return np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()


def truncated_mp4(path):
    """The first 300 bytes of a valid mp4: its header without any frame or index."""
    return path.read_bytes()[:300]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """A tree of S1, S9 and S11's Greeting and Directions with a longer video, a half-posed
    one and S11 Directions' broken video (random bytes), made here on a clean tree. 12 pose
    frames: a half-posed video then has more extra frames (12) than any camera's usual (8)."""
    root = tmp_path_factory.mktemp("faulty") / "h36m"
    assert make_synth(["--out", str(root), "--subjects", "S1", "S9", "S11", "--actions",
                       "Greeting", "Directions", "--frames", "12", "--scale", "0.2",
                       "--workers", "1", "--clean", "--quiet"]) == 0
    rewrite_video(sequence_paths(root, *LONGER)["video"], pose_count(root, LONGER) + 2)
    rewrite_video(sequence_paths(root, *HALF_POSED)["video"], 2 * pose_count(root, HALF_POSED))
    sequence_paths(root, *BROKEN_VIDEO)["video"].write_bytes(random_bytes())
    return root


def build_faulty(root, out, *extra):
    """make_lmdb of a faulty tree (S1 for training, S9 and S11 for testing): (out, its
    manifest, what it printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert make_lmdb(["--root", str(root), "--out", str(out), "--train-subjects", "S1",
                          "--test-subjects", "S9", "S11", "--workers", "1", "--quiet",
                          *extra]) == 0
    return out, json.loads((out / "manifest.json").read_text()), printed.getvalue()


@pytest.fixture(scope="module")
def kept_damaged(faulty, tmp_path_factory):
    return build_faulty(faulty, tmp_path_factory.mktemp("kept") / "ds", "--actions",
                        "Greeting", "Directions")


@pytest.fixture(scope="module")
def dropped_damaged(faulty, tmp_path_factory):
    return build_faulty(faulty, tmp_path_factory.mktemp("dropped") / "ds", "--actions",
                        "Greeting", "Directions", "--drop-damaged")


def crops_per_camera(out, split, subject, stem):
    """{camera: number of crops} of one recording in a built split."""
    counts = {}
    for row in Dataset(out).index(split):
        if (row["subject"], row["stem"]) == (subject, stem):
            counts[row["camera"]] = counts.get(row["camera"], 0) + 1
    return counts


def test_truncations_are_reported_with_their_frame_counts(faulty, kept_damaged):
    _, manifest, _ = kept_damaged
    train, test = manifest["splits"]["train"], manifest["splits"]["test"]
    assert set(train) == set(test) == REPORT_KEYS
    # the synthetic masks hold their persons whole: no joint outside them, in any frame
    assert train["frames_joints_outside_mask"] == test["frames_joints_outside_mask"] == 0
    expected = truncation_entry(faulty, LONGER, pose_count(faulty, LONGER) + 2)
    assert expected in train["truncated"]
    assert expected not in train["half_posed"]
    for entry in train["truncated"] + test["truncated"]:
        assert set(entry) == {"sequence", "poses", "video", "masks", "kept"}
        assert entry["kept"] == min(entry["poses"], entry["video"], entry["masks"])
        assert len({entry["poses"], entry["video"], entry["masks"]}) > 1


def test_half_posed_recordings_are_reported_and_kept(faulty, kept_damaged):
    out, manifest, _ = kept_damaged
    test = manifest["splits"]["test"]
    expected = truncation_entry(faulty, HALF_POSED, 2 * pose_count(faulty, HALF_POSED))
    assert expected in test["half_posed"] and expected in test["truncated"]
    assert all(entry["poses"] < 0.6 * entry["video"] for entry in test["half_posed"])
    # kept by default: the poses hold for the frames they cover
    assert crops_per_camera(out, "test", "S9", "Greeting")[HALF_POSED[2]] == expected["kept"]


def test_damaged_recordings_are_kept_by_default_and_dropped_on_request(kept_damaged,
                                                                       dropped_damaged):
    kept_out, kept, _ = kept_damaged
    dropped_out, dropped, _ = dropped_damaged
    assert kept["drop_damaged"] is False and dropped["drop_damaged"] is True
    assert kept["splits"]["test"]["dropped_damaged"] == []
    greeting = crops_per_camera(kept_out, "test", "S9", "Greeting")
    assert sorted(greeting) == sorted(CAMERAS)
    # S9's "Greeting" (h36m.DAMAGED), every camera; not its other recording, "Greeting 1"
    assert dropped["splits"]["test"]["dropped_damaged"] == [f"S9/Greeting.{camera}"
                                                            for camera in sorted(CAMERAS)]
    assert crops_per_camera(dropped_out, "test", "S9", "Greeting") == {}
    assert crops_per_camera(dropped_out, "test", "S9", "Greeting 1") == \
        crops_per_camera(kept_out, "test", "S9", "Greeting 1") != {}
    assert not any(entry["sequence"].startswith("S9/Greeting.")
                   for entry in dropped["splits"]["test"]["half_posed"])
    assert dropped["splits"]["test"]["count"] == \
        kept["splits"]["test"]["count"] - sum(greeting.values())
    assert dropped["splits"]["train"] == kept["splits"]["train"]


@pytest.mark.parametrize("damage", ["random-bytes", "truncated-mp4", "missing"])
def test_a_broken_s11_directions_video_is_a_reported_skip(faulty, kept_damaged, tmp_path,
                                                          damage):
    if damage == "random-bytes":
        out, manifest, _ = kept_damaged       # the faulty tree has it so
    else:
        root = tmp_path / "h36m"
        shutil.copytree(faulty, root)
        video = sequence_paths(root, *BROKEN_VIDEO)["video"]
        if damage == "missing":
            video.unlink()
        else:    # the start of a valid mp4: that of another camera
            video.write_bytes(truncated_mp4(sequence_paths(root, "S11", "Directions",
                                                           "55011271")["video"]))
        out, manifest, _ = build_faulty(root, tmp_path / "ds", "--actions", "Directions")
    subject, stem, camera = BROKEN_VIDEO
    skipped = manifest["splits"]["test"]["skipped"]
    assert len(skipped) == 1 and skipped[0].startswith(f"S11/Directions.{camera}: ")
    assert f"Videos/Directions.{camera}.mp4" in skipped[0]
    assert "known fault of many copies" in skipped[0]
    assert sorted(crops_per_camera(out, "test", subject, stem)) == \
        sorted(set(CAMERAS) - {camera})


def test_the_printed_summary_of_the_faults(faulty, kept_damaged, dropped_damaged):
    _, manifest, printed = kept_damaged
    lines = printed.splitlines()
    test = manifest["splits"]["test"]
    assert f"lmdb test: {test['count']} crops from {test['sequences']} sequences, 1 skipped, " \
           f"{len(test['truncated'])} truncated" in lines
    assert f"  {test['skipped'][0]}" in lines
    assert "  truncated to the shortest of poses, video and masks (each in manifest.json), " \
           "per camera:" in lines
    entry = truncation_entry(faulty, HALF_POSED, 2 * pose_count(faulty, HALF_POSED))
    assert (f"    S9/Greeting.54138969: poses {entry['poses']}, video {entry['video']}, "
            f"masks {entry['masks']}: kept {entry['kept']}") in lines
    assert len(lines) < 20
    dropped_lines = dropped_damaged[2].splitlines()
    assert "  4 dropped as damaged (--drop-damaged):" in dropped_lines
    assert "    S9/Greeting.54138969" in dropped_lines


def test_the_summary_prints_at_most_ten_lines_per_list_and_the_extra_frames_per_camera():
    def entry(stem, camera, video, poses=1000, masks=None):
        masks = poses if masks is None else masks
        return {"sequence": f"S9/{stem}.{camera}", "poses": poses, "video": video,
                "masks": masks, "kept": min(poses, video, masks)}
    truncated = [entry(f"Walking {i}", "54138969", 1000 + 1 + i % 2) for i in range(30)]
    truncated += [entry(f"Eating {i}", "55011271", 1000 + 2 + i, masks=1000 + i % 2)
                  for i in range(7)]
    half_posed = [entry(f"Greeting {i}", "58860488", 2000 + i) for i in range(12)]
    section = {"count": 5, "sequences": 51, "stride": 1, "frames_without_person": 0,
               "skipped": [f"S11/Directions {i}.54138969: bad" for i in range(14)],
               "truncated": truncated + half_posed, "half_posed": half_posed,
               "dropped_damaged": []}
    lines = split_summary("test", section)
    assert MAX_LINES_PRINTED == 10
    assert lines[0] == "lmdb test: 5 crops from 51 sequences, 14 skipped, 49 truncated"
    assert lines[1:12] == [f"  S11/Directions {i}.54138969: bad" for i in range(10)] + \
        ["  ... 4 more in manifest.json"]
    assert lines[13:15] == ["    54138969: 30 sequences, extra frames: video 1-2",
                            "    55011271: 7 sequences, extra frames: video 2-8, masks 0-1"]
    assert lines[15].startswith("  12 half-posed")
    assert lines[16:] == [f"    S9/Greeting {i}.58860488: poses 1000, video {2000 + i}, "
                          "masks 1000: kept 1000" for i in range(10)] + \
        ["    ... 2 more in manifest.json"]


def test_a_worker_that_dies_costs_only_its_task():
    with CropWorkers(2) as workers:
        results = list(workers.results(square_or_die, range(6),
                                       lambda task, reason: ("died", task, reason)))
    assert results[:3] == [0, 1, 4] and results[4:] == [16, 25]
    assert results[3][:2] == ("died", 3) and "worker process died" in results[3][2]
