"""Training data: Human3.6M crops from LMDB with the paper's augmentation, prepared ahead by
worker threads or processes, sharded across the GPUs of a multi-GPU run.

Dataset folder: written by `make lmdb` in the format of data_prep/dataset.py, which also
reads it (records, manifest: crop size, mean pixel, colour PCA); this layer only augments.

Augmentation. TRAIN: a random input_size x input_size crop of the 250 x 250 crop (offsets
uniform over all positions) and AlexNet's PCA colour shift (alpha_i ~ N(0, pca_std), shift =
V (alpha * lambda) added to every pixel). TEST: the centre crop, no colour shift. The 2D joints
move with the crop; the mean pixel is subtracted in both phases.

Order and randomness. The samples form one endless stream, epoch after epoch; epoch e visits
every key once, in the order of a permutation drawn by numpy's Generator seeded with seed + e
(or in key order without shuffle). Batch b takes stream positions [b N, (b + 1) N), so a batch
may straddle two epochs. Its crops and colour shifts come from its own Generator seeded with
(seed, epoch of its first sample, b), so a batch's content depends on nothing but (seed, b):
the same seed gives the same batches whatever the number and kind of workers.

Shards. With several GPUs (Caffe's solver count N > 1, rank r; solver/training.py) the TRAIN
layer of rank r takes batches r, r + N, r + 2N, ... of that stream: in every N consecutive
steps the ranks see N consecutive batches, so an epoch shows every image once across the GPUs.
One GPU or the CPU (N = 1) takes every batch; TEST layers (rank 0 only) are never sharded.

Threads (the layer's default; the training nets that config.py describes use processes, see
loader_processes there). BatchLoader starts `workers` daemon threads; worker w builds the
loader's batches w, w + workers, w + 2 workers, ... and puts them in its own bounded queue
(about prefetch / workers deep). The consumer takes batch k from queue k mod workers, which
keeps batch order without any sorting. JPEG decoding and numpy release the GIL, so the
workers run in parallel with the network, until the per-image Python work (Datum parsing,
cropping) that holds the GIL limits them. The threads hold no reference to the loader, so
close() (or garbage collection, or interpreter exit) stops them.

Processes ("processes": true). `workers` processes, started fresh (spawn, never a fork of a
process that holds a GPU context), each open the LMDBs themselves and build whole batches
straight into one of P = max(prefetch, workers) slots of a shared memory file (in /dev/shm
when it has room, else the temporary folder); the consumer copies slot k mod P into the
layer's tops (on a few threads: _BatchCopier) and hands the slot the batch P positions
later. No GIL is shared, so they scale with the cores a GPU needs to be fed. A worker ends
with its loader, or when its parent is gone. As with any process started by spawn, a script
that makes such a loader must keep its top level under `if __name__ == "__main__":` (the
workers import the main module).

Layer `H36MData` (python_param { module: "layers.h36m_data" layer: "H36MData" }):
  no bottoms
  top[0]     data, (N, 3, S, S) float32: mean-subtracted BGR crop, S = input_size
  top[1]     joints_2D, (N, 17, 2): 2D joints (x, y) in input pixels
  top[2]     joints_3D, (N, 17, 3): 3D joints in camera coordinates (mm)
  param_str  JSON:
    "dir"         dataset folder (required)
    "split"       "train" or "test" (required)
    "batch_size"  N (required)
    "input_size"  S, at most the stored crop size (default 225)
    "shuffle"     reshuffle every epoch (default true in TRAIN, false in TEST)
    "seed"        seed of the shuffles, crops and colour shifts (default 0)
    "pca_std"     std of the PCA colour-shift coefficients (default 0.1 in TRAIN; always 0 in TEST)
    "workers"     prefetching threads or processes (default 2; 0: one per core left to each
                  GPU's process, at least 2)
    "processes"   true: worker processes instead of threads (default false)
    "prefetch"    batches prepared ahead (default 4)
    "limit"       use only the first `limit` samples in key order (default 0: all); a test
                  net with limit = test_iter x batch_size then sees the same frames in
                  every test pass
  The phase (TRAIN / TEST of the net) picks the augmentation. No backward: tops are data.

`images_per_second(dir, split, batch_size, ...)` measures BatchLoader's rate (make bench-data).
"""
import dataclasses
import mmap
import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import caffe
from data_prep.dataset import NUM_JOINTS, Dataset
from layers.params import parse_param_str
# how often (s) a blocked thread looks whether the loader was closed
POLL_SECONDS = 0.1
# threads that copy each batch into the layer's tops (_BatchCopier)
COPY_THREADS = 4


