# backflush developer tasks. Everything runs from the virtualenv in .venv.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench clean

# (Re)install only when pyproject.toml is newer than the stamp.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/backflush demo

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Does not install PostgreSQL: without it the postgres tests are skipped
# (or fail when CI=true). .ci/run installs it with apt-get.
test: lint
	$(BIN)/python -m pytest -n 2 -q

bench: $(VENV)/.installed
	for script in bench/*.py; do \
	  [ -e "$$script" ] || continue; \
	  case "$$(basename "$$script")" in _*) continue ;; esac; \
	  echo "== $$script"; \
	  $(BIN)/python "$$script"; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist src/*.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
