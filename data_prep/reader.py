"""Reader of a raw Human3.6M tree (the real dataset, or the synthetic one in the same layout).

Discovery (`find_sequences`) walks each subject's D2_Positions files, maps their file stems to
the canonical action names of h36m.ACTIONS and reports what it cannot use as `Skip`s instead of
failing. Loading (`load_sequence`) reads the 2D and 3D poses of one sequence and camera, checks
them and the video and mask files, and settles on the number of usable frames. `iter_frames`
then decodes the video frame by frame, sequentially, and reads the masks in one pass over
their file (`_MaskReader`); `iter_person_boxes`, which the LMDB build uses, gives each mask's
person box instead, read without building the mask.

Known quirks of the real dataset handled (data_prep/h36m.py): subaction names vary per
subject and not only as "X" / "X 1" (S5's Discussion is "Discussion 2" and "Discussion 3"; every
stem of h36m.STEMS maps to its action), S1 spells TakingPhoto and WalkingDog, `_ALL` files are
skipped, some videos are missing or corrupt (S11 Directions, camera 54138969, in many copies:
its skip says so), and every video has more frames than its pose files: the shortest count is
used and the truncation reported with its sizes (`SequenceData.truncation`). Four S9
recordings have poses for only about half of their video (`SequenceData.half_posed`); their
poses hold for the frames they cover. The two recordings of an action stay two sequences.
"""
import contextlib
import dataclasses
import mmap
import re
import zlib
from pathlib import Path

import cdflib
import cv2
import h5py
import numpy as np

from data_prep.crops import mask_box
from data_prep.h36m import (ACTIONS, BROKEN_VIDEO, CAMERAS, DAMAGED, JOINTS_17_FROM_32, SUBJECTS,
                            MOST_VIDEO_EXTRA_FRAMES, sequence_paths)

N_JOINTS_RAW = 32
# Files besides D2_Positions that a sequence needs; D3_Positions (world) is not needed.
REQUIRED_FILES = {"video": "video", "d3_mono": "mono 3D pose file", "mask": "mask file"}
# Pose values beyond this (100 m, or 100,000 pixels) fit no studio and no frame: a damaged
# file, refused rather than cropped around or stored.
MAX_ABS_POSE_VALUE = 1e5
# How many bad frame indices an error message lists before summarising.
MAX_FRAMES_LISTED = 10
# Masks may be this many pixels taller or wider than their video frames: MPEG-4 encoders keep
# even sizes only, so a 500x501 rendering (camera 54138969 at half size) is stored 500x500.
MAX_MASK_SIZE_MISMATCH = 2
# Poses covering less than this share of their video, and more extra video frames than any
# camera's usual few: a half-posed recording (S9's Greeting has 1447 poses for 2899-2902
# video frames), not the extra frames every video has (both tests, so that short synthetic
# recordings, where 8 extra frames are a large share, are not taken for half-posed ones).
HALF_POSED_RATIO = 0.6
# Appended to whatever is wrong with the video of h36m.BROKEN_VIDEO.
BROKEN_VIDEO_NOTE = ("a known fault of many copies of Human3.6M ({} {}, camera {}, is corrupt "
                     "or missing in them): this camera is skipped, the recording's other "
                     "cameras are kept").format(*BROKEN_VIDEO)


class SequenceError(Exception):
    """A sequence's files cannot be used; the message names the file and what is wrong."""


class _NotBinary(ValueError):
    """A mask holds values other than 0 and 1 (the message: its type and one such value)."""


@dataclasses.dataclass(frozen=True)
class Sequence:
    """One recording of one subject seen by one camera."""
    subject: str
    action: str        # canonical name, one of h36m.ACTIONS
    stem: str          # file stem on disk, e.g. "Directions 1" or "WalkingDog"
    camera: str        # camera id, e.g. "54138969"
    # {kind: Path} from h36m.sequence_paths; left out of the hash (a dict has none), which
    # the other fields determine anyway
    paths: dict = dataclasses.field(hash=False)

    @property
    def name(self):
        """Readable name, e.g. 'S11/Directions 1.54138969'."""
        return f"{self.subject}/{self.stem}.{self.camera}"

    @property
    def has_broken_video(self):
        """Whether this is the camera whose video many copies hold corrupt or not at all."""
        return (self.subject, self.stem, self.camera) == BROKEN_VIDEO

    @property
    def damaged(self):
        """Whether its recording is one that some works leave out as damaged (h36m.DAMAGED)."""
        return (self.subject, self.stem) in DAMAGED


