"""Conformance with the real Human3.6M: its facts (from the dataset's own metadata,
metadata.xml of its release, and its files) stated here, independently of data_prep/h36m.py, and
the reader, the synthetic generator and the manifest checked against them.

One synthetic tree with the default faults is made for the module: subjects and actions
chosen to hold the irregular stems, S7's frame size, the half-posed and damaged S9
recordings and the broken S11 video.
"""
import json

import cdflib
import cv2
import numpy as np
import pytest

from data_prep import h36m
from data_prep.make_lmdb import main as make_lmdb
from data_prep.make_synth import main as make_synth
from data_prep.reader import find_sequences
from tests.h36m_facts import INTRINSIC_FACTS, formula_projection

pytestmark = pytest.mark.slow

# ---------------------------------------------------------------- the facts, stated here

# Both recordings' stems of some subject x action pairs (the dataset's metadata.xml).
STEM_FACTS = {
    ("S1", "Eating"): {"Eating 2", "Eating"},
    ("S1", "Photo"): {"TakingPhoto 1", "TakingPhoto"},
    ("S1", "Directions"): {"Directions 1", "Directions"},
    ("S5", "Discussion"): {"Discussion 2", "Discussion 3"},
    ("S5", "Directions"): {"Directions 1", "Directions 2"},
    ("S5", "Photo"): {"Photo", "Photo 2"},
    ("S6", "Waiting"): {"Waiting 3", "Waiting"},
    ("S6", "Eating"): {"Eating 1", "Eating 2"},
    ("S7", "Phoning"): {"Phoning 2", "Phoning"},
    ("S7", "Waiting"): {"Waiting 1", "Waiting 2"},
    ("S9", "Discussion"): {"Discussion 1", "Discussion 2"},
    ("S9", "Greeting"): {"Greeting 1", "Greeting"},
    ("S11", "Phoning"): {"Phoning 3", "Phoning 2"},
    ("S11", "Greeting"): {"Greeting 2", "Greeting"},
    ("S11", "Directions"): {"Directions 1", "Directions"},
}
# Frames every video has beyond its poses, per camera: (least, most)
EXTRA_FACTS = {"54138969": (0, 2), "60457274": (0, 2), "55011271": (2, 8), "58860488": (2, 8)}
# (width, height) per camera, and S7's for all four
SIZE_FACTS = {"54138969": (1000, 1002), "60457274": (1000, 1002), "55011271": (1000, 1000),
              "58860488": (1000, 1000)}
S7_SIZE = (1000, 1002)
HALF_POSED_FACTS = {("S9", "Greeting"), ("S9", "SittingDown 1"), ("S9", "Waiting 1"),
                    ("S9", "Walking")}
BROKEN_FACT = "S11/Directions.54138969"
CROP_FACTS = {"train": 1_559_752, "test": 550_644}
SUBJECTS = ("S1", "S5", "S6", "S7", "S9", "S11")
ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Waiting")
FRAMES, SCALE = 12, 0.2


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance") / "h36m"
    assert make_synth(["--out", str(root), "--subjects", *SUBJECTS, "--actions", *ACTIONS,
                       "--frames", str(FRAMES), "--scale", str(SCALE), "--quiet"]) == 0
    return root


