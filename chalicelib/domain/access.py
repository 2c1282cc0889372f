"""Who may do what, on which states: the deployment's key prefixes and the caller rules, as one scope per caller.

A prefix is a path prefix: `team-a` (or `team-a/`) admits `team-a` and everything under `team-a/`, never
`team-ab/…`. A workspace state (`env:/staging/team-a/app.tfstate`, or under a custom `workspace_key_prefix`)
falls under the scope of its backend key (`team-a/app.tfstate`) as well as of its own key.

Caller rules map IAM principals to the prefixes they may touch and the actions they may take. The first rule whose
principal pattern matches the caller applies; a caller no rule matches may do nothing. Without rules, every caller
API Gateway let in (IAM is the API's only door) may do everything within the deployment's prefixes, which bound
every rule too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from chalicelib.domain.state_keys import StateKey
from chalicelib.errors import NotAllowedError, SettingsError

READ = "read"
ROLLBACK = "rollback"
UNLOCK = "unlock"
REPAIR = "repair"
REAP = "reap"
ACTIONS = (READ, ROLLBACK, UNLOCK, REPAIR, REAP)

DEPLOYMENT_PREFIXES_SETTING = "GUARDIAN_API_KEY_PREFIXES"
CALLER_RULES_SETTING = "GUARDIAN_API_CALLERS"
UNKNOWN_CALLER = "unknown caller"

# arn:aws:sts::<account>:assumed-role/<role name>/<session name>, as API Gateway passes a role's caller
_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")


def under(key: str, prefix: str) -> bool:
    """Whether `key` is `prefix` itself or a path below it: `team-a` admits `team-a/x`, never `team-ab/x`."""
    base = prefix.rstrip("/")
    if not base:
        return True
    return key == base or key.startswith(base + "/")


def principal_names(caller: str) -> tuple[str, ...]:
    """The names a caller's ARN is matched by: the ARN itself, and for an assumed role also the role's ARN.

    API Gateway passes `arn:aws:sts::<account>:assumed-role/<role>/<session>`; a rule names the role as IAM does,
    `arn:aws:iam::<account>:role/<role>` (a role's path is not in the assumed-role ARN, so it cannot be matched).
    """
    found = _ASSUMED_ROLE.match(caller)
    if found is None:
        return (caller,)
    partition, account, role = found.groups()
    return caller, f"arn:{partition}:iam::{account}:role/{role}"


@dataclass(frozen=True)
class CallerRule:
    """One entry of `GUARDIAN_API_CALLERS`: principals matching `principal` may take `actions` under `prefixes`."""

    position: int  # 1-based, as a person counts the entries of the setting
    principal: str  # a glob pattern of an IAM ARN, e.g. arn:aws:iam::123456789012:role/team-a-*
    prefixes: tuple[str, ...]  # empty: every key the deployment allows
    actions: frozenset[str]

    def matches(self, caller: str) -> bool:
        return any(fnmatchcase(name, self.principal) for name in principal_names(caller))

    @property
    def name(self) -> str:
        return f"{CALLER_RULES_SETTING}[{self.position}] ({self.principal})"

    def describe(self) -> str:
        where = ", ".join(_shown(p) for p in self.prefixes) if self.prefixes else "every key"
        return f"{self.name} allows {', '.join(a for a in ACTIONS if a in self.actions) or 'nothing'} on {where}"


@dataclass(frozen=True)
class AccessPolicy:
    """The deployment's outer bound on keys and its caller rules."""

    deployment_prefixes: tuple[str, ...] = ()  # empty: every key
    rules: tuple[CallerRule, ...] = ()  # empty: every caller may do everything within the bound
    workspace_key_prefixes: tuple[str, ...] = ("env:",)

    def scope_for(self, caller: str) -> Scope:
        if not self.rules:
            return Scope(caller=caller, rule=None, policy=self)
        rule = next((rule for rule in self.rules if rule.matches(caller)), None)
        return Scope(caller=caller, rule=rule, policy=self)

    def within_deployment(self, key: str) -> bool:
        return not self.deployment_prefixes or _admitted(key, self.deployment_prefixes, self.workspace_key_prefixes)


@dataclass(frozen=True)
class Scope:
    """What one caller may do: every route checks its action, and every key it touches or lists."""

    caller: str
    rule: CallerRule | None
    policy: AccessPolicy

    def require(self, action: str) -> None:
        """Refuse, naming the rule, unless the caller may take `action` somewhere."""
        if not self.policy.rules:
            return
        if self.rule is None:
            raise NotAllowedError(
                f"no rule of {CALLER_RULES_SETTING} matches the caller {self.caller}", rule=CALLER_RULES_SETTING
            )
        if action not in self.rule.actions:
            raise NotAllowedError(f"{self.rule.describe()}; this needs {action}", rule=self.rule.name)

    def admits(self, key: str) -> bool:
        """Whether the caller may see or touch `key` (its action checked apart, by `require`)."""
        if not self.policy.within_deployment(key):
            return False
        if not self.policy.rules:
            return True
        return self.rule is not None and (
            not self.rule.prefixes or _admitted(key, self.rule.prefixes, self.policy.workspace_key_prefixes)
        )

    def check(self, key: str, action: str) -> str:
        """`key`, if the caller may take `action` on it; else a refusal that names the rule that refused."""
        self.require(action)
        if not self.policy.within_deployment(key):
            shown = ", ".join(_shown(p) for p in self.policy.deployment_prefixes)
            raise NotAllowedError(
                f"{key} is outside {DEPLOYMENT_PREFIXES_SETTING} ({shown})", rule=DEPLOYMENT_PREFIXES_SETTING
            )
        if not self.admits(key):
            assert self.rule is not None  # `require` refused a caller without a rule
            raise NotAllowedError(f"{key} is outside what {self.rule.describe()}", rule=self.rule.name)
        return key


def _admitted(key: str, prefixes: tuple[str, ...], workspace_key_prefixes: tuple[str, ...]) -> bool:
    backend_key = StateKey.parse(key, workspace_key_prefixes).backend_key
    return any(under(key, prefix) or under(backend_key, prefix) for prefix in prefixes)


def _shown(prefix: str) -> str:
    return prefix.rstrip("/") + "/"


def parse_caller_rules(raw: str, setting: str = CALLER_RULES_SETTING) -> tuple[CallerRule, ...]:
    """`[{"principal": "arn:aws:iam::123456789012:role/team-a-*", "prefixes": ["team-a"], "actions": ["read"]}]`."""
    try:
        entries: Any = json.loads(raw)
    except (ValueError, RecursionError):
        raise SettingsError(f"{setting} must be a JSON list of rules: {_EXAMPLE}") from None
    if not isinstance(entries, list):
        raise SettingsError(f"{setting} must be a JSON list of rules: {_EXAMPLE}")
    rules = []
    for position, entry in enumerate(entries, start=1):
        where = f"{setting}[{position}]"
        if not isinstance(entry, dict) or set(entry) - {"principal", "prefixes", "actions"}:
            raise SettingsError(f"{where} must be an object with principal, prefixes and actions: {_EXAMPLE}")
        principal, prefixes, actions = entry.get("principal"), entry.get("prefixes", []), entry.get("actions")
        if not isinstance(principal, str) or not principal.strip():
            raise SettingsError(f"{where}: principal must be an IAM ARN or a pattern of one, e.g. {_PATTERN}")
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and p.strip("/ ") for p in prefixes):
            raise SettingsError(f'{where}: prefixes must be a list of key prefixes such as "team-a"')
        if not isinstance(actions, list) or not actions or not all(a in ACTIONS for a in actions):
            raise SettingsError(f"{where}: actions must list some of {', '.join(ACTIONS)}")
        rules.append(
            CallerRule(
                position=position,
                principal=principal.strip(),
                prefixes=tuple(p.strip(" ") for p in prefixes),
                actions=frozenset(actions),
            )
        )
    return tuple(rules)


_PATTERN = "arn:aws:iam::123456789012:role/team-a-*"
_EXAMPLE = f'[{{"principal": "{_PATTERN}", "prefixes": ["team-a"], "actions": ["read", "rollback"]}}]'
