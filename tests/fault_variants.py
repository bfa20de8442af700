"""Damaged variants of the files the toolkit reads, for tests/test_fault_injection.py.

Two kinds of generators:
  - byte faults, for any file (`damaged_bytes`, `BYTE_FAULTS`): truncations at several points,
    random or zero bytes after a valid header, random bytes appended, an empty file. Each is
    named (`truncated_at_50pct`, `random_after_header`, ...) and made from the valid file's
    bytes and the size of its format's header (`*_header_size`, the `*_HEADER_BYTES`);
  - format faults, written with the project's own writers (data_prep/synth/writers.py) and
    then changed where those writers cannot go wrong: pose CDFs (`POSE_FAULTS`,
    `write_pose_fault`), MATLAB v7.3 mask files (`MASK_FAULTS`, `write_mask_fault`), videos
    (`VIDEO_FAULTS`, `write_video_fault`), JSON documents (`json_faults`) and caffemodels
    (`CAFFEMODEL_FAULTS`, `caffemodel_fault`).
Every random byte comes from a numpy generator seeded with SEED: the same variants every run.
"""
import json
import math
import struct
from pathlib import Path

import cv2
import h5py
import numpy as np
from cdflib.cdfwrite import CDF

from data_prep.synth.writers import (MATLAB_HEADER_BYTES, VideoWriter, write_mask_mat,
                                     write_pose_cdf)

SEED = 15   # any fixed value: the variants must not change between runs

# ---------------------------------------------------------------- byte faults, any file

TRUNCATIONS = ("empty", "truncated_to_1_byte", "truncated_after_header", "truncated_at_25pct",
               "truncated_at_50pct", "truncated_at_90pct", "truncated_before_last_byte")
BYTE_FAULTS = TRUNCATIONS + ("random_after_header", "zeros_after_header", "garbage_appended")
GARBAGE_BYTES = 4096   # appended by garbage_appended

# Headers of the formats, in bytes: what "after the header" keeps of a valid file.
CDF_HEADER_BYTES = 8            # the CDF magic numbers (CDF 3, uncompressed)
MATLAB_FILE_HEADER_BYTES = MATLAB_HEADER_BYTES   # MATLAB's user block before HDF5's data
LMDB_HEADER_BYTES = 2 * 4096    # LMDB's two meta pages (pages of 4 KiB on Linux)
PNG_HEADER_BYTES = 8 + 25       # the signature and the IHDR chunk
JSON_HEADER_BYTES = 1           # "{"
PROTOBUF_HEADER_BYTES = 16      # the first fields of a NetParameter / SolverState


def truncation_length(fault, size, header_size):
    """Bytes kept of a `size`-byte file by one of TRUNCATIONS."""
    return {"empty": 0, "truncated_to_1_byte": 1,
            "truncated_after_header": min(header_size, size - 1),
            "truncated_at_25pct": size // 4, "truncated_at_50pct": size // 2,
            "truncated_at_90pct": size * 9 // 10,
            "truncated_before_last_byte": size - 1}[fault]


def damaged_bytes(fault, data, header_size, seed=SEED):
    """The bytes of a valid file `data` damaged by one of BYTE_FAULTS. header_size: how much
    of the file is its format's header (kept by *_after_header)."""
    if fault in TRUNCATIONS:
        return data[:truncation_length(fault, len(data), header_size)]
    rng = np.random.default_rng(seed)
    if fault == "random_after_header":
        return data[:header_size] + rng.bytes(len(data) - header_size)
    if fault == "zeros_after_header":
        return data[:header_size] + bytes(len(data) - header_size)
    if fault == "garbage_appended":
        return data + rng.bytes(GARBAGE_BYTES)
    raise ValueError(f"unknown byte fault {fault!r}; known: {BYTE_FAULTS}")


def damage_file(path, fault, header_size, seed=SEED):
    """Overwrite the file at path with its variant of `fault` (one of BYTE_FAULTS)."""
    path = Path(path)
    path.write_bytes(damaged_bytes(fault, path.read_bytes(), header_size, seed))


def mp4_header_size(data):
    """Bytes of an mp4's first box (ftyp): its size is the box's first 4 bytes, big-endian."""
    return struct.unpack(">I", data[:4])[0]


