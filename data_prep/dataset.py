"""The dataset folder that `make lmdb` writes and everything else reads: its one owner.

Layout of a dataset folder, per split (the builders write "train" and "test"):
  <split>_images/     LMDB, key -> Caffe Datum (3 x S x S, encoded=True, data = JPEG of the
                      S x S BGR person crop); Caffe's own Data layer can read it
  <split>_poses/      LMDB, the same keys -> Datum (85 x 1 x 1) whose float_data holds the 17
                      joints (x, y) in crop pixels, then the 17 joints (x, y, z) in mm
  <split>_index.csv   key and INDEX_COLUMNS of every sample, in key order
  manifest.json       schema below; checked by load_manifest, the only reader of it
Keys are the sample's position in its split, 8 zero-padded ASCII digits ("00000000").

Manifest (FORMAT_VERSION 2):
  format_version, crop_size, jpeg_quality, joints (the 17 names), parents
  splits: {split: {"count": N, ...what the builder reports: skips, truncations}}
  mean_bgr [3]           mean pixel of the training crops (BGR, 0-255)
  pca                    {"eigenvalues": [3] standard deviations, "eigenvectors": [[3x3]] as
                         columns, "variances": [3]} of the training crops' RGB colours
  bone_lengths_mm        {child joint: mean length of its bone over the training poses}
  mean_pose_mm [[17x3]]  the training poses' mean root-aligned pose (the mean-pose baseline)
  anything else the builder adds (its source, its settings) is kept and not interpreted.

Writing: a builder turns its source into Samples (crop, 2D joints, 3D joints, index row) and
hands them to a DatasetWriter, directly or encoded in worker processes first (encode_samples
needs neither caffe nor the writer):

    with DatasetWriter(out, crop_size=250, jpeg_quality=95) as writer:
        writer.split("train").write(encode_samples(samples, 95))
        ...
        manifest = writer.commit({"source": "..."})

The writer builds in a temporary folder beside `out` and renames it into place complete,
holding out's lock meanwhile (built_folders.py); it stops with DiskFull before a chunk that
the disk has no room for.
Reading: Dataset(folder) checks the manifest; .open(split) gives a SplitReader of decoded
records; .index(split) the index rows.
"""
import csv
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Mapping, NamedTuple

import cv2
import lmdb
import numpy as np
from google.protobuf.message import DecodeError

from built_folders import build_lock, remove_stale, replace, temporary_sibling
from data_prep.h36m import JOINTS_17, PARENTS_17, bone_lengths

FORMAT_VERSION = 2
NUM_JOINTS = len(JOINTS_17)
POSE_VALUES = NUM_JOINTS * 2 + NUM_JOINTS * 3
KEY_DIGITS = 8
INDEX_COLUMNS = ("subject", "action", "stem", "camera", "frame")
SPLITS = ("train", "test")
MAP_SIZE = 1 << 40          # LMDB's address space; the files only grow as data is written
PCA_PIXEL_STRIDE = 4        # every 4th pixel in each direction feeds the colour statistics
REBUILD = "rebuild it with `make lmdb LMDB_FLAGS=--force`"
MIB = 1 << 20
# disk room a chunk needs beyond its JPEGs: per record LMDB's overflow pages round the image up
# to 4 KiB pages and the pose record takes a leaf entry; the margin covers LMDB's meta and branch
# pages, the index and the manifest
RECORD_OVERHEAD = 2 * 4096 + 512
SPACE_MARGIN = 4 * MIB
CHILDREN = np.array([j for j, p in enumerate(PARENTS_17) if p >= 0])


def _datum():
    """Caffe's Datum message class, imported on first use: worker processes that only crop
    and encode never pay for importing caffe."""
    from caffe.proto import caffe_pb2
    return caffe_pb2.Datum


def sample_key(index):
    """LMDB key of sample `index` of a split."""
    return f"{index:0{KEY_DIGITS}d}".encode("ascii")


# ---------------------------------------------------------------- records

def encode_jpeg(crop, quality):
    """JPEG bytes of a BGR crop."""
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()


def image_record(jpeg, height, width):
    """Serialized Datum of a JPEG-encoded height x width BGR crop."""
    return _datum()(channels=3, height=height, width=width, encoded=True, data=jpeg,
                    label=0).SerializeToString()


