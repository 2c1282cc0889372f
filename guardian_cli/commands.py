"""Each `tfguardian` command: the API calls it makes and what it prints (a table for people, JSON under `--json`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from guardian_cli.client import Api
from guardian_cli.errors import DeclinedError, NotFoundError
from guardian_cli.output import changes, duration, show_diff, table, terminal_safe
from guardian_cli.prompt import confirm
from guardian_cli.ui_server import command as serve_page

MAX_LOOKUP_PAGES = 100  # how far back a serial or a missing version is looked for, 1,000 versions a page


def print_answer(args: argparse.Namespace, answer: dict[str, Any], text: str) -> None:
    print(json.dumps(answer, indent=2) if args.json else text)


def pages(api: Api, path: str, query: dict[str, str], items: str, args: argparse.Namespace) -> dict[str, Any]:
    """One page of a listing, or with `--all` every page joined; a `next` left over is said on stderr."""
    query = {name: value for name, value in query.items() if value}
    if args.limit:
        query["limit"] = str(args.limit)
    if args.next:
        query["next"] = args.next
    answer = api.call("GET", path, query)
    while args.all and answer.get("next"):
        more = api.call("GET", path, {**query, "next": answer["next"]})
        answer = {**more, items: answer[items] + more[items]}
    if answer.get("next") and not args.json:
        print(f"(more: --next {answer['next']}, or --all)", file=sys.stderr)
    return answer


def _with_writer(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, **(row.get("writer") or {})}


def states(api: Api, args: argparse.Namespace) -> None:
    answer = pages(api, "/states", {"prefix": args.prefix}, "states", args)
    rows = [_with_writer(state) | {"holder": (state.get("lock") or {}).get("who")} for state in answer["states"]]
    columns = [("key", "key"), ("workspace", "workspace"), ("serial", "serial"), ("last_written_at", "written at"),
               ("who", "written by"), ("resource_count", "resources"), ("terraform_version", "terraform"),
               ("holder", "locked by")]  # fmt: skip
    print_answer(args, answer, table(rows, _with_backend(columns, rows)))


def _with_backend(columns: list[tuple[str, str]], rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """A backend column first where the rows come from more than one backend."""
    return [("backend", "backend"), *columns] if len({row.get("backend") for row in rows}) > 1 else columns


def versions(api: Api, args: argparse.Namespace) -> None:
    query = {"key": args.key, "address": getattr(args, "address", None) or ""}
    answer = pages(api, "/states/versions", query, "versions", args)
    rows = [_with_writer(version) | {"changes": changes(version)} for version in answer["versions"]]
    columns = (
        [("version_id", "version id"), ("written_at", "written at"), ("serial", "serial"), ("kind", "kind"),
         ("who", "written by"), ("operation", "operation"), ("principal", "S3 principal"), ("changes", "changes")]
        if args.command == "history"
        else [("version_id", "version id"), ("written_at", "written at"), ("serial", "serial"), ("kind", "kind"),
              ("size", "bytes"), ("who", "written by"), ("changes", "changes"), ("current", "current"),
              ("recorded", "recorded")]
    )  # fmt: skip
    print_answer(args, answer, table(rows, columns))


def events(api: Api, args: argparse.Namespace) -> None:
    query = {name: getattr(args, name) or "" for name in ("key", "prefix", "type", "actor", "since", "until")}
    answer = pages(api, "/events", query, "events", args)
    rows = [{**event, "by": event.get("caller") or event.get("who") or event.get("principal")}
            for event in answer["events"]]  # fmt: skip
    columns = [("occurred_at", "when"), ("type", "type"), ("key", "key"), ("by", "by"), ("summary", "summary")]
    print_answer(args, answer, table(rows, columns))


def diff(api: Api, args: argparse.Namespace) -> None:
    given = {"FROM": args.from_version, "TO": args.to_version}
    resolved = _version_ids(api, args.key, given)
    try:
        answer = api.call("GET", "/states/diff", {"key": args.key, "from": resolved["FROM"], "to": resolved["TO"]})
    except NotFoundError as exc:
        raise _which_is_missing(api, args.key, resolved) or exc from None
    from_serial, to_serial = (f" (serial {given[name]})" if given[name].isdigit() else "" for name in ("FROM", "TO"))
    heading = f"{args.key}: version {resolved['FROM']}{from_serial} → {resolved['TO']}{to_serial}"
    print_answer(args, answer, f"{terminal_safe(heading)}\n{show_diff(answer)}")


def _listed(api: Api, key: str) -> Iterator[dict[str, Any]]:
    """The key's versions, newest first, a page at a time."""
    query = {"key": key, "limit": "1000"}
    for _ in range(MAX_LOOKUP_PAGES):
        answer = api.call("GET", "/states/versions", query)
        yield from answer.get("versions") or []
        if not answer.get("next"):
            return
        query["next"] = answer["next"]


