"""H36MData layer and BatchLoader on the tiny dataset (tests/tiny_dataset.py).

Each of the COUNT crops has its own background colour and a white 5 x 5 dot centred on joint 0,
so the dot must follow joint 0 through every crop.
"""
import json
import os

import lmdb
import numpy as np
import pytest

import caffe
from caffe.proto import caffe_pb2

from data_prep.dataset import (Dataset, decode_image, decode_pose, encode_jpeg, image_record,
                               pose_record, sample_key)
from layers.h36m_data import (BatchLoader, auto_workers, crop, crop_offsets, images_per_second,
                              layer_params, pca_color_shift, to_planes)
from tests.gradcheck import layer_net
from tests.tiny_dataset import COUNT, CROP, INPUT, JPEG_QUALITY, stored_image, tiny_samples, \
    write_tiny_dataset

# an orthonormal basis (columns), RGB order, and standard deviations along it
EIGENVALUES = np.array([30.0, 8.0, 2.0])
EIGENVECTORS = np.linalg.qr(np.array([[1.0, 0.3, 0.2], [0.5, 1.0, -0.4], [0.2, 0.7, 1.0]]))[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The tiny dataset folder; returns (dir, sources [(image, joints_2d, joints_3d)])."""
    samples = tiny_samples()
    root = write_tiny_dataset(tmp_path_factory.mktemp("h36m") / "lmdb", samples)
    return str(root), [(s.crop, s.joints_2d, s.joints_3d) for s in samples]


def image_datum(image):
    return image_record(encode_jpeg(image, JPEG_QUALITY), CROP, CROP)


def pose_datum(joints_2d, joints_3d):
    return pose_record(np.concatenate([np.ravel(joints_2d), np.ravel(joints_3d)]))


def dot_centre(image_chw):
    """(x, y) centroid of the brightest pixels of a (3, H, W) image (any offset per channel)."""
    brightness = image_chw.sum(axis=0)
    ys, xs = np.nonzero(brightness > brightness.max() - 150)
    return np.array([xs.mean(), ys.mean()])


def read_batches(directory, count, **kwargs):
    with BatchLoader(directory, "train", **kwargs) as loader:
        return [loader.next_batch() for _ in range(count)]


def test_decode_round_trip(dataset):
    _, sources = dataset
    image, joints_2d, joints_3d = sources[3]
    decoded = decode_image(image_datum(image))
    assert decoded.shape == (CROP, CROP, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).mean() < 2  # JPEG is lossy
    raw = caffe_pb2.Datum(channels=3, height=CROP, width=CROP,
                          data=image.transpose(2, 0, 1).tobytes())
    np.testing.assert_array_equal(decode_image(raw.SerializeToString()), image)
    decoded_2d, decoded_3d = decode_pose(pose_datum(joints_2d, joints_3d))
    np.testing.assert_array_equal(decoded_2d, joints_2d)
    np.testing.assert_array_equal(decoded_3d, joints_3d)
    with pytest.raises(ValueError, match="expected 85 float_data values"):
        decode_pose(pose_datum(joints_2d[:16], joints_3d))


def test_crop_functions():
    rng = np.random.default_rng(0)
    assert crop_offsets(rng, CROP, INPUT, train=False) == (12, 12)
    offsets = np.array([crop_offsets(rng, CROP, INPUT, train=True) for _ in range(2000)])
    assert offsets.min() == 0 and offsets.max() == CROP - INPUT
    image = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    window, joints = crop(image, np.array([[5.0, 6.0]]), dy=2, dx=3, input_size=4)
    np.testing.assert_array_equal(window, image[2:6, 3:7])
    np.testing.assert_array_equal(joints, [[2.0, 4.0]])


def test_test_phase_centre_crop_moves_joints_and_dot(dataset):
    directory, sources = dataset
    with BatchLoader(directory, "test", batch_size=COUNT, train=False) as loader:
        batch = loader.next_batch()
    np.testing.assert_array_equal(batch.indices, np.arange(COUNT))  # no shuffle in TEST
    for slot, index in enumerate(batch.indices):
        _, joints_2d, joints_3d = sources[index]
        np.testing.assert_array_equal(batch.joints_2d[slot], joints_2d - 12)
        np.testing.assert_array_equal(batch.joints_3d[slot], joints_3d)
        np.testing.assert_allclose(dot_centre(batch.images[slot]), batch.joints_2d[slot, 0],
                                   atol=0.5)


def test_mean_subtraction(dataset):
    directory, sources = dataset
    with BatchLoader(directory, "test", batch_size=4, train=False) as loader:
        batch = loader.next_batch()
    for slot, index in enumerate(batch.indices):
        decoded = stored_image(sources[index][0])[12:12 + INPUT, 12:12 + INPUT]
        restored = batch.images[slot] + Dataset(directory).mean_bgr[:, None, None]
        np.testing.assert_allclose(restored, decoded.transpose(2, 0, 1), atol=1e-4)


def test_train_random_crops_stay_in_bounds_and_joints_follow(dataset):
    directory, sources = dataset
    batches = read_batches(directory, 6, batch_size=5, seed=3)
    offsets = []
    for batch in batches:
        assert batch.images.shape == (5, 3, INPUT, INPUT) and batch.images.dtype == np.float32
        for slot, index in enumerate(batch.indices):
            shift = sources[index][1] - batch.joints_2d[slot]  # (dx, dy) for every joint
            assert np.all(shift == shift[0]) and np.all(shift[0] == np.round(shift[0]))
            assert 0 <= shift[0].min() and shift[0].max() <= CROP - INPUT
            offsets.append(shift[0])
            np.testing.assert_allclose(dot_centre(batch.images[slot]), batch.joints_2d[slot, 0],
                                       atol=0.5)
    assert len({tuple(o) for o in offsets}) > 10  # the crops really vary


def test_pca_shift_statistics():
    rng = np.random.default_rng(1)
    std = 0.1
    shifts = np.array([pca_color_shift(rng, EIGENVALUES, EIGENVECTORS, std)
                       for _ in range(40000)])
    rgb_covariance = EIGENVECTORS @ np.diag((std * EIGENVALUES) ** 2) @ EIGENVECTORS.T
    bgr_covariance = rgb_covariance[::-1, ::-1]
    scale = (std * EIGENVALUES.max()) ** 2
    np.testing.assert_allclose(np.cov(shifts.T), bgr_covariance, atol=0.05 * scale)
    np.testing.assert_allclose(shifts.mean(axis=0), 0, atol=0.05 * std * EIGENVALUES.max())
    zero = pca_color_shift(rng, EIGENVALUES, EIGENVECTORS, std=0.0)
    np.testing.assert_array_equal(zero, 0)


def test_train_colour_shift_is_uniform_per_image(dataset):
    directory, sources = dataset
    shifted = read_batches(directory, 1, batch_size=4, seed=5)[0]
    plain = read_batches(directory, 1, batch_size=4, seed=5, pca_std=0.0)[0]
    np.testing.assert_array_equal(shifted.joints_2d, plain.joints_2d)  # same crops
    difference = (shifted.images - plain.images).reshape(4, 3, -1)
    np.testing.assert_allclose(difference, difference[..., :1].repeat(INPUT * INPUT, -1),
                               atol=1e-3)
    assert np.abs(difference[..., 0]).max() > 0.01


def test_same_seed_same_batches_whatever_the_workers(dataset):
    directory, _ = dataset
    one = read_batches(directory, 7, batch_size=4, seed=11, workers=1, prefetch=1)
    three = read_batches(directory, 7, batch_size=4, seed=11, workers=3, prefetch=5)
    other = read_batches(directory, 7, batch_size=4, seed=12, workers=2)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.joints_2d, b.joints_2d)
        np.testing.assert_array_equal(a.joints_3d, b.joints_3d)
    assert any(not np.array_equal(a.images, c.images) for a, c in zip(one, other))


def test_every_key_once_per_epoch_reshuffled(dataset):
    directory, sources = dataset
    with BatchLoader(directory, "train", batch_size=5, seed=2) as loader:
        stream = np.concatenate([loader.next_batch().indices for _ in range(6)])
        epochs = stream.reshape(3, COUNT)
        for epoch, order in enumerate(epochs):
            np.testing.assert_array_equal(np.sort(order), np.arange(COUNT))
            np.testing.assert_array_equal(order, loader.epoch_order(epoch))
    np.testing.assert_array_equal(epochs[0], np.random.default_rng(2).permutation(COUNT))
    assert not np.array_equal(epochs[0], epochs[1])
    batch = read_batches(directory, 1, batch_size=COUNT, seed=2)[0]
    for slot, index in enumerate(batch.indices):
        np.testing.assert_array_equal(batch.joints_3d[slot], sources[index][2])


def test_close_stops_the_threads(dataset):
    directory, _ = dataset
    loader = BatchLoader(directory, "train", batch_size=2, workers=3, prefetch=2)
    loader.next_batch()
    threads = list(loader._source._threads)
    loader.close()
    assert not any(thread.is_alive() for thread in threads)
    loader.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        loader.next_batch()


def test_images_per_second_is_images_over_the_timed_span(dataset, monkeypatch):
    """3 batches of 4 after the first one, on a clock that advances 1 s per reading: the
    span runs from the reading before the first timed batch to the one after the last."""
    import layers.h36m_data as module
    directory, _ = dataset
    readings = iter(range(100))
    monkeypatch.setattr(module.time, "perf_counter", lambda: float(next(readings)))
    # readings: 0 start; 1, 2, 3 before batches 1-3; 4 sees 3 done; 5 ends the span
    assert images_per_second(directory, "train", batch_size=4, batches=3) == 12 / 5


def layer_param_str(directory, split, **extra):
    return json.dumps({"dir": directory, "split": split, "batch_size": 4, **extra})


@pytest.mark.parametrize("phase", [caffe.TRAIN, caffe.TEST])
def test_layer_top_shapes(dataset, phase):
    directory, _ = dataset
    split = "train" if phase == caffe.TRAIN else "test"
    net = layer_net("layers.h36m_data", "H36MData", [], layer_param_str(directory, split),
                    n_tops=3, phase=phase)
    net.forward()
    assert net.blobs["top0"].data.shape == (4, 3, INPUT, INPUT)
    assert net.blobs["top1"].data.shape == (4, 17, 2)
    assert net.blobs["top2"].data.shape == (4, 17, 3)


def test_layer_test_batches_equal_the_loader(dataset):
    directory, _ = dataset
    net = layer_net("layers.h36m_data", "H36MData", [], layer_param_str(directory, "test"),
                    n_tops=3, phase=caffe.TEST)
    with BatchLoader(directory, "test", batch_size=4, train=False) as loader:
        for _ in range(3):  # crosses the end of the epoch (COUNT = 10)
            net.forward()
            batch = loader.next_batch()
            np.testing.assert_array_equal(net.blobs["top0"].data, batch.images)
            np.testing.assert_array_equal(net.blobs["top1"].data, batch.joints_2d)
            np.testing.assert_array_equal(net.blobs["top2"].data, batch.joints_3d)


def test_limit_wraps_the_stream_after_the_first_samples(dataset):
    directory, _ = dataset
    net = layer_net("layers.h36m_data", "H36MData", [],
                    layer_param_str(directory, "test", limit=8), n_tops=3, phase=caffe.TEST)
    with BatchLoader(directory, "test", batch_size=4, train=False) as loader:
        first_two = [loader.next_batch() for _ in range(2)]   # samples 0-7
    for _ in range(2):   # two test passes of two batches: the same eight frames each time
        for batch in first_two:
            net.forward()
            np.testing.assert_array_equal(net.blobs["top0"].data, batch.images)
            np.testing.assert_array_equal(net.blobs["top2"].data, batch.joints_3d)
    with BatchLoader(directory, "train", batch_size=3, limit=6, seed=4) as loader:
        stream = np.concatenate([loader.next_batch().indices for _ in range(4)])
    np.testing.assert_array_equal(np.sort(stream[:6]), np.arange(6))   # epochs of 6 samples
    np.testing.assert_array_equal(np.sort(stream[6:]), np.arange(6))
    with pytest.raises(ValueError, match="limit must be >= 0"):
        BatchLoader(directory, "test", batch_size=2, limit=-1)


def test_layer_params_defaults_follow_the_phase():
    train = layer_params('{"dir": "d", "split": "train", "batch_size": 2}', train=True)
    test = layer_params('{"dir": "d", "split": "test", "batch_size": 2, "pca_std": 0.3}',
                        train=False)
    assert train["shuffle"] and train["pca_std"] == 0.1 and train["input_size"] == 225
    assert not test["shuffle"] and test["pca_std"] == 0.0


@pytest.mark.parametrize("params, message", [
    ({"dir": "DATASET", "split": "train", "batch_size": 4, "crop": 3}, "unknown keys \\['crop'\\]"),
    ({"split": "train"}, "missing keys \\['batch_size', 'dir'\\]"),
    ({"dir": "/nonexistent/h36m", "split": "train", "batch_size": 4},
     "dataset /nonexistent/h36m: no manifest.json; build the dataset with `make lmdb`"),
    ({"dir": "DATASET", "split": "val", "batch_size": 4}, "split must be"),
])
def test_layer_rejects_bad_param_str(dataset, params, message):
    directory, _ = dataset
    if params.get("dir") == "DATASET":  # the real dataset, so only the named fault is wrong
        params = {**params, "dir": directory}
    with pytest.raises(Exception, match=message):
        layer_net("layers.h36m_data", "H36MData", [], json.dumps(params), n_tops=3)


def test_missing_lmdb_names_the_path(dataset, tmp_path):
    directory, _ = dataset
    (tmp_path / "manifest.json").write_text(open(f"{directory}/manifest.json").read())
    message = f"dataset {tmp_path}: LMDB train_images is missing; rebuild it"
    with pytest.raises(ValueError, match=message):
        BatchLoader(str(tmp_path), "train", batch_size=2)


def test_layer_rejects_wrong_tops(dataset):
    directory, _ = dataset
    with pytest.raises(Exception, match="3 tops"):
        layer_net("layers.h36m_data", "H36MData", [], layer_param_str(directory, "train"),
                  n_tops=2)


@pytest.mark.parametrize("processes", [False, True])
def test_worker_errors_reach_the_consumer(dataset, tmp_path, processes):
    directory, sources = dataset
    manifest = json.loads(open(f"{directory}/manifest.json").read())
    manifest["splits"]["train"]["count"] = 2
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    image, joints_2d, joints_3d = sources[0]
    for kind, value in (("images", image_datum(image)),
                        ("poses", pose_datum(joints_2d[:16], joints_3d))):  # one joint short
        env = lmdb.open(str(tmp_path / f"train_{kind}"), map_size=1 << 24)
        with env.begin(write=True) as txn:
            txn.put(sample_key(0), value)
            txn.put(sample_key(1), value)
        env.close()
    with BatchLoader(str(tmp_path), "train", batch_size=2, processes=processes) as loader:
        with pytest.raises(ValueError, match="expected 85 float_data values"):
            loader.next_batch()
    manifest["splits"]["train"]["count"] = 3
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="holds 2 entries but the manifest says 3"):
        BatchLoader(str(tmp_path), "train", batch_size=2)


# ---------------------------------------------------------------- shards and worker processes

def stream_of(directory, batches, **kwargs):
    """Sample indices of the first `batches` batches of a TRAIN loader."""
    with BatchLoader(directory, "train", **kwargs) as loader:
        return [loader.next_batch().indices for _ in range(batches)]


def test_two_ranks_see_disjoint_halves_of_each_epoch(dataset):
    """Rank r of 2 takes the stream's batches r, r + 2, ...: in an epoch of 10 images at batch
    1 each rank sees 5, no image twice, and together every image once; the next steps
    continue into epoch 1's order."""
    directory, _ = dataset
    full = np.concatenate(stream_of(directory, 20, batch_size=1, seed=3))
    ranks = [np.concatenate(stream_of(directory, 10, batch_size=1, seed=3, shard=(r, 2)))
             for r in range(2)]
    for epoch in range(2):
        order = np.random.default_rng(3 + epoch).permutation(COUNT)
        halves = [ranks[r][5 * epoch:5 * epoch + 5] for r in range(2)]
        assert not set(halves[0]) & set(halves[1])
        assert sorted(np.concatenate(halves)) == list(range(COUNT))
        np.testing.assert_array_equal(halves[0], order[0::2])
        np.testing.assert_array_equal(halves[1], order[1::2])
    # the interleaved ranks are the unsharded stream, batch for batch
    np.testing.assert_array_equal(np.stack(ranks, axis=1).ravel(), full)


def test_shard_must_name_a_rank_of_the_count(dataset):
    directory, _ = dataset
    with pytest.raises(ValueError, match="0 <= rank < count"):
        BatchLoader(directory, "train", batch_size=2, shard=(2, 2))


def test_layer_shards_train_by_solver_rank_and_never_test(dataset):
    if not hasattr(caffe, "set_solver_rank"):
        pytest.skip("this pycaffe has no solver ranks (the PyPI fork: one device only)")
    directory, _ = dataset
    # as solver/training.py sets up rank 2 of 3 (Caffe refuses Python layers in a multi-GPU
    # TRAIN net unless in multiprocess mode)
    caffe.set_solver_count(3)
    caffe.set_solver_rank(2)
    caffe.set_multiprocess(True)
    try:
        train = layer_net("layers.h36m_data", "H36MData", [], layer_param_str(directory, "train"),
                          n_tops=3, phase=caffe.TRAIN)
        test = layer_net("layers.h36m_data", "H36MData", [], layer_param_str(directory, "test"),
                         n_tops=3, phase=caffe.TEST)
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)
        caffe.set_multiprocess(False)
    assert train.layers[0].loader.shard == (2, 3)
    assert test.layers[0].loader.shard == (0, 1)
    train.forward()
    expected = stream_of(directory, 3, batch_size=4, shard=(0, 1))[2]  # stream batch 2
    np.testing.assert_array_equal(train.layers[0].indices, expected)


