# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= demo_output

# The Python references the parity tests compare with, built (or reused) from ../shared/tools when
# present: 0.1.18 (python-reference compat) and 0.1.21 (the default mode). Both paths are exported so
# that the tests find exactly the venvs built here; override them to build elsewhere.
SHARED_TOOLS ?= ../shared/tools
SPACETRAVLR_REFERENCE_VENV ?= $(HOME)/.cache/spacetravlr-reference/venv
SPACETRAVLR_REFERENCE_NEWEST_VENV ?= $(HOME)/.cache/spacetravlr-reference-0121/venv
export SPACETRAVLR_REFERENCE_VENV SPACETRAVLR_REFERENCE_NEWEST_VENV
HAVE_SHARED_TOOLS := $(wildcard $(SHARED_TOOLS)/setup_reference.sh)
PYTEST_ARGS ?=
# setup_reference_newest.sh's own reuse check (`pip show -q ... | grep`) never matches, so it would
# rebuild from scratch on every call: check the installed version here first
REF_NEWEST_READY := "$(SPACETRAVLR_REFERENCE_NEWEST_VENV)/bin/python" -c "import sys, importlib.metadata as m; \
  import numba, group_lasso; sys.exit(m.version('SpaceTravLR') != '0.1.21' or m.version('velocyto') != '0.17.17')"

.PHONY: setup demo test lint typecheck pytest reference bench clean

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

## make test: lint, type-check, the reference venvs (when ../shared/tools is present) and the full test suite
test: setup lint typecheck reference pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

## make reference: build or reuse both Python reference venvs (about a minute each when new); a failed
## build fails the target. Without ../shared/tools the reference parity tests skip with a reason.
reference:
ifneq ($(HAVE_SHARED_TOOLS),)
	@VENV="$(SPACETRAVLR_REFERENCE_VENV)" bash $(SHARED_TOOLS)/setup_reference.sh || \
	  { echo "make: building the Python reference 0.1.18 ($(SPACETRAVLR_REFERENCE_VENV)) with $(SHARED_TOOLS)/setup_reference.sh failed (output above); the reference parity tests need it" >&2; exit 1; }
	@$(REF_NEWEST_READY) 2>/dev/null && echo "reference 0.1.21 venv ready: $(SPACETRAVLR_REFERENCE_NEWEST_VENV)" || \
	  VENV="$(SPACETRAVLR_REFERENCE_NEWEST_VENV)" bash $(SHARED_TOOLS)/setup_reference_newest.sh || \
	  { echo "make: building the Python reference 0.1.21 ($(SPACETRAVLR_REFERENCE_NEWEST_VENV)) with $(SHARED_TOOLS)/setup_reference_newest.sh failed (output above); the reference parity tests need it" >&2; exit 1; }
else
	@echo "reference: $(SHARED_TOOLS) absent: the reference parity tests will be skipped"
endif

# with ../shared/tools present the references were built: a missing one then fails its tests instead of skipping
pytest: setup reference
	$(if $(HAVE_SHARED_TOOLS),SPACETRAVLR_REFERENCE_REQUIRED=1) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

## make bench: side-by-side benchmarks against the Python reference (not part of make test)
bench: setup reference
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache web/node_modules src/spacetravlr_py/viewer/static