@pytest.fixture(scope="module")
def manifest(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("conformance") / "lmdb"
    assert make_lmdb(["--root", str(tree), "--out", str(out), "--train-subjects", "S1", "S5",
                      "S6", "S7", "--test-subjects", "S9", "S11", "--actions", *ACTIONS,
                      "--quiet"]) == 0
    return json.loads((out / "manifest.json").read_text())


def test_the_stated_facts_are_the_toolkits_facts():
    for (subject, action), stems in STEM_FACTS.items():
        assert set(h36m.STEMS[subject][action]) == stems
    assert {c: (lo, hi) for c, (lo, _, hi) in h36m.VIDEO_EXTRA_FRAMES.items()} == EXTRA_FACTS
    assert h36m.HALF_POSED == HALF_POSED_FACTS and h36m.REAL_CROPS == CROP_FACTS
    for camera_id in SIZE_FACTS:
        assert h36m.frame_size("S1", camera_id) == SIZE_FACTS[camera_id]
        assert h36m.frame_size("S7", camera_id) == S7_SIZE


def test_the_projection_is_the_datasets_formula():
    rng = np.random.default_rng(0)
    points = np.stack([rng.uniform(-900, 900, 500), rng.uniform(-900, 900, 500),
                       rng.uniform(2500, 7000, 500)], axis=-1)
    for camera_id in INTRINSIC_FACTS:
        np.testing.assert_allclose(h36m.project(points, h36m.CAMERAS[camera_id]),
                                   formula_projection(points, camera_id), atol=1e-9)


def test_every_stem_is_found_per_subject_and_action(tree):
    sequences, _ = find_sequences(tree, SUBJECTS, ACTIONS)
    found = {}
    for sequence in sequences:
        found.setdefault((sequence.subject, sequence.action), set()).add(sequence.stem)
    for (subject, action), stems in STEM_FACTS.items():
        if subject in SUBJECTS and action in ACTIONS:
            assert found[(subject, action)] == stems, (subject, action)
    assert all(len(stems) == 2 for stems in found.values())


def test_frame_sizes_per_subject_and_camera(tree):
    for subject in ("S1", "S7", "S9"):
        for camera_id, size in SIZE_FACTS.items():
            expected = S7_SIZE if subject == "S7" else size
            stem = h36m.STEMS[subject]["Eating"][0]
            video = cv2.VideoCapture(str(h36m.sequence_paths(tree, subject, stem,
                                                             camera_id)["video"]))
            got = (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)),
                   int(video.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            video.release()
            # scaled, each side rounded to an even number of pixels as video codecs want
            assert all(abs(g - SCALE * e) <= 2 for g, e in zip(got, expected)), \
                (subject, camera_id, got)
    assert got[1] >= got[0]


def test_the_2d_poses_are_the_formulas_projection_of_the_mono_poses(tree):
    for subject, action, camera_id in (("S1", "Eating", "54138969"), ("S7", "Phoning", "58860488"),
                                       ("S11", "Greeting", "55011271")):
        stem = h36m.STEMS[subject][action][0]
        paths = h36m.sequence_paths(tree, subject, stem, camera_id)
        mono = cdflib.CDF(str(paths["d3_mono"]))["Pose"].reshape(-1, 32, 3)
        d2 = cdflib.CDF(str(paths["d2"]))["Pose"].reshape(-1, 32, 2)
        metadata = json.loads((tree / "metadata.json").read_text())
        full_resolution = d2 / metadata.get("scale", SCALE)
        np.testing.assert_allclose(full_resolution, formula_projection(mono, camera_id),
                                   atol=1e-3)


def test_the_manifest_reports_what_the_metadata_predicts(manifest):
    truncated = manifest["splits"]["train"]["truncated"] + manifest["splits"]["test"]["truncated"]
    half = {entry["sequence"] for split in manifest["splits"].values()
            for entry in split["half_posed"]}
    per_camera = {}
    for entry in truncated:
        if entry["sequence"] in half:
            continue
        camera_id = entry["sequence"].rsplit(".", 1)[1]
        least, most = EXTRA_FACTS[camera_id]
        assert max(least, 1) <= entry["video"] - entry["poses"] <= most, entry
        assert entry["kept"] == entry["poses"] == FRAMES
        per_camera[camera_id] = per_camera.get(camera_id, 0) + 1
    sequences = sum(split["sequences"] for split in manifest["splits"].values())
    # every sequence of the two cameras whose videos are always 2-8 frames longer is truncated
    recordings = len(SUBJECTS) * len(ACTIONS) * 2
    for camera_id in ("55011271", "58860488"):
        assert per_camera[camera_id] == recordings - len(
            {s for s in half if s.endswith(camera_id)})
    expected_half = {f"{subject}/{stem}.{camera_id}" for subject, stem in HALF_POSED_FACTS
                     if stem.split()[0] in ACTIONS for camera_id in SIZE_FACTS}
    assert half == expected_half
    for entry in manifest["splits"]["test"]["half_posed"]:
        assert entry["video"] >= 2 * entry["poses"] and entry["kept"] == entry["poses"]
    skipped = manifest["splits"]["test"]["skipped"] + manifest["splits"]["train"]["skipped"]
    assert len(skipped) == 1 and skipped[0].startswith(BROKEN_FACT)
    assert "known fault" in skipped[0]
    ignored = manifest["splits"]["train"]["ignored"] + manifest["splits"]["test"]["ignored"]
    assert ignored and all("_ALL." in name for name in ignored)   # expected, not faults
    assert sequences == len(SUBJECTS) * len(ACTIONS) * 2 * 4 - 1
    assert manifest["drop_damaged"] is False and not manifest["splits"]["test"]["dropped_damaged"]
