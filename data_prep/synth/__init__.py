"""The embedded default dataset: a synthetic Human3.6M written in the raw Human3.6M layout
(motion, rendering, optional BVH input); `python -m data_prep.make_synth --help`."""
