# mnistcnn: `make train` and `make test` work on a fresh clone (the venv is made on first use).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: train test lint typecheck format bench clean-venv fuzz

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

## train: the tutorial recipe (10 epochs) on real MNIST; extra flags via ARGS="--epochs 2"
train: $(STAMP)
	$(PY) -m mnistcnn train $(ARGS)

## test: lint and type checks, then the whole test suite
test: lint typecheck
	$(PY) -m pytest -q $(ARGS)

## fuzz: the hostile-input suites with the long hypothesis profile (5000 examples per test)
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/test_fuzz_idx.py tests/test_fuzz_checkpoints.py tests/test_fuzz_config.py --hypothesis-show-statistics $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

## typecheck: mypy over src/ (settings in pyproject.toml)
typecheck: $(STAMP)
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

## bench: the speed benchmarks with short settings (figures and full commands: benchmarks/README.md)
BENCH_OUT ?= benchmarks/results
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
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
