"""Run one diff in a fresh process and print its peak memory above the process baseline, as JSON.

usage: python -m bench.memory_probe guardian|naive BUCKET KEY VERSION_BEFORE VERSION_AFTER
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3

from bench.naive import naive_diff
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain.state_index import StateDiff


def _rss_kib(field: str) -> int:
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> None:
    mode, bucket, key, before, after = sys.argv[1:6]
    client = boto3.session.Session().client("s3")
    client.head_object(Bucket=bucket, Key=key)  # warm the client up before the baseline
    states = S3StateBucket(client, bucket, header_bytes=4096, max_state_bytes=1 << 31)

    def run() -> object:
        if mode == "guardian":
            return StateDiff.between(*states.read_indexes(key, before, after))
        return naive_diff(client, bucket, key, before, after)

    baseline = _rss_kib("VmRSS")
    run()
    print(json.dumps({"peak_above_baseline_kib": _rss_kib("VmHWM") - baseline}))


if __name__ == "__main__":
    main()
