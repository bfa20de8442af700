"""Tests of data_prep/reader.py on tiny Human3.6M trees written in the real file formats."""
import mmap
import pickle
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from cdflib.cdfwrite import CDF

from data_prep.h36m import (ACTIONS, BROKEN_VIDEO, CAMERAS, JOINTS_17_FROM_32, STEMS, SUBJECTS,
                            sequence_paths)
import data_prep.reader as reader_module
from data_prep.crops import mask_box
from data_prep.reader import (Sequence, SequenceError, _MaskReader, canonical_action,
                              find_sequences, iter_frames, iter_person_boxes, load_sequence)
from data_prep.synth.writers import VideoWriter, write_mask_mat, write_pose_cdf

CAMERA = "54138969"
WIDTH, HEIGHT = 64, 48
SYNTH_ROOT = Path(__file__).resolve().parents[1] / "data" / "synth-h36m"


def grey_level(frame):
    """Flat grey level of frame `frame` in the fixture videos: far enough apart to tell (the
    levels repeat after 9 frames, beyond the frames the tests tell apart)."""
    return 30 + 25 * (frame % 9)


def fixture_poses_2d(n_frames):
    """(N, 32, 2) poses whose every coordinate is the frame index plus the joint index / 100,
    so that a frame's joints tell which frame (and joint) they came from."""
    joints = np.arange(32) / 100.0
    return np.broadcast_to(np.arange(n_frames)[:, None, None] + joints[None, :, None],
                           (n_frames, 32, 2)).copy()


def fixture_masks(n_frames):
    """(N, H, W) masks: frame i has its first i + 1 columns set."""
    masks = np.zeros((n_frames, HEIGHT, WIDTH), dtype=bool)
    for i in range(n_frames):
        masks[i, :, :i + 1] = True
    return masks


def write_video(path, n_frames):
    """mp4 video of n_frames flat grey frames."""
    with VideoWriter(path, WIDTH, HEIGHT, 50) as video:
        for i in range(n_frames):
            video.write(np.full((HEIGHT, WIDTH, 3), grey_level(i), dtype=np.uint8))


def write_sequence(root, subject, stem, n_frames=4, video_frames=None, camera=CAMERA):
    """Write all files of one sequence and camera; returns its paths."""
    paths = sequence_paths(root, subject, stem, camera)
    poses_2d = fixture_poses_2d(n_frames)
    poses_3d = np.concatenate([poses_2d, np.full((n_frames, 32, 1), 5000.0)], axis=2)
    write_pose_cdf(paths["d2"], poses_2d)
    write_pose_cdf(paths["d3_mono"], poses_3d)
    write_mask_mat(paths["mask"], fixture_masks(n_frames))
    write_video(paths["video"], n_frames if video_frames is None else video_frames)
    return paths


