# The two commands are `make dev` and `make test`; both start with `make install`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROJECT ?= examples/orders
PORT ?= 8080
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install dev test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[gcp,test]'
	@touch $(STAMP)
	@echo "installed: $(BIN)/cfp"

dev: install
	$(BIN)/cfp dev --project $(PROJECT) --port $(PORT)

test: install
	@bash tests/tiers.sh

lint: install
	$(BIN)/ruff check shared functions tests bench
	$(BIN)/ruff format --check shared functions tests bench

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .cfp build .pytest_cache
