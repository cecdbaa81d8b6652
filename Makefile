# Thin wrappers over the `optbench` command. Each target creates or reuses .venv and
# installs what it needs, so a fresh clone needs nothing but `make bench` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
EXTRAS ?= all,dev
BIN    := $(VENV)/bin
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install bench optimizers smoke report compare bench-micro bench-steps bench-steps-compare gpu-check parity test test-all test-slow lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

bench: install            ## the default sweep: results/default (and results/latest); RESUME=1 continues
	$(BIN)/optbench run --sweep default --parity --report $(if $(RESUME),--resume)

optimizers: install       ## the optimizer comparison (every kind and the catalogue, two schedules, spec and stock): about 12.5 minutes on 2 cores
	$(BIN)/optbench run --sweep optimizers --report $(if $(RESUME),--resume)

smoke: install            ## a tiny sweep, seconds; RESUME=1 continues
	$(BIN)/optbench run --sweep smoke $(if $(RESUME),--resume)

parity: install           ## every backend against the float64 NumPy reference
	$(BIN)/optbench parity

bench-micro: install      ## suite overhead: the suite's fastest path vs each framework's fastest bare loop (DEVICE=gpu)
	$(BIN)/python -m benchmarks.overhead --device $(or $(DEVICE),cpu)

# Step micro-benchmarks (bench/, pytest-benchmark): one pytest process per backend, as
# frameworks do not share a process well; not through a worker, since pytest-benchmark
# times in its own process (the pipe to a worker would be timed too). Each backend saves
# under results/bench-steps/DEVICE/BACKEND/, so "the last saved run" is that backend's.
STEP_DEVICE   = $(or $(DEVICE),cpu)
STEP_BACKENDS = $(or $(BACKENDS),$$($(BIN)/python -c 'from backends.registry import NAMES; print(*NAMES)'))
STEP_PYTEST   = $(BIN)/python -m pytest bench --step-device $(STEP_DEVICE) $(if $(THREADS),--step-threads $(THREADS)) \
	--benchmark-sort=name --benchmark-columns=median,iqr,min,max,rounds

bench-steps: install      ## one training step per backend path x optimizer x batch (pytest-benchmark), saved (BACKENDS="torch jax", DEVICE=gpu, THREADS=n)
	@status=0; for b in $(STEP_BACKENDS); do \
	  $(STEP_PYTEST) --step-backend $$b --benchmark-storage=results/bench-steps/$(STEP_DEVICE)/$$b --benchmark-autosave || status=1; \
	done; exit $$status

bench-steps-compare: install  ## the same against each backend's last saved run; fails on a median regression above 10%
	@status=0; for b in $(STEP_BACKENDS); do \
	  $(STEP_PYTEST) --step-backend $$b --benchmark-storage=results/bench-steps/$(STEP_DEVICE)/$$b \
	    --benchmark-compare --benchmark-compare-fail=median:10% || status=1; \
	done; exit $$status

# No install and no venv: a GPU machine has its frameworks (CUDA builds) and no network.
gpu-check:                ## on a GPU machine: parity, smoke+gpu sweeps, overhead, pytest -m gpu (exit 1 on a missed target); BUDGET=seconds OUT=folder PROFILE=quick
	PYTHONPATH=. $(PYTHON) -m benchmarks.gpu_check $(if $(BUDGET),--budget $(BUDGET)) $(if $(OUT),--out $(OUT)) $(if $(PROFILE),--profile $(PROFILE))

# Two pytest workers (pytest-xdist), work-stealing: most fast tests wait on child processes,
# so two share two cores well (4m16s serial, 2m21s so on the 2-core CI machine).
TEST_WORKERS ?= 2

test: install             ## the fast suite: harness, NumPy reference, fakes (about 2.5 minutes on 2 cores)
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist worksteal

test-all: install         ## everything, framework backends included (parity, contract, cross-backend)
	$(BIN)/python -m pytest

test-slow: install        ## only what `make test` leaves out (CI runs test, then this)
	$(BIN)/python -m pytest -m slow

lint: install
	$(BIN)/ruff check backends benchmarks tests bench
	$(BIN)/ruff format --check backends benchmarks tests bench

format: install
	$(BIN)/ruff format backends benchmarks tests bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

report: install           ## rebuild the report of results/latest (or RESULTS=path)
	$(BIN)/optbench report $(or $(RESULTS),results/latest)

compare: install          ## results/latest against BASELINE=name|path (default: the one saved for this machine); exit 1 on a regression
	$(BIN)/optbench compare $(or $(BASELINE),auto) $(or $(RESULTS),results/latest)
