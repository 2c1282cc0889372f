"""The README's example messages are what the code renders today: regenerate them with
`python -m tests.support.example_notifications` when a message changes."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.example_notifications import readme_examples

README = Path(__file__).resolve().parents[2] / "README.md"
_SHOWN = re.compile(r"<!-- example:(\w+) -->\n```\w*\n(.*?)\n```\n<!-- /example -->", re.DOTALL)


def test_the_readme_shows_one_real_message_of_each_channel() -> None:
    shown = dict(_SHOWN.findall(README.read_text(encoding="utf-8")))
    assert shown == readme_examples()
    assert set(shown) == {"slack", "email", "teams", "pagerduty"}