@dataclasses.dataclass(frozen=True)
class Skip:
    """Something found (or expected) on disk that discovery could not use, and why."""
    what: str          # e.g. "S11/Directions 1.54138969"
    reason: str        # a sentence naming the file and what is wrong with it
    # True for files the dataset ships as duplicates of the others (`_ALL`): left out as
    # expected, not a fault; reported apart from the skips
    ignored: bool = False


@dataclasses.dataclass
class SequenceData:
    """Checked poses of one sequence, truncated to the frames usable in all of its files."""
    sequence: Sequence
    poses_2d: np.ndarray   # (n_frames, 17, 2) pixels
    poses_3d: np.ndarray   # (n_frames, 17, 3) camera coordinates, mm
    n_frames: int
    counts: dict              # frames in each file: {"video": ..., "poses": ..., "masks": ...}
    note: str | None = None   # e.g. what was truncated

    def truncation(self):
        """{"sequence", "poses", "video", "masks", "kept"} when the files' frame counts differ
        (the manifest's record of a truncation), else None."""
        if len(set(self.counts.values())) == 1:
            return None
        return {"sequence": self.sequence.name, **{kind: self.counts[kind] for kind in
                                                   ("poses", "video", "masks")},
                "kept": self.n_frames}

    @property
    def half_posed(self):
        """Whether the poses cover only about half of the video (HALF_POSED_RATIO) and the
        video has more extra frames than any camera's usual ones."""
        poses, video = self.counts["poses"], self.counts["video"]
        return poses < HALF_POSED_RATIO * video and video - poses > MOST_VIDEO_EXTRA_FRAMES


def _squashed(name):
    """Lower case without spaces, dashes or underscores: 'Walk Dog' -> 'walkdog'."""
    return re.sub(r"[\s_\-]+", "", name).lower()


def _action_spellings():
    """{squashed spelling: canonical action}: the canonical names plus the variants seen on
    disk (S1's TakingPhoto and WalkingDog, and their spaced forms, which squash the same)."""
    spellings = {_squashed(action): action for action in ACTIONS}
    spellings.update({"takingphoto": "Photo", "walkingdog": "WalkDog"})
    return spellings


def is_all_file(stem):
    """Whether a stem names one of the `_ALL` files (all subactions concatenated), which
    duplicate the per-subaction files and are skipped."""
    return re.search(r"_all$", stem.strip(), flags=re.IGNORECASE) is not None


def canonical_action(stem):
    """Canonical action (from h36m.ACTIONS) of a file stem such as 'Directions', 'Directions 1',
    'Discussion 2', 'WalkingDog', 'Walk Together 1'; None for `_ALL` stems and unknown names."""
    if is_all_file(stem):
        return None
    # the subaction number, when there is one, trails the name ("Directions 1", "Eating2")
    name = re.sub(r"[\s_]*\d+$", "", stem.strip())
    return _action_spellings().get(_squashed(name))


