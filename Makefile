# mnistcnn: `make train` and `make test` work on a fresh clone (the venv is made on first use).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: train test lint format bench clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

## train: the tutorial recipe (10 epochs) on real MNIST; extra flags via ARGS="--epochs 2"
train: $(STAMP)
	$(PY) -m mnistcnn train $(ARGS)

## test: lint, then the whole test suite
test: lint
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: $(STAMP)
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean-venv:
	rm -rf $(VENV)
