"""Real Terraform binaries, both versions, each test in a working directory of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local_stack.backend_blocks import backend_block_legacy, backend_block_modern
from local_stack.emulator import free_port
from local_stack.stack import LocalStack
from tests.conftest import RunningStack
from tests.support.terraform import Terraform, TerraformDir, find_terraform_1_0_3, find_terraform_1_11

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session", params=["1.11", "1.0.3"])
def terraform(request: pytest.FixtureRequest) -> Terraform:
    if request.param == "1.0.3":
        return find_terraform_1_0_3()
    found = find_terraform_1_11()
    if found is None:
        pytest.skip("Terraform 1.11 is not on PATH (or GUARDIAN_TERRAFORM_1_11): it cannot be installed from PyPI")
    return found


@pytest.fixture(scope="session")
def terraform_1_0_3() -> Terraform:
    return find_terraform_1_0_3()


def configuration(terraform: Terraform) -> str:
    """A configuration that needs no provider download: `terraform_data` from 1.4 on, outputs only before."""
    if terraform.modern:
        return """
variable "v" {
  type    = string
  default = "one"
}
resource "terraform_data" "probe" {
  input = var.v
}
output "v" {
  value = var.v
}
"""
    return """
variable "v" {
  type    = string
  default = "one"
}
output "v" {
  value = var.v
}
"""


@pytest.fixture
def tf(terraform: Terraform, stack: RunningStack, tmp_path: Path) -> TerraformDir:
    """A working directory with the backend block the local stack prints, initialised."""
    block = backend_block_modern if terraform.modern else backend_block_legacy
    directory = TerraformDir(terraform, tmp_path / "tf")
    directory.write("backend.tf", block(stack.stack.endpoint, stack.resources, key="e2e/terraform.tfstate"))
    directory.write("main.tf", configuration(terraform))
    directory.init()
    return directory


def working_dir(
    terraform: Terraform, local: LocalStack, path: Path, key: str, *, hostname: str | None = None
) -> TerraformDir:
    """A working directory on the local stack's backend for `key`, initialised; `hostname` makes another writer."""
    assert local.resources is not None
    block = backend_block_modern if terraform.modern else backend_block_legacy
    directory = TerraformDir(terraform, path, hostname=hostname)
    directory.write("backend.tf", block(local.endpoint, local.resources, key=key))
    directory.write("main.tf", configuration(terraform))
    directory.init()
    return directory


@pytest.fixture
def api_stack(stack_with: Any) -> LocalStack:
    """The local stack with its REST API on a free port, as `make run` serves it."""
    return stack_with(api_port=free_port())  # type: ignore[no-any-return]


def notifications_of(local: LocalStack) -> list[dict[str, Any]]:
    path = local.options.notify_file
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
