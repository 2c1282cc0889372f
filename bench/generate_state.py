"""Generates realistic Terraform v4 states of a given size, for benchmarks and load tests."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

_TYPES = [
    ("aws_instance", ["ami", "instance_type", "subnet_id", "private_ip", "availability_zone", "key_name"]),
    ("aws_security_group_rule", ["type", "from_port", "to_port", "protocol", "security_group_id", "description"]),
    ("aws_s3_bucket", ["bucket", "arn", "region", "bucket_domain_name", "hosted_zone_id", "acl"]),
    ("aws_iam_role_policy_attachment", ["role", "policy_arn"]),
    ("aws_route53_record", ["zone_id", "name", "type", "ttl", "fqdn", "allow_overwrite"]),
]


def generate_state(
    resources: int, *, serial: int = 1, lineage: str | None = None, seed: int = 0, secret: str = "s3cr3t-planted"
) -> dict[str, Any]:
    """A state with `resources` resource instances spread over modules, counts and for_each keys."""
    rng = random.Random(seed)
    blocks: list[dict[str, Any]] = []
    made = 0
    while made < resources:
        type_name, fields = _TYPES[len(blocks) % len(_TYPES)]
        module = f"module.m{len(blocks) % 7}" if len(blocks) % 3 else None
        width = min(rng.choice([1, 1, 1, 3, 5]), resources - made)
        keyed = rng.choice(["count", "for_each"]) if width > 1 else "none"
        instances = []
        for i in range(width):
            attributes: dict[str, Any] = {"id": f"{type_name}-{len(blocks)}-{i}-{uuid.UUID(int=rng.getrandbits(128))}"}
            for field in fields:
                attributes[field] = f"{field}-{rng.getrandbits(40):x}"
            attributes["tags"] = {"team": "platform", "env": "prod", "index": str(i)}
            attributes["password"] = secret
            instance: dict[str, Any] = {}  # members in the order Terraform writes them
            if keyed == "count":
                instance["index_key"] = i
            elif keyed == "for_each":
                instance["index_key"] = f"key-{i}"
            instance.update(schema_version=1, attributes=attributes, sensitive_attributes=[])
            instances.append(instance)
        block: dict[str, Any] = {
            "mode": "managed",
            "type": type_name,
            "name": f"r{len(blocks)}",
            "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
            "instances": instances,
        }
        if module:
            block = {"module": module, **block}
        blocks.append(block)
        made += width
    return {
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": serial,
        "lineage": lineage or str(uuid.UUID(int=rng.getrandbits(128))),
        "outputs": {
            "endpoint": {"value": f"https://{secret}.example", "type": "string"},
            "db_password": {"value": secret, "type": "string", "sensitive": True},
        },
        "resources": blocks,
        "check_results": None,
    }


def state_bytes(state: dict[str, Any]) -> bytes:
    """Serialised the way Terraform writes it: two-space indent and a trailing newline."""
    return (json.dumps(state, indent=2) + "\n").encode()
