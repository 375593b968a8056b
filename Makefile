# One entry point for people and CI. Every target is idempotent and cheap the second time:
# the venv and node_modules are stamped against their lock inputs, fixture state against a hash
# of everything it is built from.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= default

.PHONY: setup demo test check lint types unit contracts fixtures clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	@# npm install, not npm ci: only the linux-amd64 anvil package is published where we install
	@# from, so the lockfile cannot list the other platforms and npm ci would refuse it.
	@# --no-save: npm would otherwise rewrite the lockfile with every platform it resolves.
	npm install --no-save --no-audit --no-fund --loglevel=error
	touch $@

contracts: node_modules/.installed
	node contracts/compile.js

fixtures: setup
	$(BIN)/rebalancer chain build --scenario $(SCENARIO)
	$(BIN)/rebalancer chain build --scenario $(SCENARIO) --mirror

# The README's first command: the fixture chain, and the bot against it.
demo: fixtures
	$(BIN)/rebalancer demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: setup
	$(BIN)/mypy

# The README's second command, and what CI runs: lint, types, then every test tier.
test: setup
	node contracts/compile.js --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

check: test

unit: setup
	$(BIN)/pytest -m unit

clean:
	rm -rf $(VENV) node_modules anvil_fixtures/build .pytest_cache .mypy_cache .ruff_cache
