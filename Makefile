# Reimplementation of Park, Hwang, Kwak (ECCV-W 2016) in BVLC Caffe.  `make help` lists the
# targets and the variables below.
#
# Every variable a user may set (make TARGET NAME=value) is defined with ?= right below its
# help text, one or more lines of `## text`: `make help` prints them with the default.

## the interpreter the venv is made from (needs a shared libpython; docs/INSTALL.md)
PYTHON ?= python3
## where Caffe's source comes from: auto (Debian, falling back to PyPI), debian or pypi
CAFFE_SOURCE ?= auto
VENV := .venv
VPY := $(VENV)/bin/python
## Caffe for the CPU or the GPU: cpu, gpu (CUDA, cuDNN, NCCL; a separate cached build) or
## auto (the device of the venv's current build; for a new venv gpu where nvidia-smi sees a
## GPU and nvcc exists, else cpu)
CAFFE_DEVICE ?= auto
## compute capabilities to build for, e.g. 90 for H100/H200 (empty: the GPUs present;
## gpu-bundle: 90)
CUDA_ARCH ?=
## the CUDA toolkit (empty: the nvcc on PATH, else /usr/local/cuda)
CUDA_HOME ?=
## extra flags for setup/caffe_setup.py, e.g. --rebuild, or --debian-mirror=URI (a Debian
## archive that still serves bullseye's sources)
SETUP_FLAGS ?=
## `make gpu-bundle`: a Python 3.12 built with --enable-shared (empty: a pyenv 3.12)
PYTHON312 ?=
## where the synthetic Human3.6M goes
SYNTH_ROOT ?= data/synth-h36m
## extra flags for data_prep/make_synth.py, e.g. --frames 48, or --force
SYNTH_FLAGS ?=
## the Human3.6M root `make lmdb` reads (default: the synthetic one)
H36M_ROOT ?= $(SYNTH_ROOT)
## the actions, one or several, e.g. ACTIONS=Walking or ACTIONS="Eating Walking": one model
## per action as in the paper, or one over several (empty: all); `make table1`: the actions
## of its models, one each (empty: the 15), or ACTIONS=all for one all-actions model
ACTIONS ?=
empty :=
space := $(empty) $(empty)
ACTIONS_TAG := $(if $(strip $(ACTIONS)),-$(subst $(space),-,$(strip $(ACTIONS))))
# The root's last folder name, spaces included (make's notdir splits words at spaces).
H36M_NAME := $(subst |,$(space),$(notdir $(subst $(space),|,$(strip $(H36M_ROOT)))))
## the LMDB dataset folder, named after H36M_ROOT's last folder and the ACTIONS; `make
## evaluate` reads the run's own dataset unless it is named (a moved dataset)
LMDB_DIR ?= data/lmdb/$(H36M_NAME)$(ACTIONS_TAG)
# the tool checks that a named LMDB_DIR is the run's dataset by its fingerprint
EVAL_LMDB = $(if $(filter command line environment,$(origin LMDB_DIR)),--lmdb "$(LMDB_DIR)")
## `make evaluate TEST_LMDB=DIR`: RUN's model on another dataset's test split (same crop size
## and joints), results in RUN/eval-on-<DIR's folder name>/ beside the run's own
TEST_LMDB ?=
## extra flags for data_prep/make_lmdb.py, e.g. --force, or --test-stride 5
LMDB_FLAGS ?=
# `make real-motion`, and `make demo`'s second test set: real motion capture (CMU, in
# data_prep/real_motion/) rendered by the synthetic studio onto S1 (the train split, unused but
# for its mean pose) and the held-out S9 and S11, each recording slot taking the clips in turn
# (the action names are slots, not what the actor does)
## the real-motion test set's raw tree (`make real-motion`, `make demo`)
REAL_MOTION_ROOT ?= data/real-motion-h36m
## the real-motion test set's LMDBs
REAL_MOTION_LMDB ?= data/lmdb/real-motion-h36m
## frames per real-motion recording, at 50 fps
REAL_MOTION_FRAMES ?= 150
## the Table 2 variant of `make solver` and `make train`: baseline, multi-reg, 2d-cls or full
VARIANT ?= full
## the schedule of `make solver` and `make train` (config.SCHEDULES: paper, demo or ablation);
## `make ablation` takes the ablation schedule unless SCHEDULE is given
SCHEDULE ?= paper
## GPUs for demo, train, solver and evaluate (the first one), e.g. GPUS=0, or GPUS=0,1,2,3
## for Caffe's NCCL across several (needs `make setup CAFFE_DEVICE=gpu`); empty: the CPU;
## for table1 and ablation a queue: one run per GPU at a time until the list is done
GPUS ?=
comma := ,
GPU_LIST := $(subst $(comma),$(space),$(strip $(GPUS)))
## the run folder `make solver` and `make train` write, and `make evaluate` and `make report`
## read
RUN ?= runs/$(VARIANT)-$(SCHEDULE)$(ACTIONS_TAG)
## QUIET=1: no progress lines from demo, train, evaluate and ablation (for scripts and CI)
QUIET ?=
QUIET_FLAG := $(if $(QUIET),--quiet)
## extra flags for tools/make_solver.py, e.g. --force, or "--set batch_size=64"
SOLVER_FLAGS ?=
## extra flags for tools/gpu_check.py, e.g. --parts=speed,layers
GPU_CHECK_FLAGS ?=
## `make bench`: a folder of wheels pip may take the benchmark's pinned PyTorch from first (a
## cache; empty: the package index only)
TORCH_WHEELS ?=
# `make ablation`: the actions of the paper's Table 2 unless ACTIONS names others
TABLE2_ACTIONS := Discussion Eating Greeting Phoning Photo Walking
ABLATION_SCHEDULE = $(if $(filter command line environment,$(origin SCHEDULE)),$(SCHEDULE),ablation)
## `make ablation SEEDS=3`: every variant trained with 3 seeds (seed s: the config's
## random_seed and data_seed plus s, alike for all variants), means, 95% intervals, paired
## differences; runs in runs/ablation-<schedule>/seed<s>/<variant>/
SEEDS ?= 1
## SLURM=1: `make table1` and `make ablation` submit the runs that have not finished as a
## Slurm job array (one task per run) and the table as a job after it, instead of training
SLURM ?=
## SLURM=1: GPUs per array task (0: the CPU)
SLURM_GPUS_PER_TASK ?= 1
## SLURM=1: CPU cores per array task (the data loader's workers)
SLURM_CPUS_PER_TASK ?= 8
## SLURM=1: time limit per array task, enough for one run ([days-]hours:minutes:seconds)
SLURM_TIME ?= 4:00:00
## SLURM=1: array tasks running at once (empty: as many as Slurm gives)
SLURM_MAX_RUNNING ?=
## SLURM=1: more sbatch options for both jobs (the partition, the account, the rest), e.g.
## SLURM_FLAGS="--partition=gpu --account=proj --mem=64G"
SLURM_FLAGS ?=
# how table1 and ablation carry out their run lists: here (one run after another on the CPU,
# or a queue over GPUS), or as a Slurm job array
SLURM_ON := $(filter-out 0 no false,$(strip $(SLURM)))
SLURM_ARGS = --slurm --slurm-gpus $(SLURM_GPUS_PER_TASK) --slurm-cpus $(SLURM_CPUS_PER_TASK) \
  --slurm-time $(SLURM_TIME) $(if $(SLURM_MAX_RUNNING),--slurm-max-running $(SLURM_MAX_RUNNING)) \
  $(if $(strip $(SLURM_FLAGS)),--slurm-flags="$(strip $(SLURM_FLAGS))")
