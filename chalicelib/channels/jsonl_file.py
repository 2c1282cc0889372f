"""`JsonLinesFileChannel`: appends one notification object per line to a file."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit

LINE_MAX_BYTES = 1024 * 1024  # a local file has no limit of its own; a line stays readable by a person's tools


class JsonLinesFileChannel:
    """A JSON-lines file: each line is exactly the contract's object, nothing added."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        def encode(data: dict[str, Any]) -> str:
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

        data = fit(notification.to_dict(), LINE_MAX_BYTES - 1, lambda data: len(encode(data).encode()))
        line = encode(data) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line)
