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

# the viewer's front end: npm ci from the lock file, then Vite into the package (rebuilt when web/ changes)
WEB_BUNDLE := src/spacetravlr_py/viewer/static/index.html
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
$(WEB_BUNDLE): web/node_modules/.package-lock.json web/index.html web/package.json web/vite.config.ts web/tsconfig.json $(wildcard web/src/*)
	cd web && npm run build

# the browser tests drive Debian's Chromium
/usr/bin/chromium:
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y chromium; \
	else sudo apt-get update -qq && sudo apt-get install -y chromium; fi

setup: $(STAMP) $(WEB_BUNDLE) /usr/bin/chromium

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
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache web/node_modules src/spacetravlr_py/viewer/static
