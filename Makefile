# Two commands a newcomer needs:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test unit integration bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the bundled example scenario against the bundled local target, print the verdict.
demo: install
	$(BIN)/esr demo

## The whole test suite (unit + integration on loopback).
test: install
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install
	$(BIN)/python -m pytest tests/integration

## Benchmarks beside their peers (needs nginx and hey from Debian; see benchmarks/README.md).
bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench_fold.py
	$(BIN)/python benchmarks/bench_fidelity.py
	$(BIN)/python benchmarks/bench_rate.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
