"""Real motion capture in the synthetic training set (make_synth --train-bvh): which recordings
take a clip, that such a recording is a stretch of the clip on the subject's body, and the
CMU clips the toolkit ships for it (data_prep/training_motion)."""
import re
from pathlib import Path

import numpy as np
import pytest

from data_prep import make_synth
from data_prep.h36m import ACTIONS, J32, TEST_SUBJECTS, TRAIN_SUBJECTS
from data_prep.synth import bvh
from data_prep.synth.motion import ROOT_HALF, body_for_subject
from tests import bvh_conventions

REPOSITORY = Path(__file__).resolve().parent.parent
TRAINING_CLIPS = REPOSITORY / "data_prep" / "training_motion"
TEST_CLIPS = REPOSITORY / "data_prep" / "real_motion"


@pytest.mark.parametrize("share, expected", [
    (0.5, [None, 0, None, 1, None, 2]),
    (1.0, [0, 1, 2, 3, 4, 5]),
    (0.25, [None, None, None, 0, None, None, None, 1]),
    (1 / 3, [None, None, 0, None, None, 1]),
    (0.0, [None] * 6),
])
def test_the_share_of_recordings_is_spread_evenly(share, expected):
    assert [make_synth.takes_training_clip(i, share) for i in range(len(expected))] == expected


@pytest.fixture
def clip_folder(bvh_files):
    """Two clips, of two conventions, in one folder."""
    for name, convention in (("a.bvh", bvh_conventions.CONVENTIONS[0]),
                             ("b.bvh", bvh_conventions.CONVENTIONS[5])):
        bvh_files.write(bvh_conventions.text(convention), f"clips/{name}")
    return bvh_files.folder / "clips"


def plan(tmp_path, *flags, actions=("Walking", "Eating")):
    args = make_synth.parse_args(["--out", str(tmp_path / "out"), "--subjects", "S1", "S9",
                                  "--actions", *actions, *flags])
    return [job for job in make_synth.plan_jobs(args, tmp_path / "work") if "parts" not in job]


def test_by_default_a_fifth_of_the_training_recordings_take_the_shipped_clips(tmp_path):
    jobs = plan(tmp_path, actions=ACTIONS)
    s1 = [job for job in jobs if job["subject"] == "S1"]
    taken = [index for index, job in enumerate(s1) if job.get("bvh")]
    assert len(s1) == 30 and taken == [4, 9, 14, 19, 24, 29]
    assert {Path(s1[i]["bvh"]).parent for i in taken} == {TRAINING_CLIPS}
    assert not any(job.get("bvh") for job in jobs if job["subject"] == "S9")


def test_half_the_training_recordings_take_the_clips_in_turn(tmp_path, clip_folder):
    jobs = plan(tmp_path, "--train-bvh", str(clip_folder), "--train-bvh-share", "0.5")
    taken = [(job["subject"], job["action"], job["subaction"], Path(job["bvh"]).name)
             for job in jobs if job.get("bvh")]
    # S1's recordings, in order: Walking 1, 2, Eating 1, 2; every second one takes a clip
    assert taken == [("S1", "Walking", 2, "a.bvh"), ("S1", "Eating", 2, "b.bvh")]
    assert all(job.get("bvh_random_start") for job in jobs if job.get("bvh"))
    assert "S1" in TRAIN_SUBJECTS and "S9" in TEST_SUBJECTS


@pytest.mark.parametrize("flags", [("--train-bvh", "none"), ("--train-bvh-share", "0")])
def test_procedural_only_when_asked(tmp_path, clip_folder, flags):
    jobs = plan(tmp_path, "--train-bvh", str(clip_folder), *flags)
    assert not any(job.get("bvh") for job in jobs)


def test_bvh_sets_every_recording_and_leaves_the_training_clips_out(tmp_path, clip_folder,
                                                                  bvh_files):
    bvh_files.write(bvh_conventions.text(bvh_conventions.CONVENTIONS[2]), "test/c.bvh")
    jobs = plan(tmp_path, "--train-bvh", str(clip_folder), "--bvh", str(bvh_files.folder / "test"))
    assert [Path(job["bvh"]).name for job in jobs] == ["c.bvh"] * 8
    assert not any(job.get("bvh_random_start") for job in jobs)


def relative_to_pelvis(poses):
    return poses - poses[:, J32["Hip"]][:, None]


