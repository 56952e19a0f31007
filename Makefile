# Iliad Portal: developer entry points. `make help` lists them.
# GNU make; recipe lines are indented with tabs.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# The stamp's name carries a hash of the lock files' content: editing them re-installs.
REQ_FILES := requirements.txt requirements-dev.txt
REQ_HASH := $(shell cat $(REQ_FILES) 2>/dev/null | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
# The published marine-heatwave reference, a test oracle with its own (numpy < 2) virtualenv.
MHW_VENV := .venv-mhw
MHW_REQ := tests/reference/requirements-mhw.txt
MHW_STAMP := $(MHW_VENV)/.installed-$(shell cat $(MHW_REQ) 2>/dev/null | sha256sum | cut -c1-16)

# Second test pass: the end-to-end tests on PostgreSQL + Redis (.ci/run starts both).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/iliad
TEST_REDIS_URL ?= redis://127.0.0.1:6379/7

.PHONY: help venv run test test-deps test-embedded test-stack check-services lint bench bench-editor clean lock \
	frontend frontend-deps browser-deps reference-env oidc-deps slurm-cluster

help: ## list the targets
	@echo "Iliad Portal - make targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(firstword $(MAKEFILE_LIST)) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: PYTHON=$(PYTHON)  PORT, HOST, ILIAD_HOME (make run)"

venv: $(STAMP) ## create .venv and install the pinned requirements (no-op when up to date)

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "error: Python >= 3.11 is required, but PYTHON=$(PYTHON) is" \
			"'$$($(PYTHON) --version 2>&1 || echo missing)'." >&2; \
		echo "       Run e.g. 'make PYTHON=python3.11 $(MAKECMDGOALS)'." >&2; \
		exit 1; }
	@if [ -x $(VPY) ] && ! $(VPY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
		echo "error: $(VENV) uses '$$($(VPY) --version 2>&1)'; Python >= 3.11 is required." \
			"Remove $(VENV) and run make again." >&2; \
		exit 1; fi
	@[ -x $(VPY) ] || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: venv ## start the portal with embedded Redis, a worker and uvicorn (PORT=8000 ILIAD_HOME=var)
	exec $(VPY) -m iliad_portal.embedded

test: test-deps ## ruff, the whole suite (SQLite + embedded Redis), then the e2e tests on PostgreSQL + Redis
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory test-embedded
	$(MAKE) --no-print-directory test-stack

test-deps: venv browser-deps frontend-deps reference-env oidc-deps slurm-cluster ## what the suite needs: Chromium, npm packages, the reference env, the OIDC provider, the Slurm test cluster

test-embedded: test-deps ## the whole test suite on SQLite + an embedded Redis-protocol server
	$(VPY) -m pytest --durations=25

# On a shared database the settings need ILIAD_SECRET_KEY (they refuse to invent one): a fresh one per run.
test-stack: venv check-services ## the e2e and database-dependent tests on PostgreSQL + Redis (TEST_DATABASE_URL, TEST_REDIS_URL)
	ILIAD_TEST_STACK=postgres DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		ILIAD_SECRET_KEY=test-stack-$$(date +%s%N) \
		$(VPY) -m pytest -m "(e2e or stack) and not science" --durations=15

# Debian's slurm-wlm + munge and an sshd on 127.0.0.1:2222; a cluster that does not come up fails the suite.
slurm-cluster: ## install (apt-get) and start the single-node Slurm test cluster and its sshd
	tests/support/slurm/cluster.sh up

reference-env: $(MHW_STAMP) ## .venv-mhw: mhw-detect (Hobday/Oliver's marineHeatWaves), the heatwave tests' oracle

# mhw-detect goes in with --no-deps: its metadata pins pyarrow < 12 for a CLI the tests do not use.
$(MHW_STAMP): $(MHW_REQ)
	@[ -x $(MHW_VENV)/bin/python ] || $(PYTHON) -m venv $(MHW_VENV)
	$(MHW_VENV)/bin/python -m pip install --quiet -r $(MHW_REQ)
	$(MHW_VENV)/bin/python -m pip install --quiet --no-deps --ignore-requires-python mhw-detect==0.2.3
	@rm -f $(MHW_VENV)/.installed-*
	@touch $@

check-services: venv ## fail loudly unless PostgreSQL and Redis answer (never skip)
	$(VPY) -m iliad_portal.embedded check-services $(TEST_DATABASE_URL) $(TEST_REDIS_URL)

lint: venv ## ruff check
	$(VENV)/bin/ruff check .

bench: venv ## orchestration benchmark (bench/orchestration.py)
	$(VPY) -m bench.orchestration

bench-editor: venv browser-deps ## editor load benchmark: a 300-node pipeline in headless Chromium
	$(VPY) -m bench.editor_load

frontend: ## unit-test and rebuild the editor bundle (frontend/ -> static/editor/); `make run` does not need it
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run build

frontend-deps: frontend/node_modules/.package-lock.json ## npm packages of frontend/ (axe-core for the accessibility tests)

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

oidc-deps: tests/support/oidc/node_modules/.package-lock.json ## npm oidc-provider: the identity provider the sign-in tests start

tests/support/oidc/node_modules/.package-lock.json: tests/support/oidc/package-lock.json
	cd tests/support/oidc && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

browser-deps: ## Debian's Chromium for the browser tests (installed only when /usr/bin/chromium is missing)
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

clean: ## remove var/, caches and test leftovers (keeps .venv)
	rm -rf var/ staticfiles/ bench/out/ .pytest_cache/ .ruff_cache/
	find . \( -path ./$(VENV) -o -path ./$(MHW_VENV) \) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

lock: ## regenerate requirements*.txt from requirements*.in (pip-tools in a throwaway venv under /tmp)
	@set -e; tmp=$$(mktemp -d /tmp/iliad-lock.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install --quiet pip-tools; \
	export CUSTOM_COMPILE_COMMAND="make lock"; \
	opts="--quiet --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links"; \
	"$$tmp/venv/bin/pip-compile" $$opts -o requirements.txt requirements.in; \
	"$$tmp/venv/bin/pip-compile" $$opts -o requirements-dev.txt requirements-dev.in; \
	{ echo "-c requirements.txt"; grep -vx -- '-c requirements.txt' requirements-dev.txt; } > "$$tmp/dev.txt"; \
	mv "$$tmp/dev.txt" requirements-dev.txt
