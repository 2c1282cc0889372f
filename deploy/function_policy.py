"""The S3 handler's resource policy: the statements `harden` adds for S3 and EventBridge, and those left over."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from deploy.changes import Plan
from deploy.errors import AwsCallError, aws_call
from deploy.sources import PERMISSION_PREFIX


class FunctionPolicy:
    """The S3 handler's resource policy: the statements `harden` adds, and those of its left over from before."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._lambda, self._function = lambda_client, function_name
        with aws_call(f"read the resource policy of {function_name}"):
            try:
                policy = json.loads(lambda_client.get_policy(FunctionName=function_name)["Policy"])
            except lambda_client.exceptions.ResourceNotFoundException:
                policy = {}
        self._statements = {str(item.get("Sid")): item for item in policy.get("Statement", [])}
        self._wanted: set[str] = set()

    def plan(self, plan: Plan, permission: dict[str, Any], why: str) -> None:
        """Plan the statement `permission` (`AddPermission`'s arguments) unless the policy has it already."""
        sid = str(permission["StatementId"])
        self._wanted.add(sid)
        found = self._statements.get(sid)
        if found is not None and _statement_matches(found, permission):
            return
        if found is not None:
            plan.add(f"lambda: {self._function}: remove the outdated permission {sid}", self._remover(sid, found))

        def add() -> None:
            with aws_call(f"add the permission {sid} to {self._function}"):
                self._lambda.add_permission(FunctionName=self._function, **permission)

        plan.add(f"lambda: {self._function}: let {why} invoke it ({sid})", add)

    def plan_stale(self, plan: Plan) -> None:
        """Plan removing each statement of ours that no backend needs any more (a backend left the config)."""
        for sid, statement in sorted(self._statements.items()):
            if sid.startswith(PERMISSION_PREFIX) and sid not in self._wanted:
                plan.add(f"lambda: {self._function}: remove the permission {sid} (no backend needs it now)",
                         self._remover(sid, statement))  # fmt: skip

    def _remover(self, sid: str, planned: dict[str, Any]) -> Callable[[], None]:
        def remove() -> None:
            # Conditional: only the statement read when planning, at the policy revision it is read at now.
            with aws_call(f"remove the permission {sid} from {self._function}"):
                answer = self._lambda.get_policy(FunctionName=self._function)
                statements = {str(item.get("Sid")): item for item in json.loads(answer["Policy"])["Statement"]}
                if statements.get(sid) != planned:
                    raise AwsCallError(f"the permission {sid} of {self._function} changed meanwhile: run harden again")
                self._lambda.remove_permission(FunctionName=self._function, StatementId=sid,
                                               RevisionId=answer["RevisionId"])  # fmt: skip

        return remove


def _statement_matches(statement: dict[str, Any], permission: dict[str, Any]) -> bool:
    principal = statement.get("Principal", {})
    condition = statement.get("Condition", {})
    source_arn = condition.get("ArnLike", {}).get("AWS:SourceArn")
    source_account = condition.get("StringEquals", {}).get("AWS:SourceAccount")
    return bool(
        statement.get("Action") == permission["Action"]
        and (principal.get("Service") if isinstance(principal, dict) else principal) == permission["Principal"]
        and source_arn == permission.get("SourceArn")
        and source_account == permission.get("SourceAccount")
    )
