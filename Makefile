# One-command set-up, training and tests. `make quickstart` creates .venv, installs lit_rl and trains.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test test-all lint benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

quickstart: setup
	$(BIN)/lit-rl fit --config configs/quickstart.yaml

test: setup
	$(BIN)/python -m pytest -m "not slow"

test-all: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check lit_rl tests tools
	$(BIN)/ruff format --check lit_rl tests tools

benchmark: setup
	$(BIN)/python -m tools.benchmark

clean:
	rm -rf $(VENV) runs .pytest_cache
