"""A tiny evaluable LMDB dataset and a narrow network, for tests that train and evaluate runs
in seconds (tools/train.py, evaluate.py, report.py, ablation.py, demo.py)."""
import json

from tests.test_h36m_data_layer import write_dataset

# config overrides: the paper's layers at a few channels; 10 images, batch 2: 5 iterations
# per epoch, stage 1 ends at 5, stage 2 at 10. Loader threads: starting worker processes
# would take longer than these runs train (tests/test_gpu_training.py trains with them).
TINY = ["batch_size=2", "conv_channels=8,8,8,8,8", "fc_2d_width=16", "fc_3d_width=16",
        "fc_probs_2d_width=8", "epochs=2", "lambda_2d_switch_epoch=1", "lr_step_epochs=1",
        "snapshot_epochs=1", "display_iters=1", "test_epochs=1", "test_images=0",
        "base_lr=0.001", "loader_processes=false"]


def write_tiny_lmdb(folder):
    """The data layer tests' LMDBs plus what the evaluation reads from `make lmdb`'s output:
    the training bone lengths and a per-key index with two actions. Returns the folder."""
    folder = write_dataset(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["bone_lengths_mm"] = {"RHip": 130.0, "LHip": 130.0, "Spine": 240.0,
                                   "Thorax": 250.0, "LShoulder": 150.0, "RShoulder": 150.0}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for split in ("train", "test"):
        rows = ["key,subject,action,stem,camera,frame"]
        rows += [f"{i:08d},S9,{'Walking' if i % 2 else 'Eating'},x,54138969,{i}"
                 for i in range(manifest["splits"][split]["count"])]
        (folder / f"{split}_index.csv").write_text("\n".join(rows) + "\n")
    return folder