EXPERIMENT_FLAGS = $(if $(SLURM_ON),$(SLURM_ARGS),$(if $(GPUS),--gpus $(GPUS))) $(QUIET_FLAG)
# `make table1`: ACTIONS=all trains one model on the all-actions LMDB, in a folder of its own
TABLE1_ALL = $(filter all,$(ACTIONS))
TABLE1_OUT = runs/table1-$(VARIANT)-$(SCHEDULE)$(if $(TABLE1_ALL),-all)

# a target's own make of another target ($(MAKE) $(SUBMAKE) target): setup has run once
# already (SETUP_DONE=1 on the command line skips it; the environment's value does not count)
SUBMAKE := --no-print-directory SETUP_DONE=1
SKIP_SETUP := $(if $(filter command line,$(origin SETUP_DONE)),$(SETUP_DONE))

.DEFAULT_GOAL := help
.PHONY: help setup test test-caffe test-project fault-sweep demo real-motion smoke train evaluate report table1 ablation bench gpu-bundle gpu-check synth synth-sheet lmdb bench-data prototxt solver clean

# the targets from their `## ` help text, then the ?= variables from the `## ` lines above them
help:  ## list the targets, then the variables with their defaults
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16
	@echo
	@echo "variables (make TARGET NAME=value; default in brackets):"
	@awk '/^## / { help = help (help == "" ? "" : " ") substr($$0, 4); next } \
	  /^[A-Za-z_][A-Za-z0-9_]* *\?=/ { name = $$0; sub(/ *\?=.*/, "", name); \
	    value = $$0; sub(/^[^?]*\?= */, "", value); printf "%-19s %s [%s]\n", name, help, value } \
	  { help = "" }' $(MAKEFILE_LIST)

