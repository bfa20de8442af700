"""Data preparation: raw Human3.6M (or the embedded synthetic dataset in the same layout) to
LMDBs of 250x250 person crops and their poses."""
