# Certus Assurance — targets a newcomer can guess.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=

.PHONY: retention install tools run worker test test-unit test-integration lint fmt bench clean system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
	@PYTHON=$(PYTHON) ./scripts/install-tools.sh

## Only the scanners (each in .tools/<name>/ from requirements/tools-<name>.txt).
tools:
	@PYTHON=$(PYTHON) ./scripts/install-tools.sh

## The service on 127.0.0.1:8000 with one worker (and an embedded Redis when none is configured).
run: install
	$(PY) -m stack run

## Remove bundles and leftovers past RETENTION_SECONDS (see docs/security.md); run it from cron.
retention: install
	$(PY) -m workers.retention

## The whole test suite (installs what it needs first).
test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install system-deps
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

fmt: install
	$(VENV)/bin/ruff check --fix .

## Programs the tests run that come from the system's packages (git daemon).
system-deps:
	@./scripts/system-deps.sh

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