setup:  ## install apt packages, .venv and Caffe for CAFFE_DEVICE (cached; a second run takes seconds)
	$(if $(SKIP_SETUP),@true,$(PYTHON) setup/caffe_setup.py --source $(CAFFE_SOURCE) --device $(CAFFE_DEVICE) \
	  $(if $(CUDA_ARCH),--cuda-arch "$(CUDA_ARCH)") $(if $(CUDA_HOME),--cuda-home "$(CUDA_HOME)") \
	  --venv $(VENV) $(SETUP_FLAGS))

test: setup  ## setup, then Caffe's own Python tests and the project's tests
	$(MAKE) --no-print-directory test-caffe
	$(MAKE) --no-print-directory test-project

test-caffe:  ## Caffe's own Python test suite (python/caffe/test of the build)
	$(VPY) tests/run_caffe_suite.py

test-project:  ## the project's pytest suite
	$(VPY) -m pytest tests

fault-sweep: setup  ## the kill tests at 12 instants per command instead of make test's 3 (a few minutes)
	$(VPY) -m pytest tests/test_kill.py --kill-points 12

demo: lmdb  ## the main job: synthetic dataset, LMDBs, demo training, evaluation (synthetic and real motion), figures (runs/demo)
	$(MAKE) $(SUBMAKE) real-motion
	$(VPY) tools/demo.py --lmdb "$(LMDB_DIR)" --run runs/demo --real-lmdb "$(REAL_MOTION_LMDB)" \
	  $(if $(GPUS),--gpus $(GPUS)) $(QUIET_FLAG)

real-motion: setup  ## the real-motion test set: CMU motion capture rendered onto S1, S9, S11, and its LMDBs (REAL_MOTION_LMDB)
	@if [ -d "$(REAL_MOTION_ROOT)" ]; then echo "$(REAL_MOTION_ROOT) exists"; \
	else $(VPY) -m data_prep.make_synth --out "$(REAL_MOTION_ROOT)" --bvh data_prep/real_motion \
	  --subjects S1 S9 S11 --actions Walking Greeting --frames $(REAL_MOTION_FRAMES) --clean \
	  $(QUIET_FLAG); fi
	@if [ -d "$(REAL_MOTION_LMDB)" ]; then echo "$(REAL_MOTION_LMDB) exists"; \
	else $(VPY) -m data_prep.make_lmdb --root "$(REAL_MOTION_ROOT)" --out "$(REAL_MOTION_LMDB)" \
	  --train-subjects S1 --test-subjects S9 S11 --actions Walking Greeting $(QUIET_FLAG); fi

smoke: setup  ## smoke run of the toolchain: a tiny generated net trained with `caffe train`
	$(VPY) tools/smoke_train.py --out runs/smoke --force

synth: setup  ## write the synthetic Human3.6M (raw layout) to SYNTH_ROOT, unless it is there
	@if [ -d "$(SYNTH_ROOT)" ] && [ -z "$(findstring --force,$(SYNTH_FLAGS))" ]; then \
	  echo "$(SYNTH_ROOT) exists (make synth SYNTH_FLAGS=--force rebuilds it)"; \
	else $(VPY) -m data_prep.make_synth --out "$(SYNTH_ROOT)" $(SYNTH_FLAGS); fi

synth-sheet: synth  ## contact sheet PNG of the synthetic frames with their 2D joints
	$(VPY) tools/contact_sheet.py --root "$(SYNTH_ROOT)" --out runs/synth/contact_sheet.png

lmdb: setup  ## LMDBs of 250x250 crops and poses from H36M_ROOT (default: the synthetic set); the first time also solver/h36m.prototxt
	@if [ "$(H36M_ROOT)" = "$(SYNTH_ROOT)" ]; then $(MAKE) $(SUBMAKE) synth; fi
	@if [ -d "$(LMDB_DIR)" ] && [ -z "$(findstring --force,$(LMDB_FLAGS))" ]; then \
	  echo "$(LMDB_DIR) exists (make lmdb LMDB_FLAGS=--force rebuilds it)"; \
	else $(VPY) -m data_prep.make_lmdb --root "$(H36M_ROOT)" --out "$(LMDB_DIR)" \
	  $(if $(ACTIONS),--actions $(ACTIONS)) $(LMDB_FLAGS); fi
	@if [ ! -e solver/h36m.prototxt ]; then $(MAKE) $(SUBMAKE) solver; fi

bench: bench-data  ## speed: Caffe vs PyTorch (interleaved) and the machine's limit, before/after the speed patches (runs/bench/speed.json)
	$(VPY) tools/bench.py $(if $(TORCH_WHEELS),--torch-wheels "$(TORCH_WHEELS)")