def test_worker_processes_give_the_threads_batches(dataset):
    """Processes build bitwise the batches threads build (crops, colour shifts, joints), in
    order, sharded alike; closing ends them and removes the shared slots file."""
    directory, _ = dataset
    with BatchLoader(directory, "train", batch_size=3, workers=2, seed=5) as loader:
        threads = [loader.next_batch() for _ in range(7)]
    with BatchLoader(directory, "train", batch_size=3, workers=2, seed=5, processes=True,
                     prefetch=3) as loader:
        processes = [loader.next_batch() for _ in range(7)]
        workers = list(loader._source._processes)
        out = loader.maker.empty_batch()
        assert loader.next_batch(out=out) is out
    assert not any(worker.is_alive() for worker in workers)
    for a, b in zip(threads, processes):
        for field in ("images", "joints_2d", "joints_3d", "indices"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    sharded = stream_of(directory, 4, batch_size=2, seed=5, shard=(1, 2), processes=True)
    np.testing.assert_array_equal(
        np.concatenate(sharded), np.concatenate(stream_of(directory, 8, batch_size=2,
                                                          seed=5)[1::2]))


def test_layer_with_worker_processes(dataset):
    directory, _ = dataset
    net = layer_net("layers.h36m_data", "H36MData", [],
                    layer_param_str(directory, "test", processes=True, workers=2),
                    n_tops=3, phase=caffe.TEST)
    net.forward()
    with BatchLoader(directory, "test", batch_size=4, train=False) as loader:
        batch = loader.next_batch()
    np.testing.assert_array_equal(net.blobs["top0"].data, batch.images)
    np.testing.assert_array_equal(net.blobs["top2"].data, batch.joints_3d)


def test_auto_workers_share_the_cores():
    cores = os.cpu_count()
    assert auto_workers(1) == max(2, cores - 1)
    assert auto_workers(cores) == 2
    params = layer_params(json.dumps({"dir": "d", "split": "train", "batch_size": 2,
                                      "workers": 0}), True, shard=(0, 1))
    assert params["workers"] == auto_workers(1)


def test_to_planes_is_the_float_expression_bit_for_bit():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(CROP, CROP, 3), dtype=np.uint8)
    out = np.empty((3, INPUT, INPUT), dtype=np.float32)
    offsets = [rng.normal(-110, 30, size=3), rng.normal(-110, 30, size=3),
               rng.normal(-110, 30, size=3), [-255.9, 1e-7, 3.3e3], [0.1, -0.3, 1 / 3]]
    for (dy, dx), offset in zip(((0, 0), (7, 25), (25, 3), (1, 1), (25, 25)), offsets):
        window = image[dy:dy + INPUT, dx:dx + INPUT]
        offset = np.asarray(offset).astype(np.float32)
        to_planes(window, offset, out)
        expected = (window.astype(np.float32) + offset).transpose(2, 0, 1)
        assert out.tobytes() == np.ascontiguousarray(expected).tobytes()


