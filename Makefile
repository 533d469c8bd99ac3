# aegis_actors: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,fast]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install aegis-actors with its dev tools (quick when done)

lint: install ## ruff (format check + lint) and mypy --strict (the package and the docs examples)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy aegis_actors
	$(BIN)/mypy docs/examples

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint ## lint, then the whole test suite (what CI runs)
	$(BIN)/pytest

demo: install ## run the trading showcase with an embedded NATS server, and tour it
	$(BIN)/python -m services.trading.demo

bench: install ## run the benchmarks (each prints its figures beside its ceiling)
	@for b in bench/[a-z]*.py; do m=$${b%.py}; echo "== $$b"; $(BIN)/python -m $${m//\//.} || exit 1; done

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info

.PHONY: help install lint format test demo bench clean
