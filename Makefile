# Certus Assurance — targets a newcomer can guess.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=

PHONY_OPS := cluster flower compose-env retention
.PHONY: $(PHONY_OPS) install tools run worker test test-unit test-integration lint fmt bench bench-quick clean system-deps runtime-deps cosign

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
run: install runtime-deps
	$(PY) -m stack run

## The production topology on this machine: HAProxy on 127.0.0.1:8080, two API replicas, two scan
## workers, one upload worker, one Redis (embedded when CERTUS_ASSURANCE_REDIS_URL is unset). Ctrl-C stops it.
cluster: install system-deps
	$(PY) -m stack cluster

## Flower on the configured broker (http://127.0.0.1:5555).
flower: install
	$(PY) -m stack flower

## Regenerate compose/.env.example from tasks/settings.py.
compose-env: install
	$(PY) -m stack.compose_env > compose/.env.example

## Remove bundles and leftovers past RETENTION_SECONDS (see docs/security.md); run it from cron.
retention: install
	$(PY) -m workers.retention

## The whole test suite (installs what it needs first).
test: install system-deps cosign
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install system-deps cosign
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

fmt: install
	$(VENV)/bin/ruff check --fix .

## Stock cosign in .tools/cosign/ for the interoperability tests (they skip, saying so, without it).
cosign:
	@./scripts/get-cosign.sh >/dev/null || echo "cosign could not be fetched; the cosign interoperability tests will skip"

## What running the service needs from the system's packages: bubblewrap, the scanners' sandbox.
runtime-deps:
	@./scripts/system-deps.sh run

## Programs the tests run that come from the system's packages (git daemon), and the sandbox.
system-deps:
	@./scripts/system-deps.sh

## Benchmarks against their floors; results in bench/results/ (see bench/README.md).
bench: install system-deps
	$(PY) -m bench

bench-quick: install system-deps
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
