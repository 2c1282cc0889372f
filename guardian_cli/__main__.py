"""`tfguardian`: states, history, events, versions, diff, rollback, locks, unlock and repair-digest, over the API.

It signs requests with SigV4 from your usual AWS credentials (API Gateway with IAM authorization), or talks to
the local stack unsigned. Tables for people, `--json` for scripts; a refusal exits non-zero. The global options
(`--endpoint`, `--region`, `--json`, `--act-as`) go before or after the command. Text from the API (keys, `Who`,
addresses, messages) is printed with control characters shown as escapes, so it cannot steer the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

EXIT_REFUSED = 1
EXIT_USAGE = 2
LOCAL = ("127.0.0.1", "localhost")
ACT_AS_HEADER = "X-Guardian-Act-As"  # honoured by the local stack only; a deployed API ignores it
# The twin of chalicelib.domain.text.terminal_safe (the command is installed without chalicelib; a test keeps the
# two equal): C0 with ESC, DEL, C1, line and paragraph separators and bidi controls are shown as escapes.
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` with every character that could move the cursor, change colours or reorder the line escaped."""
    return _TERMINAL_UNSAFE.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would carry the signature and any `--act-as` header elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects())


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", f"HTTP {status}"))
        self.status = status
        self.body = body


class Api:
    def __init__(self, endpoint: str, region: str | None, act_as: str | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.act_as = act_as

    def call(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        url = self.endpoint + path + (("?" + urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if urlsplit(url).hostname not in LOCAL:
            all_headers = self._signed(method, url, data, all_headers)
        elif self.act_as:
            all_headers[ACT_AS_HEADER] = self.act_as
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
        try:
            with _OPENER.open(request, timeout=120) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            try:
                error = json.load(exc)
            except ValueError:
                error = {"error": "http", "message": f"HTTP {exc.code}"}
            raise ApiError(exc.code, error if isinstance(error, dict) else {"message": str(error)}) from None

    def _signed(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        import botocore.session  # noqa: PLC0415 - only a deployed API needs credentials
        from botocore.auth import SigV4Auth  # noqa: PLC0415
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415

        session = botocore.session.get_session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ApiError(0, {"error": "no_credentials", "message": "no AWS credentials found to sign with"})
        region = self.region or session.get_config_variable("region") or "us-east-1"
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(credentials, "execute-api", region).add_auth(request)
        return dict(request.headers.items())


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [
        [terminal_safe(str(row[column])) if row.get(column) is not None else "-" for column in columns] for row in rows
    ]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(widths[i]) for i, column in enumerate(columns))]
    lines += ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)) for line in cells]
    return "\n".join(lines)


