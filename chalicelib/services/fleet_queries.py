"""`Fleet`: the answers that span backends (the states, the locks, the reaper, the audit trail), each backend within
the caller's scope there, every item naming its backend, a page at a time across them in the order configured."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.access import Scope
from chalicelib.domain.history import decode_token, encode_token
from chalicelib.errors import InvalidRequestError
from chalicelib.services.hand_repairs import HandRepairs
from chalicelib.services.state_queries import StateQueries

BACKENDS = "backends"


@dataclass(frozen=True)
class BackendView:
    """One backend as one caller sees it."""

    name: str
    bucket: str
    queries: StateQueries
    repairs: HandRepairs
    scope: Scope


class Fleet:
    """The backends a request covers, in order; only those where the caller may take the request's action."""

    def __init__(self, views: list[BackendView]) -> None:
        self._views = views
        self._by_bucket = {view.bucket: view for view in views}

    def states(self, prefix: str, *, limit: int, next_token: str | None, workspace: str | None) -> dict[str, Any]:
        """The states of each backend in turn; `next` names the backend and the position within it."""
        names = [view.name for view in self._views]
        position = decode_token(next_token, expect=BACKENDS) if next_token else {"backend": names[0], "next": None}
        start = position.get("backend")
        if not isinstance(start, str) or start not in names:
            raise InvalidRequestError("next is not a token this listing gave")
        states: list[dict[str, Any]] = []
        inner = position.get("next")
        for view in self._views[names.index(start) :]:
            page = view.queries.states(prefix, view.scope, limit=limit - len(states), next_token=inner,
                                       workspace=workspace)  # fmt: skip
            states += [{**state, "backend": view.name} for state in page["states"]]
            inner = None
            if page["next"] is not None:
                return {"states": states, "next": encode_token({"for": BACKENDS, "backend": view.name,
                                                                "next": page["next"]})}  # fmt: skip
            if len(states) >= limit:
                following = names.index(view.name) + 1
                more = following < len(names)
                token = encode_token({"for": BACKENDS, "backend": names[following], "next": None}) if more else None
                return {"states": states, "next": token}
        return {"states": states, "next": None}

    def locks(self, now: datetime) -> list[dict[str, Any]]:
        return [{**lock, "backend": view.name} for view in self._views for lock in view.queries.locks(now, view.scope)]

    def reap(self, now: datetime, dry_run: bool) -> dict[str, Any]:
        """The reaper of each backend on the caller's locks; a backend's dry-run setting is a ceiling there."""
        locks: list[dict[str, Any]] = []
        ceilinged: list[str] = []
        for view in self._views:
            answer = view.repairs.reap(now, dry_run, view.scope)
            locks += [{**lock, "backend": view.name, "dry_run": answer["dry_run"]} for lock in answer["locks"]]
            if "dry_run_by" in answer:
                ceilinged.append(view.name)
        result: dict[str, Any] = {"dry_run": dry_run or len(ceilinged) == len(self._views), "locks": locks}
        if ceilinged:
            result["dry_run_by"] = "GUARDIAN_REAP_DRY_RUN"
            result["dry_run_backends"] = ceilinged
        return result

    def events(self, run: Callable[[Scope, Callable[[str, str], bool]], dict[str, Any]]) -> dict[str, Any]:
        """The audit trail across the backends (one pass over its day partitions): an event shows where the caller
        may read its backend's key."""

        def admits(bucket: str, key: str) -> bool:
            view = self._by_bucket.get(bucket)
            return view is not None and view.scope.admits(key)

        answer = run(self._views[0].scope, admits)
        return {**answer, "events": [self.named(event) for event in answer["events"]]}

    def named(self, item: dict[str, Any]) -> dict[str, Any]:
        """`item` with the name of the backend of its bucket."""
        view = self._by_bucket.get(str(item.get("bucket")))
        return {**item, "backend": view.name if view else None}
