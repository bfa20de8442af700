"""Writers of Human3.6M's raw file formats: pose CDFs (cdflib), MATLAB v7.3 mask files (h5py),
and mp4 videos (OpenCV). Each writes its file whole: to a temporary name beside the target,
renamed when complete (built_folders.whole_file)."""
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
from cdflib.cdfwrite import CDF

from built_folders import put_in_place, temporary_file, whole_file

MATLAB_HEADER_BYTES = 512


def _whole_file(path):
    """built_folders.whole_file, with the file's folder made first: the writers fill new
    trees."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return whole_file(path)


def write_pose_cdf(path, poses):
    """Pose CDF as Human3.6M ships it: variable `Pose`, one record of shape (N, 3*32 or 2*32),
    read back by cdflib as (1, N, 96) / (1, N, 64). poses: (N, 32, 3) or (N, 32, 2)."""
    poses = np.asarray(poses, dtype=np.float64)
    frames = poses.reshape(poses.shape[0], -1)
    with _whole_file(path) as tmp:
        cdf = CDF(str(tmp), cdf_spec={"Majority": "Row_major"})
        # uncompressed: cdflib's gzip would stamp the time into the file, and the same data
        # must give the same bytes
        cdf.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_DOUBLE, "Num_Elements": 1,
                       "Rec_Vary": True, "Dim_Sizes": list(frames.shape), "Compress": 0},
                      var_data=frames[None])
        cdf.close()


def matlab_header():
    """The 512-byte user block that makes an HDF5 file a MATLAB v7.3 MAT-file."""
    text = ("MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
            f"{time.strftime('%a %b %d %H:%M:%S %Y', time.gmtime(0))} HDF5 schema 1.00 .")
    header = text.encode("ascii").ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM"
    return header.ljust(MATLAB_HEADER_BYTES, b"\x00")


MASK_STORAGE = {"compression": "gzip", "compression_opts": 4}


def write_mask_mat(path, masks, **storage):
    """MATLAB v7.3 file with a cell array `Masks` of per-frame logical masks, stored as the
    real ground_truth_bs files: an (N, 1) dataset of object references, each to a mask stored
    transposed (MATLAB is column-major), so that f[f['Masks'][i, 0]][:].T is frame i (H, W).
    The creation date is fixed so that the same data gives the same bytes. storage: h5py's
    dataset options for each mask instead of MASK_STORAGE (chunks, filters: tests of the
    reader)."""
    masks = np.asarray(masks, dtype=bool)
    storage = storage or MASK_STORAGE
    with _whole_file(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=MATLAB_HEADER_BYTES, track_order=True) as f:
            refs_group = f.create_group("#refs#")
            references = np.empty((len(masks), 1), dtype=h5py.ref_dtype)
            for i, mask in enumerate(masks):
                data = refs_group.create_dataset(f"m{i}", data=mask.T.astype(np.uint8),
                                                 **storage)
                data.attrs["MATLAB_class"] = np.bytes_("logical")
                data.attrs["MATLAB_int_decode"] = np.int32(1)
                references[i, 0] = data.ref
            cell = f.create_dataset("Masks", data=references, dtype=h5py.ref_dtype)
            cell.attrs["MATLAB_class"] = np.bytes_("cell")
        with open(tmp, "r+b") as raw:
            raw.write(matlab_header())


class VideoWriter:
    """mp4 (MPEG-4 part 2, OpenCV's 'mp4v') at the given fps; frames are BGR uint8 (H, W, 3)."""

    def __init__(self, path, width, height, fps):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_file(self.path)
        self.size = (int(width), int(height))
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                      self.size)
        if not self.writer.isOpened():
            raise OSError(f"OpenCV cannot write an mp4 video to {self.tmp}")

    def write(self, frame):
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"frame of shape {frame.shape} for a {self.size} video")
        self.writer.write(frame)

    def close(self, keep=True):
        """Finish the video: renamed into place (keep), or its temporary file removed."""
        self.writer.release()
        try:
            if keep:
                put_in_place(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self.close(keep=kind is None)