@pytest.mark.parametrize("batch_size", [1, 3, 128])
@pytest.mark.parametrize("threads", [1, 4])
def test_batch_copier_copies_every_array(batch_size, threads, monkeypatch):
    from layers import h36m_data
    monkeypatch.setattr(h36m_data, "COPY_THREADS", threads)
    rng = np.random.default_rng(batch_size)
    source = h36m_data.Batch(rng.standard_normal((batch_size, 3, 7, 7)).astype(np.float32),
                             rng.standard_normal((batch_size, 17, 2)).astype(np.float32),
                             rng.standard_normal((batch_size, 17, 3)).astype(np.float32),
                             rng.integers(0, 1000, batch_size))
    copier = h36m_data._BatchCopier("test")
    try:
        for _ in range(2):
            out = h36m_data.Batch(*(np.full_like(array, -1) for array in (
                source.images, source.joints_2d, source.joints_3d, source.indices)))
            assert copier(source, out) is out
            for name in ("images", "joints_2d", "joints_3d", "indices"):
                assert getattr(out, name).tobytes() == getattr(source, name).tobytes()
    finally:
        copier.close()


def reference_batch(directory, maker, sources, batch_index):
    """Batch `batch_index` of a TRAIN loader's maker, the augmentation written out plainly:
    per image, in the batch's random stream, the crop offsets, then the colour shift by the
    dataset's colour PCA, minus its mean pixel."""
    dataset = Dataset(directory)
    eigenvalues, eigenvectors = dataset.pca
    rng = maker.batch_rng(batch_index)
    images = []
    for index in maker.batch_indices(batch_index):
        image = stored_image(sources[index][0])
        dy, dx = crop_offsets(rng, CROP, INPUT, train=True)
        shift = pca_color_shift(rng, eigenvalues, eigenvectors, maker.pca_std)
        offset = -dataset.mean_bgr + shift.astype(np.float32)
        window = image[dy:dy + INPUT, dx:dx + INPUT]
        images.append((window.astype(np.float32) + offset).transpose(2, 0, 1))
    return np.stack(images)


@pytest.mark.parametrize("processes", [False, True])
def test_train_batches_are_the_plain_augmentation_bit_for_bit(dataset, processes):
    directory, sources = dataset
    with BatchLoader(directory, "train", batch_size=4, seed=9, processes=processes) as loader:
        for batch_index in range(5):
            batch = loader.next_batch()
            expected = reference_batch(directory, loader.maker, sources, batch_index)
            assert batch.images.tobytes() == expected.tobytes()


def test_an_explicit_subset_of_samples_is_visited_in_its_order(dataset):
    directory, sources = dataset
    with BatchLoader(directory, "test", batch_size=4, train=False, samples=[3, 1, 7]) as loader:
        assert loader.count == 3
        first, second = loader.next_batch(), loader.next_batch()
    assert list(first.indices) == [3, 1, 7, 3] and list(second.indices) == [1, 7, 3, 1]
    for slot, index in enumerate(first.indices):
        np.testing.assert_array_equal(first.joints_3d[slot], sources[index][2])
    with pytest.raises(ValueError, match="samples must be a non-empty list of indices below"):
        BatchLoader(directory, "test", batch_size=2, train=False, samples=[COUNT])
