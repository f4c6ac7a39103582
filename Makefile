# The two commands of the README: `make run` (serve on the embedded default) and `make test`.
# Both create .venv and install what they need on a fresh machine. The Dockerfile runs `make install`
# too, so the image and a laptop install the project the same way.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
EXTRAS ?= cpu
BIN := $(VENV)/bin
# pip.conf on our machines lists local mirrors that are often empty; their warnings are noise.
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
QUIET := 2>&1 | { grep -v "^WARNING: Location '" || true; }

.PHONY: run test install dev lint clean

run: install
	$(BIN)/dlserve serve

test: dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(VENV)/.installed-$(EXTRAS)

dev: $(VENV)/.installed-$(EXTRAS)-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-$(EXTRAS): pyproject.toml | $(BIN)/python
	$(PIP) -e ".[$(EXTRAS)]" $(QUIET)
	touch $@

$(VENV)/.installed-$(EXTRAS)-dev: $(VENV)/.installed-$(EXTRAS) pyproject.toml
	$(PIP) -e ".[$(EXTRAS),dev]" $(QUIET)
	touch $@

lint: dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache
