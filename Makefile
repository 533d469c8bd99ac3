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
	$(BIN)/python -m pip install --quiet -e '.[dev,fast,web,metrics,otel]'
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

test: install lint browser ## lint, then the whole test suite (what CI runs)
	$(BIN)/pytest

# The web monitor's tests drive Debian's Chromium; as root (CI) it is installed when
# missing. Elsewhere those tests are skipped, saying why.
browser: ## install Chromium for the browser tests (apt-get, as root) if it is missing
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "make: could not install chromium: the browser tests will be skipped"; \
	  else echo "make: no chromium (apt-get install chromium, as root): the browser tests will be skipped"; fi; }

demo: install ## run the showcase (embedded NATS, web monitor: its URL printed), tour it
	$(BIN)/python -m services.trading.demo

bench: install ## run the benchmarks (each prints its figures beside its ceiling)
	@for b in bench/[a-z]*.py; do m=$${b%.py}; echo "== $$b"; $(BIN)/python -m $${m//\//.} || exit 1; done

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info

.PHONY: help install lint format test browser demo bench clean