def show_diff(diff: dict[str, Any]) -> str:
    lines = []
    for kind in ("resources", "outputs"):
        for sign, name in (("+", "added"), ("~", "changed"), ("-", "removed")):
            lines += [f"  {sign} {terminal_safe(str(address))}" for address in diff.get(kind, {}).get(name, [])]
    return "\n".join(lines) or "  (no resource or output changes)"


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes, before or after it; after it, only what is given overrides."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--endpoint", default=default(os.environ.get("TFGUARDIAN_ENDPOINT", "http://127.0.0.1:8055")),
                        help="the API's base URL (default $TFGUARDIAN_ENDPOINT or the local stack)")  # fmt: skip
    parser.add_argument("--region", default=default(os.environ.get("AWS_REGION")), help="region to sign for")
    parser.add_argument("--json", action="store_true", default=default(False), help="print the API's JSON answer")
    parser.add_argument("--act-as", metavar="ARN", default=default(os.environ.get("TFGUARDIAN_ACT_AS") or None),
                        help=f"local stack only: act as this IAM principal (sends {ACT_AS_HEADER}, which the local "
                        "stack honours and a deployed API ignores; default $TFGUARDIAN_ACT_AS)")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    """The command line: global options before or after each command."""
    parser = argparse.ArgumentParser(prog="tfguardian", description=__doc__.splitlines()[0] if __doc__ else None)
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common])

    states = command("states", "the fleet: each state's latest version, writer and lock holder")
    states.add_argument("--prefix", default="")
    _paging(states)
    versions = command("versions", "a state's versions, newest first")
    versions.add_argument("key")
    versions.add_argument("--address", help="only the versions that added, changed or removed this resource")
    _paging(versions)
    history = command("history", "a state's versions with who wrote each and what it changed")
    history.add_argument("key")
    _paging(history)
    events = command("events", "the audit trail, newest first")
    events.add_argument("--key", help="one state's events")
    events.add_argument("--prefix", help="states whose keys start with this")
    events.add_argument("--type", help="e.g. state.changed, lock.force_released")
    events.add_argument("--actor", help="a lock holder (Who), an S3 principal or an API caller")
    events.add_argument("--since", help="RFC3339 time, e.g. 2026-11-26T11:00:00Z")
    events.add_argument("--until", help="RFC3339 time")
    _paging(events)
    diff = command("diff", "resource and output changes between two versions")
    diff.add_argument("key")
    diff.add_argument("from_version")
    diff.add_argument("to_version")
    rollback = command("rollback", "restore an earlier version (shows the diff, asks first)")
    rollback.add_argument("key")
    target = rollback.add_mutually_exclusive_group(required=True)
    target.add_argument("--version-id")
    target.add_argument("--serial", type=int)
    target.add_argument("--as-of", help="RFC3339 time, e.g. 2026-11-26T11:00:00Z")
    rollback.add_argument("--reason", default="")
    rollback.add_argument("--allow-lineage-change", action="store_true")
    rollback.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    command("locks", "held locks with the reaper's verdict")
    unlock = command("unlock", "verified force-unlock: the lock ID must match")
    unlock.add_argument("key")
    unlock.add_argument("lock_id")
    unlock.add_argument("--reason", default="", help="said in the lock.force_released notification")
    repair = command("repair-digest", "set the digest to the MD5 of the current bytes")
    repair.add_argument("key")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.act_as:
        if urlsplit(args.endpoint).hostname not in LOCAL:
            parser.error(
                "--act-as (or TFGUARDIAN_ACT_AS) works only with the local stack (an endpoint on 127.0.0.1 or "
                "localhost): a deployed API knows who you are from your AWS credentials"
            )
        if not args.act_as.startswith("arn:") or not args.act_as.isprintable():
            parser.error("--act-as takes an IAM principal ARN, e.g. arn:aws:iam::123456789012:role/deployer")
    api = Api(args.endpoint, args.region, args.act_as)
    try:
        return run(api, args)
    except ApiError as exc:
        print(json.dumps(exc.body) if args.json else f"refused: {terminal_safe(str(exc))}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:
        print(f"tfguardian: cannot reach {terminal_safe(args.endpoint)}: {terminal_safe(str(exc))}", file=sys.stderr)
        return EXIT_REFUSED


def _paging(command: argparse.ArgumentParser) -> None:
    command.add_argument("--limit", type=int, help="at most this many per page (the API's default: 100)")
    command.add_argument("--next", help="the page the previous answer's `next` names")
    command.add_argument("--all", action="store_true", help="every page, one after the other")


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


def _changes(version: dict[str, Any]) -> str | None:
    changes = (version.get("changes") or {}).get("resources")
    return f"+{changes['added']} ~{changes['changed']} -{changes['removed']}" if changes else None


def run(api: Api, args: argparse.Namespace) -> int:
    def out(answer: dict[str, Any], text: str) -> int:
        print(json.dumps(answer, indent=2) if args.json else text)
        return 0

    if args.command == "states":
        answer = pages(api, "/states", {"prefix": args.prefix}, "states", args)
        rows = [_with_writer(state) | {"holder": (state.get("lock") or {}).get("who")} for state in answer["states"]]
        columns = ["key", "workspace", "serial", "last_written_at", "who", "resource_count", "holder"]
        return out(answer, table(rows, columns))
    if args.command in ("versions", "history"):
        query = {"key": args.key, "address": getattr(args, "address", None) or ""}
        answer = pages(api, "/states/versions", query, "versions", args)
        rows = [_with_writer(version) | {"changes": _changes(version)} for version in answer["versions"]]
        columns = (
            ["version_id", "written_at", "serial", "kind", "who", "operation", "principal", "changes"]
            if args.command == "history"
            else ["version_id", "written_at", "serial", "kind", "size", "who", "changes", "recorded"]
        )
        return out(answer, table(rows, columns))
    if args.command == "events":
        query = {name: getattr(args, name) or "" for name in ("key", "prefix", "type", "actor", "since", "until")}
        answer = pages(api, "/events", query, "events", args)
        rows = [
            {**event, "by": event.get("caller") or event.get("who") or event.get("principal")}
            for event in answer["events"]
        ]
        return out(answer, table(rows, ["occurred_at", "type", "key", "by", "summary"]))
    if args.command == "diff":
        answer = api.call("GET", "/states/diff", {"key": args.key, "from": args.from_version, "to": args.to_version})
        return out(answer, show_diff(answer))
    if args.command == "locks":
        answer = api.call("GET", "/locks")
        rows = [{**lock, **(lock.get("lock") or {})} for lock in answer["locks"]]
        return out(answer, table(rows, ["key", "source", "id", "who", "operation", "age_s", "verdict"]))
    if args.command == "unlock":
        answer = api.call("DELETE", "/locks", {"key": args.key, "lock_id": args.lock_id, "reason": args.reason})
        return out(answer, f"released: {terminal_safe(', '.join(map(str, answer['released'])))}")
    if args.command == "repair-digest":
        answer = api.call("POST", "/states/digest", {"key": args.key})
        return out(answer, terminal_safe(f"digest of {answer['key']} set to {answer['digest']}"))
    body = {"key": args.key, "reason": args.reason, "allow_lineage_change": args.allow_lineage_change}
    body.update({"version_id": args.version_id} if args.version_id else {})
    body.update({"serial": args.serial} if args.serial is not None else {})
    body.update({"as_of": args.as_of} if args.as_of else {})
    plan = api.call("POST", "/rollback", body={**body, "dry_run": True})
    if not args.json:
        before, after = plan["serial"]["before"], plan["serial"]["after"]
        heading = terminal_safe(f"{args.key}: serial {before} → {after} from version {plan['from_version_id']}")
        print(f"{heading}\n{show_diff(plan['diff'])}")
    if not args.yes and input("Roll back? [y/N] ").strip().lower() not in ("y", "yes"):
        print("nothing changed", file=sys.stderr)
        return EXIT_REFUSED
    answer = api.call("POST", "/rollback", body=body, headers={"Idempotency-Key": os.urandom(16).hex()})
    done = f"rolled back: new version {answer['new_version_id']}, serial {answer['serial']['after']}"
    return out(answer, terminal_safe(done))


if __name__ == "__main__":
    sys.exit(main())
