"""`tfguardian`: states, versions, diff, rollback, locks, unlock and repair-digest, over the guardian's API.

It signs requests with SigV4 from your usual AWS credentials (API Gateway with IAM authorization), or talks to
the local stack unsigned. Tables for people, `--json` for scripts; a refusal exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

EXIT_REFUSED = 1
EXIT_USAGE = 2
LOCAL = ("127.0.0.1", "localhost")


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", f"HTTP {status}"))
        self.status = status
        self.body = body


class Api:
    def __init__(self, endpoint: str, region: str | None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region

    def call(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        url = self.endpoint + path + (("?" + urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if urlsplit(url).hostname not in LOCAL:
            all_headers = self._signed(method, url, data, all_headers)
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
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
    cells = [[str(row.get(column, "") if row.get(column) is not None else "-") for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(widths[i]) for i, column in enumerate(columns))]
    lines += ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)) for line in cells]
    return "\n".join(lines)


def show_diff(diff: dict[str, Any]) -> str:
    lines = []
    for kind in ("resources", "outputs"):
        for sign, name in (("+", "added"), ("~", "changed"), ("-", "removed")):
            lines += [f"  {sign} {address}" for address in diff.get(kind, {}).get(name, [])]
    return "\n".join(lines) or "  (no resource or output changes)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfguardian", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoint", default=os.environ.get("TFGUARDIAN_ENDPOINT", "http://127.0.0.1:8055"),
                        help="the API's base URL (default $TFGUARDIAN_ENDPOINT or the local stack)")  # fmt: skip
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"), help="region to sign for")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    commands = parser.add_subparsers(dest="command", required=True)
    states = commands.add_parser("states", help="list state objects")
    states.add_argument("--prefix", default="")
    versions = commands.add_parser("versions", help="a state's versions, newest first")
    versions.add_argument("key")
    diff = commands.add_parser("diff", help="resource and output changes between two versions")
    diff.add_argument("key")
    diff.add_argument("from_version")
    diff.add_argument("to_version")
    rollback = commands.add_parser("rollback", help="restore an earlier version (shows the diff, asks first)")
    rollback.add_argument("key")
    target = rollback.add_mutually_exclusive_group(required=True)
    target.add_argument("--version-id")
    target.add_argument("--serial", type=int)
    target.add_argument("--as-of", help="RFC3339 time, e.g. 2026-11-26T11:00:00Z")
    rollback.add_argument("--reason", default="")
    rollback.add_argument("--allow-lineage-change", action="store_true")
    rollback.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    commands.add_parser("locks", help="held locks with the reaper's verdict")
    unlock = commands.add_parser("unlock", help="verified force-unlock: the lock ID must match")
    unlock.add_argument("key")
    unlock.add_argument("lock_id")
    repair = commands.add_parser("repair-digest", help="set the digest to the MD5 of the current bytes")
    repair.add_argument("key")
    args = parser.parse_args(argv)
    api = Api(args.endpoint, args.region)
    try:
        return run(api, args)
    except ApiError as exc:
        print(json.dumps(exc.body) if args.json else f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:
        print(f"tfguardian: cannot reach {args.endpoint}: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def run(api: Api, args: argparse.Namespace) -> int:
    def out(answer: dict[str, Any], text: str) -> int:
        print(json.dumps(answer, indent=2) if args.json else text)
        return 0

    if args.command == "states":
        answer = api.call("GET", "/states", {"prefix": args.prefix} if args.prefix else None)
        return out(answer, table(answer["states"], ["key", "workspace", "serial", "size", "last_modified", "locked"]))
    if args.command == "versions":
        answer = api.call("GET", "/states/versions", {"key": args.key})
        columns = ["version_id", "last_modified", "serial", "size", "current", "delete_marker"]
        return out(answer, table(answer["versions"], columns))
    if args.command == "diff":
        answer = api.call("GET", "/states/diff", {"key": args.key, "from": args.from_version, "to": args.to_version})
        return out(answer, show_diff(answer))
    if args.command == "locks":
        answer = api.call("GET", "/locks")
        rows = [{**lock, **(lock.get("lock") or {})} for lock in answer["locks"]]
        return out(answer, table(rows, ["key", "source", "id", "who", "operation", "age_s", "verdict"]))
    if args.command == "unlock":
        answer = api.call("DELETE", "/locks", {"key": args.key, "lock_id": args.lock_id})
        return out(answer, f"released: {', '.join(answer['released'])}")
    if args.command == "repair-digest":
        answer = api.call("POST", "/states/digest", {"key": args.key})
        return out(answer, f"digest of {answer['key']} set to {answer['digest']}")
    body = {"key": args.key, "reason": args.reason, "allow_lineage_change": args.allow_lineage_change}
    body.update({"version_id": args.version_id} if args.version_id else {})
    body.update({"serial": args.serial} if args.serial is not None else {})
    body.update({"as_of": args.as_of} if args.as_of else {})
    plan = api.call("POST", "/rollback", body={**body, "dry_run": True})
    if not args.json:
        before, after = plan["serial"]["before"], plan["serial"]["after"]
        print(
            f"{args.key}: serial {before} → {after} from version {plan['from_version_id']}\n{show_diff(plan['diff'])}"
        )
    if not args.yes and input("Roll back? [y/N] ").strip().lower() not in ("y", "yes"):
        print("nothing changed", file=sys.stderr)
        return EXIT_REFUSED
    answer = api.call("POST", "/rollback", body=body, headers={"Idempotency-Key": os.urandom(16).hex()})
    return out(answer, f"rolled back: new version {answer['new_version_id']}, serial {answer['serial']['after']}")


if __name__ == "__main__":
    sys.exit(main())
