"""Ready-to-paste `backend "s3"` blocks that point Terraform at the local stack."""

from __future__ import annotations

from local_stack.provision import Resources

EXAMPLE_KEY = "demo/terraform.tfstate"


def backend_block_modern(
    endpoint: str,
    resources: Resources,
    key: str = EXAMPLE_KEY,
    *,
    dynamodb: bool = True,
    lockfile: bool = False,
    bucket: str | None = None,
    lock_table: str | None = None,
) -> str:
    """For Terraform 1.6 and later (`endpoints`, `use_path_style`); lockfiles need Terraform 1.10 or later. `bucket`
    and `lock_table` name another backend of the stack than its first."""
    locking = f'    dynamodb_table = "{lock_table or resources.lock_table}"\n' if dynamodb else ""
    if lockfile:
        locking += "    use_lockfile   = true\n"
    else:
        locking += "    # use_lockfile = true  # Terraform >= 1.10: lock with an S3 lockfile too (or instead)\n"
    return f"""terraform {{
  backend "s3" {{
    bucket         = "{bucket or resources.state_bucket}"
    key            = "{key}"
    region         = "{resources.region}"
{locking}    encrypt        = true
    access_key     = "test"
    secret_key     = "test"

    endpoints = {{
      s3       = "{endpoint}"
      dynamodb = "{endpoint}"
    }}
    use_path_style              = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
  }}
}}
"""


def backend_block_legacy(
    endpoint: str,
    resources: Resources,
    key: str = EXAMPLE_KEY,
    *,
    dynamodb: bool = True,
    bucket: str | None = None,
    lock_table: str | None = None,
) -> str:
    """For Terraform 1.0 to 1.5 (`endpoint`, `dynamodb_endpoint`, `force_path_style`); without `dynamodb`, a backend
    of lockfiles only, which these versions cannot take: they write its states without a lock."""
    locking = f'    dynamodb_table = "{lock_table or resources.lock_table}"\n' if dynamodb else ""
    return f"""terraform {{
  backend "s3" {{
    bucket         = "{bucket or resources.state_bucket}"
    key            = "{key}"
    region         = "{resources.region}"
{locking}    encrypt        = true
    access_key     = "test"
    secret_key     = "test"

    endpoint                    = "{endpoint}"
    dynamodb_endpoint           = "{endpoint}"
    force_path_style            = true
    skip_credentials_validation = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
  }}
}}
"""
