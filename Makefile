# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= demo_output

.PHONY: setup demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,all]"
	@touch $(STAMP)

setup: $(STAMP)

## make demo: synthetic tissue -> received ligands -> training -> knockout -> transition field
demo: setup
	$(BIN)/spacetravlr demo --out $(OUT)

## make test: lint, type-check and the full test suite
test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/python -m pytest -q

## make bench: side-by-side benchmarks against the Python reference (not part of make test)
bench: setup
	bash ../shared/tools/setup_reference.sh
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
