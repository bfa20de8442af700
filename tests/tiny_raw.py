"""A tiny raw Human3.6M tree (the synthetic generator's S1 and S9 Walking: two recordings of
four cameras each, at a fifth of the size) and make_lmdb's arguments for it, shared by the
tests that build from raw files."""
from data_prep.make_synth import main as make_synth


def write_tiny_raw(root, frames):
    """Write the tree with `frames` pose frames per recording into root; returns root."""
    assert make_synth(["--out", str(root), "--subjects", "S1", "S9", "--actions", "Walking",
                       "--frames", str(frames), "--scale", "0.2", "--workers", "1",
                       "--quiet"]) == 0
    return root


def lmdb_arguments(root, out, *extra, workers=1):
    """make_lmdb's arguments for the tree: S1 trains, S9 tests."""
    return ["--root", str(root), "--out", str(out), "--train-subjects", "S1", "--test-subjects",
            "S9", "--actions", "Walking", "--workers", str(workers), "--quiet", *extra]