def jpeg_header_size(data):
    """Bytes of a JPEG before its entropy-coded data: through the start-of-scan segment
    (everything a decoder needs to read the pixels that follow)."""
    start = data.index(b"\xff\xda")
    length = struct.unpack(">H", data[start + 2:start + 4])[0]
    return start + 2 + length


# ---------------------------------------------------------------- pose CDFs

POSE_FAULTS = (
    "nan_in_a_frame", "inf_in_a_frame", "minus_inf_in_a_frame",
    "huge_values",                    # 1e300: finite as float64, inf once stored as float32
    "wrong_joint_count",              # 25 joints instead of 32
    "extra_coordinate",               # (x, y, z, w) per joint
    "no_frames",                      # Pose of shape (1, 0, W)
    "no_records",                     # Pose without a record
    "fewer_frames",                   # the sequence's other pose file has more
    "two_records",                    # Pose (2, N, W), where one record (1, N, W) is expected
    "strings",                        # Pose of type CDF_CHAR
    "no_pose_variable",               # the poses under another name
    "float32",                        # the same poses in another float type
)


def write_cdf_variable(path, name, data, data_type, dims=None):
    """A CDF with one record-varying variable `name` of cdflib type `data_type` holding the
    records data (R, ...) (the layout of writers.write_pose_cdf, any type and name); data
    None: no records, of dims."""
    path = Path(path)
    path.unlink(missing_ok=True)
    cdf = CDF(str(path), cdf_spec={"Majority": "Row_major"})
    spec = {"Variable": name, "Data_Type": data_type, "Num_Elements": 1, "Rec_Vary": True,
            "Dim_Sizes": list(np.shape(data)[1:] if dims is None else dims), "Compress": 0}
    if data_type == CDF.CDF_CHAR:
        spec["Num_Elements"] = max(len(s) for s in np.ravel(data))
    if data is None:
        cdf.write_var(spec)
    else:
        cdf.write_var(spec, var_data=data)
    cdf.close()