def write_empty_pose_cdf(path, width):
    """Pose CDF whose Pose variable has no records (0 frames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cdf = CDF(str(path), cdf_spec={"Majority": "Row_major"})
    cdf.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_DOUBLE, "Num_Elements": 1,
                   "Rec_Vary": True, "Dim_Sizes": [0, width], "Compress": 0})
    cdf.close()


def only_sequence(root, subject="S5"):
    """The single sequence of a subject in a fixture tree."""
    sequences, skips = find_sequences(root, [subject])
    assert skips == [] and len(sequences) == 1
    return sequences[0]


@pytest.mark.parametrize("stem, action", [
    ("Directions", "Directions"), ("Directions 1", "Directions"), ("Discussion 2", "Discussion"),
    ("TakingPhoto", "Photo"), ("TakingPhoto 1", "Photo"), ("Photo 2", "Photo"),
    ("WalkingDog", "WalkDog"), ("WalkDog 1", "WalkDog"), ("Walk Dog", "WalkDog"),
    ("walkingdog 2", "WalkDog"), ("WalkTogether 1", "WalkTogether"),
    ("Walk Together 2", "WalkTogether"), ("SittingDown", "SittingDown"),
    ("Directions_ALL", None), ("Directions 1_ALL", None), ("Dancing 1", None), ("", None),
])
def test_canonical_action(stem, action):
    assert canonical_action(stem) == action


def test_every_stem_of_the_real_dataset_maps_to_its_action():
    pairs = [(subject, stem, action) for subject, actions in STEMS.items()
             for action, stems in actions.items() for stem in stems]
    assert len(pairs) == len(set(pairs)) == 210
    wrong = [(subject, stem, action, canonical_action(stem)) for subject, stem, action in pairs
             if canonical_action(stem) != action]
    assert wrong == []


def touch_sequence(root, subject, stem, camera=CAMERA):
    """Empty files at every path discovery looks at: enough for find_sequences, which reads
    no file."""
    for path in sequence_paths(root, subject, stem, camera).values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def test_a_tree_with_the_real_stems_gives_both_recordings_of_every_action(tmp_path):
    for subject, actions in STEMS.items():
        for stems in actions.values():
            for stem in stems:
                touch_sequence(tmp_path, subject, stem)

    sequences, skips = find_sequences(tmp_path)

    assert skips == []
    found = {}
    for sequence in sequences:
        found.setdefault((sequence.subject, sequence.action), []).append(sequence.stem)
    assert set(found) == {(subject, action) for subject in SUBJECTS for action in ACTIONS}
    for (subject, action), stems in found.items():
        # two recordings stay two sequences: they are merged per action only at evaluation
        assert sorted(stems) == sorted(STEMS[subject][action]), (subject, action)
    assert found[("S5", "Discussion")] == ["Discussion 2", "Discussion 3"]
    assert found[("S6", "Waiting")] == ["Waiting", "Waiting 3"]
    assert found[("S1", "Photo")] == ["TakingPhoto", "TakingPhoto 1"]


def test_discovery_handles_name_variants_all_files_and_missing_files(tmp_path):
    for stem in ("WalkingDog", "Directions", "Directions 1"):
        write_sequence(tmp_path, "S1", stem, n_frames=3)
    for stem in ("Directions 1", "Directions 2"):
        write_sequence(tmp_path, "S5", stem, n_frames=3)
    all_paths = sequence_paths(tmp_path, "S5", "Directions_ALL", CAMERA)
    write_pose_cdf(all_paths["d2"], fixture_poses_2d(3))
    unknown_paths = sequence_paths(tmp_path, "S5", "Dancing 1", CAMERA)
    write_pose_cdf(unknown_paths["d2"], fixture_poses_2d(3))
    write_sequence(tmp_path, "S5", "Eating 1", n_frames=3)["video"].unlink()

    sequences, skips = find_sequences(tmp_path, ["S1", "S5", "S9"])

    assert [(s.subject, s.stem, s.action, s.camera) for s in sequences] == [
        ("S1", "Directions", "Directions", CAMERA), ("S1", "Directions 1", "Directions", CAMERA),
        ("S1", "WalkingDog", "WalkDog", CAMERA), ("S5", "Directions 1", "Directions", CAMERA),
        ("S5", "Directions 2", "Directions", CAMERA)]
    reasons = {skip.what: skip.reason for skip in skips}
    assert set(reasons) == {"S9", f"S5/Directions_ALL.{CAMERA}", f"S5/Dancing 1.{CAMERA}",
                            f"S5/Eating 1.{CAMERA}"}
    assert "_ALL" in reasons[f"S5/Directions_ALL.{CAMERA}"]
    assert "unknown action" in reasons[f"S5/Dancing 1.{CAMERA}"]
    assert "video" in reasons[f"S5/Eating 1.{CAMERA}"]
    assert f"Eating 1.{CAMERA}.mp4" in reasons[f"S5/Eating 1.{CAMERA}"]
    assert "missing" in reasons["S9"] and "S9" in reasons["S9"]


def test_discovery_filters_actions_and_cameras(tmp_path):
    write_sequence(tmp_path, "S1", "WalkingDog", n_frames=3)
    write_sequence(tmp_path, "S1", "Directions", n_frames=3)
    write_sequence(tmp_path, "S1", "Directions", n_frames=3, camera="55011271")

    sequences, _ = find_sequences(tmp_path, ["S1"], actions=["WalkDog"])
    assert [s.stem for s in sequences] == ["WalkingDog"]
    sequences, _ = find_sequences(tmp_path, ["S1"], cameras=["55011271"])
    assert [(s.stem, s.camera) for s in sequences] == [("Directions", "55011271")]
    with pytest.raises(ValueError, match="unknown action"):
        find_sequences(tmp_path, ["S1"], actions=["WalkingDog"])


def test_discovery_rejects_a_root_without_subjects(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        find_sequences(tmp_path / "nowhere", ["S1"])
    with pytest.raises(ValueError, match="none of the subject folders"):
        find_sequences(tmp_path, ["S1", "S5"])


def test_load_sequence_reads_poses(tmp_path):
    write_sequence(tmp_path, "S5", "Directions 1", n_frames=5)
    data = load_sequence(only_sequence(tmp_path))
    assert data.n_frames == 5 and data.note is None
    assert data.counts == {"video": 5, "poses": 5, "masks": 5}
    assert data.truncation() is None and not data.half_posed
    assert data.poses_2d.shape == (5, 17, 2) and data.poses_3d.shape == (5, 17, 3)
    expected = fixture_poses_2d(5)[:, JOINTS_17_FROM_32]
    np.testing.assert_allclose(data.poses_2d, expected)
    np.testing.assert_allclose(data.poses_3d[..., :2], expected)
    np.testing.assert_allclose(data.poses_3d[..., 2], 5000.0)


def test_video_longer_than_poses_is_truncated_with_a_note(tmp_path):
    write_sequence(tmp_path, "S5", "Directions 1", n_frames=4, video_frames=7)
    data = load_sequence(only_sequence(tmp_path))
    assert data.n_frames == 4 and len(data.poses_2d) == 4
    assert data.note == "video has 7 frames, poses 4, masks 4: using 4"
    assert [frame[0] for frame in iter_frames(data)] == [0, 1, 2, 3]


@pytest.mark.parametrize("poses, video, masks, kept, half_posed", [
    (6, 7, 6, 6, False),      # a video a frame longer, as every real one
    (6, 9, 6, 6, False),      # 2-8 frames longer: cameras 55011271 and 58860488
    (12, 24, 12, 12, True),   # twice as long: S9's Greeting and three others
    (10, 23, 10, 10, True),
    (4, 8, 4, 4, False),      # half, but no more extra frames than a camera's usual 8
    (4, 4, 3, 3, False),      # fewer masks than frames
])
def test_truncation_is_reported_with_the_frame_counts(tmp_path, poses, video, masks, kept,
                                                      half_posed):
    paths = write_sequence(tmp_path, "S9", "Greeting", n_frames=poses, video_frames=video)
    write_mask_mat(paths["mask"], fixture_masks(poses)[:masks])
    data = load_sequence(only_sequence(tmp_path, "S9"))
    assert data.n_frames == kept
    assert data.truncation() == {"sequence": f"S9/Greeting.{CAMERA}", "poses": poses,
                                 "video": video, "masks": masks, "kept": kept}
    assert data.half_posed == half_posed
    assert [frame[0] for frame in iter_frames(data)] == list(range(kept))


def test_nan_in_a_pose_names_the_frames(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=6)
    poses = fixture_poses_2d(6)
    poses[2, 5, 0] = np.nan
    poses[4, 0, 1] = np.inf
    write_pose_cdf(paths["d2"], poses)
    with pytest.raises(SequenceError, match=r"frames 2, 4") as error:
        load_sequence(only_sequence(tmp_path))
    assert str(paths["d2"]) in str(error.value)


def test_pose_cdf_of_the_wrong_shape(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=4)
    write_pose_cdf(paths["d3_mono"], fixture_poses_2d(4))    # 2D values in the 3D file
    with pytest.raises(SequenceError, match=r"shape \(1, 4, 64\), expected \(1, N, 96\)") as error:
        load_sequence(only_sequence(tmp_path))
    assert str(paths["d3_mono"]) in str(error.value)


def test_pose_cdf_without_pose_variable(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=4)
    paths["d2"].unlink()
    cdf = CDF(str(paths["d2"]), cdf_spec={"Majority": "Row_major"})
    cdf.write_var({"Variable": "Positions", "Data_Type": CDF.CDF_DOUBLE, "Num_Elements": 1,
                   "Rec_Vary": True, "Dim_Sizes": [4, 64], "Compress": 0},
                  var_data=np.zeros((1, 4, 64)))
    cdf.close()
    with pytest.raises(SequenceError, match="cannot read variable Pose") as error:
        load_sequence(only_sequence(tmp_path))
    assert str(paths["d2"]) in str(error.value)


def test_2d_and_3d_frame_counts_must_agree(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=4)
    write_pose_cdf(paths["d2"], fixture_poses_2d(3))
    with pytest.raises(SequenceError, match="has 3 frames but"):
        load_sequence(only_sequence(tmp_path))


def test_mask_file_that_is_not_hdf5(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=4)
    paths["mask"].write_bytes(b"MATLAB 5.0 MAT-file, not HDF5" + bytes(200))
    with pytest.raises(SequenceError, match="not an HDF5") as error:
        load_sequence(only_sequence(tmp_path))
    assert str(paths["mask"]) in str(error.value)


def test_mask_file_without_masks(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=4)
    with h5py.File(paths["mask"], "w") as f:
        f.create_dataset("Other", data=np.zeros(3))
    with pytest.raises(SequenceError, match="no 'Masks' dataset"):
        load_sequence(only_sequence(tmp_path))


def test_empty_sequence(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=4)
    paths["d2"].unlink()
    paths["d3_mono"].unlink()
    write_empty_pose_cdf(paths["d2"], 64)
    write_empty_pose_cdf(paths["d3_mono"], 96)
    with pytest.raises(SequenceError, match=r"empty \(0 frames\)"):
        load_sequence(only_sequence(tmp_path))


def test_empty_mask_file_leaves_no_usable_frames(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=4)
    write_mask_mat(paths["mask"], np.zeros((0, HEIGHT, WIDTH), dtype=bool))
    with pytest.raises(SequenceError, match="no usable frames"):
        load_sequence(only_sequence(tmp_path))


def test_corrupt_video(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=4)
    paths["video"].write_bytes(b"\x00garbage, not an mp4" * 50)
    with pytest.raises(SequenceError, match="cannot open video") as error:
        load_sequence(only_sequence(tmp_path))
    assert str(paths["video"]) in str(error.value)


BROKEN_SUBJECT, BROKEN_STEM, BROKEN_CAMERA = BROKEN_VIDEO


def write_s11_directions(root):
    """S11's Directions recording (stem "Directions") from all four cameras; returns the
    paths of the camera whose video many copies hold corrupt or not at all."""
    for camera in CAMERAS:
        write_sequence(root, BROKEN_SUBJECT, BROKEN_STEM, n_frames=3, camera=camera)
    return sequence_paths(root, BROKEN_SUBJECT, BROKEN_STEM, BROKEN_CAMERA)


def test_a_missing_s11_directions_video_is_a_known_fault(tmp_path):
    paths = write_s11_directions(tmp_path)
    paths["video"].unlink()
    sequences, skips = find_sequences(tmp_path, [BROKEN_SUBJECT])
    assert sorted(s.camera for s in sequences) == sorted(set(CAMERAS) - {BROKEN_CAMERA})
    assert [skip.what for skip in skips] == [f"S11/Directions.{BROKEN_CAMERA}"]
    assert str(paths["video"]) in skips[0].reason and "missing" in skips[0].reason
    assert "known fault of many copies" in skips[0].reason


def truncated_mp4(path):
    """The first 300 bytes of a valid mp4: its header without any frame or index."""
    return path.read_bytes()[:300]


@pytest.mark.parametrize("damage", [
    lambda path: np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
    truncated_mp4,
    lambda path: b"",
], ids=["random-bytes", "truncated-mp4", "empty"])
def test_an_undecodable_s11_directions_video_is_a_known_fault(tmp_path, damage):
    paths = write_s11_directions(tmp_path)
    paths["video"].write_bytes(damage(paths["video"]))
    sequences, skips = find_sequences(tmp_path, [BROKEN_SUBJECT])
    assert skips == [] and len(sequences) == 4
    for sequence in sequences:
        if sequence.camera != BROKEN_CAMERA:
            assert load_sequence(sequence).n_frames == 3
            continue
        with pytest.raises(SequenceError, match="known fault of many copies") as error:
            load_sequence(sequence)
        assert str(paths["video"]) in str(error.value)


def test_only_the_known_broken_video_is_called_a_known_fault(tmp_path):
    # the same damage to another recording's video is reported as it is
    paths = write_sequence(tmp_path, "S11", "Directions 1", n_frames=3)
    paths["video"].write_bytes(b"not a video" * 100)
    with pytest.raises(SequenceError, match="cannot open video") as error:
        load_sequence(only_sequence(tmp_path, "S11"))
    assert "known fault" not in str(error.value)
    # and a known broken video that opens but ends early says so while frames are read
    write_s11_directions(tmp_path / "ends-early")
    sequences, _ = find_sequences(tmp_path / "ends-early", ["S11"], cameras=[BROKEN_CAMERA])
    data = load_sequence(sequences[0])
    data.n_frames = 5
    data.poses_2d = fixture_poses_2d(5)[:, JOINTS_17_FROM_32]
    with pytest.raises(SequenceError, match="frame 3 of video .*known fault of many copies"):
        list(iter_frames(data))


def test_damaged_recordings_are_those_of_h36m_damaged(tmp_path):
    def sequence(subject, stem):
        return Sequence(subject, canonical_action(stem), stem, CAMERA,
                        sequence_paths(tmp_path, subject, stem, CAMERA))
    assert sequence("S9", "Greeting").damaged and sequence("S9", "Waiting 1").damaged
    assert not sequence("S9", "Greeting 1").damaged
    assert not sequence("S11", "Greeting").damaged


def test_iter_frames_with_stride_2(tmp_path):
    write_sequence(tmp_path, "S5", "Directions 1", n_frames=7)
    data = load_sequence(only_sequence(tmp_path))
    frames = list(iter_frames(data, stride=2))

    assert [frame[0] for frame in frames] == [0, 2, 4, 6]
    masks = fixture_masks(7)
    for index, image, mask, joints_2d, joints_3d in frames:
        assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
        assert abs(image.mean() - grey_level(index)) <= 4
        assert mask.dtype == bool and np.array_equal(mask, masks[index])
        assert joints_2d.shape == (17, 2) and joints_3d.shape == (17, 3)
        np.testing.assert_allclose(joints_2d[:, 0], index + np.array(JOINTS_17_FROM_32) / 100)


def test_iter_frames_reports_a_video_that_ends_early(tmp_path):
    write_sequence(tmp_path, "S5", "Directions 1", n_frames=5)
    data = load_sequence(only_sequence(tmp_path))
    data.n_frames = 8    # as if the container had promised more frames than it holds
    data.poses_2d = fixture_poses_2d(8)[:, JOINTS_17_FROM_32]
    with pytest.raises(SequenceError, match="frame 5 of video"):
        list(iter_frames(data, stride=1))


def test_sequences_are_named_hashable_and_picklable(tmp_path):
    sequence = Sequence("S11", "Directions", "Directions 1", CAMERA,
                        sequence_paths(tmp_path, "S11", "Directions 1", CAMERA))
    assert sequence.name == f"S11/Directions 1.{CAMERA}"
    assert {sequence: 1}[sequence] == 1
    assert pickle.loads(pickle.dumps(sequence)) == sequence    # sent to worker processes


@pytest.mark.skipif(not SYNTH_ROOT.is_dir(), reason="no synthetic dataset at data/synth-h36m")
def test_reads_the_synthetic_dataset():
    sequences, skips = find_sequences(SYNTH_ROOT, ["S1"], actions=["WalkDog"],
                                      cameras=[CAMERA])
    assert skips == []
    assert [s.stem for s in sequences] == ["WalkingDog", "WalkingDog 1"]
    data = load_sequence(sequences[0])
    assert data.n_frames > 0
    assert data.poses_2d.shape == (data.n_frames, 17, 2)
    assert data.poses_3d.shape == (data.n_frames, 17, 3)
    index, image, mask, joints_2d, joints_3d = next(iter_frames(data))
    assert index == 0 and image.ndim == 3 and mask.shape == image.shape[:2]
    assert mask.any()
    assert np.all(joints_3d[:, 2] > 0)    # in front of the camera


def test_masks_a_row_taller_than_the_video_are_cropped(tmp_path):
    # as the synthetic 500x501 renderings, which the mp4 encoder stores 500x500
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=3)
    taller = np.zeros((3, HEIGHT + 1, WIDTH), dtype=bool)
    taller[:, :HEIGHT] = fixture_masks(3)
    write_mask_mat(paths["mask"], taller)
    frames = list(iter_frames(load_sequence(only_sequence(tmp_path))))
    assert all(np.array_equal(mask, fixture_masks(3)[i]) for i, _, mask, _, _ in frames)
    assert person_boxes(tmp_path) == [mask_box(mask) for mask in fixture_masks(3)]

    write_mask_mat(paths["mask"], np.zeros((3, HEIGHT * 2, WIDTH), dtype=bool))
    for frames_of in (iter_frames, iter_person_boxes):
        with pytest.raises(SequenceError, match="mask 0 of .* is .*, but frame 0 of"):
            list(frames_of(load_sequence(only_sequence(tmp_path))))


def person_boxes(root):
    """The boxes iter_person_boxes gives for the only sequence under root."""
    return [box for _, _, box, _, _ in iter_person_boxes(load_sequence(only_sequence(root)))]


@pytest.mark.parametrize("rows, columns", [(1, 0), (2, 2), (0, 1), (-2, 0), (0, -2), (-1, 2)],
                         ids=["taller", "both", "wider", "shorter", "narrower", "mixed"])
def test_person_boxes_of_masks_fitted_to_their_frames(tmp_path, rows, columns):
    # a mask up to two pixels larger or smaller than its frame is cut or padded; its extra
    # rows and columns hold the only foreground of some frames, which then have no box
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=9)
    masks = np.zeros((9, HEIGHT + rows, WIDTH + columns), dtype=bool)
    masks[:, :min(HEIGHT, HEIGHT + rows), :min(WIDTH, WIDTH + columns)] = blob_masks(9)[
        :, :HEIGHT + rows, :WIDTH + columns]
    masks[0, -1, :] = masks[0, :, -1] = True
    write_mask_mat(paths["mask"], masks, chunks=(7, 5), compression="gzip")
    fitted = [mask for _, _, mask, _, _ in iter_frames(load_sequence(only_sequence(tmp_path)))]
    assert person_boxes(tmp_path) == [mask_box(mask) if mask.any() else None
                                      for mask in fitted]
    assert (person_boxes(tmp_path)[0] is None) == (rows > 0 and columns > 0)


# ---- the chunked mask reader: the masks h5py reads, however they are stored

def blob_masks(n_frames, height=HEIGHT, width=WIDTH, seed=0):
    """(N, H, W) masks: a random rectangle per frame, across chunk boundaries wherever the
    chunks lie, plus an all-background frame, a full one and a repeated one."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_frames, height, width), dtype=bool)
    for mask in masks[3:]:
        top, left = rng.integers(0, height - 4), rng.integers(0, width - 4)
        mask[top:rng.integers(top + 1, height + 1), left:rng.integers(left + 1, width + 1)] = True
        mask[rng.integers(0, height), rng.integers(0, width)] = True   # a stray pixel
    masks[1] = True
    masks[2] = masks[-1]
    return masks