def pose_values(joints_2d, joints_3d):
    """The POSE_VALUES numbers of a pose record: 17 x (x, y), then 17 x (x, y, z)."""
    joints_2d, joints_3d = np.asarray(joints_2d), np.asarray(joints_3d)
    if joints_2d.shape != (NUM_JOINTS, 2) or joints_3d.shape != (NUM_JOINTS, 3):
        raise ValueError(f"a pose needs joints_2d {(NUM_JOINTS, 2)} and joints_3d "
                         f"{(NUM_JOINTS, 3)}, got {joints_2d.shape} and {joints_3d.shape}")
    values = np.concatenate([joints_2d.ravel(), joints_3d.ravel()]).astype(np.float64)
    # the records hold float32: a finite float64 beyond its range would be stored as inf
    outside = values[~(np.abs(values) <= np.finfo(np.float32).max)]
    if outside.size:
        raise ValueError(f"a pose's values must be finite and within float32's range (the "
                         f"pose records' type), got {outside[0]}")
    return values


def pose_record(values):
    """Serialized Datum of pose_values (float_data)."""
    datum = _datum()(channels=len(values), height=1, width=1)
    datum.float_data.extend(np.asarray(values).tolist())
    return datum.SerializeToString()


def decode_image(record):
    """Serialized image Datum (JPEG-encoded or raw C x H x W) -> uint8 (H, W, 3) BGR."""
    datum = _datum().FromString(record)
    if datum.encoded:
        image = cv2.imdecode(np.frombuffer(datum.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("decode_image: the Datum's data is not a decodable image")
    else:
        image = np.frombuffer(datum.data, dtype=np.uint8).reshape(
            datum.channels, datum.height, datum.width).transpose(1, 2, 0)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"decode_image: expected a 3-channel image, got shape {image.shape}")
    return image


def decode_pose(record):
    """Serialized pose Datum -> (joints_2d (17, 2) crop pixels, joints_3d (17, 3) mm), float32."""
    values = np.asarray(_datum().FromString(record).float_data, dtype=np.float32)
    if values.size != POSE_VALUES:
        raise ValueError(f"decode_pose: expected {POSE_VALUES} float_data values "
                         f"(17 x 2 then 17 x 3), got {values.size}")
    if not np.isfinite(values).all():   # the writer stores none: a damaged record
        raise ValueError("decode_pose: NaN or inf values")
    split = NUM_JOINTS * 2
    return values[:split].reshape(NUM_JOINTS, 2), values[split:].reshape(NUM_JOINTS, 3)


# ---------------------------------------------------------------- samples and statistics

class Sample(NamedTuple):
    """One sample as a builder's reader yields it."""
    crop: np.ndarray        # (S, S, 3) uint8 BGR person crop
    joints_2d: np.ndarray   # (17, 2) joints in crop pixels
    joints_3d: np.ndarray   # (17, 3) joints in camera coordinates, mm
    row: Mapping            # INDEX_COLUMNS -> value


def colour_sums(crop):
    """Count, sum and sum of outer products of the RGB values (0-255) of a crop's pixels
    (every PCA_PIXEL_STRIDE-th). As planes: reductions over three interleaved values are
    slow in numpy. The sums are of integers far below 2 ** 53, exact in any order."""
    rgb = crop[::PCA_PIXEL_STRIDE, ::PCA_PIXEL_STRIDE, ::-1].transpose(2, 0, 1)
    planes = rgb.reshape(3, -1).astype(np.float64)
    return planes.shape[1], planes.sum(axis=1), np.einsum("ik,jk->ij", planes, planes)


class Statistics:
    """Sums over a split's samples from which the manifest's statistics follow; mergeable, so
    that worker processes can each sum their share."""

    def __init__(self):
        self.samples = 0
        self.pixels = 0
        self.rgb_sum = np.zeros(3)
        self.rgb_outer = np.zeros((3, 3))
        self.bones = np.zeros(NUM_JOINTS)
        self.aligned_poses = np.zeros((NUM_JOINTS, 3))

    def add(self, crop, joints_3d):
        count, total, outer = colour_sums(crop)
        # the stored (float32) pose, so that the statistics are those of what readers get
        joints = np.asarray(joints_3d, dtype=np.float32).astype(np.float64)
        self.samples += 1
        self.pixels += count
        self.rgb_sum += total
        self.rgb_outer += outer
        self.bones += bone_lengths(joints)
        self.aligned_poses += joints - joints[0]

    def merge(self, other):
        self.samples += other.samples
        self.pixels += other.pixels
        self.rgb_sum += other.rgb_sum
        self.rgb_outer += other.rgb_outer
        self.bones += other.bones
        self.aligned_poses += other.aligned_poses

    def manifest_fields(self):
        """mean_bgr, pca (AlexNet's colour augmentation), bone_lengths_mm and mean_pose_mm."""
        mean_rgb = self.rgb_sum / self.pixels
        covariance = self.rgb_outer / self.pixels - np.outer(mean_rgb, mean_rgb)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        order = np.argsort(eigenvalues)[::-1]
        return {
            "mean_bgr": mean_rgb[::-1].tolist(),
            "pca": {"eigenvalues": np.sqrt(np.maximum(eigenvalues[order], 0)).tolist(),
                    "variances": eigenvalues[order].tolist(),
                    "eigenvectors": eigenvectors[:, order].tolist(),
                    "space": "RGB, 0-255; eigenvalues are standard deviations (AlexNet's "
                             "lambda)"},
            "bone_lengths_mm": {JOINTS_17[j]: self.bones[j] / self.samples for j in CHILDREN},
            "mean_pose_mm": (self.aligned_poses / self.samples).tolist(),
        }


class EncodedSamples(NamedTuple):
    """Samples ready for the writer: (JPEG bytes, pose values, index row) per sample and their
    statistics. Picklable: worker processes return it."""
    entries: list           # [(JPEG bytes, pose values (85,), row)]
    statistics: Statistics


def check_row(row):
    """The INDEX_COLUMNS values of an index row (a mapping), in order."""
    missing = [column for column in INDEX_COLUMNS if column not in row]
    if missing:
        raise ValueError(f"an index row lacks {missing}; a row needs {list(INDEX_COLUMNS)}")
    return [row[column] for column in INDEX_COLUMNS]


def encode_samples(samples, jpeg_quality):
    """EncodedSamples of an iterable of Samples (JPEG-encoded crops, checked poses and rows)."""
    statistics, entries = Statistics(), []
    for sample in samples:
        entries.append((encode_jpeg(sample.crop, jpeg_quality),
                        pose_values(sample.joints_2d, sample.joints_3d), check_row(sample.row)))
        statistics.add(sample.crop, sample.joints_3d)
    return EncodedSamples(entries, statistics)


# ---------------------------------------------------------------- writing

class DiskFull(OSError):
    """No room on the disk for the next chunk of a split (a one-line message naming it)."""


class SplitWriter:
    """The LMDBs and index of one split in the making; write() commits one chunk of samples."""

    def __init__(self, folder, split, crop_size):
        self.folder, self.split, self.crop_size = Path(folder), split, crop_size
        self.count = 0
        self.statistics = Statistics()
        self.report = {}
        # sync=False: one commit per chunk without waiting for the disk each time (a flush per
        # commit took longer than cropping); close() flushes once, and an interrupted build
        # is discarded whole anyway
        self._images, self._poses = (
            lmdb.open(str(self.folder / f"{split}_{kind}"), map_size=MAP_SIZE, subdir=True,
                      sync=False) for kind in ("images", "poses"))
        self._index_file = open(self.folder / f"{split}_index.csv", "w", newline="")
        self._index = csv.writer(self._index_file)
        self._index.writerow(["key", *INDEX_COLUMNS])
        self.closed = False

    def write(self, encoded):
        """Append EncodedSamples (one transaction); returns the number written. DiskFull
        before the transaction when the disk has no room for it (LMDB reads its pages through
        a memory map, and on a full tmpfs that ends the process with SIGBUS, not an error)."""
        need = SPACE_MARGIN + sum(len(jpeg) + RECORD_OVERHEAD
                                  for jpeg, _, _ in encoded.entries)
        free = shutil.disk_usage(self.folder).free
        if free < need:
            raise DiskFull(f"no room left on the disk of {self.folder.parent}: {free / MIB:.1f} "
                           f"MiB free where the next {len(encoded.entries)} crops need about "
                           f"{need / MIB:.1f} MiB; free space there or choose another --out")
        with self._images.begin(write=True) as images, self._poses.begin(write=True) as poses:
            for jpeg, values, row in encoded.entries:
                if np.asarray(values).size != POSE_VALUES:
                    raise ValueError(f"a pose record needs {POSE_VALUES} values")
                key = sample_key(self.count)
                images.put(key, image_record(jpeg, self.crop_size, self.crop_size))
                poses.put(key, pose_record(values))
                self._index.writerow([key.decode(), *row])
                self.count += 1
        self.statistics.merge(encoded.statistics)
        return len(encoded.entries)

    def add(self, samples, jpeg_quality):
        """Encode and write Samples in this process (small sources, tests)."""
        return self.write(encode_samples(samples, jpeg_quality))

    def close(self):
        """Flush and close the LMDBs and the index (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            for env in (self._images, self._poses):
                env.sync(True)
        finally:
            self._images.close()
            self._poses.close()
            self._index_file.close()

    def discard(self):
        """Close without flushing, whatever fails: the folder is about to be removed."""
        self.closed = True
        for handle in (self._images, self._poses, self._index_file):
            try:
                handle.close()
            except (OSError, lmdb.Error):
                pass


class DatasetWriter:
    """A dataset folder built in a temporary folder beside `out` and moved into place by
    commit() (built_folders.replace); leaving the `with` block without commit() (an error)
    removes the temporary folder. The writer holds out's lock from start to end
    (built_folders.build_lock: a second build of the same folder stops at once, naming this
    process) and first removes what an interrupted build left. Replacing an existing `out`
    is the caller's decision: built_folders.check_replaceable."""

    def __init__(self, out, crop_size, jpeg_quality):
        self.out = Path(out)
        self.crop_size, self.jpeg_quality = int(crop_size), int(jpeg_quality)
        self.splits = {}
        self._lock = build_lock(self.out)
        self._lock.__enter__()
        try:
            remove_stale(self.out)
            self.work = temporary_sibling(self.out)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise

    def split(self, name):
        """The SplitWriter of split `name` (made on first use)."""
        if name not in self.splits:
            self.splits[name] = SplitWriter(self.work, name, self.crop_size)
        return self.splits[name]

    def commit(self, extra=None, split_reports=None):
        """Close the splits, write manifest.json (with `extra` top-level fields and each
        split's report merged into its section) and move the folder to `out`, replacing what
        was there; returns the manifest. Every split of SPLITS must hold samples."""
        for split in self.splits.values():
            split.close()
        empty = [name for name in SPLITS if name not in self.splits or not self.splits[name].count]
        if empty:
            raise ValueError(f"no samples in the {' and '.join(empty)} split(s) for {self.out}")
        manifest = {"format_version": FORMAT_VERSION, "crop_size": self.crop_size,
                    "jpeg_quality": self.jpeg_quality, "joints": list(JOINTS_17),
                    "parents": list(PARENTS_17), **(extra or {}), "splits": {}}
        for name, split in self.splits.items():
            manifest["splits"][name] = {"count": split.count,
                                        **(split_reports or {}).get(name, {})}
        manifest.update(self.splits["train"].statistics.manifest_fields())
        (self.work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        replace(self.work, self.out)
        return manifest

    def close(self):
        """Drop an uncommitted build and release the lock (idempotent): whatever failed (a
        full disk), the temporary folder goes."""
        try:
            for split in self.splits.values():
                if not split.closed:
                    split.discard()
            shutil.rmtree(self.work, ignore_errors=True)
        finally:
            if self._lock is not None:
                lock, self._lock = self._lock, None
                lock.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- reading

def _problem(path, message):
    return ValueError(f"dataset {path.parent}: {message}")


def load_manifest(directory):
    """The checked manifest of a dataset folder; ValueError naming the file and the fix."""
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise _problem(path, "no manifest.json; build the dataset with `make lmdb` (or point "
                             "at the folder it wrote)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _problem(path, f"manifest.json is unreadable ({error}); {REBUILD}") from None
    if not isinstance(manifest, dict):
        raise _problem(path, f"manifest.json is not a JSON object; {REBUILD}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise _problem(path, f"format version {version} (this toolkit reads "
                             f"{FORMAT_VERSION}); {REBUILD}")
    _check_schema(path, manifest)
    return manifest


def _check_schema(path, manifest):
    def need(ok, what):
        if not ok:
            raise _problem(path, f"manifest.json: {what}; {REBUILD}")

    def numbers(values):
        """Whether values are JSON numbers, or nested lists of them (not strings or true,
        which numpy would quietly take for numbers)."""
        if isinstance(values, list):
            return all(numbers(value) for value in values)
        return type(values) in (int, float)

    def finite(values, shape):
        if not numbers(values):
            return False
        array = np.asarray(values, dtype=np.float64)
        return array.shape == shape and bool(np.all(np.isfinite(array)))

    def positive_int(value):
        """A JSON integer (not true) that a Datum's int32 fields and the LMDB keys can hold."""
        return type(value) is int and 0 < value < 2 ** 31

    need(positive_int(manifest.get("crop_size")), "crop_size must be a positive integer")
    need(manifest.get("joints") == list(JOINTS_17), "joints must be the 17 Human3.6M joints")
    splits = manifest.get("splits")
    need(isinstance(splits, dict) and all(
        isinstance(s, dict) and positive_int(s.get("count"))
        for s in splits.values()) and set(SPLITS) <= set(splits),
         f"splits must hold {list(SPLITS)}, each with a positive count")
    need(finite(manifest.get("mean_bgr"), (3,)), "mean_bgr must be 3 finite numbers")
    pca = manifest.get("pca")
    need(isinstance(pca, dict) and finite(pca.get("eigenvalues"), (3,))
         and finite(pca.get("eigenvectors"), (3, 3)), "pca needs eigenvalues [3] and "
         "eigenvectors [3 x 3]")
    bones = manifest.get("bone_lengths_mm")
    need(isinstance(bones, dict) and set(bones) == {JOINTS_17[j] for j in CHILDREN}
         and finite(list(bones.values()), (len(CHILDREN),)),
         "bone_lengths_mm needs the length of every non-root joint's bone")
    need(finite(manifest.get("mean_pose_mm"), (NUM_JOINTS, 3)), "mean_pose_mm must be 17 x 3")


# py-lmdb refuses to open one environment twice in a process, yet a TRAIN and a TEST net (or a
# layer and a test's loader) may read the same split: readers share one handle per path,
# counted, closed with its last user. The only module state; guarded by its lock.
_SHARED_ENVS = {}
_SHARED_ENVS_LOCK = threading.Lock()


def _open_shared_env(path):
    """Open (or share) the read-only LMDB at path; pair every call with _release_shared_env."""
    key = os.path.realpath(path)
    with _SHARED_ENVS_LOCK:
        if key not in _SHARED_ENVS:
            # lock=False: the LMDBs are read-only once built, so readers need no lock file
            # (which also allows read-only dataset folders); readahead=False suits the random
            # access of shuffled epochs
            env = lmdb.open(str(path), readonly=True, lock=False, readahead=False,
                            max_readers=256)
            _SHARED_ENVS[key] = [env, 0]
        _SHARED_ENVS[key][1] += 1
        return _SHARED_ENVS[key][0]


def _release_shared_env(path):
    """Drop one user of the LMDB at path; the last one closes it."""
    key = os.path.realpath(path)
    with _SHARED_ENVS_LOCK:
        entry = _SHARED_ENVS[key]
        entry[1] -= 1
        if entry[1] == 0:
            entry[0].close()
            del _SHARED_ENVS[key]


def _data_size(path):
    """Bytes of an LMDB folder's data file."""
    return (Path(path) / "data.mdb").stat().st_size


class SplitReader:
    """Decoded records of one split; thread-safe; close() (or `with`) releases the LMDBs."""

    def __init__(self, directory, split, count, crop_size=None):
        self.directory, self.split, self.count = Path(directory), split, count
        self.crop_size = crop_size   # of every image, when given
        self._paths = []
        try:
            self._images = self._open(Path(directory) / f"{split}_images")
            self._poses = self._open(Path(directory) / f"{split}_poses")
        except Exception:
            self.close()
            raise

    def _open(self, path):
        if not path.is_dir():
            raise ValueError(f"dataset {path.parent}: LMDB {path.name} is missing; {REBUILD}")
        try:
            env = _open_shared_env(path)
        except lmdb.Error as error:
            raise ValueError(f"dataset {path.parent}: LMDB {path.name} cannot be opened "
                             f"({type(error).__name__}: {error}); {REBUILD}") from None
        self._paths.append(path)
        # LMDB maps its file and trusts its meta page: pages missing from a cut-short file
        # would be read as zeros or end the process (SIGBUS), so the file must hold them all
        stat = env.stat()
        needed, size = (env.info()["last_pgno"] + 1) * stat["psize"], _data_size(path)
        if size < needed:
            raise ValueError(f"dataset {path.parent}: LMDB {path.name} is truncated ({size} "
                             f"bytes, its pages need {needed}); {REBUILD}")
        entries = stat["entries"]
        if entries != self.count:
            raise ValueError(f"dataset {path.parent}: LMDB {path.name} holds {entries} entries "
                             f"but the manifest says {self.count}; {REBUILD}")
        return env

    def records(self, indices):
        """(index, image (S, S, 3) uint8 BGR, joints_2d (17, 2), joints_3d (17, 3)) of each
        sample index, in the order given, read in one transaction."""
        with self._images.begin() as images, self._poses.begin() as poses:
            for index in indices:
                key = sample_key(int(index))
                yield (int(index), self._value(images, "images", key, self._decode_image),
                       *self._value(poses, "poses", key, decode_pose))

    def _decode_image(self, record):
        """decode_image, and an image of another size than the crops refused (the loaders
        cut their input windows from crop_size x crop_size images)."""
        image = decode_image(record)
        if self.crop_size is not None and image.shape[:2] != (self.crop_size, self.crop_size):
            raise ValueError(f"an image of {image.shape[1]} x {image.shape[0]} pixels in a "
                             f"dataset of {self.crop_size} x {self.crop_size} crops")
        return image

    def _value(self, transaction, kind, key, decode):
        """decode(the record of key in the split's `kind` LMDB); KeyError when it is missing,
        ValueError naming the LMDB and the key when it is unreadable (corrupt pages or a
        corrupt record), rather than LMDB's or protobuf's words alone."""
        name = f"{self.split}_{kind}"
        try:
            value = transaction.get(key)
            if value is not None:
                return decode(value)
        except (lmdb.Error, DecodeError, ValueError) as error:
            raise ValueError(f"dataset {self.directory}: record {key.decode()} of LMDB {name} "
                             f"is unreadable ({type(error).__name__}: {error}); "
                             f"{REBUILD}") from None
        raise KeyError(f"dataset {self.directory}: key {key.decode()} missing from LMDB {name}; "
                       f"{REBUILD}")

    def close(self):
        """Release the LMDBs (idempotent)."""
        while self._paths:
            _release_shared_env(self._paths.pop())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Dataset:
    """A dataset folder with its checked manifest.

        data = Dataset("data/lmdb/synth-h36m")
        data.count("test"), data.mean_bgr, data.bone_lengths_mm, data.mean_pose_mm
        with data.open("test") as reader:
            for index, image, joints_2d, joints_3d in reader.records([0, 1]): ...
        data.index("test")[i]["action"]
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        self.manifest = load_manifest(self.directory)

    @property
    def fingerprint(self):
        """sha256 (hex) of the manifest as canonical JSON: the same wherever the folder is
        moved, another once the dataset is rebuilt with other contents (its counts, reports or
        statistics). A run folder records it to know its dataset again."""
        canonical = json.dumps(self.manifest, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def count(self, split):
        self._check_split(split)
        return int(self.manifest["splits"][split]["count"])

    def _check_split(self, split):
        if split not in self.manifest["splits"]:
            raise ValueError(f"dataset {self.directory} has no split {split!r} (has "
                             f"{sorted(self.manifest['splits'])})")

    @property
    def crop_size(self):
        return int(self.manifest["crop_size"])

    @property
    def mean_bgr(self):
        return np.asarray(self.manifest["mean_bgr"], dtype=np.float32)

    @property
    def pca(self):
        """(eigenvalues (3,) standard deviations, eigenvectors (3, 3) as columns), RGB."""
        pca = self.manifest["pca"]
        return (np.asarray(pca["eigenvalues"], dtype=np.float64),
                np.asarray(pca["eigenvectors"], dtype=np.float64))

    @property
    def bone_lengths_mm(self):
        return dict(self.manifest["bone_lengths_mm"])

    @property
    def mean_pose_mm(self):
        return np.asarray(self.manifest["mean_pose_mm"], dtype=np.float64)

    def open(self, split):
        """A SplitReader of the split (its LMDBs checked against the manifest's count, its
        images against its crop size)."""
        return SplitReader(self.directory, split, self.count(split), self.crop_size)

    def index(self, split):
        """The index rows of the split ({"key", *INDEX_COLUMNS}), in key order."""
        path = self.directory / f"{split}_index.csv"
        count = self.count(split)
        try:
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise ValueError(f"dataset {self.directory}: cannot read {path.name} ({error}); "
                             f"{REBUILD}") from None
        if len(rows) != count or (rows and set(rows[0]) != {"key", *INDEX_COLUMNS}):
            raise ValueError(f"dataset {self.directory}: {path.name} has {len(rows)} rows for "
                             f"{count} samples or other columns than {['key', *INDEX_COLUMNS]}; "
                             f"{REBUILD}")
        return rows
