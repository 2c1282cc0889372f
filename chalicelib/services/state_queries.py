"""`StateQueries`: what the API tells about states, versions, diffs, locks and the audit trail, a page at a time.

Answers come from the guardian's records: a page costs one or two Queries whatever the size of the fleet. Versions
the records lack (written before the guardian watched, not yet backfilled) are listed from S3, marked so. No value
from a state is ever in an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.audit_table import AuditTable, day_partition, key_partition
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain.access import READ, Scope
from chalicelib.domain.history import AuditEvent, VersionRecord, decode_token, encode_token, order_second
from chalicelib.domain.notifications import rfc3339
from chalicelib.domain.state_index import StateDiff
from chalicelib.errors import InvalidRequestError, NotAStateError, ObjectNotFoundError
from chalicelib.services.hand_repairs import checked
from chalicelib.services.lock_reaper import LockReaper
from chalicelib.services.version_history import VersionHistory

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Day partitions of the audit trail one request of `GET /events` looks through before it answers with `next`.
DAYS_PER_PAGE = 31
AUDIT = "audit"


class StateQueries:
    """Read-only answers, every one within the caller's scope: a key outside it is refused, never listed."""

    def __init__(
        self,
        bucket: S3StateBucket,
        versions: VersionHistory,
        audit: AuditTable,
        reaper: LockReaper,
        *,
        retention: timedelta,
    ) -> None:
        self._bucket = bucket
        self._versions = versions
        self._audit = audit
        self._reaper = reaper
        self._retention = retention

    def states(
        self, prefix: str, scope: Scope, *, limit: int, next_token: str | None, workspace: str | None = None
    ) -> dict[str, Any]:
        """The fleet: each state's latest version, writer, size in resources and lock holder, in key order; with
        `workspace`, only that workspace's states (a page may then hold fewer than `limit`: follow `next`)."""
        scope.require(READ)
        page = self._versions.table.fleet(
            self._bucket.name, prefix=prefix, limit=limit, next_token=next_token, workspace=workspace
        )
        states = [entry.to_dict() for entry in page.items if scope.admits(entry.key)]
        for state in states:  # the names of the listing before the history, kept for scripts that read them
            state["last_modified"] = state["last_written_at"]
        return {"states": states, "next": page.next}

    def versions(
        self, key: str, scope: Scope, *, limit: int, next_token: str | None, address: str | None
    ) -> dict[str, Any]:
        """A state's versions newest first, each with its writer and change counts; with `address`, only those
        that added, changed or removed it."""
        checked(key, scope, READ)
        latest = self._versions.table.latest(self._bucket.name, key)
        from_s3 = next_token is not None and decode_token(next_token, expect=None).get("for") == _s3_listing(key)
        items: list[dict[str, Any]] = []
        oldest: str | None = None  # the second of the oldest version recorded, where S3's listing goes on
        if not from_s3:
            page = self._versions.table.versions(
                self._bucket.name, key, limit=limit, next_token=next_token, address=address
            )
            for record in page.items:
                if address is None or self._touches(record, address):
                    items.append(
                        {**record.to_dict(), "current": latest is not None and latest.version_id == record.version_id}
                    )
            if page.next is not None:
                return {"key": key, "versions": items, "next": page.next}
            oldest = order_second(page.items[-1].written_at) if page.items else None
        complete = latest is not None and latest.history_complete
        if complete or address is not None:
            if not items and latest is None:
                raise ObjectNotFoundError(f"there is no recorded state at {key}")
            return {"key": key, "versions": items, "next": None, "history_complete": complete}
        token = next_token or ""
        if not from_s3:
            # Listed from S3 next: versions older than the oldest recorded, and those of its second not recorded.
            seen = sorted(self._versions.table.version_ids_in(self._bucket.name, key, oldest)) if oldest else []
            token = encode_token({"for": _s3_listing(key), "s3": {}, "before": oldest, "seen": seen})
        unrecorded, following = self._unrecorded(key, token, limit - len(items))
        items += unrecorded
        if not items and following is None and latest is None:
            raise ObjectNotFoundError(f"there is no state at {key}")
        return {"key": key, "versions": items, "next": following, "history_complete": False}

    def _touches(self, record: VersionRecord, address: str) -> bool:
        touched = record.touches(address)
        if touched is not None:
            return touched
        # Too many changes to keep on the record: its stored index and its predecessor's say.
        after = self._versions.stored_index(record.key, record.version_id)
        before = self._versions.stored_index(record.key, record.previous_version_id)
        if after is None or not after.comparable_with(before):
            return True  # cannot tell: listed, rather than hide the version that may have changed it
        old, new = (before.resources if before else {}), after.resources
        return old.get(address) != new.get(address)

    def _unrecorded(self, key: str, token: str, room: int) -> tuple[list[dict[str, Any]], str | None]:
        """Versions older than the oldest recorded one, from S3, marked `recorded: false`."""
        position = decode_token(token, expect=_s3_listing(key))
        markers = position.get("s3") or {}
        before, seen = position.get("before"), set(position.get("seen") or [])
        if room <= 0:
            return [], token
        entries, following = self._bucket.versions_page(
            key, key_marker=markers.get("key"), version_marker=markers.get("version"), limit=room
        )
        items = []
        for entry in entries:
            second = order_second(entry.last_modified)
            if before and (second > before or (second == before and entry.version_id in seen)):
                continue  # recorded: listed from the records already
            item: dict[str, Any] = {
                "version_id": entry.version_id,
                "kind": "delete_marker" if entry.delete_marker else "written",
                "written_at": rfc3339(entry.last_modified),
                "size": entry.size,
                "serial": None,
                "lineage": None,
                "terraform_version": None,
                "writer": None,
                "changes": None,
                "current": entry.is_latest,
                "recorded": False,
            }
            if not entry.delete_marker:
                try:  # a ranged read of the head of the object: fast for any size
                    header = self._bucket.read_header(key, entry.version_id)
                    item.update(
                        serial=header.serial, lineage=header.lineage, terraform_version=header.terraform_version
                    )
                except NotAStateError:
                    item["kind"] = "unreadable"
            items.append(item)
        if following is None:
            return items, None
        return items, encode_token(
            {
                "for": _s3_listing(key),
                "s3": {"key": following[0], "version": following[1]},
                "before": before,
                "seen": sorted(seen),
            }
        )

    def diff(self, key: str, from_version: str, to_version: str, scope: Scope) -> dict[str, Any]:
        """The resource and output changes between two versions, from their stored indexes when both have one."""
        checked(key, scope, READ)
        if not from_version or not to_version:
            raise InvalidRequestError("give both from and to version ids")
        # A version against its predecessor: the record of the newer one says it all.
        recorded = self._versions.table.version(self._bucket.name, key, to_version)
        listed = recorded.changes_listed() if recorded and recorded.previous_version_id == from_version else None
        if listed is not None:
            return {"key": key, "from": from_version, "to": to_version, **listed}
        before, after = self._versions.stored_indexes(key, [from_version, to_version])
        if before is None or after is None or not after.comparable_with(before):
            before, after = self._bucket.read_indexes(key, from_version, to_version)
        diff = StateDiff.between(before, after)
        return {
            "key": key,
            "from": from_version,
            "to": to_version,
            "resources": {
                "added": diff.resources_added,
                "changed": diff.resources_changed,
                "removed": diff.resources_removed,
            },
            "outputs": {"added": diff.outputs_added, "changed": diff.outputs_changed, "removed": diff.outputs_removed},
        }

    def locks(self, now: datetime, scope: Scope) -> list[dict[str, Any]]:
        """Every held lock in the caller's scope with the reaper's verdict as of now; a dry run changes nothing."""
        scope.require(READ)
        answer = []
        for outcome in self._reaper.run(now, dry_run=True, scope=scope):
            item = outcome.to_dict()
            item["age_s"] = outcome.judgement.evidence.get("age_s")
            answer.append(item)
        return answer

    def events(
        self,
        scope: Scope,
        *,
        key: str | None,
        filters: dict[str, str],
        since: datetime | None,
        until: datetime | None,
        limit: int,
        next_token: str | None,
        now: datetime,
        admits: Callable[[str, str], bool] | None = None,
    ) -> dict[str, Any]:
        """The audit trail newest first: by state, or day by day across this backend's states (with `admits`, the
        events of every bucket and key it admits)."""
        scope.require(READ)
        if admits is None:
            admits = lambda bucket, key: bucket == self._bucket.name and scope.admits(key)  # noqa: E731
        position = decode_token(next_token, expect=AUDIT) if next_token else {}
        if key:
            checked(key, scope, READ)
            partition = key_partition(self._bucket.name, key)
            if position and position.get("pk") != partition:
                raise InvalidRequestError("next is not a token this listing gave")
            found, last = self._audit.query(
                partition, since=since, until=until, limit=limit, start_sk=position.get("sk"), filters=filters
            )
            following = encode_token({"for": AUDIT, "pk": partition, "sk": last}) if last else None
            return {"events": [e.to_dict() for e in found if scope.admits(e.key)], "next": following}
        newest = until or now
        oldest = max(since or now - self._retention, now - self._retention)
        day = _day(position["day"]) if "day" in position else newest
        start_sk = position.get("sk")
        events: list[AuditEvent] = []
        for _ in range(DAYS_PER_PAGE):
            if day.date() < oldest.date():
                return {"events": [e.to_dict() for e in events], "next": None}
            found, last = self._audit.query(
                day_partition(day), since=since, until=until, limit=limit - len(events), start_sk=start_sk,
                filters=filters,
            )  # fmt: skip
            events += [event for event in found if admits(event.bucket, event.key)]
            if last is not None:
                here = {"for": AUDIT, "day": day.strftime("%Y-%m-%d"), "sk": last}
                return {"events": [e.to_dict() for e in events], "next": encode_token(here)}
            day, start_sk = day - timedelta(days=1), None
            if len(events) >= limit:
                break
        if day.date() < oldest.date():
            return {"events": [e.to_dict() for e in events], "next": None}
        return {
            "events": [e.to_dict() for e in events],
            "next": encode_token({"for": AUDIT, "day": day.strftime("%Y-%m-%d")}),
        }


def page_limit(raw: str) -> int:
    """The `limit` query parameter: 1 to MAX_LIMIT, DEFAULT_LIMIT when absent."""
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequestError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def moment_param(raw: str, name: str) -> datetime | None:
    """A time query parameter in RFC3339 (`2026-11-26T11:00:00Z`); None when absent."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(f"{name} must be an RFC3339 time, e.g. 2026-11-26T11:00:00Z") from None
    if moment.tzinfo is None:
        raise InvalidRequestError(f"{name} must name its time zone, e.g. 2026-11-26T11:00:00Z")
    return moment.astimezone(UTC)


def _s3_listing(key: str) -> str:
    return f"s3-versions#{key}"


def _day(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC, hour=23, minute=59, second=59)
    except ValueError:
        raise InvalidRequestError("next is not a token this listing gave") from None
