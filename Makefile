# Thin wrappers over the `optbench` command. Each target creates or reuses .venv and
# installs what it needs, so a fresh clone needs nothing but `make bench` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
EXTRAS ?= all,dev
BIN    := $(VENV)/bin
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install bench smoke report compare bench-micro gpu-check parity test test-all test-slow lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

bench: install            ## the default sweep: results/default (and results/latest); RESUME=1 continues
	$(BIN)/optbench run --sweep default --parity --report $(if $(RESUME),--resume)

smoke: install            ## a tiny sweep, seconds; RESUME=1 continues
	$(BIN)/optbench run --sweep smoke $(if $(RESUME),--resume)

parity: install           ## every backend against the float64 NumPy reference
	$(BIN)/optbench parity

bench-micro: install      ## suite overhead: the suite's fastest path vs each framework's fastest bare loop (DEVICE=gpu)
	$(BIN)/python -m benchmarks.overhead --device $(or $(DEVICE),cpu)

# No install and no venv: a GPU machine has its frameworks (CUDA builds) and no network.
gpu-check:                ## on a GPU machine: parity, smoke+gpu sweeps, overhead, pytest -m gpu (exit 1 on a missed target)
	PYTHONPATH=. $(PYTHON) -m benchmarks.gpu_check

test: install             ## the fast suite: harness, NumPy reference, fakes (about 2 minutes on 2 cores)
	$(BIN)/python -m pytest -m "not slow"

test-all: install         ## everything, framework backends included (parity, contract, cross-backend)
	$(BIN)/python -m pytest

test-slow: install        ## only what `make test` leaves out (CI runs test, then this)
	$(BIN)/python -m pytest -m slow

lint: install
	$(BIN)/ruff check backends benchmarks tests
	$(BIN)/ruff format --check backends benchmarks tests

format: install
	$(BIN)/ruff format backends benchmarks tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

report: install           ## rebuild the report of results/latest (or RESULTS=path)
	$(BIN)/optbench report $(or $(RESULTS),results/latest)

compare: install          ## results/latest against BASELINE=path (exit 1 on a regression)
	$(BIN)/optbench compare $(or $(BASELINE),$(error give BASELINE=results/baselines/NAME)) $(or $(RESULTS),results/latest)
