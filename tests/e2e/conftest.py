"""Real Terraform binaries, both versions, each test in a working directory of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.backend_blocks import backend_block_legacy, backend_block_modern
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