def write_pose_fault(path, poses, fault):
    """Write the pose CDF of `poses` (N, 32, k) damaged by one of POSE_FAULTS to path."""
    poses = np.asarray(poses, dtype=np.float64)
    frames = poses.reshape(len(poses), -1)
    replaced = {"nan_in_a_frame": math.nan, "inf_in_a_frame": math.inf,
                "minus_inf_in_a_frame": -math.inf, "huge_values": 1e300}
    if fault in replaced:
        poses = poses.copy()
        poses[len(poses) // 2, 3, 0] = replaced[fault]
        write_pose_cdf(path, poses)
    elif fault == "wrong_joint_count":
        write_pose_cdf(path, poses[:, :25])
    elif fault == "extra_coordinate":
        write_pose_cdf(path, np.concatenate([poses, poses[..., :1]], axis=-1))
    elif fault == "no_frames":
        write_cdf_variable(path, "Pose", frames[None, :0], CDF.CDF_DOUBLE)
    elif fault == "no_records":
        write_cdf_variable(path, "Pose", None, CDF.CDF_DOUBLE, dims=frames.shape)
    elif fault == "fewer_frames":
        write_pose_cdf(path, poses[:-3])
    elif fault == "two_records":
        write_cdf_variable(path, "Pose", np.stack([frames, frames]), CDF.CDF_DOUBLE)
    elif fault == "strings":
        write_cdf_variable(path, "Pose", np.array([["x%d" % i for i in range(frames.shape[1])]
                                                   for _ in frames]), CDF.CDF_CHAR)
    elif fault == "no_pose_variable":
        write_cdf_variable(path, "Positions", frames[None], CDF.CDF_DOUBLE)
    elif fault == "float32":
        write_cdf_variable(path, "Pose", frames[None].astype(np.float32), CDF.CDF_FLOAT)
    else:
        raise ValueError(f"unknown pose fault {fault!r}; known: {POSE_FAULTS}")


# ---------------------------------------------------------------- MATLAB v7.3 mask files

MASK_FAULTS = (
    "values_255",                     # a mask image scaled to 0/255
    "values_2", "nan", "float_half",
    "float_zeros_and_ones",           # the same 0/1 values in another numeric type
    "half_size",                      # masks of another resolution than the video's
    "transposed",                     # stored (H, W), not MATLAB's transposed (W, H)
    "three_channels",                 # (W, H, 3)
    "no_masks_dataset",               # the cell array under another name
    "masks_wrong_shape",              # a cell array (N, 2), not (N, 1)
    "no_masks",                       # a cell array of no masks
    "null_reference",                 # a cell that points nowhere
    "reference_to_a_group",           # a cell that points at a group, not a mask
    "fewer_masks",                    # fewer masks than poses
    "all_background",                 # no person in any frame
)


def read_masks(path):
    """The (N, H, W) bool masks of a ground_truth_bs file as writers.write_mask_mat writes."""
    with h5py.File(path, "r") as f:
        return np.array([f[ref][:].T for ref in f["Masks"][:, 0]], dtype=bool)


def replace_stored_masks(path, stored):
    """Replace each mask of a written mask file by stored(index, original stored (W, H) uint8
    array): a new dataset of any type or shape under the same cell, so that the file is
    MATLAB's in every other respect."""
    with h5py.File(path, "r+") as f:
        cell = f["Masks"]
        for index in range(cell.shape[0]):
            name = f"#refs#/m{index}"
            values = stored(index, f[name][:])
            del f[name]
            cell[index, 0] = f.create_dataset(name, data=values).ref


def write_mask_fault(path, masks, fault):
    """Write the mask file of `masks` (N, H, W) bool damaged by one of MASK_FAULTS to path."""
    masks = np.asarray(masks, dtype=bool)
    per_value = {"values_255": lambda m: m.astype(np.uint8) * 255,
                 "values_2": lambda m: m.astype(np.uint8) * 2,
                 "nan": lambda m: np.where(m, np.nan, 0.0),
                 "float_half": lambda m: m * 0.5,
                 "float_zeros_and_ones": lambda m: m.astype(np.float64),
                 "three_channels": lambda m: np.repeat(m[..., None], 3, axis=-1).astype(np.uint8)}
    shaped = {"half_size": lambda ms: ms[:, ::2, ::2], "fewer_masks": lambda ms: ms[:-3],
              "all_background": np.zeros_like, "no_masks": lambda ms: ms[:0]}
    if fault in shaped:
        write_mask_mat(path, shaped[fault](masks))
        return
    write_mask_mat(path, masks)
    if fault in per_value:
        replace_stored_masks(path, lambda index, stored: per_value[fault](stored))
    elif fault == "transposed":
        replace_stored_masks(path, lambda index, stored: stored.T)
    elif fault in ("no_masks_dataset", "masks_wrong_shape", "null_reference",
                   "reference_to_a_group"):
        with h5py.File(path, "r+") as f:
            if fault == "no_masks_dataset":
                f.move("Masks", "Frames")
            elif fault == "masks_wrong_shape":
                references = f["Masks"][:, 0]
                del f["Masks"]
                f.create_dataset("Masks", data=np.stack([references, references], axis=1),
                                 dtype=h5py.ref_dtype)
            else:
                f["Masks"][0, 0] = (h5py.Reference() if fault == "null_reference"
                                    else f["#refs#"].ref)
    else:
        raise ValueError(f"unknown mask fault {fault!r}; known: {MASK_FAULTS}")


# ---------------------------------------------------------------- videos

VIDEO_FAULTS = (
    "text_file",                      # a text file named .mp4
    "other_frame_size",               # frames twice the size of the masks
    "no_frames",                      # an mp4 the writer closed without a frame
    "fewer_frames",                   # fewer frames than poses
)


def read_video(path):
    """Every frame of a video, BGR uint8, and its frame rate."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


def write_video_fault(path, frames, fps, fault):
    """Write the video of `frames` damaged by one of VIDEO_FAULTS to path."""
    if fault == "text_file":
        Path(path).write_text("not a video\n")
        return
    if fault == "other_frame_size":
        frames = [cv2.resize(f, (2 * f.shape[1], 2 * f.shape[0])) for f in frames]
    elif fault == "no_frames":
        frames = frames[:0]
    elif fault == "fewer_frames":
        frames = frames[:-5]
    elif fault not in VIDEO_FAULTS:
        raise ValueError(f"unknown video fault {fault!r}; known: {VIDEO_FAULTS}")
    height, width = (frames or [np.zeros((16, 16, 3))])[0].shape[:2]
    with VideoWriter(path, width, height, fps) as video:
        for frame in frames:
            video.write(frame)


# ---------------------------------------------------------------- JSON documents

def json_faults(document, keys_checked):
    """{name: text} of a valid JSON object's damaged variants: each checked key dropped, or
    holding a string, a list, null, NaN and Infinity (JSON extensions that Python writes and
    reads), and the document as a list or a number. keys_checked: the top-level keys the
    reader must check."""
    variants = {"a_list": json.dumps([document]), "a_number": "3"}
    for key in keys_checked:
        without = {k: v for k, v in document.items() if k != key}
        variants[f"missing_{key}"] = json.dumps(without)
        for kind, value in (("string", "x"), ("list", ["x"]), ("null", None),
                            ("nan", math.nan), ("infinity", math.inf)):
            variants[f"{key}_{kind}"] = json.dumps({**document, key: value})
    return variants


# Stands for a number beyond a double's range in json_with: written as 1e400, which Python's
# json reads as inf (json.dumps cannot write it: a Python float holds no such number).
OVERFLOW = "<a number beyond a double's range>"


def json_with(document, path, value):
    """The JSON text of document with `value` at a nested place: path is a list of keys and
    indices, e.g. ["mean_pose_mm", 3, 1]; NaN and Infinity as Python writes them, OVERFLOW
    as 1e400."""
    copy = json.loads(json.dumps(document))
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = value
    return json.dumps(copy).replace(json.dumps(OVERFLOW), "1e400")


# ---------------------------------------------------------------- LMDB records

LMDB_RECORD_FAULTS = {   # {fault: the LMDB it damages, "images" or "poses"}
    "pose_84_values": "poses", "pose_nan": "poses", "pose_not_a_datum": "poses",
    "image_not_an_image": "images", "image_100_pixels": "images",
    "image_not_a_datum": "images",
}


def lmdb_record_fault(record, fault, seed=SEED):
    """A valid record of a dataset's image or pose LMDB (data_prep/dataset.py's format)
    damaged by one of LMDB_RECORD_FAULTS, written with the dataset's own record writers."""
    from data_prep import dataset
    rng = np.random.default_rng(seed)
    if fault.endswith("not_a_datum"):
        return rng.bytes(len(record))
    if fault.startswith("pose"):
        values = np.asarray(dataset._datum().FromString(record).float_data, dtype=np.float64)
        if fault == "pose_nan":
            values[40] = math.nan
        return dataset.pose_record(values[:84] if fault == "pose_84_values" else values)
    image = dataset.decode_image(record)
    if fault == "image_100_pixels":
        return dataset.image_record(dataset.encode_jpeg(cv2.resize(image, (100, 100)), 95),
                                    100, 100)
    if fault == "image_not_an_image":
        return dataset.image_record(rng.bytes(1000), *image.shape[:2])
    raise ValueError(f"unknown LMDB record fault {fault!r}; known: {list(LMDB_RECORD_FAULTS)}")


