# `make demo` and `make test` build everything they need from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: demo test lint typecheck unit integration clean bench

# --no-compile: Python compiles a module when it is first imported; compiling all 26,000
# files of the installed packages up front cost 15 s of CPU (a run imports a small part).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/remediation demo

# mypy's cache lives outside the checkout, so a fresh clone starts warm (about 6 s of CPU
# instead of 56 s on the 2-core CI machine). Safe to share: mypy trusts a cached module only
# when its source's hash matches, and rechecks what changed and what depends on it.
MYPY_CACHE_DIR ?= $(HOME)/.cache/remediation/mypy

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict --cache-dir $(MYPY_CACHE_DIR) remediation

# Four workers (pytest-xdist) on two cores: the suite waits on HTTP, the sandbox, Azurite
# and the processes it starts for much of its time (user 15 min, sys 1.5 min in 8.5 min of
# wall time with four), so more workers than cores keep both busy: on one machine, ten
# minutes apart, 584 s on three workers and 511 s on four. worksteal hands a finished worker
# the tests another still holds, so the run does not end on one worker's long tail. Each
# worker starts its own Azurite and sandboxes.
TEST_WORKERS ?= 4

test: lint $(NODE_STAMP)
	PYTHON=$(PYTHON) bash infra/scan.sh
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# The benchmarks of docs/BENCHMARKS.md (bench/__main__.py): each script prints its figures
# and one JSON line, also appended to .remediation/bench-results.jsonl; under ten minutes.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
