#!/usr/bin/env python3
"""Contact sheet of a Human3.6M-layout dataset: frames per action and camera with the 2D joints
of D2_Positions drawn on the video frames (left red, right blue, spine green), as a PNG.

    .venv/bin/python tools/contact_sheet.py [--root data/synth-h36m] [--subject S1]
        [--out runs/synth/contact_sheet.png]
It reads the files as a user would (OpenCV for the videos, cdflib for the poses), so it also
shows whether the 2D annotations sit on the people in the videos; the drawing is
data_prep/contact_sheet.py.
"""
import argparse
import sys
from pathlib import Path

from data_prep.contact_sheet import write_contact_sheet
from data_prep.h36m import ACTIONS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/synth-h36m"),
                        help="dataset root (default: %(default)s)")
    parser.add_argument("--subject", default="S1", help="subject to show (default: S1)")
    parser.add_argument("--actions", nargs="+", default=list(ACTIONS), help="actions (default: all)")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 12],
                        help="frame indices per recording (default: 0 12)")
    parser.add_argument("--out", type=Path, default=Path("runs/synth/contact_sheet.png"),
                        help="PNG to write (default: %(default)s)")
    args = parser.parse_args(argv)
    if not (args.root / args.subject).is_dir():
        parser.error(f"{args.root / args.subject} not found; write the dataset with `make synth`")
    return write_contact_sheet(args.root, args.subject, args.actions, args.frames, args.out)


if __name__ == "__main__":
    sys.exit(main())
