"""The real-motion test set: the CMU clips the toolkit ships (data_prep/real_motion/) each read,
map onto Human3.6M's skeleton and move onto the held-out subjects' bodies; `make real-motion`
renders them onto S1, S9 and S11 and builds their LMDBs; `make demo` evaluates on them too."""
import re
from pathlib import Path

import numpy as np
import pytest

from data_prep.h36m import J32, PARENTS_32
from data_prep.synth.bvh import read_bvh, retarget_to_h36m
from data_prep.synth.motion import body_for_subject, bone_offsets
from tests.test_makefile import argument, planned

REPO = Path(__file__).resolve().parents[1]
CLIPS = sorted((REPO / "data_prep" / "real_motion").glob("*.bvh"))


def test_the_clips_are_listed_with_their_source():
    readme = (REPO / "data_prep" / "real_motion" / "README.md").read_text()
    assert len(CLIPS) >= 4
    for clip in CLIPS:
        assert f"`{clip.name}`" in readme
    assert "mocap.cs.cmu.edu" in readme and "NSF EIA-0196217" in readme


@pytest.mark.parametrize("clip", CLIPS, ids=[clip.stem for clip in CLIPS])
@pytest.mark.parametrize("subject", ["S9", "S11"])
def test_each_clip_moves_onto_a_held_out_subject(clip, subject):
    """Finite poses at 50 fps with the subject's own bone lengths (its pelvis to thorax, Neck in
    the 32-joint names, not the actor's), standing on the floor."""
    motion = read_bvh(clip)
    body = body_for_subject(subject)
    poses = retarget_to_h36m(motion, body)
    seconds = len(motion.frames) * motion.frame_time
    assert np.isfinite(poses).all()
    assert abs(len(poses) - 50 * seconds) <= 2
    lengths = np.linalg.norm(bone_offsets(body), axis=-1)
    for child, parent in enumerate(PARENTS_32):
        if parent >= 0:
            got = np.linalg.norm(poses[:, child] - poses[:, parent], axis=-1)
            np.testing.assert_allclose(got, lengths[child], atol=1e-6)
    pelvis_to_thorax = np.linalg.norm(poses[:, J32["Neck"]] - poses[:, J32["Hip"]], axis=-1)
    assert pelvis_to_thorax.min() > 400
    assert np.median(poses[..., 2].min(axis=1)) == pytest.approx(0, abs=60)


def test_make_real_motion_renders_the_clips_onto_the_held_out_subjects():
    commands = planned("real-motion", REAL_MOTION_ROOT="data/real motion",
                       REAL_MOTION_LMDB="data/lmdb/real motion")
    synth = next(words for words in commands if "data_prep.make_synth" in words)
    assert argument(commands, "data_prep.make_synth", "--bvh") == "data_prep/real_motion"
    assert argument(commands, "data_prep.make_synth", "--out") == "data/real motion"
    subjects = synth[synth.index("--subjects") + 1:synth.index("--subjects") + 4]
    assert subjects == ["S1", "S9", "S11"]
    lmdb = next(words for words in commands if "data_prep.make_lmdb" in words)
    assert argument(commands, "data_prep.make_lmdb", "--root") == "data/real motion"
    assert argument(commands, "data_prep.make_lmdb", "--out") == "data/lmdb/real motion"
    assert lmdb[lmdb.index("--test-subjects") + 1:lmdb.index("--test-subjects") + 3] == \
        ["S9", "S11"]


def test_make_demo_evaluates_on_the_real_motion_set_too():
    commands = planned("demo", REAL_MOTION_LMDB="data/lmdb/real motion",
                       REAL_MOTION_ROOT="data/real motion")
    assert argument(commands, "tools/demo.py", "--real-lmdb") == "data/lmdb/real motion"
    assert any("data_prep.make_synth" in words for words in commands)


def test_the_demo_ratio_line():
    from evaluation.experiments import ratio_line
    results = {"mpjpe": {"frame_weighted": 90.0}, "mean_pose_mpjpe": {"frame_weighted": 200.0},
               "p_mpjpe": {"frame_weighted": 61.25}, "frames": 480}
    assert ratio_line(results) == ("MPJPE 90.0 mm = 45% of the mean-pose baseline (200.0 mm); "
                                   "P-MPJPE 61.2 mm; 480 test frames")
    assert re.fullmatch(r"MPJPE .*frames", ratio_line(results))
