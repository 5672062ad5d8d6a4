# mnistcnn: `make train` and `make test` work on a fresh clone (the venv is made on first use).
# Each target installs only what it needs: train and robust the package (and the robust
# augmentation's kornia), serve the web server, test the dev tools; a stamp per set.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.dev-installed
ROBUST_STAMP := $(VENV)/.robust-installed
SERVE_STAMP := $(VENV)/.serve-installed
ARGS ?=
MODEL ?= runs/latest/best.pt

.PHONY: train robust serve test lint typecheck format bench clean-venv fuzz

# the package and what train/predict/evaluate need (no dev tools)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $(STAMP)

# + pytest, ruff, mypy and every optional extra the tests cover
$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(DEV_STAMP)

$(ROBUST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[robust]"
	touch $(ROBUST_STAMP)

$(SERVE_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[serve]"
	touch $(SERVE_STAMP)

## train: the tutorial recipe (10 epochs) on real MNIST; extra flags via ARGS="--epochs 2"
train: $(STAMP)
	$(PY) -m mnistcnn train $(ARGS)

## robust: the recommended model for predict and serve (recipe robust: MNIST + Fashion-MNIST)
robust: $(ROBUST_STAMP)
	$(PY) -m mnistcnn train --recipe robust $(ARGS)

## serve: the drawing page and HTTP API for MODEL (default runs/latest/best.pt) on port 8000
serve: $(SERVE_STAMP)
	$(PY) -m mnistcnn serve $(MODEL) $(ARGS)

## test: lint (ruff) and type checks (mypy), then the whole test suite
test: $(DEV_STAMP) lint typecheck
	$(PY) -m pytest -q $(ARGS)

## fuzz: the hostile-input suites with the long hypothesis profile (5000 examples per test)
fuzz: $(DEV_STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/test_fuzz_idx.py tests/test_fuzz_checkpoints.py tests/test_fuzz_config.py --hypothesis-show-statistics $(ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

## typecheck: mypy over src/ (settings in pyproject.toml)
typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

## bench: the speed benchmarks with short settings (figures and full commands: benchmarks/README.md)
BENCH_OUT ?= benchmarks/results
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(DEV_STAMP)
	$(PY) -m pip install -q -e ".[dev,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/bench_epoch.py --steps 300 --json $(BENCH_OUT)/epoch.json
	$(PY) benchmarks/bench_inference.py --seconds 1 --latency-iters 1000 --json $(BENCH_OUT)/inference.json
	$(PY) benchmarks/bench_time_to_accuracy.py --baseline-epochs 1 --json $(BENCH_OUT)/time_to_accuracy.json
	if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
	  $(PY) benchmarks/bench_gpu.py --json $(BENCH_OUT)/gpu.json; \
	else \
	  $(PY) benchmarks/bench_gpu.py --device cpu --max-steps 20 --warmup-steps 5 --eval-batch 2000; \
	fi

clean-venv:
	rm -rf $(VENV)

