# `make demo` and `make test` build everything they need from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: demo test lint typecheck unit integration clean bench

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/remediation demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict remediation

# Two workers (pytest-xdist): most tests wait on HTTP, the sandbox and Azurite, so two
# processes on two cores halve the wall time; each starts its own Azurite and sandboxes.
TEST_WORKERS ?= 2

test: lint $(NODE_STAMP)
	PYTHON=$(PYTHON) bash infra/scan.sh
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# The benchmarks of docs/BENCHMARKS.md (bench/__main__.py): each script prints its figures
# and one JSON line, also appended to .remediation/bench-results.jsonl; under ten minutes.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
