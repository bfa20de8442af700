"""The raw-format writers, read back with the libraries a Human3.6M user has."""
import cdflib
import cv2
import h5py
import numpy as np
import pytest

from data_prep.synth.writers import VideoWriter, write_mask_mat, write_pose_cdf


def test_pose_cdf_round_trip(tmp_path):
    poses = np.random.default_rng(0).normal(size=(6, 32, 3))
    write_pose_cdf(tmp_path / "a.cdf", poses)
    stored = cdflib.CDF(str(tmp_path / "a.cdf"))
    assert stored.cdf_info().zVariables == ["Pose"]
    assert stored["Pose"].shape == (1, 6, 96)
    np.testing.assert_array_equal(stored["Pose"].reshape(6, 32, 3), poses)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.cdf"]       # no temporary left


def test_mask_mat_is_matlab_v73_with_cell_of_references(tmp_path):
    masks = np.zeros((3, 4, 6), dtype=bool)
    masks[0, 1, 2] = masks[2, 3, 5] = True
    write_mask_mat(tmp_path / "m.mat", masks)
    raw = (tmp_path / "m.mat").read_bytes()
    assert raw.startswith(b"MATLAB 7.3 MAT-file") and raw[126:128] == b"IM"
    with h5py.File(tmp_path / "m.mat", "r") as f:
        assert f["Masks"].shape == (3, 1) and f["Masks"].attrs["MATLAB_class"] == b"cell"
        for i in range(3):
            np.testing.assert_array_equal(f[f["Masks"][i, 0]][:].T.astype(bool), masks[i])


def test_video_round_trip_and_no_file_after_a_failure(tmp_path):
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)]
    with VideoWriter(tmp_path / "v.mp4", 64, 48, 50) as video:
        for frame in frames:
            video.write(frame)
    capture = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 5 and capture.get(cv2.CAP_PROP_FPS) == 50
    for frame in frames:
        ok, decoded = capture.read()
        assert ok and np.abs(decoded.astype(int) - frame).mean() < 3
    with pytest.raises(ValueError, match="frame of shape"):
        with VideoWriter(tmp_path / "bad.mp4", 64, 48, 50) as video:
            video.write(np.zeros((10, 10, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
