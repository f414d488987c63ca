# Tollway: `make dev` runs the gateway locally, `make test` runs every check.
# Both install what is missing: uv (from PyPI), the project's locked environment, and
# the SAM CLI in its own environment under .tools/ (it pins boto3 and click exactly).

SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export AWS_DEFAULT_REGION ?= us-east-1
# sam build needs the Lambda runtime's Python on PATH; pyenv provides it on this machine kind.
export PYENV_VERSION ?= 3.11.7:3.12.1:3.13.0

PYTHON ?= python3
# uv lives in the project's own tool folder and is called by that path: a fresh machine has
# no uv on PATH, and `pip install --user` would put one where PATH does not look.
UV_HOME := .tools/uv
UV := $(UV_HOME)/bin/uv
SAM := .tools/sam/bin/sam
STAMP := .venv/.synced

include build.mk

.PHONY: dev test lint build bench fuzz install tools schemas check-schemas clean imports

$(UV): tools/uv-requirements.txt
	$(PYTHON) -m venv --clear $(UV_HOME)
	$(UV_HOME)/bin/python -m pip install --quiet --disable-pip-version-check -r tools/uv-requirements.txt
	@touch $@

$(STAMP): uv.lock pyproject.toml $(UV)
	$(UV) sync --frozen
	@touch $@

install: $(STAMP)

$(SAM): tools/sam-requirements.txt $(UV)
	$(UV) venv --quiet --allow-existing --python 3.11 .tools/sam
	$(UV) pip install --quiet --python .tools/sam/bin/python -r tools/sam-requirements.txt
	@touch $@

tools: $(SAM)

dev: install
	$(UV) run --frozen tollway dev

# The import graph between tollway's parts, floor by floor (tests/unit/test_layers.py fails on a cycle).
imports: install
	$(UV) run --frozen python -m tests.imports_graph

lint: install
	$(UV) run --frozen ruff check layers functions tests

schemas: install
	$(UV) run --frozen python -m tollway.config.schema schemas
	$(UV) run --frozen python -m tollway.usage.schema schemas

check-schemas: install
	$(UV) run --frozen python -m tollway.config.schema schemas --check
	$(UV) run --frozen python -m tollway.usage.schema schemas --check

build: install tools
	$(SAM) validate --lint
	$(SAM) build

# dynalite: a second DynamoDB implementation, for the quota race tests (npm registry).
tools/dynalite/node_modules/.installed: tools/dynalite/package-lock.json
	npm ci --prefix tools/dynalite --no-audit --no-fund --loglevel=error
	@touch $@

test: install tools tools/dynalite/node_modules/.installed
	$(UV) run --frozen ruff check layers functions tests
	$(UV) run --frozen tollway routes check --infra infra
	$(MAKE) --no-print-directory check-schemas check-layer-requirements
	@# pytest exits 5 when it collects no test: that is not a failure of the checks.
	$(UV) run --frozen pytest || [ $$? -eq 5 ]
	$(SAM) validate --lint
	$(SAM) build

bench: install
	$(UV) run --frozen python -m tests.bench.run

fuzz: install
	TOLLWAY_FUZZ_EXAMPLES=2000 $(UV) run --frozen pytest tests/fuzz -q

clean:
	rm -rf .aws-sam .pytest_cache
