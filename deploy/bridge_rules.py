"""`events: "eventbridge"` backends: the rule on the guardian's default bus, and forwarding rules (with their role and
the bus's permission) in each other account or region such backends are in."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.backend_session import backend_session
from chalicelib.settings import Settings
from deploy.changes import Plan
from deploy.errors import AwsCallError, RefusedError, aws_call
from deploy.function_policy import FunctionPolicy
from deploy.sources import (
    BRIDGE_RULE_DESCRIPTION,
    BRIDGE_TARGET_ID,
    FORWARDING_POLICY_NAME,
    FORWARDING_ROLE_TRUST,
    Where,
    bridge_backends,
    bridge_permission,
    bridge_rule_name,
    bridge_rule_pattern,
    bus_statement_id,
    default_bus_arn,
    forwarding_groups,
    forwarding_role_name,
    forwarding_role_policy,
    forwarding_rule_name,
    forwarding_target,
    pattern_text,
)
from deploy.stage_config import StageConfig

if TYPE_CHECKING:
    from boto3.session import Session


class BridgeRules:
    """The EventBridge rules of the `events: "eventbridge"` backends: on the guardian's default bus, and forwarding
    ones in each other account or region those backends are in."""

    def __init__(self, session: Session, stage: StageConfig, home: Where, function_arn: str,
                 policy: FunctionPolicy) -> None:  # fmt: skip
        self._session, self._stage, self._home = session, stage, home
        self._function_arn, self._policy = function_arn, policy

    def plan(self, plan: Plan) -> None:
        backends = bridge_backends(self._stage)
        events: Any = self._session.client("events")
        name = bridge_rule_name(self._stage)
        if not backends:
            self._plan_rule_removal(plan, events, name)
            return
        target = {"Id": BRIDGE_TARGET_ID, "Arn": self._function_arn}
        buckets = [backend.state_bucket for backend in backends]
        rule_arn = self._plan_rule(plan, events, self._home, name=name, pattern=bridge_rule_pattern(buckets),
                                   target=target, bus="the guardian's default bus")  # fmt: skip
        self._policy.plan(plan, bridge_permission(rule_arn), f"the rule {name}")
        for where, group in forwarding_groups(self._stage, self._home).items():
            self._plan_forwarding(plan, where, group)

    def _plan_forwarding(self, plan: Plan, where: Where, group: list[Settings]) -> None:
        first = group[0]
        if where.account != self._home.account and first.backend.role_arn is None:
            raise RefusedError(
                f"backend {first.backend.name} is in account {where.account}, but names no role_arn to reach it"
            )
        session = backend_session(self._session, role_arn=first.backend.role_arn, region=where.region)
        role_arn = self._plan_forwarding_role(plan, session, where)
        events: Any = session.client("events")
        name = forwarding_rule_name(self._stage)
        buckets = [backend.state_bucket for backend in group]
        self._plan_rule(plan, events, where, name=name, pattern=bridge_rule_pattern(buckets),
                        target=forwarding_target(self._home, role_arn),
                        bus=f"the default bus of account {where.account} in {where.region}")  # fmt: skip
        if where.account != self._home.account:
            self._plan_bus_permission(plan, where.account)

    def _plan_rule(self, plan: Plan, events: Any, where: Where, *, name: str, pattern: dict[str, Any],
                   target: dict[str, Any], bus: str) -> str:  # fmt: skip
        """Plan the rule and its one target of ours; the rule's ARN."""
        rule_arn = f"arn:aws:events:{where.region}:{where.account}:rule/{name}"
        with aws_call(f"read the rule {name} of {bus}"):
            try:
                rule = events.describe_rule(Name=name)
            except events.exceptions.ResourceNotFoundException:
                rule = None
            targets = events.list_targets_by_rule(Rule=name).get("Targets", []) if rule else []
        if rule is None or json.loads(rule.get("EventPattern") or "{}") != pattern or rule.get("State") != "ENABLED":

            def put_rule() -> None:
                with aws_call(f"write the rule {name} of {bus}"):
                    events.put_rule(Name=name, EventPattern=pattern_text(pattern), State="ENABLED",
                                    Description=BRIDGE_RULE_DESCRIPTION)  # fmt: skip

            buckets = ", ".join(pattern["detail"]["bucket"]["name"])
            plan.add(f"events: {'create' if rule is None else 'update'} the rule {name} on {bus}: S3 object "
                     f"created and deleted events of {buckets}", put_rule)  # fmt: skip
        found = next((item for item in targets if item.get("Id") == target["Id"]), None)
        if found is None or any(found.get(key) != value for key, value in target.items()):

            def put_target() -> None:
                with aws_call(f"set the target of the rule {name} of {bus}"):
                    answer = events.put_targets(Rule=name, Targets=[target])
                if answer.get("FailedEntryCount"):
                    raise AwsCallError(f"could not set the target of the rule {name}: {answer.get('FailedEntries')}")

            plan.add(f"events: rule {name} on {bus}: target {target['Arn']}", put_target)
        return rule_arn

    def _plan_rule_removal(self, plan: Plan, events: Any, name: str) -> None:
        with aws_call(f"read the rule {name}"):
            try:
                events.describe_rule(Name=name)
            except events.exceptions.ResourceNotFoundException:
                return
            targets = events.list_targets_by_rule(Rule=name).get("Targets", [])

        def remove() -> None:
            with aws_call(f"remove the rule {name}"):
                if targets:
                    events.remove_targets(Rule=name, Ids=[target["Id"] for target in targets])
                events.delete_rule(Name=name)

        plan.add(f"events: remove the rule {name} (no backend's events come through EventBridge now)", remove)

    def _plan_forwarding_role(self, plan: Plan, session: Session, where: Where) -> str:
        iam: Any = session.client("iam")
        name = forwarding_role_name(self._stage)
        policy = forwarding_role_policy(self._home)
        with aws_call(f"read the role {name} of account {where.account}"):
            try:
                iam.get_role(RoleName=name)
                exists = True
            except iam.exceptions.NoSuchEntityException:
                exists = False
            try:
                document = iam.get_role_policy(RoleName=name, PolicyName=FORWARDING_POLICY_NAME)["PolicyDocument"]
            except iam.exceptions.NoSuchEntityException:
                document = None
        if isinstance(document, str):
            from urllib.parse import unquote  # noqa: PLC0415 - IAM may answer URL-encoded

            document = json.loads(unquote(document))

        def create() -> None:
            with aws_call(f"create the role {name} in account {where.account}"):
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(FORWARDING_ROLE_TRUST),
                                Description="EventBridge forwards S3 object events to the guardian's bus")  # fmt: skip

        def put_policy() -> None:
            with aws_call(f"set the policy of the role {name} in account {where.account}"):
                iam.put_role_policy(RoleName=name, PolicyName=FORWARDING_POLICY_NAME, PolicyDocument=json.dumps(policy))

        if not exists:
            plan.add(f"iam: create the role {name} in account {where.account} (EventBridge's, to forward events)",
                     create)  # fmt: skip
        if document != policy:
            plan.add(f"iam: role {name} of account {where.account}: allow PutEvents on {default_bus_arn(self._home)}",
                     put_policy)  # fmt: skip
        return f"arn:aws:iam::{where.account}:role/{name}"

    def _plan_bus_permission(self, plan: Plan, account: str) -> None:
        events: Any = self._session.client("events")
        sid = bus_statement_id(account)
        with aws_call("read the policy of the guardian's default bus"):
            policy = json.loads(events.describe_event_bus(Name="default").get("Policy") or "{}")
        if any(statement.get("Sid") == sid for statement in policy.get("Statement", [])):
            return

        def put() -> None:
            with aws_call(f"let account {account} put events on the guardian's default bus"):
                events.put_permission(EventBusName="default", Action="events:PutEvents", Principal=account,
                                      StatementId=sid)  # fmt: skip

        plan.add(f"events: let account {account} put events on the default bus ({sid})", put)
