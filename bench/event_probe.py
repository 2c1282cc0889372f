"""Handle one state-write event with the real S3 event handler in a fresh process; print its peak memory and time.

usage: python -m bench.event_probe BUCKET KEY VERSION WARM_KEY WARM_VERSION

The AWS endpoint and the guardian's settings come from the environment, as `make bench` sets them. The process
first handles a small write (WARM_KEY), so that clients, imports and the composition root are in place, then
measures the write of KEY: peak RSS minus the RSS just before, wall time and CPU time.

The peak is the process's own high-water mark (`VmHWM`), reset just before the write where the kernel allows it.
`getrusage`'s `ru_maxrss` would do on a process started from a small one, but Linux carries the parent's
high-water mark over fork and exec, and `make bench` holds states of hundreds of megabytes when it starts this.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _status_kib(field: str) -> int:
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    # The high-water mark starts again from the current RSS. On a kernel without it the peak includes the warm-up,
    # which is smaller than any state measured here.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def s3_event(bucket: str, key: str, version_id: str) -> dict[str, Any]:
    """An ObjectCreated:Put event as S3 delivers it to Lambda."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": datetime.now(UTC).isoformat(),
                "userIdentity": {"principalId": "AWS:AIDABENCH"},
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {"key": key, "versionId": version_id, "sequencer": "01"},
                },
            }
        ]
    }


def main() -> None:
    bucket, key, version, warm_key, warm_version = sys.argv[1:6]
    import app  # noqa: PLC0415 - the app reads its settings at import
    from chalicelib.services.notifier import Notifier  # noqa: PLC0415

    said: list[str] = []
    notify_all = Notifier.notify_all

    def counted(self: Notifier, notifications: Any) -> None:
        said.extend(notification.type.value for notification in notifications)
        notify_all(self, notifications)

    Notifier.notify_all = counted  # type: ignore[method-assign]

    app.on_state_object_event(s3_event(bucket, warm_key, warm_version), None)
    _reset_peak()
    baseline = _status_kib("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    app.on_state_object_event(s3_event(bucket, key, version), None)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _status_kib("VmHWM")
    if said != ["state.changed", "state.changed"]:  # the warm-up's and the write's: nothing skipped
        raise SystemExit(f"the write was not handled as a state change: {said}")
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "wall_s": wall, "cpu_s": cpu}))


if __name__ == "__main__":
    main()
