# Two commands a newcomer needs:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo quickstart test unit integration bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## The walk-through: the sandbox (ESR server + sample DOL claims system) and the DOL 48-hour
## SLA scenario end to end, printing the verdict (about two minutes).
demo: install
	$(BIN)/python examples/walkthrough.py

## The smaller offline example: a bundled scenario against the bundled demo target.
quickstart: install
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