def _version_ids(api: Api, key: str, given: dict[str, str]) -> dict[str, str]:
    """Each argument as a version id: a serial (a whole number) is the newest version with that serial, as for
    `rollback --serial`; anything else is a version id already."""
    wanted = {name: int(value) for name, value in given.items() if value.isdigit()}
    resolved = {name: value for name, value in given.items() if name not in wanted}
    if not wanted:
        return resolved
    for version in _listed(api, key):
        for name, serial in list(wanted.items()):
            if version.get("serial") == serial and version.get("version_id"):
                resolved[name] = version["version_id"]
                del wanted[name]
        if not wanted:
            return resolved
    name, serial = next(iter(wanted.items()))
    raise NotFoundError(f"{key} has no version with serial {serial} ({name})")


def _which_is_missing(api: Api, key: str, version_ids: dict[str, str]) -> NotFoundError | None:
    """A not-found naming the argument whose version the key does not have; None if both are there."""
    missing = dict(version_ids)
    listed = False
    for version in _listed(api, key):
        listed = True
        for name, version_id in list(missing.items()):
            if version.get("version_id") == version_id:
                del missing[name]
        if not missing:
            return None
    if not listed:
        return NotFoundError(f"there is no state at {key}")
    return NotFoundError(
        "; ".join(f"{key} has no version {version_id} ({name})" for name, version_id in missing.items())
    )


def locks(api: Api, args: argparse.Namespace) -> None:
    answer = api.call("GET", "/locks")
    rows = [{**lock, **(lock.get("lock") or {})} for lock in answer["locks"]]
    for row in rows:
        row["age"] = duration(row["age_s"]) if isinstance(row.get("age_s"), int | float) else None
    columns = [("key", "key"), ("source", "source"), ("id", "lock id"), ("who", "held by"),
               ("operation", "operation"), ("age", "age"), ("verdict", "verdict")]  # fmt: skip
    print_answer(args, answer, table(rows, _with_backend(columns, rows)))


def unlock(api: Api, args: argparse.Namespace) -> None:
    answer = api.call("DELETE", "/locks", {"key": args.key, "lock_id": args.lock_id, "reason": args.reason})
    print_answer(args, answer, f"released: {terminal_safe(', '.join(map(str, answer.get('released') or [])))}")


def repair_digest(api: Api, args: argparse.Namespace) -> None:
    answer = api.call("POST", "/states/digest", {"key": args.key})
    print_answer(args, answer, terminal_safe(f"digest of {answer.get('key')} set to {answer.get('digest')}"))


def rollback(api: Api, args: argparse.Namespace) -> None:
    body = {"key": args.key, "reason": args.reason, "allow_lineage_change": args.allow_lineage_change}
    body.update({"version_id": args.version_id} if args.version_id else {})
    body.update({"serial": args.serial} if args.serial is not None else {})
    body.update({"as_of": args.as_of} if args.as_of else {})
    try:
        plan = api.call("POST", "/rollback", body={**body, "dry_run": True})
    except NotFoundError as exc:
        raise NotFoundError(f"{exc} ({_target(args)} of {args.key})", exc.body) from None
    target = _restoring(plan.get("target_serial", args.serial), plan.get("from_version_id"))
    serial = plan.get("serial") or {}
    before = serial.get("before") if serial.get("before") is not None else "none (no readable current state)"
    summary = terminal_safe(f"{args.key}: serial {before} → {serial.get('after')}, restoring {target}")
    if not args.json or not args.yes:  # under --json, on stderr with the question: stdout is the answer's alone
        print(f"{summary}\n{show_diff(plan.get('diff') or {})}", file=sys.stderr if args.json else sys.stdout)
    if not args.yes and not confirm(terminal_safe(f"Roll {args.key} back to {target}?")):
        raise DeclinedError(f"nothing changed: {args.key} was not rolled back")
    answer = api.call("POST", "/rollback", body=body, headers={"Idempotency-Key": os.urandom(16).hex()})
    restored = _restoring(answer.get("target_serial", plan.get("target_serial", args.serial)),
                          answer.get("from_version_id"))  # fmt: skip
    done = (
        f"rolled back {args.key}: restored {restored} as new version {answer.get('new_version_id')}, "
        f"serial {(answer.get('serial') or {}).get('after')}"
    )
    print_answer(args, answer, terminal_safe(done))


def _restoring(target_serial: object, version_id: object) -> str:
    """`serial 1 (version …)`, or `version …` when the serial is not known (an older API)."""
    return f"serial {target_serial} (version {version_id})" if target_serial is not None else f"version {version_id}"


def _target(args: argparse.Namespace) -> str:
    if args.version_id:
        return f"--version-id {args.version_id}"
    if args.serial is not None:
        return f"--serial {args.serial}"
    return f"--as-of {args.as_of}"


COMMANDS: dict[str, Callable[[Api, argparse.Namespace], None]] = {
    "states": states,
    "versions": versions,
    "history": versions,
    "events": events,
    "diff": diff,
    "rollback": rollback,
    "locks": locks,
    "unlock": unlock,
    "repair-digest": repair_digest,
    "ui": serve_page,
}
