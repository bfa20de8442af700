"""pytest setup: quiet Caffe's glog output (set before any test imports caffe)."""
import os

os.environ.setdefault("GLOG_minloglevel", "2")