def h5py_masks(path):
    """Every mask of a ground_truth_bs file as h5py reads it: (H, W) bool."""
    with h5py.File(path, "r") as f:
        return [f[ref][:].T.astype(bool) for ref in f["Masks"][:, 0]]


def chunked_masks(path):
    """Every mask of a ground_truth_bs file as the reader reads it, and the reader."""
    with h5py.File(path, "r") as f, _MaskReader(f, path) as reader:
        return [reader.read(i) for i in range(len(reader.references))], reader


# stored transposed: (W, H) = (64, 48) per mask; sliced: read from the file's chunks here
@pytest.mark.parametrize("storage, sliced", [
    ({"chunks": (7, 5), "compression": "gzip"}, True),     # partial last chunks both ways
    ({"chunks": (64, 48), "compression": "gzip", "compression_opts": 9}, True),   # one chunk
    ({"chunks": (16, 16), "compression": "gzip", "compression_opts": 1}, True),
    ({"chunks": (16, 16), "compression": "gzip", "shuffle": True}, False),   # two filters
    ({"chunks": (16, 16), "compression": "lzf"}, False),   # another filter
    ({"chunks": (16, 16)}, False),                         # no filter
    ({"chunks": None}, False),                             # contiguous
], ids=["partial-chunks", "one-chunk", "gzip-1", "shuffle", "lzf", "unfiltered", "contiguous"])
def test_iter_frames_reads_the_masks_h5py_reads(tmp_path, storage, sliced):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=9)
    masks = blob_masks(9)
    write_mask_mat(paths["mask"], masks, **storage)
    frames = list(iter_frames(load_sequence(only_sequence(tmp_path))))
    assert len(frames) == 9
    for (index, _, mask, _, _), expected in zip(frames, h5py_masks(paths["mask"])):
        assert mask.dtype == bool and mask.shape == (HEIGHT, WIDTH)
        np.testing.assert_array_equal(mask, expected)
        np.testing.assert_array_equal(mask, masks[index])
    assert chunked_masks(paths["mask"])[1].addresses_checked == sliced
    # the boxes read without building the masks: those of the masks, none for frame 0
    assert person_boxes(tmp_path) == [None] + [mask_box(mask) for mask in masks[1:]]


