# One entry point for developers and CI. `make test` builds .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint run zipapp bench bench-quick clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check plano_trio tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

run: $(BIN)/.installed
	$(BIN)/plano-trio up config.example.yaml

zipapp: $(BIN)/.installed
	$(BIN)/python -m tools.zipapp dist/plano-trio.pyz

bench: $(BIN)/.installed
	$(BIN)/python -m bench run

bench-quick: $(BIN)/.installed
	$(BIN)/python -m bench run --quick

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
