"""`GuardianTable`: the guardian's own DynamoDB table: the delivery ledger and the lock sessions it has seen."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import conditional_write, translate
from chalicelib.adapters.dynamo_items import batch_write, transact, transact_for_items
from chalicelib.domain.deliveries import DeliveryClaims
from chalicelib.domain.digests import DigestIntent, DigestSuspect
from chalicelib.domain.locks import LockInfo, LockSession, LockSighting
from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit
from chalicelib.domain.staleness import HeldLock, StaleRecord
from chalicelib.errors import IdempotencyConflictError, MalformedEventError, TransientAwsError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PENDING = "pending"
SENT = "sent"
# Long enough to outlive every retry of an S3 event or a stream batch.
DELIVERY_RECORD_DAYS = 8
LOCK_SESSION_DAYS = 30
RECENT_SESSIONS = 10
DIGEST_SUSPECTS = "digest-suspects"
DIGEST_INTENTS = "digest-intents"
PENDING_NOTIFICATIONS = "pending-notifications"
TRANSACTION_ITEMS = 100
IDEMPOTENCY_HOURS = 24
# An item holds at most 400 KB; what is left of that beside its key and other attributes.
MAX_ANSWER_BYTES = 350_000
# Never claimed, or claimed by an invocation whose lease ran out before it completed or released the claim.
_CLAIMABLE = "attribute_not_exists(pk) OR (#status = :pending AND lease_until < :now)"


class GuardianTable:
    """A table with a string partition key `pk`, a string sort key `sk` and TTL on `expires_at`."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self.name = table

    def claim_deliveries(
        self, notification_ids: list[str], channel: str, *, now: float, lease_s: float
    ) -> DeliveryClaims:
        """Take the right to deliver each notification to one channel, for `lease_s` seconds.

        A claim fails when the notification was delivered already, or another invocation holds an unexpired lease
        on it; the claim found in its place tells the two apart. One notification is claimed by a conditional
        PutItem; more go in transactions of up to 100: one request for a whole stream batch.
        """
        claims = DeliveryClaims()
        unique = list(dict.fromkeys(notification_ids))
        if len(unique) == 1:
            claimed, found = self._put_claim(unique[0], channel, now=now, lease_s=lease_s)
            if claimed:
                claims.claimed.add(unique[0])
            else:
                self._note_refused_claim(unique[0], channel, now, claims, found)
            return claims
        for start in range(0, len(unique), TRANSACTION_ITEMS):
            pending = unique[start : start + TRANSACTION_ITEMS]
            while pending:
                actions = [
                    {"Put": self._claim(notification_id, channel, now=now, lease_s=lease_s)}
                    for notification_id in pending
                ]
                refused_items = transact_for_items(self._client, actions, f"claim deliveries in {self.name}")
                if not refused_items:
                    claims.claimed.update(pending)
                    break
                for position, found in sorted(refused_items.items()):
                    self._note_refused_claim(pending[position], channel, now, claims, found)
                pending = [nid for position, nid in enumerate(pending) if position not in refused_items]
        return claims

    def _claim(self, notification_id: str, channel: str, *, now: float, lease_s: float) -> dict[str, Any]:
        """A claim's conditional put, which returns the claim found in its place when its condition fails."""
        return {
            "TableName": self.name,
            "Item": {
                "pk": {"S": f"delivery#{notification_id}"},
                "sk": {"S": channel},
                "status": {"S": PENDING},
                "lease_until": {"N": str(now + lease_s)},
                "expires_at": {"N": str(int(now) + DELIVERY_RECORD_DAYS * 86400)},
            },
            "ConditionExpression": _CLAIMABLE,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":pending": {"S": PENDING}, ":now": {"N": str(now)}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _put_claim(
        self, notification_id: str, channel: str, *, now: float, lease_s: float
    ) -> tuple[bool, Mapping[str, Any] | None]:
        """Claim one delivery: whether it was claimed, and if not the claim found, when the answer carries it."""
        try:
            self._client.put_item(**self._claim(notification_id, channel, now=now, lease_s=lease_s))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                found = exc.response.get("Item")  # the exception's member, with ALL_OLD
                return False, found if isinstance(found, dict) else None
            raise translate(exc, f"claim a delivery in {self.name}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"claim a delivery in {self.name}") from exc
        return True, None

    def _note_refused_claim(
        self, notification_id: str, channel: str, now: float, claims: DeliveryClaims, item: Mapping[str, Any] | None
    ) -> None:
        if item is None:  # an answer without the claim found (not every DynamoDB-compatible store returns it)
            item = self._read_claim(notification_id, channel)
        if item is not None and item.get("status", {}).get("S") == SENT:
            claims.delivered.add(notification_id)
        elif item is not None:
            claims.leased[notification_id] = float(item.get("lease_until", {}).get("N", now))
        else:  # released between the claim and the read: claimable on the next attempt, which is at once
            claims.leased[notification_id] = now

    def _read_claim(self, notification_id: str, channel: str) -> Mapping[str, Any] | None:
        try:
            return self._client.get_item(
                TableName=self.name,
                Key={"pk": {"S": f"delivery#{notification_id}"}, "sk": {"S": channel}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read a delivery claim in {self.name}") from exc

    def complete_deliveries(self, notification_ids: list[str], channel: str, *, now: float) -> None:
        """Record that the notifications reached the channel: later claims of them fail."""
        expires = str(int(now) + DELIVERY_RECORD_DAYS * 86400)
        self._batch_write(
            [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": f"delivery#{notification_id}"},
                            "sk": {"S": channel},
                            "status": {"S": SENT},
                            "expires_at": {"N": expires},
                        }
                    }
                }
                for notification_id in dict.fromkeys(notification_ids)
            ],
            "complete deliveries",
        )

    def release_deliveries(self, notification_ids: list[str], channel: str) -> None:
        """Give claims back after failed deliveries, so that a retry may deliver them."""
        self._batch_write(
            [
                {"DeleteRequest": {"Key": {"pk": {"S": f"delivery#{notification_id}"}, "sk": {"S": channel}}}}
                for notification_id in dict.fromkeys(notification_ids)
            ],
            "release deliveries",
        )

    def record_lock_sessions(self, sightings: list[LockSighting]) -> None:
        """Remember locks as taken or released; the first time seen of each wins, so replays change nothing.

        The same lock seen through both mechanisms, or taken and released in one batch, stays one session.
        """
        merged: dict[tuple[str, str], list[LockSighting]] = {}
        for sighting in sightings:
            merged.setdefault((sighting.lock.path, _session_key(sighting.lock)), []).append(sighting)
        expires = str(int(datetime.now(UTC).timestamp()) + LOCK_SESSION_DAYS * 86400)
        actions: list[Any] = []
        for (path, sort_key), seen in merged.items():
            lock = seen[0].lock
            values: dict[str, Any] = {
                ":info": {"S": _lock_info_json(lock)},
                ":source": {"S": seen[0].source},
                ":expires": {"N": expires},
                ":created": {"S": _iso(lock.created_at())},
            }
            sets = ["info = :info", "#source = if_not_exists(#source, :source)", "expires_at = :expires"]
            acquired = [s.at for s in seen if not s.released]
            released = [s.at for s in seen if s.released]
            if acquired:
                values[":acquired"] = {"S": _iso(min(acquired))}
                sets.append("acquired_at = if_not_exists(acquired_at, :acquired)")
            else:
                sets.append("acquired_at = if_not_exists(acquired_at, :created)")
            if released:
                values[":released"] = {"S": _iso(min(released))}
                sets.append("released_at = if_not_exists(released_at, :released)")
            actions.append(
                {
                    "Update": {
                        "TableName": self.name,
                        "Key": {"pk": {"S": f"lock#{path}"}, "sk": {"S": sort_key}},
                        "UpdateExpression": "SET " + ", ".join(sets),
                        "ExpressionAttributeNames": {"#source": "source"},
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        for start in range(0, len(actions), TRANSACTION_ITEMS):
            if self._transact(actions[start : start + TRANSACTION_ITEMS], "record lock sessions"):
                raise TransientAwsError("recording lock sessions was refused")

    def _transact(self, actions: list[Any], what: str) -> set[int]:
        return transact(self._client, actions, f"{what} in {self.name}")

    def _batch_write(self, requests: list[Any], what: str) -> None:
        batch_write(self._client, self.name, requests, what)

    def recent_lock_sessions(self, path: str) -> list[LockSession]:
        """The latest lock sessions of one state (`<bucket>/<key>`), newest first."""
        try:
            response = self._client.query(
                TableName=self.name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"lock#{path}"}},
                ScanIndexForward=False,
                Limit=RECENT_SESSIONS,
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read lock sessions in {self.name}") from exc
        sessions = []
        for item in response.get("Items", []):
            try:
                sessions.append(_session(item))
            except MalformedEventError:
                continue  # written by another version of the guardian; not ours to judge
        return sessions

    def put_digest_suspect(self, suspect: DigestSuspect) -> None:
        """Remember a state whose bytes did not match its digest, to look at again after the grace period."""
        conditional_write(
            lambda: self._client.put_item(
                TableName=self.name,
                Item={
                    "pk": {"S": DIGEST_SUSPECTS},
                    "sk": {"S": suspect.state_path},
                    "version_id": {"S": suspect.version_id},
                    "first_seen": {"S": _iso(suspect.first_seen)},
                    "expires_at": {"N": str(int(suspect.first_seen.timestamp()) + DELIVERY_RECORD_DAYS * 86400)},
                },
                # A later sighting of the same mismatch keeps the first one's time.
                ConditionExpression="attribute_not_exists(pk) OR version_id <> :version",
                ExpressionAttributeValues={":version": {"S": suspect.version_id}},
            ),
            f"record a digest suspect in {self.name}",
        )

    def digest_suspects(self, bucket: str) -> list[DigestSuspect]:
        """Every state of `bucket` waiting for a second look at its digest (the table serves every backend)."""
        suspects: list[DigestSuspect] = []
        try:
            pages = self._client.get_paginator("query").paginate(
                TableName=self.name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :bucket)",
                ExpressionAttributeValues={":pk": {"S": DIGEST_SUSPECTS}, ":bucket": {"S": f"{bucket}/"}},
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", []):
                    suspects.append(
                        DigestSuspect(
                            state_path=item["sk"]["S"],
                            version_id=item["version_id"]["S"],
                            first_seen=datetime.fromisoformat(item["first_seen"]["S"].replace("Z", "+00:00")),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read digest suspects in {self.name}") from exc
        return suspects

    def clear_digest_suspect(self, suspect: DigestSuspect) -> None:
        """Forget a suspect, unless a newer sighting replaced it meanwhile."""
        conditional_write(
            lambda: self._client.delete_item(
                TableName=self.name,
                Key={"pk": {"S": DIGEST_SUSPECTS}, "sk": {"S": suspect.state_path}},
                ConditionExpression="version_id = :version",
                ExpressionAttributeValues={":version": {"S": suspect.version_id}},
            ),
            f"clear a digest suspect in {self.name}",
        )

    def put_digest_intent(self, intent: DigestIntent) -> None:
        """Remember a digest about to be written, until it is (see `DigestIntent`)."""
        try:
            self._client.put_item(
                TableName=self.name,
                Item={
                    "pk": {"S": DIGEST_INTENTS},
                    "sk": {"S": intent.state_path},
                    "digest": {"S": intent.digest},
                    "recorded_at": {"S": _iso(intent.recorded_at)},
                    "expires_at": {"N": str(int(intent.recorded_at.timestamp()) + DELIVERY_RECORD_DAYS * 86400)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"record a digest intent in {self.name}") from exc

    def digest_intents(self, bucket: str) -> list[DigestIntent]:
        """Every digest of a state of `bucket` whose writer has not said it was written."""
        intents: list[DigestIntent] = []
        try:
            pages = self._client.get_paginator("query").paginate(
                TableName=self.name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :bucket)",
                ExpressionAttributeValues={":pk": {"S": DIGEST_INTENTS}, ":bucket": {"S": f"{bucket}/"}},
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", []):
                    intents.append(
                        DigestIntent(
                            state_path=item["sk"]["S"],
                            digest=item["digest"]["S"],
                            recorded_at=datetime.fromisoformat(item["recorded_at"]["S"].replace("Z", "+00:00")),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read digest intents in {self.name}") from exc
        return intents

    def clear_digest_intent(self, intent: DigestIntent) -> None:
        """Forget an intent, unless a newer one for the same state replaced it meanwhile."""
        conditional_write(
            lambda: self._client.delete_item(
                TableName=self.name,
                Key={"pk": {"S": DIGEST_INTENTS}, "sk": {"S": intent.state_path}},
                ConditionExpression="digest = :digest",
                ExpressionAttributeValues={":digest": {"S": intent.digest}},
            ),
            f"clear a digest intent in {self.name}",
        )

    def put_pending_notification(self, notification: Notification) -> None:
        """Keep a notification about something already done until every channel has it."""
        try:
            self._client.put_item(
                TableName=self.name,
                Item={
                    "pk": {"S": PENDING_NOTIFICATIONS},
                    "sk": {"S": notification.id},
                    "notification": {"S": json.dumps(notification.to_dict())},
                    "expires_at": {"N": str(int(time.time()) + DELIVERY_RECORD_DAYS * 86400)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"keep a pending notification in {self.name}") from exc

    def pending_notifications(self) -> list[Notification]:
        """Every notification kept by `put_pending_notification` and not yet cleared."""
        pending: list[Notification] = []
        try:
            pages = self._client.get_paginator("query").paginate(
                TableName=self.name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": PENDING_NOTIFICATIONS}},
                ConsistentRead=True,
            )
            for page in pages:
                pending.extend(Notification.from_dict(json.loads(item["notification"]["S"])) for item in page["Items"])
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read pending notifications in {self.name}") from exc
        return pending

    def clear_pending_notification(self, notification_id: str) -> None:
        try:
            self._client.delete_item(
                TableName=self.name, Key={"pk": {"S": PENDING_NOTIFICATIONS}, "sk": {"S": notification_id}}
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"clear a pending notification in {self.name}") from exc

    def stale_record(self, held: HeldLock) -> StaleRecord | None:
        """What an earlier run of the reaper decided about this lock, if anything."""
        try:
            response = self._client.get_item(TableName=self.name, Key=_stale_key(held), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read a stale-lock record in {self.name}") from exc
        item = response.get("Item")
        if not item:
            return None
        return StaleRecord(
            lock_id=item["lock_id"]["S"],
            fingerprint=item["fingerprint"]["S"],
            first_judged_at=datetime.fromisoformat(item["first_judged_at"]["S"].replace("Z", "+00:00")),
            warned=item.get("warned", {}).get("BOOL", False),
        )

    def put_stale_record(self, held: HeldLock, record: StaleRecord) -> None:
        try:
            self._client.put_item(
                TableName=self.name,
                Item={
                    **_stale_key(held),
                    "lock_id": {"S": record.lock_id},
                    "fingerprint": {"S": record.fingerprint},
                    "first_judged_at": {"S": _iso(record.first_judged_at)},
                    "warned": {"BOOL": record.warned},
                    "expires_at": {"N": str(int(record.first_judged_at.timestamp()) + LOCK_SESSION_DAYS * 86400)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"record a stale lock in {self.name}") from exc

    def forget_stale_record(self, held: HeldLock) -> None:
        try:
            self._client.delete_item(TableName=self.name, Key=_stale_key(held))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"forget a stale lock in {self.name}") from exc

    def begin_request(
        self, scope: str, key: str, fingerprint: str, now: float, lease_s: float
    ) -> dict[str, Any] | None:
        """Start the request an `Idempotency-Key` names; the first answer if it was already given.

        A request killed mid-way leaves its record pending: once its lease has run out, a retry takes it over.
        Raises `IdempotencyConflictError` if the key was used for another request, or its first use may still run.
        """
        item_key = {"pk": {"S": f"idempotency#{scope}#{key}"}, "sk": {"S": "request"}}
        started = conditional_write(
            lambda: self._client.put_item(
                TableName=self.name,
                Item={
                    **item_key,
                    "fingerprint": {"S": fingerprint},
                    "status": {"S": PENDING},
                    "lease_until": {"N": str(now + lease_s)},
                    "expires_at": {"N": str(int(now) + IDEMPOTENCY_HOURS * 3600)},
                },
                ConditionExpression=_CLAIMABLE,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":pending": {"S": PENDING}, ":now": {"N": str(now)}},
            ),
            f"record a request in {self.name}",
        )
        if started:
            return None
        try:
            item = self._client.get_item(TableName=self.name, Key=item_key, ConsistentRead=True).get("Item", {})
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read a request in {self.name}") from exc
        if item.get("fingerprint", {}).get("S") != fingerprint:
            raise IdempotencyConflictError("this Idempotency-Key was used for another request")
        if item.get("status", {}).get("S") == SENT:
            if "answer" in item:
                return dict(json.loads(gzip.decompress(item["answer"]["B"])))
            if "response" in item:  # kept by an earlier version of the guardian
                return dict(json.loads(item["response"]["S"]))
        wait = max(0, round(float(item.get("lease_until", {}).get("N", now)) - now))
        raise IdempotencyConflictError(
            f"a request with this Idempotency-Key is still running; try again in {wait + 1} s"
        )

    def finish_request(self, scope: str, key: str, response: dict[str, Any]) -> None:
        """Keep the answer, so that a retry with the same key gets it instead of doing the work again.

        The answer is kept compressed; one that would not fit an item even so is kept with its longest lists
        trimmed and `truncated` set.
        """
        try:
            self._client.update_item(
                TableName=self.name,
                Key={"pk": {"S": f"idempotency#{scope}#{key}"}, "sk": {"S": "request"}},
                UpdateExpression="SET #status = :sent, answer = :answer REMOVE lease_until",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":sent": {"S": SENT}, ":answer": {"B": _storable_answer(response)}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"record an answer in {self.name}") from exc

    def abandon_request(self, scope: str, key: str) -> None:
        """Forget a request that failed, so that a retry may do it."""
        try:
            self._client.delete_item(
                TableName=self.name, Key={"pk": {"S": f"idempotency#{scope}#{key}"}, "sk": {"S": "request"}}
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"forget a request in {self.name}") from exc


def _storable_answer(response: dict[str, Any]) -> bytes:
    """The answer gzipped, within what one item can hold beside its key; long lists are trimmed to fit."""
    fitted = fit(response, MAX_ANSWER_BYTES, lambda answer: len(_packed(answer)), under=None)
    return _packed(fitted)


def _packed(answer: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(answer, separators=(",", ":")).encode(), mtime=0)


def _stale_key(held: HeldLock) -> dict[str, Any]:
    return {"pk": {"S": f"stale#{held.state_path}"}, "sk": {"S": held.source}}


def _session_key(lock: LockInfo) -> str:
    # By Created, so that the newest sessions of a state come first in a query.
    return f"{_iso(lock.created_at())}#{lock.id}"


def _lock_info_json(lock: LockInfo) -> str:
    return json.dumps(
        {"ID": lock.id, "Operation": lock.operation, "Who": lock.who, "Version": lock.version,
         "Created": lock.created, "Path": lock.path},
        separators=(",", ":"),
    )  # fmt: skip


def _iso(moment: datetime) -> str:
    # Fixed width, so that sort keys order by time.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _session(item: dict[str, Any]) -> LockSession:
    try:
        released = item.get("released_at", {}).get("S")
        return LockSession(
            lock=LockInfo.parse(item["info"]["S"]),
            source=item["source"]["S"],
            acquired_at=datetime.fromisoformat(item["acquired_at"]["S"].replace("Z", "+00:00")),
            released_at=datetime.fromisoformat(released.replace("Z", "+00:00")) if released else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEventError(f"lock session item lacks {exc}") from None