def test_unfiltered_chunks_and_unallocated_chunks(tmp_path):
    path = tmp_path / "masks.mat"
    masks = blob_masks(6)
    write_mask_mat(path, masks, chunks=(16, 16), compression="gzip")
    with h5py.File(path, "r+") as f:
        references = f["Masks"][:, 0]
        # a chunk stored with its deflate filter skipped (bit 0 of the filter mask)
        stored = f[references[4]]
        stored.id.write_direct_chunk((16, 16), np.ones((16, 16), np.uint8).tobytes(),
                                     filter_mask=1)
        # a mask of which only some chunks were written: the others hold the fill value
        del f["#refs#/m5"]
        partial = f["#refs#"].create_dataset("m5", shape=(WIDTH, HEIGHT), dtype=np.uint8,
                                             chunks=(16, 16), compression="gzip", fillvalue=1)
        partial[:16, :16] = 0
        f["Masks"][5, 0] = partial.ref
    expected = h5py_masks(path)
    assert expected[4][16:32, 16:32].all() and expected[5][16:, 16:].all()
    read, reader = chunked_masks(path)
    for mask, want in zip(read, expected):
        np.testing.assert_array_equal(mask, want)
    assert reader.direct      # the chunks were sliced from the file


def test_background_chunks_are_inflated_once(tmp_path, monkeypatch):
    path = tmp_path / "masks.mat"
    write_mask_mat(path, np.zeros((5, HEIGHT, WIDTH), dtype=bool), chunks=(16, 16),
                   compression="gzip")
    inflated, decompress = [], zlib.decompress
    monkeypatch.setattr(reader_module.zlib, "decompress",
                        lambda data: inflated.append(data) or decompress(data))
    read, _ = chunked_masks(path)
    assert not any(mask.any() for mask in read)
    # 5 masks of 4 x 3 chunks, all of them (edge chunks too) stored whole as the same bytes
    assert len(inflated) == 1


