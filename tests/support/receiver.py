"""A webhook receiver on 127.0.0.1 that records what it is sent, and can be told to fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 503  # the answer while failing
    delay_s: float = 0.0  # how long each POST waits before it is answered
    answer: bytes = b"{}"  # the body of the answer to a GET


@contextmanager
def receiver(port: int = 0) -> Iterator[Receiver]:
    """A receiver on `port` of 127.0.0.1 (0: a free one)."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if state.delay_s:
                time.sleep(state.delay_s)
            if state.fail_next:
                state.fail_next -= 1
                self.send_response(state.fail_status)
            else:
                state.requests.append(Received(self.path, dict(self.headers.items()), body))
                self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:
            state.requests.append(Received(self.path, dict(self.headers.items()), b""))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state.answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
