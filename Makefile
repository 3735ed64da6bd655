# LM Training Control Panel: every target bootstraps its own virtualenv.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: help venv demo test test-fast lint format typecheck up down bench gpu-check data clean

help:
	@echo "make demo    - start the stack and run the seed's example job end to end"
	@echo "make test    - run the whole test suite (starts what it needs)"
	@echo "make up      - run Prefect server + worker + REST facade until Ctrl-C"
	@echo "make bench   - run the benchmarks in benchmarks/"
	@echo "make lint    - ruff + mypy"
	@echo "make data    - dvc repro (the data pipeline in dvc.yaml)"

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	# torch first, pinned: the CPU build lies on disk; an unpinned torch pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m deployments.cli demo

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q tests -m "not integration and not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

up: $(STAMP)
	$(PY) -m deployments.cli up

down: $(STAMP)
	$(PY) -m deployments.cli down

bench: $(STAMP)
	$(PY) benchmarks/train_overhead.py
	$(PY) benchmarks/facade_jobs.py

gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_train.py

# Reproduce the DVC pipeline (dvc.yaml); the stage runs `python`, so the venv goes first on PATH.
data: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dvc repro

clean:
	rm -rf .lmcp
