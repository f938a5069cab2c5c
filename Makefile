# Everything runs inside .venv; `make <target>` sets it up first when needed.
VENV   := .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# make test: one worker more than CPUs, as the end-to-end tests also wait on their DVC, git and Dask subprocesses
# (2 cores, whole suite: 690 s with 2 workers, 641 s with 3, 660 s with 4); the unit tests only compute (99 s with
# 2 workers, 116 s with 3): one per CPU.
WORKERS := $(shell echo $$(( $$(nproc) + 1 )))

.PHONY: setup repro demo test test-fast check-links bench clean-demo

# The last step writes the bytecode of what the stages and tests import, once, two processes at a time (28 s -> 20 s
# on 2 cores), instead of every test worker compiling it at once.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[test]'  # not all ~5 GB (CUDA libraries included): ~40 s less here
	$(PY) -c "import torch, torchvision, timm" & torch=$$!; \
	  $(PY) -c "import dvc.cli, dvc.repo, scipy.stats, scipy.ndimage, sklearn.metrics, skimage.measure, matplotlib.pyplot, pandas, distributed, pytest, xdist" && wait $$torch
	touch $@

setup: $(VENV)/.installed

repro: setup          ## the paper's Tables 1-4 (params.yaml as is: MVTec AD, WRN50-2, 15 categories, 100 epochs; GPU advised)
	dvc repro

demo: setup           ## offline quick demo: synthetic data, EfficientNet-Lite0 ImageNet weights, CPU
	HF_HUB_OFFLINE=1 $(PY) -m pipeline.demo --force

test: setup           ## what CI runs: lint, format check, the whole suite on every core, then its 10 slowest tests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n $(WORKERS) --dist loadgroup --durations=10

test-fast: setup      ## the fast unit tests only: no end-to-end pipeline or training runs (pytest marker e2e)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n auto --dist loadgroup -m "not e2e"

check-links: setup    ## which download URLs answer: every dataset mirror, the backbone weights (offline: says so)
	$(PY) -m pipeline.download --check

bench: setup          ## speed benchmark into reports/benchmark.md (python -m bench --help for options and --target)
	$(PY) -m bench

clean-demo:
	rm -rf demo
