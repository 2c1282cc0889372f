"""`JsonLinesFileChannel`: appends one notification object per line to a file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from chalicelib.domain.notifications import Notification


class JsonLinesFileChannel:
    """A JSON-lines file: each line is exactly the contract's object, nothing added."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        line = json.dumps(notification.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line)