# ---------------------------------------------------------------- caffemodels

CAFFEMODEL_FAULTS = ("blob_data_short", "blob_shape_wrong", "layer_missing", "no_layers",
                     "nan_weights", "inf_weights", "overflowing_weights")
OVERFLOW_SCALE = 1e36   # finite float32 weights whose products overflow


def caffemodel_fault(data, fault):
    """The bytes of a valid caffemodel damaged by one of CAFFEMODEL_FAULTS: well-formed
    protobuf whose weights do not fit the net, are not finite, or overflow the net."""
    from caffe.proto import caffe_pb2
    model = caffe_pb2.NetParameter.FromString(data)
    layers = [layer for layer in model.layer if layer.blobs]
    blob = layers[-1].blobs[0]
    if fault == "blob_data_short":
        del blob.data[-1]
    elif fault == "blob_shape_wrong":
        blob.shape.dim[0] += 1
    elif fault == "layer_missing":
        model.layer.remove(layers[0])
    elif fault == "no_layers":
        del model.layer[:]
    elif fault in ("nan_weights", "inf_weights"):
        blob.data[0] = math.nan if fault == "nan_weights" else math.inf
    elif fault == "overflowing_weights":    # the first layer's: every later one overflows
        first = layers[0].blobs[0]
        first.data[:] = [value * OVERFLOW_SCALE for value in first.data]
    else:
        raise ValueError(f"unknown caffemodel fault {fault!r}; known: {CAFFEMODEL_FAULTS}")
    return model.SerializeToString()
