"""What `tfguardian` prints for people: words in tables, headed diffs, and where it calls by default."""

from __future__ import annotations

import pytest

from guardian_cli.args import endpoint
from guardian_cli.output import duration, show_diff, table


def test_a_table_says_yes_no_and_a_dash() -> None:
    rows = [{"key": "a", "current": True, "recorded": False, "who": None}, {"key": "b\x1b[2J", "current": False}]
    printed = table(rows, [("key", "key"), ("current", "current"), ("recorded", "recorded"), ("who", "written by")])
    assert printed.splitlines() == [
        "KEY       CURRENT  RECORDED  WRITTEN BY",
        "a         yes      no        —",
        "b\\x1b[2J  no       —         —",
    ]
    assert table([], [("key", "key")]) == "(none)"


def test_a_diff_heads_resources_then_outputs_by_what_happened() -> None:
    diff = {
        "resources": {"added": ["aws_s3_bucket.logs"], "changed": [], "removed": ["aws_iam_role.old", "null.x"]},
        "outputs": {"added": [], "changed": ["url"], "removed": []},
    }
    assert show_diff(diff).splitlines() == [
        "Resources: 1 added, 0 changed, 2 removed",
        "  added:",
        "    + aws_s3_bucket.logs",
        "  removed:",
        "    - aws_iam_role.old",
        "    - null.x",
        "Outputs: 0 added, 1 changed, 0 removed",
        "  changed:",
        "    ~ url",
    ]
    assert show_diff({}).splitlines() == [
        "Resources: 0 added, 0 changed, 0 removed",
        "Outputs: 0 added, 0 changed, 0 removed",
    ]


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0s"), (59.9, "59s"), (425, "7m 05s"), (10920, "3h 02m"), (187200, "2d 04h")]
)
def test_durations(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_the_endpoint_is_the_option_then_the_variable_then_the_local_stack_on_its_port() -> None:
    deployed = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/"
    assert endpoint(None, {}) == "http://127.0.0.1:8055"
    assert endpoint(None, {"GUARDIAN_API_PORT": "18055"}) == "http://127.0.0.1:18055"
    assert endpoint(None, {"GUARDIAN_API_PORT": "18055", "TFGUARDIAN_ENDPOINT": deployed}) == deployed
    assert endpoint("http://localhost:9000", {"TFGUARDIAN_ENDPOINT": deployed}) == "http://localhost:9000"
    for given, environ, named in [
        (None, {"GUARDIAN_API_PORT": "0"}, "GUARDIAN_API_PORT"),
        (None, {"GUARDIAN_API_PORT": "http"}, "GUARDIAN_API_PORT"),
        (None, {"TFGUARDIAN_ENDPOINT": "abc123.execute-api.eu-west-1.amazonaws.com"}, "TFGUARDIAN_ENDPOINT"),
        ("http://127.0.0.1:port", {}, "--endpoint"),
    ]:
        with pytest.raises(ValueError, match=named):
            endpoint(given, environ)