def crop_offsets(rng, crop_size, input_size, train):
    """(dy, dx) of the input window: uniform over [0, crop - input] in TRAIN, the centre in TEST."""
    if input_size > crop_size:
        raise ValueError(f"crop_offsets: input_size {input_size} exceeds crop_size {crop_size}")
    if train:
        dy, dx = rng.integers(0, crop_size - input_size + 1, size=2)
        return int(dy), int(dx)
    centre = (crop_size - input_size) // 2
    return centre, centre


def crop(image, joints_2d, dy, dx, input_size):
    """Cut image[dy:dy+S, dx:dx+S] and move the 2D joints (x, y) into its pixels."""
    window = image[dy:dy + input_size, dx:dx + input_size]
    return window, np.asarray(joints_2d) - np.array([dx, dy], dtype=np.float32)


def to_planes(window, offset, out):
    """out (3, S, S) float32 = window (S, S, 3) uint8 + offset (3,) float32 per channel, in
    one pass: each value is converted and added as float32, exactly as window.astype(float32)
    + offset, without the two full-size temporaries and the strided copy of that expression
    (which took about as long as decoding the JPEG)."""
    np.add(window.transpose(2, 0, 1), offset[:, None, None], out=out, dtype=np.float32)


def pca_color_shift(rng, eigenvalues, eigenvectors, std=0.1):
    """AlexNet colour augmentation: (3,) BGR offset V (alpha * lambda), alpha_i ~ N(0, std).

    eigenvalues (3,), eigenvectors (3, 3) with eigenvectors as columns, both in RGB order.
    Always draws three normals (even for std = 0) so the rng stream does not depend on std.
    """
    alpha = rng.normal(0.0, 1.0, size=3) * std
    shift_rgb = np.asarray(eigenvectors, dtype=np.float64) @ (
        alpha * np.asarray(eigenvalues, dtype=np.float64))
    return shift_rgb[::-1].copy()


@dataclasses.dataclass
class Batch:
    """One batch: network inputs and labels, plus the sample indices (for tests and debugging)."""
    images: np.ndarray      # (N, 3, S, S) float32, mean-subtracted BGR
    joints_2d: np.ndarray   # (N, 17, 2) float32, input pixels
    joints_3d: np.ndarray   # (N, 17, 3) float32, mm
    indices: np.ndarray     # (N,) int64 sample indices (LMDB keys)


