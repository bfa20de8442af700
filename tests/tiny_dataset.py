"""Fixtures' data: a tiny dataset folder written through data_prep.dataset, and config
overrides that train a narrow network on it in seconds (training, evaluation, reports).

Each sample is a dark crop of a colour unique to its index with a white 5 x 5 dot on its
first joint, so tests can find the joint in the network's input; actions alternate between
Eating and Walking. Train and test splits hold the same COUNT samples.
"""
import numpy as np

from config import PAPER
from data_prep.dataset import DatasetWriter, Sample, decode_image, encode_jpeg, image_record

COUNT = 10
CROP = 250
INPUT = 225
JPEG_QUALITY = PAPER.jpeg_quality   # the default config's: runs check theirs against it

# config overrides: the paper's layers at a few channels; 10 images, batch 2: 5 iterations
# per epoch, lambda_2D switches at 5, the run ends at 10. Loader threads: starting worker
# processes would take longer than these runs train (tests/test_gpu_training.py trains with
# them).
TINY = ["batch_size=2", "conv_channels=8,8,8,8,8", "fc_2d_width=16", "fc_3d_width=16",
        "fc_probs_2d_width=8", "epochs=2", "lambda_2d_switch_epoch=1", "lr_step_epochs=1",
        "snapshot_epochs=1", "display_iters=1", "test_epochs=1", "test_images=0",
        "base_lr=0.001", "loader_processes=false"]


def sample_image(index, joint):
    """Dark background of a colour unique to `index`, white 5 x 5 dot centred on pixel joint."""
    image = np.empty((CROP, CROP, 3), dtype=np.uint8)
    image[...] = (10 + 5 * index, 40, 80 - 5 * index)
    x, y = joint
    image[y - 2:y + 3, x - 2:x + 3] = 255
    return image


def tiny_samples(count=COUNT, seed=7):
    """The Samples of the tiny dataset."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(count):
        # joint 0 lies inside every possible 225 window: x, y in [25, 225)
        joints_2d = rng.integers(40, 210, size=(17, 2)).astype(np.float32)
        joints_3d = (rng.normal(0, 300, size=(17, 3)) + [0, 0, 4000] + index).astype(np.float32)
        row = {"subject": "S9", "action": "Walking" if index % 2 else "Eating", "stem": "x",
               "camera": "54138969", "frame": index}
        samples.append(Sample(sample_image(index, joints_2d[0].astype(int)), joints_2d,
                              joints_3d, row))
    return samples


def write_tiny_dataset(folder, samples=None):
    """Write the tiny dataset (train and test: the same samples) into folder; returns it."""
    samples = tiny_samples() if samples is None else samples
    with DatasetWriter(folder, CROP, JPEG_QUALITY) as writer:
        for split in ("train", "test"):
            writer.split(split).add(samples, JPEG_QUALITY)
        writer.commit({"source": "tests/tiny_dataset.py"})
    return folder


def stored_image(image):
    """The image as the dataset holds it (after JPEG encoding and decoding)."""
    return decode_image(image_record(encode_jpeg(image, JPEG_QUALITY), CROP, CROP))
