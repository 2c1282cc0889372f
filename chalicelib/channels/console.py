"""`ConsoleChannel`: two or three readable lines per notification, for a person watching a terminal: what happened,
where (the backend's name, then the state's `s3://` location), and the state's page when a page is served
(`GUARDIAN_PAGE_URL`)."""

from __future__ import annotations

import threading
from typing import TextIO

from chalicelib.domain.notifications import Notification, backend_of
from chalicelib.domain.page_links import state_page_url
from chalicelib.domain.text import terminal_safe

_SEVERITY_LABEL = {"info": "INFO    ", "warning": "WARNING ", "critical": "CRITICAL"}


class ConsoleChannel:
    """Writes each notification to a text stream; text from outside cannot steer the terminal."""

    name = "console"

    def __init__(self, stream: TextIO, *, page_url: str | None = None) -> None:
        self._stream = stream
        self._page_url = page_url
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        data = notification.to_dict()
        clock = data["occurred_at"][11:19]
        first = f"{clock} {_SEVERITY_LABEL[data['severity']]} {data['type']:<14} {terminal_safe(data['summary'])}"
        backend = f"[{data['backend']}] " if data.get("backend") else ""
        location = terminal_safe(f"{backend}s3://{data['bucket']}/{data['key']}{_version_suffix(data['details'])}")
        lines = [first, f"{'':18}{location}"]
        if self._page_url:
            lines.append(f"{'':18}{terminal_safe(state_page_url(self._page_url, data['key'], backend_of(data)))}")
        with self._lock:
            self._stream.write("".join(f"{line}\n" for line in lines))
            self._stream.flush()


def _version_suffix(details: dict[str, object]) -> str:
    version_id = details.get("version_id")
    principal = details.get("principal")
    parts = []
    if version_id:
        parts.append(f"version {version_id}")
    if principal:
        parts.append(f"by {principal}")
    return f"  ({', '.join(parts)})" if parts else ""
