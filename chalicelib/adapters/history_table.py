"""`HistoryTable`: the version records and fleet entries in the guardian's table.

- A version record: `pk = versions#<bucket>/<key>`, `sk =` its `version_order`: a key's versions newest first in one
  Query, a page of them in one request, however many keys the fleet has; and the same record at
  `pk = version#<bucket>/<key>`, `sk = <version id>`, for one GetItem by version id.
- A fleet entry: `pk = fleet#<bucket>`, `sk = <key>`: every state of a bucket in key order, a prefix in one Query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.adapters.dynamo_items import attributes, flag, moment, number, strings, text, transact
from chalicelib.domain.history import (
    ChangeCounts,
    FleetEntry,
    Page,
    VersionKind,
    VersionRecord,
    Writer,
    decode_token,
    encode_token,
    version_order,
)
from chalicelib.domain.state_keys import DEFAULT_WORKSPACE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_COUNTS = ("ra", "rc", "rr", "oa", "oc", "or")
TRANSACTION_ITEMS = 100


@dataclass(frozen=True)
class LockChange:
    """What one batch saw of one state's locks: the last lock taken, the last released."""

    key: str
    workspace: str
    taken: dict[str, str] | None = None  # the holder, as the contract's `lock` object
    released_id: str | None = None


class HistoryTable:
    """Version records and fleet entries; kept `retention` after they were written (DynamoDB TTL)."""

    def __init__(self, client: DynamoDBClient, table: str, *, retention: timedelta) -> None:
        self._client = client
        self.name = table
        self._retention = retention

    # --- version records -----------------------------------------------------------------------------------------

    def record(self, record: VersionRecord, *, history_complete: bool | None = None, only_if_new: bool = False) -> bool:
        """Record a version and, unless a newer one is, make it the state's latest: one transaction.

        Recording it again writes the same items. With `only_if_new` (a backfill), a record already there (the one
        made as the version was written, which knows the writer) is kept: False then. A removed old version
        (`deleted`) is recorded but never the latest. `history_complete` says whether every older version of the
        state is recorded (None: leave it).
        """
        puts = self._version_puts(record, only_if_new=only_if_new)
        if record.kind is VersionKind.DELETED:
            return not self._transact(puts, f"record a version of {record.key}")
        refused = self._transact([*puts, self._latest_update(record, history_complete)], f"record {record.key}")
        if not refused:
            return True
        if refused & {0, 1}:  # recorded already
            return False
        # A newer version is the latest already: the record alone.
        return not self._transact(puts, f"record a version of {record.key}")

    def _version_puts(self, record: VersionRecord, *, only_if_new: bool) -> list[dict[str, Any]]:
        """The record twice: in its key's history, in order; and by its version id, found in one GetItem."""
        order = version_order(record.written_at, record.serial, record.version_id)
        counts = record.changes
        item = attributes(
            {
                "pk": _versions_pk(record.bucket, record.key),
                "sk": order,
                "key": record.key,
                "workspace": record.workspace,
                "version_id": record.version_id,
                "kind": record.kind.value,
                "written_at": record.written_at,
                "serial": record.serial,
                "lineage": record.lineage,
                "terraform_version": record.terraform_version,
                "size": record.size,
                "who": record.writer.who,
                "operation": record.writer.operation,
                "lock_id": record.writer.lock_id,
                "principal": record.writer.principal,
                "resources": record.resource_count,
                "outputs": record.output_count,
                "previous_version_id": record.previous_version_id,
                "severity": record.severity,
                "notification_id": record.notification_id,
                "reason": record.reason,
                "index_stored": record.index_stored,
                "backfilled": record.backfilled,
                "changes": _changes_text(record.changed_addresses),
                "changed_overflow": record.changed_addresses_overflow or None,
                "expires_at": int((record.written_at + self._retention).timestamp()),
                **(dict(zip(_COUNTS, _count_values(counts), strict=True)) if counts else {}),
            }
        )
        condition = {"ConditionExpression": "attribute_not_exists(pk)"} if only_if_new else {}
        by_id = {**item, **_version_key(record.bucket, record.key, _id_of(record)), "order": {"S": order}}
        return [
            {"Put": {"TableName": self.name, "Item": item, **condition}},
            {"Put": {"TableName": self.name, "Item": by_id, **condition}},
        ]

    def _transact(self, actions: list[Any], what: str) -> set[int]:
        return transact(self._client, actions, f"{what} in {self.name}")

    def versions(
        self, bucket: str, key: str, *, limit: int, next_token: str | None = None, address: str | None = None
    ) -> Page[VersionRecord]:
        """A key's recorded versions, newest first; with `address`, only those that may have touched it (a
        record that lists too many changes to keep them is included: its stored index says)."""
        pk = _versions_pk(bucket, key)
        query: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ScanIndexForward": False,
            "Limit": limit,
            "ConsistentRead": True,
        }
        if next_token:
            position = decode_token(next_token, expect=pk)
            query["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": str(position.get("sk", ""))}}
        if address is not None:
            # `changes` holds each entry between line breaks; `changed` is a set, in records written before.
            query["FilterExpression"] = " OR ".join(
                [f"contains({name}, :{sign}{name})" for name in ("changes", "changed") for sign in _SIGNS]
                + ["changed_overflow = :overflow"]
            )
            for sign, mark in _SIGNS.items():
                entry = f"{mark}{address}"
                query["ExpressionAttributeValues"][f":{sign}changes"] = {"S": f"\n{_changes_line(entry)}\n"}
                query["ExpressionAttributeValues"][f":{sign}changed"] = {"S": entry}
            query["ExpressionAttributeValues"][":overflow"] = {"BOOL": True}
        items, next_token = self._page(query, f"read the versions of {key}")
        return Page([_version(bucket, item) for item in items], next_token)

    def version(self, bucket: str, key: str, version_id: str) -> VersionRecord | None:
        """One version's record, by its id."""
        try:
            item = self._client.get_item(
                TableName=self.name, Key=_version_key(bucket, key, version_id), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read a version of {key} in {self.name}") from exc
        return _version(bucket, item) if item else None

    def version_ids_in(self, bucket: str, key: str, second: str) -> set[str]:
        """The ids of the versions recorded in one second (`version_order`'s first part)."""
        try:
            response = self._client.query(
                TableName=self.name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :second)",
                ExpressionAttributeValues={":pk": {"S": _versions_pk(bucket, key)}, ":second": {"S": second + "#"}},
                ProjectionExpression="version_id",
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read the versions of {key} in {self.name}") from exc
        return {item["version_id"]["S"] for item in response.get("Items", [])}

    # --- fleet entries -------------------------------------------------------------------------------------------

    def _latest_update(self, record: VersionRecord, history_complete: bool | None) -> dict[str, Any]:
        """The fleet entry's update to `record`, conditional on no newer version being the latest already."""
        order = version_order(record.written_at, record.serial, record.version_id)
        values = attributes(
            {
                ":order": order,
                ":workspace": record.workspace,
                ":version_id": record.version_id,
                ":kind": record.kind.value,
                ":written_at": record.written_at,
                ":serial": record.serial,
                ":lineage": record.lineage,
                ":terraform_version": record.terraform_version,
                ":size": record.size,
                ":resources": record.resource_count,
                ":who": record.writer.who,
                ":operation": record.writer.operation,
                ":principal": record.writer.principal,
            }
        )
        fields = [name.removeprefix(":") for name in values if name != ":order"]
        sets = ["#order = :order", *(f"#{name} = :{name}" for name in fields)]
        removed = [
            f"#{name}"
            for name in ("serial", "lineage", "terraform_version", "size", "resources", "who", "operation", "principal")
            if f":{name}" not in values
        ]
        names = {f"#{name}": name for name in ("order", *fields, *(r.removeprefix("#") for r in removed))}
        if history_complete is not None:
            sets.append("history_complete = if_not_exists(history_complete, :complete)")
            values[":complete"] = {"BOOL": history_complete}
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removed) if removed else "")
        return {
            "Update": {
                "TableName": self.name,
                "Key": _fleet_key(record.bucket, record.key),
                "UpdateExpression": expression,
                "ConditionExpression": "attribute_not_exists(#order) OR #order <= :order",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def mark_history_complete(self, bucket: str, key: str, complete: bool) -> None:
        """Say whether every version of the state is recorded (the backfill finished it, or found it lacking)."""
        try:
            self._client.update_item(
                TableName=self.name,
                Key=_fleet_key(bucket, key),
                UpdateExpression="SET history_complete = :complete",
                ExpressionAttributeValues={":complete": {"BOOL": complete}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"mark the history of {key} in {self.name}") from exc

    def note_locks(self, bucket: str, changes: list[LockChange]) -> None:
        """Note locks seen taken and released, one update per state, in transactions of up to 100 states.

        A lock shows as held while the last one seen taken is not the last one seen released: the lock table's
        stream gives one item's changes in order, so no update needs a condition (which would cancel a batch).
        """
        actions: list[Any] = []
        for change in changes:
            sets = ["workspace = if_not_exists(workspace, :workspace)"]
            values: dict[str, Any] = {":workspace": {"S": change.workspace}}
            if change.taken is not None:
                sets += ["#lock = :lock", "lock_id = :taken"]
                values |= {":lock": {"M": attributes(change.taken)}, ":taken": {"S": change.taken["id"]}}
            if change.released_id is not None:
                sets.append("released_lock_id = :released")
                values[":released"] = {"S": change.released_id}
            actions.append(
                {
                    "Update": {
                        "TableName": self.name,
                        "Key": _fleet_key(bucket, change.key),
                        "UpdateExpression": "SET " + ", ".join(sets),
                        "ExpressionAttributeValues": values,
                        **({"ExpressionAttributeNames": {"#lock": "lock"}} if change.taken is not None else {}),
                    }
                }
            )
        for start in range(0, len(actions), TRANSACTION_ITEMS):
            try:
                self._client.transact_write_items(TransactItems=actions[start : start + TRANSACTION_ITEMS])
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"note locks in {self.name}") from exc

    def fleet(
        self, bucket: str, *, prefix: str, limit: int, next_token: str | None = None, workspace: str | None = None
    ) -> Page[FleetEntry]:
        """The bucket's states whose keys start with `prefix`, in key order; with `workspace`, only that
        workspace's. The workspace is a filter on the same Query: a page reads `limit` entries and may hold fewer."""
        pk = f"fleet#{bucket}"
        query: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)" if prefix else "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}, **({":prefix": {"S": prefix}} if prefix else {})},
            "Limit": limit,
        }
        if workspace:
            query["FilterExpression"] = "workspace = :workspace" + (
                " OR attribute_not_exists(workspace)" if workspace == DEFAULT_WORKSPACE else ""
            )
            query["ExpressionAttributeValues"][":workspace"] = {"S": workspace}
        if next_token:
            position = decode_token(next_token, expect=pk)
            query["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": str(position.get("sk", ""))}}
        items, next_token = self._page(query, f"read the states of {bucket}")
        return Page([_fleet_entry(bucket, item) for item in items], next_token)

    def _page(self, query: dict[str, Any], what: str) -> tuple[list[dict[str, Any]], str | None]:
        """One Query's items, and the token of the page after them (a listing's `next`), if any."""
        try:
            response = self._client.query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"{what} in {self.name}") from exc
        last = response.get("LastEvaluatedKey")
        pk = query["ExpressionAttributeValues"][":pk"]["S"]
        return response.get("Items", []), encode_token({"for": pk, "sk": last["sk"]["S"]}) if last else None

    def checkpoint(self, bucket: str) -> dict[str, Any] | None:
        """Where the backfill of a bucket stopped (see `Backfill`)."""
        try:
            item = self._client.get_item(
                TableName=self.name,
                Key={"pk": {"S": f"backfill#{bucket}"}, "sk": {"S": "checkpoint"}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read the backfill checkpoint in {self.name}") from exc
        return json.loads(item["position"]["S"]) if item else None

    def put_checkpoint(self, bucket: str, position: dict[str, Any]) -> None:
        try:
            self._client.put_item(
                TableName=self.name,
                Item={
                    "pk": {"S": f"backfill#{bucket}"},
                    "sk": {"S": "checkpoint"},
                    "position": {"S": json.dumps(position, separators=(",", ":"))},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"keep the backfill checkpoint in {self.name}") from exc

    def latest(self, bucket: str, key: str) -> FleetEntry | None:
        try:
            item = self._client.get_item(TableName=self.name, Key=_fleet_key(bucket, key), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read the state {key} in {self.name}") from exc
        return _fleet_entry(bucket, item["Item"]) if "Item" in item else None


def _versions_pk(bucket: str, key: str) -> str:
    return f"versions#{bucket}/{key}"


def _version_key(bucket: str, key: str, record_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"version#{bucket}/{key}"}, "sk": {"S": record_id}}


def _id_of(record: VersionRecord) -> str:
    # A permanent delete is recorded apart from the version it removed, which keeps its own record.
    return f"{record.version_id}#deleted" if record.kind is VersionKind.DELETED else record.version_id


def _fleet_key(bucket: str, key: str) -> dict[str, Any]:
    return {"pk": {"S": f"fleet#{bucket}"}, "sk": {"S": key}}


def _count_values(counts: ChangeCounts) -> tuple[int, ...]:
    return (
        counts.resources_added,
        counts.resources_changed,
        counts.resources_removed,
        counts.outputs_added,
        counts.outputs_changed,
        counts.outputs_removed,
    )


def _version(bucket: str, item: dict[str, Any]) -> VersionRecord:
    counts = [number(item, name) for name in _COUNTS]
    return VersionRecord(
        bucket=bucket,
        key=text(item, "key") or "",
        workspace=text(item, "workspace") or "default",
        version_id=text(item, "version_id") or "",
        kind=VersionKind(text(item, "kind")),
        written_at=moment(item, "written_at") or datetime.fromtimestamp(0, UTC),
        serial=number(item, "serial"),
        lineage=text(item, "lineage"),
        terraform_version=text(item, "terraform_version"),
        size=number(item, "size"),
        writer=Writer(
            who=text(item, "who"),
            operation=text(item, "operation"),
            lock_id=text(item, "lock_id"),
            principal=text(item, "principal"),
        ),
        resource_count=number(item, "resources"),
        output_count=number(item, "outputs"),
        changes=ChangeCounts(*(count or 0 for count in counts)) if any(c is not None for c in counts) else None,
        previous_version_id=text(item, "previous_version_id"),
        severity=text(item, "severity"),
        notification_id=text(item, "notification_id"),
        reason=text(item, "reason"),
        index_stored=flag(item, "index_stored"),
        backfilled=flag(item, "backfilled"),
        changed_addresses=strings(item, "changed") | _changes_of(text(item, "changes")),
        changed_addresses_overflow=flag(item, "changed_overflow"),
    )


# A record's changed addresses are one string, `changes`: each entry (`+address`, `~address`, `-address`) on a line of
# its own, with a line break before the first and after the last, so that one `contains` finds an entry. One string
# rather than a set of hundreds: DynamoDB's own JSON, and so each reader's, spends its work per element. An entry
# holding a line break (a hand-made state's module may) is written as JSON, which begins with a quote where an entry
# cannot. Records written before keep a string set, `changed`, which is read as well.
_SIGNS = {"a": "+", "c": "~", "r": "-"}


def _changes_line(entry: str) -> str:
    return json.dumps(entry) if "\n" in entry or entry.startswith('"') else entry


def _changes_text(entries: frozenset[str]) -> str | None:
    if not entries:
        return None
    return "\n" + "\n".join(map(_changes_line, sorted(entries))) + "\n"


def _changes_of(changes: str | None) -> frozenset[str]:
    if not changes:
        return frozenset()
    return frozenset(json.loads(line) if line.startswith('"') else line for line in changes.split("\n") if line)


def _fleet_entry(bucket: str, item: dict[str, Any]) -> FleetEntry:
    kind = text(item, "kind")
    lock = item.get("lock", {}).get("M")
    if lock and text(item, "lock_id") == text(item, "released_lock_id"):
        lock = None  # the last lock seen taken was seen released
    return FleetEntry(
        bucket=bucket,
        key=text(item, "sk") or "",
        workspace=text(item, "workspace") or "default",
        version_id=text(item, "version_id"),
        kind=VersionKind(kind) if kind else None,
        written_at=moment(item, "written_at"),
        serial=number(item, "serial"),
        lineage=text(item, "lineage"),
        terraform_version=text(item, "terraform_version"),
        size=number(item, "size"),
        resource_count=number(item, "resources"),
        writer=Writer(who=text(item, "who"), operation=text(item, "operation"), principal=text(item, "principal")),
        lock={name: str(value.get("S", "")) for name, value in lock.items()} if lock else None,
        history_complete=flag(item, "history_complete") if "history_complete" in item else True,
    )