def _split_file_name(name):
    """('Directions 1', '54138969') from 'Directions 1.54138969.cdf'; None if the name does not
    have a stem and a camera."""
    parts = name[:-len(".cdf")].rsplit(".", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def _check_requested(actions, cameras):
    """Validate the filters, returning them as sets (None = everything)."""
    if actions is not None:
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown:
            raise ValueError(f"unknown action(s) {unknown}; known: {', '.join(ACTIONS)}")
        actions = set(actions)
    if cameras is not None:
        cameras = {str(c) for c in cameras}
    return actions, cameras


def _existing_subjects(root, subjects):
    """The subject folders present under root, as Skips for those missing; ValueError if the
    root is missing or has none of them (most likely the wrong folder was given)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"Human3.6M root {root} does not exist or is not a folder")
    present = [s for s in subjects if (root / s).is_dir()]
    if not present:
        raise ValueError(f"Human3.6M root {root} has none of the subject folders "
                         f"{', '.join(subjects)}; is it the folder that holds S1, S5, ...?")
    skips = [Skip(s, f"subject folder {root / s} is missing") for s in subjects
             if s not in present]
    return present, skips


def _missing_files(paths):
    """Sentence listing the required files of a sequence that do not exist, or None."""
    missing = [f"{label} {paths[kind]}" for kind, label in REQUIRED_FILES.items()
               if not paths[kind].is_file()]
    return f"missing {'; '.join(missing)}" if missing else None


def _subject_sequences(root, subject, actions, cameras):
    """Sequences and Skips of one subject, ordered by stem, then camera."""
    folder = Path(root) / subject / "MyPoseFeatures" / "D2_Positions"
    if not folder.is_dir():
        return [], [Skip(subject, f"2D pose folder {folder} is missing")]
    sequences, skips, named = [], [], []
    # hidden files are temporary files of interrupted writes, not data
    for path in sorted(p for p in folder.glob("*.cdf") if not p.name.startswith(".")):
        split = _split_file_name(path.name)
        if split is None:
            skips.append(Skip(f"{subject}/{path.name}",
                              f"2D pose file {path} is not named <action>.<camera>.cdf"))
        else:
            named.append((*split, path))
    # by stem, then camera: "Directions" before "Directions 1" (file names sort the other way)
    for stem, camera, path in sorted(named):
        if cameras is not None and camera not in cameras:
            continue
        found = _classify(root, subject, stem, camera, path, actions)
        if isinstance(found, Sequence):
            sequences.append(found)
        elif found is not None:
            skips.append(found)
    return sequences, skips


def _classify(root, subject, stem, camera, path, actions):
    """The Sequence of one 2D pose file, a Skip saying why it cannot be used, or None if its
    action was not requested."""
    what = f"{subject}/{stem}.{camera}"
    if is_all_file(stem):
        if actions is None or canonical_action(stem[:-len("_ALL")]) in actions:
            return Skip(what, f"{path} is an _ALL file (all subactions concatenated), which "
                              "duplicates the others", ignored=True)
        return None
    action = canonical_action(stem)
    if action is None:
        return Skip(what, f"unknown action name {stem!r} in {path}")
    if actions is not None and action not in actions:
        return None
    if camera not in CAMERAS:
        return Skip(what, f"unknown camera id {camera!r} in {path}; known: {', '.join(CAMERAS)}")
    paths = sequence_paths(root, subject, stem, camera)
    sequence = Sequence(subject, action, stem, camera, paths)
    missing = _missing_files(paths)
    if missing:
        if sequence.has_broken_video and not paths["video"].is_file():
            missing += f"; {BROKEN_VIDEO_NOTE}"
        return Skip(what, missing)
    return sequence


def find_sequences(root, subjects=SUBJECTS, actions=None, cameras=None):
    """(sequences, skips) of the given subjects under a Human3.6M root, discovered from the
    D2_Positions files and ordered by subject (as given), then stem, then camera. actions: canonical
    names to keep (None = all); cameras: camera ids to keep (None = all). Files that cannot be
    used are reported as Skips; a missing root, or one without any of the subjects, raises
    ValueError."""
    actions, cameras = _check_requested(actions, cameras)
    present, skips = _existing_subjects(root, subjects)
    sequences = []
    for subject in present:
        found, skipped = _subject_sequences(root, subject, actions, cameras)
        sequences += found
        skips += skipped
    return sequences, skips


def _frames_listed(frames):
    """'3, 5, 7' or '3, 5, ... (25 frames)' for error messages."""
    listed = ", ".join(str(i) for i in frames[:MAX_FRAMES_LISTED])
    if len(frames) > MAX_FRAMES_LISTED:
        listed += f", ... ({len(frames)} frames)"
    return listed


def _read_pose_variable(path, width):
    """Frames (N, width) of the Pose variable of a CDF: shape (1, N, width) as cdflib reads it;
    (0, width) when Pose has no records or no frames. SequenceError naming the file if it is not
    a CDF, has no Pose or has the wrong shape."""
    try:
        cdf = cdflib.CDF(str(path))
        info = cdf.varinq("Pose")
        # cdflib cannot read a variable of 0 frames (zero item size), so check before reading
        if info.Last_Rec < 0 or 0 in info.Dim_Sizes:
            return np.zeros((0, width))
        raw = np.asarray(cdf.varget("Pose"))
    except Exception as error:   # noqa: BLE001 - cdflib raises many kinds on malformed files
        raise SequenceError(f"cannot read variable Pose of {path} ({type(error).__name__}: "
                            f"{error}); is it a Human3.6M pose CDF?") from error
    if raw.ndim != 3 or raw.shape[0] != 1 or raw.shape[2] != width:
        raise SequenceError(f"Pose of {path} has shape {raw.shape}, expected (1, N, {width})")
    return raw[0]


def read_pose_cdf(path, n_coords):
    """Poses (N, 17, n_coords) of a Human3.6M pose CDF (variable Pose, shape (1, N, 32 *
    n_coords)); SequenceError naming the file if it is unreadable, has no Pose, has the wrong
    shape or holds NaN/inf or values beyond MAX_ABS_POSE_VALUE."""
    frames = _read_pose_variable(path, N_JOINTS_RAW * n_coords)
    poses = frames.reshape(-1, N_JOINTS_RAW, n_coords)
    bad = np.flatnonzero(~np.isfinite(poses).all(axis=(1, 2)))
    if len(bad):
        raise SequenceError(f"Pose of {path} has NaN or inf values in frames "
                            f"{_frames_listed(bad.tolist())}")
    bad = np.flatnonzero((np.abs(poses) > MAX_ABS_POSE_VALUE).any(axis=(1, 2)))
    if len(bad):
        raise SequenceError(f"Pose of {path} has values beyond {MAX_ABS_POSE_VALUE:g} (mm or "
                            f"pixels) in frames {_frames_listed(bad.tolist())}")
    return poses[:, JOINTS_17_FROM_32]


def count_masks(path):
    """Number of frame masks in a MATLAB v7.3 ground_truth_bs file; SequenceError naming the
    file if it is not HDF5 or has no (N, 1) 'Masks' cell array."""
    try:
        with h5py.File(path, "r") as f:
            if "Masks" not in f:
                raise SequenceError(f"mask file {path} has no 'Masks' dataset")
            shape = f["Masks"].shape
    except SequenceError:
        raise
    except Exception as error:   # noqa: BLE001 - h5py raises many kinds on malformed files
        raise SequenceError(f"mask file {path} is not an HDF5 (MATLAB v7.3) file h5py can read "
                            f"({type(error).__name__}: {error})") from error
    if len(shape) != 2 or shape[1] != 1:
        raise SequenceError(f"'Masks' of {path} has shape {shape}, expected (N, 1)")
    return shape[0]


def count_video_frames(path):
    """Frame count of a video from its container (no decoding); SequenceError naming the file
    if OpenCV cannot open it or it reports no frames."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise SequenceError(f"OpenCV cannot open video {path} (missing or corrupt)")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if count <= 0:
        raise SequenceError(f"video {path} reports {count} frames (corrupt?)")
    return count


def _truncation_note(counts, n_frames):
    """'video has 1390 frames, poses 1383: using 1383' when the counts disagree, else None."""
    if len(set(counts.values())) == 1:
        return None
    kinds = list(counts)
    listed = ", ".join([f"{kinds[0]} has {counts[kinds[0]]} frames"]
                       + [f"{kind} {counts[kind]}" for kind in kinds[1:]])
    return f"{listed}: using {n_frames}"


def _video_error(seq, message):
    """SequenceError about the video of a sequence; for h36m.BROKEN_VIDEO it says that this is
    a known fault of the dataset's copies, not of this toolkit."""
    if seq.has_broken_video:
        message = f"{message}; {BROKEN_VIDEO_NOTE}"
    return SequenceError(message)


def load_sequence(seq):
    """Checked poses of a sequence, truncated to the frames present in the poses, the video and
    the masks alike (every real video is longer than its pose files; `note`, `counts` and
    `truncation()` say so). Raises SequenceError naming the file for unreadable, malformed or
    empty data."""
    poses_2d = read_pose_cdf(seq.paths["d2"], 2)
    poses_3d = read_pose_cdf(seq.paths["d3_mono"], 3)
    if len(poses_2d) != len(poses_3d):
        raise SequenceError(f"{seq.paths['d2']} has {len(poses_2d)} frames but "
                            f"{seq.paths['d3_mono']} has {len(poses_3d)}")
    if len(poses_2d) == 0:
        raise SequenceError(f"pose files of {seq.name} are empty (0 frames): {seq.paths['d2']}")
    try:
        video_frames = count_video_frames(seq.paths["video"])
    except SequenceError as error:
        raise _video_error(seq, str(error)) from error
    counts = {"video": video_frames, "poses": len(poses_2d),
              "masks": count_masks(seq.paths["mask"])}
    n_frames = min(counts.values())
    if n_frames == 0:
        raise SequenceError(f"{seq.name} has no usable frames: {counts} "
                            f"(mask file {seq.paths['mask']})")
    return SequenceData(seq, poses_2d[:n_frames], poses_3d[:n_frames], n_frames, counts,
                        _truncation_note(counts, n_frames))


class _MaskReader:
    """The masks of one ground_truth_bs file, read in one pass over the file.

    Each mask is its own gzip-compressed HDF5 dataset, so h5py's reader spends more per frame
    than decoding the video does (dataset objects, selections, its chunk cache) and inflates
    every chunk, though most of a mask is background. Here a mask's compressed chunks are
    sliced straight from the memory-mapped file in the order HDF5 lists them, and a chunk
    whose compressed bytes are those of a chunk already found to be all background is not
    inflated again: equal deflate streams inflate to equal bytes, so the masks are exactly
    h5py's. Masks stored otherwise (contiguous, other filters, unallocated chunks) are read
    with h5py."""

    def __init__(self, masks_file, path):
        self.file, self.path = masks_file, path
        self.references = masks_file["Masks"][:, 0]
        # the file as bytes, paged in by the OS as the chunks are read (a real recording's
        # masks take gigabytes once inflated, but tens of megabytes as stored)
        with open(path, "rb") as handle:
            self.mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self.addresses_checked = False
        self.direct = True          # chunk addresses are offsets in the file
        self.background = set()     # (chunk shape, filter mask, bytes) of all-zero chunks

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.mapped.close()

    def read(self, index):
        """Mask (H, W) bool of frame `index` (the file stores it transposed: MATLAB is
        column-major); SequenceError naming the file if it cannot be read."""
        return self._reading(index, self._stored_mask).T

    def fitted(self, index, size, frame_name):
        """read(index) fitted to its frame of `size` (H, W) by _fit_mask (the frame named
        `frame_name` in its error)."""
        return _fit_mask(self.read(index), size, self._name(index), frame_name)

    def box(self, index, size, frame_name):
        """mask_box of frame `index`'s mask fitted to its frame of `size` (H, W) as _fit_mask
        fits it, or None when no foreground pixel lies in the frame; SequenceError as read,
        and as _fit_mask when the sizes differ (the frame named `frame_name`). The same box
        as mask_box(_fit_mask(read(index), ...)), without building the mask: only its chunks
        with foreground are inflated, and their rows and columns give the box (a real frame's
        mask is a megabyte, the person in it a few of its chunks)."""
        return self._reading(index, lambda dataset: self._stored_box(index, dataset, size,
                                                                     frame_name))

    def _name(self, index):
        return f"mask {index} of {self.path}"

    def _reading(self, index, how):
        """how(the HDF5 dataset of mask `index`), its errors turned into SequenceErrors that
        name the file and the mask."""
        try:
            return how(h5py.h5r.dereference(self.references[index], self.file.id))
        except SequenceError:
            raise
        except _NotBinary as error:
            raise SequenceError(f"mask {index} of {self.path} has values other than 0 and 1 "
                                f"({error}): not a Human3.6M foreground mask") from None
        except Exception as error:   # noqa: BLE001 - h5py raises many kinds on bad files
            raise SequenceError(f"cannot read mask {index} of {self.path} "
                                f"({type(error).__name__}: {error})") from error

    def _stored_mask(self, dataset):
        """The stored (W, H) mask as bool, from its chunks where it can (_foreground_chunks),
        else through h5py."""
        found = self._foreground_chunks(dataset)
        if found is None:
            return self._binary(h5py.Dataset(dataset)[:])
        stored = np.zeros(dataset.shape, dtype=bool)
        for (row, column), values in found:
            # edge chunks are stored whole, padded beyond the dataset's extent
            rows, columns = values.shape
            stored[row:row + rows, column:column + columns] = \
                values[:dataset.shape[0] - row, :dataset.shape[1] - column] != 0
        return stored

    def _stored_box(self, index, dataset, size, frame_name):
        """box(index, size, frame_name) of the mask's HDF5 dataset."""
        _check_mask_size(dataset.shape[::-1], size, self._name(index), frame_name)
        found = self._foreground_chunks(dataset)
        if found is None:
            mask = _fit_mask(self._stored_mask(dataset).T, size, self._name(index), frame_name)
            return mask_box(mask) if mask.any() else None
        # stored rows are the frame's columns (x), stored columns its rows (y); a mask larger
        # than its frame has its extra rows and columns cut off, as _fit_mask cuts them
        limits = (min(dataset.shape[0], size[1]), min(dataset.shape[1], size[0]))
        first, last = list(limits), [-1, -1]
        for (row, column), values in found:
            inside = values[:max(0, limits[0] - row), :max(0, limits[1] - column)]
            rows = np.flatnonzero(inside.any(axis=1))
            if rows.size:
                columns = np.flatnonzero(inside.any(axis=0))
                first = [min(first[0], row + rows[0]), min(first[1], column + columns[0])]
                last = [max(last[0], row + rows[-1]), max(last[1], column + columns[-1])]
        if last[0] < 0:
            return None
        x_min, y_min, x_max, y_max = first + last
        return float(x_min), float(y_min), float(x_max), float(y_max)

    @staticmethod
    def _binary(values):
        """values as bool; _NotBinary when any is not 0 or 1 (a mask scaled to 255, or
        another kind of image, would change the crops without a word)."""
        values = np.asarray(values)
        if values.dtype.kind not in "biuf":
            raise _NotBinary(f"values of type {values.dtype}")
        outside = values[~np.isin(values, (0, 1))]
        if outside.size:
            raise _NotBinary(f"{values.dtype} {outside.flat[0]}")
        return values.astype(bool)

    def _foreground_chunks(self, dataset):
        """[((row, column) offset, (rows, columns) uint8 values)] of the chunks of a stored
        mask that hold foreground (edge chunks whole, padded beyond the extent), or None when
        the mask is not stored as deflated byte chunks that cover it."""
        chunk_shape = _deflated_byte_chunks(dataset)
        if chunk_shape is None:
            return None
        chunks = []
        dataset.chunk_iter(chunks.append)
        if len(chunks) != _chunk_count(dataset.shape, chunk_shape):
            return None     # unallocated chunks hold the fill value: h5py knows it
        found = []
        for info in chunks:
            values = self._chunk_values(dataset, info, chunk_shape)
            if values is not None:
                found.append((info.chunk_offset, values))
        return found

    def _chunk_values(self, dataset, info, chunk_shape):
        """A chunk's (rows, columns) uint8 values, or None when it is all background."""
        raw = self._chunk_bytes(dataset, info)
        key = (chunk_shape, info.filter_mask, raw)
        if key in self.background:
            return None
        # bit 0 of the filter mask set: the deflate filter was skipped for this chunk
        data = raw if info.filter_mask & 1 else zlib.decompress(raw)
        values = np.frombuffer(data, dtype=np.uint8).reshape(chunk_shape)
        largest = values.max()
        if largest == 0:
            self.background.add(key)
            return None
        if largest > 1:
            raise _NotBinary(f"uint8 {largest}")
        return values

    def _chunk_bytes(self, dataset, info):
        """A chunk's bytes as stored. The first chunk of a file is also read through HDF5,
        to check that the addresses HDF5 gives are offsets in this file (a MATLAB file starts
        with a user block, which addresses counted from HDF5's superblock would miss); if
        not, every chunk of the file is read through HDF5."""
        if self.direct:
            raw = self.mapped[info.byte_offset:info.byte_offset + info.size]
            if self.addresses_checked:
                return raw
            self.addresses_checked = True
            self.direct = raw == dataset.read_direct_chunk(info.chunk_offset)[1]
            if self.direct:
                return raw
        return dataset.read_direct_chunk(info.chunk_offset)[1]


def _deflated_byte_chunks(dataset):
    """The chunk shape of a 2-D dataset of one-byte values stored in chunks with deflate as
    its only filter, else None."""
    plist = dataset.get_create_plist()
    if (plist.get_layout() != h5py.h5d.CHUNKED or plist.get_nfilters() != 1
            or plist.get_filter(0)[0] != h5py.h5z.FILTER_DEFLATE
            or dataset.dtype.itemsize != 1 or len(dataset.shape) != 2):
        return None
    return plist.get_chunk()


def _chunk_count(shape, chunk_shape):
    """Chunks of chunk_shape that cover an array of shape."""
    return int(np.prod([-(-size // chunk) for size, chunk in zip(shape, chunk_shape)]))


def _check_mask_size(shape, size, mask_name, frame_name):
    """SequenceError when a mask of `shape` (H, W) and its frame of `size` differ by more than
    MAX_MASK_SIZE_MISMATCH pixels."""
    if max(abs(m - s) for m, s in zip(shape, size)) > MAX_MASK_SIZE_MISMATCH:
        raise SequenceError(f"{mask_name} is {tuple(shape)}, but {frame_name} is {size}")


def _fit_mask(mask, size, mask_name, frame_name):
    """The mask cropped or padded (with False, at the bottom and right) to the frame size (H, W)
    when they differ by at most MAX_MASK_SIZE_MISMATCH pixels; SequenceError otherwise."""
    if mask.shape == size:
        return mask
    _check_mask_size(mask.shape, size, mask_name, frame_name)
    fitted = np.zeros(size, dtype=bool)
    rows, columns = min(mask.shape[0], size[0]), min(mask.shape[1], size[1])
    fitted[:rows, :columns] = mask[:rows, :columns]
    return fitted


def _decoded_frames(data, stride):
    """(frame index, image BGR uint8 (H, W, 3)) of frames 0, stride, 2 * stride, ... <
    data.n_frames, decoded sequentially (skipped frames are grabbed, not decoded: seeking in
    mp4 is slow and not frame-exact); SequenceError naming the file if a frame cannot be
    read."""
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    sequence, video_path = data.sequence, data.sequence.paths["video"]
    capture = cv2.VideoCapture(str(video_path))
    if not capture.isOpened():
        raise _video_error(sequence, f"OpenCV cannot open video {video_path}")
    try:
        for index in range(data.n_frames):
            if index % stride:
                if not capture.grab():
                    raise _video_error(sequence,
                                       f"cannot read frame {index} of video {video_path}")
                continue
            ok, image = capture.read()
            if not ok or image is None:
                raise _video_error(sequence, f"cannot decode frame {index} of video {video_path}")
            yield index, image
    finally:
        capture.release()


def _frames_with_masks(data, stride, mask_of):
    """(index, image, mask_of(the _MaskReader, index, frame size, frame name), joints_2d,
    joints_3d) of every stride-th frame, the masks read in one pass."""
    video_path, mask_path = data.sequence.paths["video"], data.sequence.paths["mask"]
    with contextlib.closing(_decoded_frames(data, stride)) as frames, \
            h5py.File(mask_path, "r") as masks_file, _MaskReader(masks_file, mask_path) as masks:
        for index, image in frames:
            yield (index, image, mask_of(masks, index, image.shape[:2],
                                         f"frame {index} of {video_path}"),
                   data.poses_2d[index], data.poses_3d[index])


def iter_frames(data, stride=1):
    """Yield (frame_index, image BGR uint8 (H, W, 3), mask bool (H, W), joints_2d (17, 2),
    joints_3d (17, 3)) for frames 0, stride, 2 * stride, ... < data.n_frames; SequenceError
    naming the file if a frame or its mask cannot be read."""
    yield from _frames_with_masks(data, stride, _MaskReader.fitted)


def iter_person_boxes(data, stride=1):
    """As iter_frames, with the box of the person in each frame (x_min, y_min, x_max, y_max),
    crops.mask_box of its mask, or None for a mask without foreground, in place of the mask:
    what a crop needs, read without building the mask (_MaskReader.box)."""
    yield from _frames_with_masks(data, stride, _MaskReader.box)
