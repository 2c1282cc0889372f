"""The guardian's table serves every backend: each backend's digest check and reaper take only their own bucket's
digest suspects, digest intents and undelivered notifications, never another's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib import composition
from chalicelib.domain import notifications
from chalicelib.domain.digests import DigestIntent, DigestSuspect
from chalicelib.domain.state_keys import StateKey
from local_stack.stack import LocalBackend, LocalStack
from tests.e2e.conftest import notifications_of
from tests.support.events import state_bytes

TABLE = "tfg-iso-locks"
BACKENDS = (LocalBackend("alpha", "tfg-iso-alpha", TABLE), LocalBackend("beta", "tfg-iso-beta", TABLE))
KEY = "app/terraform.tfstate"
LONG_AGO = datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
def two(stack_with: Any, aws: Any) -> LocalStack:
    local: LocalStack = stack_with(backends=BACKENDS)
    for backend in BACKENDS:
        aws.client("s3").put_object(
            Bucket=backend.bucket, Key=KEY, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json")
        )
    local.pump()
    return local


def test_each_backend_takes_only_its_own_queues_from_the_shared_table(two: LocalStack, aws: Any) -> None:
    guardian = composition.container()
    table = guardian.guardian_table
    alpha, beta = guardian.backends["alpha"], guardian.backends["beta"]
    table.put_digest_suspect(DigestSuspect(state_path=f"tfg-iso-alpha/{KEY}", version_id="v", first_seen=LONG_AGO))
    table.put_digest_intent(DigestIntent(state_path=f"tfg-iso-alpha/{KEY}", digest="0" * 32, recorded_at=LONG_AGO))
    pending = notifications.state_restored(
        bucket="tfg-iso-alpha", state_key=StateKey.parse(KEY, ("env:",)), occurred_at=LONG_AGO,
        from_version_id="a", new_version_id="b", serial_before=1, serial_after=2, caller="x", reason="",
    )  # fmt: skip
    table.put_pending_notification(pending)

    beta.digests.verify(datetime.now(UTC))
    beta.reaper.run(datetime.now(UTC))
    assert [s.state_path for s in table.digest_suspects("tfg-iso-alpha")] == [f"tfg-iso-alpha/{KEY}"]
    assert [i.state_path for i in table.digest_intents("tfg-iso-alpha")] == [f"tfg-iso-alpha/{KEY}"]
    assert [n.id for n in table.pending_notifications()] == [pending.id]
    digest = aws.client("dynamodb").get_item(TableName=TABLE, Key={"LockID": {"S": f"tfg-iso-alpha/{KEY}-md5"}})
    assert "Item" not in digest  # beta finished no digest of alpha's

    alpha.reaper.run(datetime.now(UTC))
    assert table.pending_notifications() == []
    (restored,) = [n for n in notifications_of(two) if n["type"] == "state.restored"]
    assert restored["backend"] == "alpha"
    alpha.digests.verify(datetime.now(UTC))
    assert table.digest_intents("tfg-iso-alpha") == []