class _BatchMaker:
    """Everything needed to build batch b from (seed, b); shared read-only by the threads.

    Kept apart from BatchLoader so the worker threads do not keep the loader alive.
    """

    def __init__(self, directory, split, batch_size, input_size, train, shuffle, seed, pca_std,
                 limit=0, samples=None):
        dataset = Dataset(directory)
        self.crop_size = dataset.crop_size
        if not 0 < input_size <= self.crop_size:
            raise ValueError(f"H36M data: input_size {input_size} must be in "
                             f"[1, crop_size {self.crop_size}]")
        if batch_size < 1:
            raise ValueError(f"H36M data: batch_size must be >= 1, got {batch_size}")
        if limit < 0:
            raise ValueError(f"H36M data: limit must be >= 0 (0: all samples), got {limit}")
        self.mean_bgr = dataset.mean_bgr
        self.eigenvalues, self.eigenvectors = dataset.pca
        self.batch_size, self.input_size = int(batch_size), int(input_size)
        self.train, self.shuffle, self.seed = bool(train), bool(shuffle), int(seed)
        self.pca_std = float(pca_std) if train else 0.0
        self.reader = dataset.open(split)
        self.count = self.reader.count
        if limit:
            self.count = min(self.count, int(limit))   # the stream wraps after these samples
        # an explicit subset (an evaluation protocol's frames): epochs visit these samples
        self.samples = None
        if samples is not None:
            self.samples = np.asarray(samples, dtype=np.int64)
            if limit or not self.samples.size or self.samples.min() < 0 \
                    or self.samples.max() >= self.count:
                self.close()
                raise ValueError(f"H36M data: samples must be a non-empty list of indices "
                                 f"below {self.count}, and not combined with limit")
            self.count = len(self.samples)
        self._orders = {}
        self._orders_lock = threading.Lock()

    def close(self):
        """Release the LMDBs (idempotent)."""
        self.reader.close()

    def epoch_order(self, epoch):
        """Sample indices in the order epoch `epoch` visits them (seeded with seed + epoch)."""
        with self._orders_lock:
            order = self._orders.get(epoch)
            if order is None:
                if self.shuffle:
                    order = np.random.default_rng(self.seed + epoch).permutation(self.count)
                else:
                    order = np.arange(self.count)
                if self.samples is not None:
                    order = self.samples[order]
                # workers are at most a few epochs apart; forget the older orders
                for old in [e for e in self._orders if e < epoch - 2]:
                    del self._orders[old]
                self._orders[epoch] = order
            return order

    def batch_indices(self, batch_index):
        """Sample indices of batch `batch_index` in the endless epoch-after-epoch stream."""
        positions = batch_index * self.batch_size + np.arange(self.batch_size)
        epochs, within = np.divmod(positions, self.count)
        return np.array([self.epoch_order(int(e))[i] for e, i in zip(epochs, within)],
                        dtype=np.int64)

    def batch_rng(self, batch_index):
        """The Generator of batch `batch_index`, seeded with (seed, epoch, batch index)."""
        epoch = batch_index * self.batch_size // self.count
        return np.random.default_rng([self.seed, epoch, batch_index])

    def empty_batch(self):
        """A Batch of uninitialised arrays of this loader's shapes."""
        size = self.input_size
        return Batch(np.empty((self.batch_size, 3, size, size), dtype=np.float32),
                     np.empty((self.batch_size, NUM_JOINTS, 2), dtype=np.float32),
                     np.empty((self.batch_size, NUM_JOINTS, 3), dtype=np.float32),
                     np.empty(self.batch_size, dtype=np.int64))

    def make(self, batch_index, out=None):
        """Build batch `batch_index`: read, decode, crop, colour-shift, mean-subtract; into the
        arrays of `out` (a Batch) if given, else into new ones."""
        out = self.empty_batch() if out is None else out
        out.indices[...] = indices = self.batch_indices(batch_index)
        rng = self.batch_rng(batch_index)
        size = self.input_size
        images, joints_2d, joints_3d = out.images, out.joints_2d, out.joints_3d
        for slot, (_, image, pose_2d, pose_3d) in enumerate(self.reader.records(indices)):
            joints_3d[slot] = pose_3d
            dy, dx = crop_offsets(rng, self.crop_size, size, self.train)
            window, joints_2d[slot] = crop(image, pose_2d, dy, dx, size)
            # one per-pixel offset: minus the mean, plus the colour shift (TRAIN only; drawn
            # even when pca_std = 0 so the crops do not depend on pca_std)
            offset = -self.mean_bgr
            if self.train:
                offset = offset + pca_color_shift(
                    rng, self.eigenvalues, self.eigenvectors, self.pca_std).astype(np.float32)
            to_planes(window, offset, images[slot])
        return out


