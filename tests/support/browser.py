"""The distribution's Chromium as the browser tests and the page benchmark start it: headless, and nothing that
reaches outside this machine (without the background-networking flags it keeps trying Google's hosts)."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("GUARDIAN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