def training_job(tmp_path, clip_folder, frames):
    job = next(job for job in plan(tmp_path, "--train-bvh", str(clip_folder),
                                   "--train-bvh-share", "0.5") if job.get("bvh"))
    clip = bvh.retarget_to_h36m(bvh.read_bvh(job["bvh"]), body_for_subject(job["subject"]))
    return dict(job, motion_frames=frames), clip


def test_a_training_recording_is_a_stretch_of_the_clip_on_the_subject(tmp_path, clip_folder):
    """The poses are the clip moved onto the subject's body, from one start frame on, shifted
    as a whole along the floor to a place where the pelvis stays within the area."""
    job, clip = training_job(tmp_path, clip_folder, frames=6)
    poses = make_synth.sequence_motion(job)
    assert poses.shape == (6, 32, 3) and len(clip) > 6
    starts = [start for start in range(len(clip) - 5)
              if np.allclose(relative_to_pelvis(clip[start:start + 6]),
                             relative_to_pelvis(poses), rtol=0, atol=1e-9)]
    assert len(starts) == 1
    shift = poses - clip[starts[0]:starts[0] + 6]
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0, 0], shift.shape), atol=1e-9)
    assert shift[0, 0, 2] == 0.0
    assert np.all(np.abs(poses[:, J32["Hip"], :2]) <= ROOT_HALF)
    # another seed, another start or place
    assert not np.allclose(make_synth.sequence_motion(dict(job, seed=1)), poses)


def test_a_short_clip_repeats_on_one_spot(tmp_path, clip_folder):
    """A clip shorter than the recording repeats from its first frame, every repetition's
    pelvis centred on the same spot (not running on from where the clip ends)."""
    job, clip = training_job(tmp_path, clip_folder, frames=2 * 11 + 5)
    assert len(clip) == 11      # the CMU-style clip: 25 frames at 120 fps
    poses = make_synth.sequence_motion(job)
    parts = [poses[:11], poses[11:22], poses[22:]]
    for part, source in zip(parts, [clip, clip, clip[:5]]):
        np.testing.assert_allclose(relative_to_pelvis(part), relative_to_pelvis(source),
                                   atol=1e-9)
    centres = [part[:, J32["Hip"], :2].mean(axis=0) for part in parts]
    np.testing.assert_allclose(centres[1], centres[0], atol=1e-9)
    np.testing.assert_allclose(centres[2], centres[0], atol=1e-9)
    assert np.all(np.abs(poses[:, J32["Hip"], :2]) <= ROOT_HALF)


@pytest.mark.parametrize("flags, message", [
    (("--train-bvh-share", "1.5"), "--train-bvh-share must be within 0 and 1, got 1.5"),
    (("--train-bvh", "{empty}"), "no .bvh files there (give 'none' for procedural motion only)"),
])
def test_bad_training_motion_flags_are_refused(tmp_path, capsys, flags, message):
    (tmp_path / "empty").mkdir()
    flags = [flag.format(empty=tmp_path / "empty") for flag in flags]
    with pytest.raises(SystemExit):
        make_synth.parse_args(["--out", str(tmp_path / "out"), *flags])
    assert message in capsys.readouterr().err


def test_the_shipped_training_clips_read_and_are_not_the_test_clips():
    """Every clip of data_prep/training_motion maps to Human3.6M's skeleton and stands a
    person up; none is by an actor of the real-motion test set (CMU subjects 1 and 131)."""
    clips = sorted(TRAINING_CLIPS.glob("*.bvh"))
    assert len(clips) >= 10
    test_actors = {re.match(r"cmu_(\d+)_", p.name).group(1).lstrip("0")
                   for p in TEST_CLIPS.glob("*.bvh")}
    assert test_actors == {"1", "131"}
    for path in clips:
        actor = re.match(r"cmu_(\d+)_\d+\.bvh$", path.name).group(1).lstrip("0")
        assert actor not in test_actors, path.name
        poses = bvh.retarget_to_h36m(bvh.read_bvh(path), body_for_subject("S1"))
        assert len(poses) > 50, path.name
        height = poses[:, J32["HeadSite"], 2] - np.minimum(poses[:, J32["LeftToeBase"], 2],
                                                            poses[:, J32["RightToeBase"], 2])
        assert np.median(height) > 1200.0, path.name