gpu-bundle:  ## the GPU build for Python 3.12 with its libraries, for a GPU machine without Caffe's dependencies (build/gpu-bundle.tar.xz)
	$(PYTHON) setup/gpu_bundle.py build --cuda-arch $(or $(CUDA_ARCH),90) $(if $(PYTHON312),--python $(PYTHON312))

gpu-check:  ## on a GPU machine: GPU/CPU agreement, gradient checks, demo, speed vs PyTorch (runs/gpu-check)
	$(VPY) tools/gpu_check.py --lmdb "$(LMDB_DIR)" $(if $(GPUS),--gpu $(firstword $(GPU_LIST))) $(GPU_CHECK_FLAGS)

bench-data: lmdb  ## data benchmark: LMDB build vs decoding, loader vs training (runs/bench/data.json)
	$(VPY) tools/bench_data.py --root "$(H36M_ROOT)" --lmdb "$(LMDB_DIR)"

train: lmdb  ## train VARIANT on LMDB_DIR with SCHEDULE into RUN (resumes an interrupted run)
	$(VPY) tools/train.py --variant $(VARIANT) --lmdb "$(LMDB_DIR)" --schedule $(SCHEDULE) --run "$(RUN)" \
	  $(if $(GPUS),--gpus $(GPUS)) $(QUIET_FLAG)

evaluate: setup  ## MPJPE per action (Table 1 layout) of RUN's latest snapshot on its test LMDB, or TEST_LMDB's
	$(VPY) tools/evaluate.py --run "$(RUN)" $(EVAL_LMDB) $(if $(TEST_LMDB),--test-lmdb "$(TEST_LMDB)") \
	  $(if $(GPUS),--gpu $(firstword $(GPU_LIST))) $(QUIET_FLAG)

report: setup  ## figures of an evaluated RUN: Fig. 4, Fig. 5, MPJPE bars (RUN/figures)
	$(VPY) tools/report.py --run "$(RUN)"

table1: setup  ## Table 1: VARIANT trained once per action (ACTIONS; the 15), each on its own LMDB (built if missing), or ACTIONS=all: one model; here, over GPUS, or SLURM=1
	@for action in $(if $(TABLE1_ALL),all,$(or $(strip $(ACTIONS)),$$($(VPY) -c \
	  'from data_prep.h36m import ACTIONS; print(*ACTIONS)'))); do \
	  $(MAKE) $(SUBMAKE) lmdb ACTIONS="$$([ "$$action" = all ] || echo "$$action")" || exit 1; \
	done
	$(VPY) tools/table1.py --variant $(VARIANT) --schedule $(SCHEDULE) \
	  --lmdb-prefix "data/lmdb/$(H36M_NAME)" --out "$(TABLE1_OUT)" \
	  $(if $(strip $(ACTIONS)),--actions $(ACTIONS)) $(EXPERIMENT_FLAGS)

ablation: setup  ## Table 2: the four variants trained alike on ACTIONS (default: Table 2's six), SEEDS times each; here, over GPUS, or SLURM=1
	$(MAKE) $(SUBMAKE) lmdb ACTIONS="$(or $(strip $(ACTIONS)),$(TABLE2_ACTIONS))"
	$(VPY) tools/ablation.py --schedule $(ABLATION_SCHEDULE) \
	  --lmdb "data/lmdb/$(H36M_NAME)-$(subst $(space),-,$(or $(strip $(ACTIONS)),$(TABLE2_ACTIONS)))" \
	  --out runs/ablation-$(ABLATION_SCHEDULE) --seeds $(SEEDS) $(EXPERIMENT_FLAGS)

prototxt: setup  ## regenerate the committed network prototxt (prototxt/<variant>/*.prototxt)
	$(VPY) prototxt/pose_net.py

solver: setup  ## run folder RUN for LMDB_DIR and solver/h36m.prototxt -> its solver, for `caffe train -solver solver/h36m.prototxt`
	$(VPY) tools/make_solver.py --lmdb "$(LMDB_DIR)" --variant $(VARIANT) --schedule $(SCHEDULE) \
	  --run "$(RUN)" $(if $(GPUS),--gpus $(GPUS)) $(SOLVER_FLAGS)

clean:  ## remove .venv and build/ (setup logs; the GPU bundle, its wheels and venv), printing each; kept: Caffe's build cache in ~/.cache, .venv-bench, data/, runs/
	@removed=; for path in $(VENV) build/* build; do \
	  if [ -e "$$path" ]; then rm -rf "$$path" || exit 1; echo "removed $$path"; removed=1; fi; \
	done; [ -n "$$removed" ] || echo "nothing to remove: no $(VENV), no build/"
