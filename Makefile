# aiinfra: the two commands a newcomer needs.
#   make demo   set up .venv and run the whole pipeline on the bundled dataset, then serve and monitor
#   make test   set up .venv, lint, and run the test suite (core + plugin packages)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# A CPU build of torch: an unpinned torch pulls a multi-GB CUDA build. On a GPU machine:
#   make venv TORCH_SPEC="torch==2.14.1"
TORCH_SPEC ?= torch==2.13.0
export DO_NOT_TRACK := 1

.PHONY: venv demo lint test test-core test-plugins mutations bench bench-scale clean-demo

# Tests run in random order (pytest-randomly), seeded from the commit so that a failure is
# reproducible: the seed is printed at the start (`Using --randomly-seed=N`); rerun with
# `make test TEST_SEED=N`, or one file with `pytest -p randomly --randomly-seed=N FILE`.
TEST_SEED ?= $(shell s=$$(git rev-parse HEAD 2>/dev/null | cut -c1-8); printf '%d' "0x$${s:-1}")
export PYTEST_ADDOPTS := -p randomly --randomly-seed=$(TEST_SEED) $(PYTEST_ADDOPTS)

# what ruff checks and formats (its rules: [tool.ruff] in pyproject.toml)
LINT_PATHS := aiinfra tests plugins bench hydra_plugins

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,sweep,cluster,ray,s3,bench]"
	$(BIN)/pip check
	touch $@

venv: $(STAMP)

demo: venv
	$(BIN)/python -m aiinfra.demo

# lint first: a style error fails in seconds, before minutes of tests. pytest runs every test,
# the slow end-to-end ones included; its exit status 5 (no tests collected) fails make like any other.
test: lint test-core test-plugins

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

# The core tests run on one pytest-xdist worker per CPU (at most 4): each test module whole on one
# worker, the Ray modules together on one, the long modules first (tests/worker_layout.py).
# TEST_WORKERS=0 runs them in this process, e.g. to rerun a failure with its seed:
#   make test-core TEST_WORKERS=0 TEST_SEED=N
TEST_WORKERS ?= auto
test-core: venv
	@echo "test order: random, seed $(TEST_SEED) (make test TEST_SEED=$(TEST_SEED) repeats it)"
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

test-plugins: venv
	@if [ -x plugins/run_tests.sh ]; then PATH="$(CURDIR)/$(BIN):$$PATH" plugins/run_tests.sh; \
	else echo "no plugin packages to test"; fi

# Each named patch of tests/mutations.toml breaks one promise in a temporary copy of the repository;
# its tests must fail there. Prints "N of N mutations caught"; exit 1 when one survives.
# MUTATE_ARGS: more options (scripts/mutate.py --help), e.g. --jobs 1; .ci/run passes --skip-baseline
MUTATE_ARGS ?=
mutations: venv
	PYTEST_ADDOPTS= $(BIN)/python scripts/mutate.py $(MUTATE_ARGS)

bench: venv
	$(BIN)/python bench/train_bench.py
	$(BIN)/python bench/serve_bench.py
	$(BIN)/python bench/monitor_bench.py

# Data at scale (docs/scale.md): prepare on 2M and 20M generated rows against DuckDB and pandas,
# the monitor on a 10M-row log (local and on a moto S3 server). ~10-20 min, ~3.5 GB under /tmp.
bench-scale: venv
	$(BIN)/python bench/prepare_scale_bench.py
	$(BIN)/python bench/monitor_scale_bench.py

clean-demo:
	rm -rf data models plots reports logs checkpoints mlflow.db mlartifacts metrics.json dvc.lock .aiinfra