class _BatchCopier:
    """Copies a Batch into another, the images in parts on up to COPY_THREADS threads (numpy
    copies without the GIL): a batch of 128 is 78 MB of images, which took 11 ms on one
    thread and 5.5 ms on two here, on the path of every training step (and of every GPU
    step, before Caffe moves the images to the device)."""

    def __init__(self, name):
        self.threads = min(COPY_THREADS, os.cpu_count() or 1)
        self._pool = (ThreadPoolExecutor(self.threads, thread_name_prefix=f"{name}-copy")
                      if self.threads > 1 else None)

    def __call__(self, source, out):
        """Copy the arrays of Batch `source` into those of Batch `out`; returns out."""
        for name in ("joints_2d", "joints_3d", "indices"):
            getattr(out, name)[...] = getattr(source, name)
        if self._pool is None:
            out.images[...] = source.images
            return out
        bounds = np.linspace(0, len(out.images), self.threads + 1).astype(int)
        copies = [self._pool.submit(np.copyto, out.images[start:stop], source.images[start:stop])
                  for start, stop in zip(bounds[:-1], bounds[1:]) if stop > start]
        for copy in copies:
            copy.result()
        return out

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()


@dataclasses.dataclass(frozen=True)
class _StreamIndex:
    """Position k of a loader of shard (rank, count) -> batch rank + k count of the stream
    (a picklable function, for the worker processes too)."""
    rank: int
    count: int

    def __call__(self, position):
        return self.rank + position * self.count


# ---------------------------------------------------------------- worker threads

def _thread_worker(maker, stream_index, first, step, out, stop):
    """Thread body: build the loader's batches first, first + step, ... into `out` until
    stopped; stream_index maps a loader position to a batch of the stream."""
    position = first
    while not stop.is_set():
        try:
            item = maker.make(stream_index(position))
        except Exception as error:  # handed to the consumer, which re-raises it
            item = error
        while not stop.is_set():
            try:
                out.put(item, timeout=POLL_SECONDS)
                break
            except queue.Full:
                continue
        if isinstance(item, Exception):
            return
        position += step


def _stop_threads(stop, queues, threads, maker, copier):
    """Stop the workers: signal, unblock their puts, wait for them, then close the LMDBs."""
    copier.close()
    stop.set()
    for out in queues:
        while True:
            try:
                out.get_nowait()
            except queue.Empty:
                break
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(timeout=5)
    if not any(thread.is_alive() for thread in threads):
        maker.close()


class _Threads:
    """Batches built ahead by daemon threads, each into its own bounded queue."""

    def __init__(self, maker, stream_index, workers, prefetch, name):
        self.workers = workers
        self._queues = [queue.Queue(maxsize=_queue_depth(workers, prefetch))
                        for _ in range(workers)]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=_thread_worker, name=f"{name}-{w}", daemon=True,
                             args=(maker, stream_index, w, workers, self._queues[w], self._stop))
            for w in range(workers)]
        # runs on close(), on garbage collection of the loader, or at interpreter exit; the
        # threads hold no reference to this object
        self._copy = _BatchCopier(name)
        self.close = weakref.finalize(self, _stop_threads, self._stop, self._queues,
                                      self._threads, maker, self._copy)
        for thread in self._threads:
            thread.start()

    def take(self, position, out):
        """Batch `position` (the next one in order), copied into `out` if given."""
        source = self._queues[position % self.workers]
        while True:
            try:
                item = source.get(timeout=POLL_SECONDS)
                break
            except queue.Empty:
                if not self._threads[position % self.workers].is_alive():
                    raise RuntimeError("BatchLoader: a worker thread died without a batch")
        if isinstance(item, Exception):
            self.close()
            raise item
        return item if out is None else self._copy(item, out)


# ---------------------------------------------------------------- worker processes