def test_chunk_addresses_that_are_not_file_offsets_are_read_through_hdf5(tmp_path):
    path = tmp_path / "masks.mat"
    masks = blob_masks(4)
    write_mask_mat(path, masks, chunks=(16, 16), compression="gzip")
    with h5py.File(path, "r") as f, _MaskReader(f, path) as reader:
        reader.mapped.close()
        # zeros where the chunks are: what offsets into another file would slice
        reader.mapped = mmap.mmap(-1, path.stat().st_size)
        read = [reader.read(i) for i in range(4)]
        assert not reader.direct
    for mask, expected in zip(read, masks):
        np.testing.assert_array_equal(mask, expected)


def test_a_corrupt_mask_chunk_names_the_file_and_frame(tmp_path):
    paths = write_sequence(tmp_path, "S5", "Directions 1", n_frames=3)
    write_mask_mat(paths["mask"], blob_masks(3), chunks=(16, 16), compression="gzip")
    with h5py.File(paths["mask"], "r+") as f:
        f[f["Masks"][2, 0]].id.write_direct_chunk((0, 0), b"not deflate data")
    for frames_of in (iter_frames, iter_person_boxes):
        with pytest.raises(SequenceError, match="cannot read mask 2 of") as error:
            list(frames_of(load_sequence(only_sequence(tmp_path))))
        assert str(paths["mask"]) in str(error.value)
