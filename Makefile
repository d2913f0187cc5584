# The two commands are `make dev` and `make test`; both start with `make install`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROJECT ?= examples/orders
PORT ?= 8080
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The workbench (web/): its packages are installed again only when package*.json change (the
# stamp below), from an npm cache outside the clone; it is built again only when a source is
# newer than the build (web/dist/index.html). Test files (*.test.*) are not part of the build.
WEB := web
NPM_CACHE ?= $(HOME)/.cache/cfp-npm
NPM_FLAGS := --cache $(NPM_CACHE) --prefer-offline --no-audit --no-fund --no-update-notifier
WEB_STAMP := $(WEB)/node_modules/.cfp-installed
WEB_BUILD := $(WEB)/dist/index.html
WEB_SOURCES := $(shell find $(WEB)/src -type f ! -name '*.test.*' 2>/dev/null) \
	$(wildcard $(WEB)/index.html $(WEB)/vite.config.ts $(WEB)/tsconfig.json $(WEB)/package.json \
	$(WEB)/package-lock.json)
# The browser of the end-to-end tier: Debian's Chromium (override with CHROMIUM=/path).
CHROMIUM := $(or $(CHROMIUM),/usr/bin/chromium)

.PHONY: install web dev test lint bench clean chromium

install: $(STAMP) web

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[gcp,test]'
	@touch $(STAMP)
	@echo "installed: $(BIN)/cfp"

web: $(WEB_BUILD)

$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "make: npm not found: install Node.js 20.19+ (https://nodejs.org)" >&2; exit 1; }
	cd $(WEB) && npm ci $(NPM_FLAGS) --loglevel=error
	@touch $(WEB_STAMP)

$(WEB_BUILD): $(WEB_STAMP) $(WEB_SOURCES)
	cd $(WEB) && npm run build --silent
	@touch $(WEB_BUILD)
	@echo "built: $(WEB)/dist (served by cfp at /)"

# Installs Debian's Chromium when it is missing (root, or through sudo); a no-op otherwise.
chromium:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null; then sudo="sudo"; \
	else echo "make chromium: $(CHROMIUM) is missing and installing it needs root (or sudo)" >&2; exit 1; fi; \
	command -v apt-get >/dev/null || { echo "make chromium: no apt-get here: install Chromium and set CHROMIUM=/path/to/it" >&2; exit 1; }; \
	echo "make chromium: installing Debian's chromium with apt-get"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium </dev/null && \
	test -x "$(CHROMIUM)" || { echo "make chromium: $(CHROMIUM) still missing after apt-get" >&2; exit 1; }

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
	rm -rf $(VENV) .cfp build .pytest_cache $(WEB)/dist $(WEB)/test-results
