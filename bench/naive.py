"""The naive diff a benchmark compares against: `json.loads` of both versions, then compare."""

from __future__ import annotations

import json
from typing import Any


def _addresses(state: dict[str, Any]) -> dict[str, str]:
    index = {}
    for resource in state["resources"]:
        base = f"{resource['type']}.{resource['name']}"
        if resource["mode"] == "data":
            base = "data." + base
        if resource.get("module"):
            base = f"{resource['module']}.{base}"
        for instance in resource["instances"]:
            key = instance.get("index_key")
            address = base if key is None else f"{base}[{json.dumps(key)}]"
            index[address] = json.dumps(instance.get("attributes"), sort_keys=True)
    return index


def naive_diff(client: Any, bucket: str, key: str, before: str, after: str) -> tuple[list[str], list[str], list[str]]:
    old = _addresses(json.loads(client.get_object(Bucket=bucket, Key=key, VersionId=before)["Body"].read()))
    new = _addresses(json.loads(client.get_object(Bucket=bucket, Key=key, VersionId=after)["Body"].read()))
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(a for a in new.keys() & old.keys() if new[a] != old[a])
    return added, changed, removed