SLOT_ALIGN = 64


def _slot_layout(batch_size, input_size):
    """[(field, shape, dtype, offset)] of one slot, and the slot's size in bytes."""
    fields = [("images", (batch_size, 3, input_size, input_size), np.float32),
              ("joints_2d", (batch_size, NUM_JOINTS, 2), np.float32),
              ("joints_3d", (batch_size, NUM_JOINTS, 3), np.float32),
              ("indices", (batch_size,), np.int64)]
    layout, offset = [], 0
    for name, shape, dtype in fields:
        layout.append((name, shape, dtype, offset))
        offset += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // SLOT_ALIGN) * SLOT_ALIGN
    return layout, offset


def batch_bytes(batch_size, input_size):
    """Bytes of one batch (images, joints, sample indices) as a slot of the shared file holds
    it; about what a batch of the threads takes too."""
    return _slot_layout(batch_size, input_size)[1]


def _slot_count(workers, prefetch):
    """Slots of the shared file of worker processes: every worker can hold one batch in the
    making, and `prefetch` batches wait ready."""
    return max(prefetch, workers)


def _queue_depth(workers, prefetch):
    """Batches each worker thread's queue holds: about `prefetch` in all (ceil), one at least."""
    return max(1, -(-prefetch // workers))


def batches_held(workers, prefetch, processes):
    """Batches a loader holds at most: the slots of its worker processes, or its threads'
    queues, one batch in the making per thread and the one handed out."""
    if processes:
        return _slot_count(workers, prefetch)
    return workers * _queue_depth(workers, prefetch) + workers + 1


# folders for the slots file of worker processes, in order of preference (memory first);
# None: the temporary folder
SLOT_FOLDERS = (Path("/dev/shm"), None)
# a folder takes the slots file when it has this much more free room than the file needs
# (ASSUMPTION: room left for the other users of a folder that is memory)
SLOT_ROOM_MARGIN = 1.25


def slots_folder(size):
    """The folder a slots file of `size` bytes goes in: /dev/shm (memory) when it has room
    for it, else the temporary folder (the page cache then holds it); OSError saying what
    each has free when neither has."""
    free = {}
    for folder in SLOT_FOLDERS:
        folder = folder or Path(tempfile.gettempdir())
        try:
            stat = os.statvfs(folder)
        except OSError:
            continue
        free[folder] = stat.f_bavail * stat.f_frsize
        if free[folder] >= SLOT_ROOM_MARGIN * size:
            return folder
    room = " or ".join(f"{folder} ({mebibytes(space)} free)" for folder, space in free.items())
    raise OSError(f"no room for {mebibytes(size)} of batch slots in {room or 'any folder'}")


def mebibytes(size):
    """A size in bytes in words: "927502 MiB"."""
    return f"{size / 2 ** 20:.0f} MiB"


def available_memory():
    """Bytes of memory available to new allocations without swapping (Linux' MemAvailable),
    or None where the system does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def room_problem(batch_size, input_size, workers, prefetch, processes, loaders=1):
    """Why `loaders` loaders of these settings (one per device of a run) do not fit this
    machine, or None: the slots files of worker processes must fit where slots_folder puts
    them, the batches of threads the memory available."""
    need = loaders * batches_held(workers, prefetch, processes) * batch_bytes(batch_size,
                                                                             input_size)
    if processes:
        try:
            slots_folder(need)
        except OSError as error:
            return str(error)
        return None
    free = available_memory()
    if free is not None and need > free:
        return (f"no room for {mebibytes(need)} of batches in memory ({mebibytes(free)} "
                "available)")
    return None


def _slot_views(buffer, batch_size, input_size, slots):
    """A Batch of numpy views into the shared buffer for each slot."""
    layout, size = _slot_layout(batch_size, input_size)
    return [Batch(**{name: np.ndarray(shape, dtype, buffer=buffer, offset=slot * size + offset)
                     for name, shape, dtype, offset in layout})
            for slot in range(slots)]


def _shared_file(size):
    """Path of a new file of `size` bytes for the slots, in the folder slots_folder picks."""
    try:
        folder = slots_folder(size)
    except OSError as error:
        raise OSError(f"BatchLoader: {error}; lower \"prefetch\" or the batch") from None
    handle, path = tempfile.mkstemp(prefix="h36m-batches-", dir=folder)
    try:
        os.ftruncate(handle, size)
    finally:
        os.close(handle)
    return path


def _python_executable():
    """The interpreter worker processes start with: this one, also when Python is embedded
    (in `caffe train`, sys.executable may name the caffe tool instead of a Python)."""
    if os.path.basename(sys.executable).startswith("python"):
        return sys.executable
    return os.path.join(sys.prefix, "bin", "python3")


def _process_worker(maker_args, path, slots, tasks, results, parent):
    """Process body: open the LMDBs, map the slots, then build (position, stream batch, slot)
    tasks until told to stop (None) or the parent is gone."""
    # a Ctrl-C in a terminal reaches the whole process group: Caffe stops at it (snapshotting
    # first, with batches from these workers) and then ends them
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        maker = _BatchMaker(**maker_args)
        with open(path, "r+b") as handle:
            buffer = mmap.mmap(handle.fileno(), 0)
        views = _slot_views(buffer, maker.batch_size, maker.input_size, slots)
    except Exception as error:
        results.put(("ready", None, error))
        return
    results.put(("ready", None, None))
    while True:
        try:
            task = tasks.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if os.getppid() != parent:
                break
            continue
        if task is None:
            break
        position, stream_batch, slot = task
        try:
            maker.make(stream_batch, out=views[slot])
            results.put((position, slot, None))
        except Exception as error:  # the consumer re-raises it
            results.put((position, slot, error))
    del views
    buffer.close()
    maker.close()


def _stop_processes(tasks, processes, buffer, path, maker, copier):
    """Stop the worker processes, then release the slots and the LMDBs."""
    copier.close()
    for _ in processes:
        tasks.put(None)
    for process in processes:
        if process.pid is None:   # never started
            continue
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
    buffer.close()
    if os.path.exists(path):
        os.unlink(path)
    maker.close()


class _Processes:
    """Batches built ahead by worker processes into slots of a shared memory file."""

    def __init__(self, maker, maker_args, stream_index, workers, prefetch, name):
        self.maker, self.stream_index = maker, stream_index
        self.slots = _slot_count(workers, prefetch)
        path = _shared_file(self.slots * batch_bytes(maker.batch_size, maker.input_size))
        with open(path, "r+b") as handle:
            buffer = mmap.mmap(handle.fileno(), 0)
        self._views = _slot_views(buffer, maker.batch_size, maker.input_size, self.slots)
        context = multiprocessing.get_context("spawn")
        context.set_executable(_python_executable())
        self._tasks, self._results = context.Queue(), context.Queue()
        self._processes = [
            context.Process(target=_process_worker, name=f"{name}-{w}", daemon=True,
                            args=(maker_args, path, self.slots, self._tasks, self._results,
                                  os.getpid()))
            for w in range(workers)]
        self._copy = _BatchCopier(name)
        self.close = weakref.finalize(self, _stop_processes, self._tasks, self._processes,
                                      buffer, path, maker, self._copy)
        for process in self._processes:
            process.start()
        for _ in self._processes:
            _, _, error = self._wait()
            if error is not None:
                self.close()
                raise error
        os.unlink(path)   # every worker has it mapped: the memory lives as long as they do
        self._ready = {}
        for position in range(self.slots):
            self._submit(position)

    def _submit(self, position):
        self._tasks.put((position, self.stream_index(position), position % self.slots))

    def _wait(self):
        """The next message of a worker; raises if a worker died."""
        while True:
            try:
                return self._results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not all(process.is_alive() for process in self._processes):
                    self.close()
                    raise RuntimeError("BatchLoader: a worker process died without a batch")

    def take(self, position, out):
        """Batch `position` (the next one in order), copied into `out` or new arrays; its slot
        then starts the batch `slots` positions later."""
        while position not in self._ready:
            ready, slot, error = self._wait()
            if error is not None:
                self.close()
                raise error
            self._ready[ready] = slot
        slot = self._ready.pop(position)
        out = self._copy(self._views[slot], self.maker.empty_batch() if out is None else out)
        self._submit(position + self.slots)
        return out


# ---------------------------------------------------------------- the loader

class BatchLoader:
    """Batches of a split, prepared ahead by worker threads or processes; see the module
    docstring.

        loader = BatchLoader("data/h36m_lmdb", "train", batch_size=32)
        batch = loader.next_batch()   # Batch(images, joints_2d, joints_3d, indices)
        loader.next_batch(out=batch)  # the next one, into the same arrays
        loader.close()

    train: random crop + PCA colour shift (else centre crop, no shift). shuffle defaults to
    train, pca_std to 0.1 in train (ignored otherwise). shard=(rank, count): take the stream's
    batches rank, rank + count, ... (one GPU of several). processes: worker processes instead
    of threads. samples: visit only these sample indices (in this order without shuffle), e.g.
    an evaluation protocol's frames; batch.indices hold the sample indices. Also a context
    manager.
    """

    def __init__(self, directory, split, batch_size, input_size=225, train=True, shuffle=None,
                 seed=0, pca_std=0.1, workers=2, prefetch=4, limit=0, processes=False,
                 shard=(0, 1), samples=None):
        if workers < 1 or prefetch < 1:
            raise ValueError(f"BatchLoader: workers and prefetch must be >= 1, "
                             f"got {workers} and {prefetch}")
        rank, count = (int(value) for value in shard)
        if not 0 <= rank < count:
            raise ValueError(f"BatchLoader: shard (rank {rank}, count {count}) needs "
                             "0 <= rank < count")
        maker_args = dict(directory=directory, split=split, batch_size=batch_size,
                          input_size=input_size, train=train,
                          shuffle=train if shuffle is None else shuffle, seed=seed,
                          pca_std=pca_std, limit=limit, samples=samples)
        self.maker = _BatchMaker(**maker_args)
        self.shard = (rank, count)
        stream_index, name = _StreamIndex(rank, count), f"H36MData-{split}"
        try:
            self._source = (
                _Processes(self.maker, maker_args, stream_index, int(workers), int(prefetch),
                           name) if processes else
                _Threads(self.maker, stream_index, int(workers), int(prefetch), name))
        except BaseException:
            self.maker.close()
            raise
        self._next = 0

    @property
    def count(self):
        """Number of samples in the split (one epoch)."""
        return self.maker.count

    def epoch_order(self, epoch):
        """Sample indices in the order epoch `epoch` visits them."""
        return self.maker.epoch_order(epoch)

    def next_batch(self, out=None):
        """The next Batch in order, into the arrays of `out` if given; waits for its worker."""
        if not self._source.close.alive:
            raise RuntimeError("BatchLoader: next_batch() after close()")
        batch = self._source.take(self._next, out)
        self._next += 1
        return batch

    def close(self):
        """Stop the workers and close the LMDBs (idempotent)."""
        self._source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        source = getattr(self, "_source", None)  # absent when __init__ failed early
        if source is not None:
            source.close()


def images_per_second(directory, split, batch_size, seconds=None, batches=None, input_size=225,
                      train=True, workers=2, prefetch=4, processes=False):
    """Rate of BatchLoader in images/s over `seconds` of wall time or `batches` batches, each
    copied into one set of arrays as the layer copies it into its tops.

    The first batch (worker start, LMDB page-in) is excluded. Default: 5 seconds.
    """
    if seconds is None and batches is None:
        seconds = 5.0
    with BatchLoader(directory, split, batch_size, input_size=input_size, train=train,
                     workers=workers, prefetch=prefetch, processes=processes) as loader:
        tops = loader.next_batch()
        done = 0
        start = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - start
            if (batches is not None and done >= batches) or (
                    seconds is not None and elapsed >= seconds):
                break
            loader.next_batch(out=tops)
            done += 1
        return done * batch_size / max(time.perf_counter() - start, 1e-9)


def auto_workers(solver_count):
    """Workers for "workers": 0: the cores left to each of solver_count processes after its
    own (which runs the net), at least 2."""
    return max(2, (os.cpu_count() or 2) // max(1, solver_count) - 1)


LAYER_KEYS = {"dir", "split", "batch_size", "input_size", "shuffle", "seed", "pca_std",
              "workers", "processes", "prefetch", "limit"}
REQUIRED_KEYS = {"dir", "split", "batch_size"}


def layer_params(param_str, train, shard=(0, 1)):
    """Parse and check H36MData's param_str; returns BatchLoader keyword arguments. shard:
    (solver rank, solver count) of a TRAIN layer; TEST layers are never sharded."""
    params = parse_param_str("H36MData", param_str, REQUIRED_KEYS, LAYER_KEYS - REQUIRED_KEYS)
    if params["split"] not in ("train", "test"):
        raise ValueError(f"H36MData: split must be \"train\" or \"test\", got {params['split']!r}")
    return dict(directory=str(params["dir"]), split=params["split"],
                batch_size=int(params["batch_size"]),
                input_size=int(params.get("input_size", 225)), train=train,
                shuffle=bool(params.get("shuffle", train)), seed=int(params.get("seed", 0)),
                pca_std=float(params.get("pca_std", 0.1)) if train else 0.0,
                workers=int(params.get("workers", 2)) or auto_workers(shard[1]),
                prefetch=int(params.get("prefetch", 4)),
                processes=bool(params.get("processes", False)), limit=int(params.get("limit", 0)),
                shard=tuple(shard) if train else (0, 1))


class H36MData(caffe.Layer):
    """Human3.6M crops and 2D / 3D joints from LMDB, prefetched; see the module docstring."""

    def setup(self, bottom, top):
        try:
            self._setup(bottom, top)
        except Exception as error:
            # Caffe ends the process at a Python layer's exception without printing it
            # (boost::python's error_already_set, then a C++ stack): its log must say it
            print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
            raise

    def _setup(self, bottom, top):
        """setup's work: check the blobs, start the loader of param_str."""
        if len(bottom) != 0 or len(top) != 3:
            raise ValueError(f"H36MData takes no bottoms and 3 tops (data, joints_2D, "
                             f"joints_3D), got {len(bottom)} and {len(top)}")
        # several GPUs: each rank's TRAIN layer takes its share of the stream (the PyPI
        # fork's pycaffe knows no ranks: it trains on one device)
        shard = ((caffe.solver_rank(), caffe.solver_count()) if hasattr(caffe, "solver_rank")
                 else (0, 1))
        self.loader = BatchLoader(**layer_params(self.param_str, self.phase == caffe.TRAIN,
                                                 shard))
        self.indices = np.empty(self.loader.maker.batch_size, dtype=np.int64)

    def reshape(self, bottom, top):
        maker = self.loader.maker
        size = maker.input_size
        top[0].reshape(maker.batch_size, 3, size, size)
        top[1].reshape(maker.batch_size, NUM_JOINTS, 2)
        top[2].reshape(maker.batch_size, NUM_JOINTS, 3)

    def forward(self, bottom, top):
        # straight into the tops: one copy of the batch, made by the loader
        self.loader.next_batch(out=Batch(top[0].data, top[1].data, top[2].data, self.indices))

    def backward(self, top, propagate_down, bottom):
        pass
