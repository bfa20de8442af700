# Reimplementation of Park, Hwang, Kwak (ECCV-W 2016) in BVLC Caffe.  `make help` lists targets.

# The interpreter the venv is made from (needs a shared libpython; see README).
PYTHON ?= python3
# Where Caffe's source comes from: auto (Debian, falling back to PyPI), debian or pypi.
CAFFE_SOURCE ?= auto
VENV := .venv
VPY := $(VENV)/bin/python
# Extra flags for setup/caffe_setup.py, e.g. SETUP_FLAGS=--rebuild
SETUP_FLAGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test test-caffe test-project demo clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

setup:  ## install apt packages, .venv and Caffe (cached; a second run takes seconds)
	$(PYTHON) setup/caffe_setup.py --source $(CAFFE_SOURCE) --venv $(VENV) $(SETUP_FLAGS)

test: setup  ## setup, then Caffe's own Python tests and the project's tests
	$(MAKE) --no-print-directory test-caffe
	$(MAKE) --no-print-directory test-project

test-caffe:  ## Caffe's own Python test suite (python/caffe/test of the build)
	cd "$$($(VPY) -c 'import caffe, os; print(os.path.dirname(os.path.dirname(caffe.__file__)))')" \
	  && GLOG_minloglevel=2 $(abspath $(VPY)) -m unittest discover -s caffe/test

test-project:  ## the project's pytest suite
	$(VPY) -m pytest tests

demo: setup  ## the main job (for now a smoke run: a tiny net trained with `caffe train`)
	$(VPY) tools/smoke_train.py --out runs/smoke --force

clean:  ## remove the venv and setup logs (the Caffe build cache in ~/.cache is kept)
	rm -rf $(VENV) build
