"""IAM's evaluation of an identity policy, as far as the guardian's policies need it: one request, allowed or not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Request:
    """What IAM authorizes for one call, or for one table's items of a batch: an action on a resource, in a context."""

    action: str
    resource: str
    leading_keys: tuple[str, ...] | None = None  # `dynamodb:LeadingKeys`: the partition keys of the items touched
    context: tuple[tuple[str, str], ...] = ()  # single-valued condition keys, e.g. `iam:PassedToService`

    def __str__(self) -> str:
        keys = "" if self.leading_keys is None else f" with dynamodb:LeadingKeys {list(self.leading_keys)}"
        keys += "".join(f" with {key} {value}" for key, value in self.context)
        return f"{self.action} on {self.resource}{keys}"


@cache
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: `*` any run of characters, `/` included; `?` any one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# The single-valued condition keys the checker evaluates, and the operators it knows for them.
SINGLE_VALUED_KEYS = frozenset({"iam:PassedToService", "lambda:FunctionArn"})


def conditions_hold(condition: dict[str, dict[str, Any]], request: Request) -> bool:
    """The statement's conditions, as IAM evaluates them; one the checker cannot evaluate stops the test."""
    for operator, keys in condition.items():
        for key, patterns in keys.items():
            if key in SINGLE_VALUED_KEYS:
                value = dict(request.context).get(key)
                if operator == "StringEquals":
                    held = value is not None and value in as_list(patterns)
                elif operator in ("StringLike", "ArnLike"):
                    held = value is not None and any(matches(pattern, value) for pattern in as_list(patterns))
                else:
                    raise AssertionError(f"the checker does not evaluate {operator} on {key}: teach it")
                if not held:
                    return False
                continue
            assert key == "dynamodb:LeadingKeys", f"the checker does not know the condition key {key}: teach it"
            values = request.leading_keys
            hit = [any(matches(pattern, value) for pattern in as_list(patterns)) for value in values or ()]
            if operator == "ForAllValues:StringLike":
                held = all(hit)  # a request without the key, or with an empty set, passes: IAM's own rule
            elif operator == "ForAnyValue:StringLike":
                held = any(hit)
            else:
                raise AssertionError(f"the checker does not evaluate {operator}: teach it")
            if not held:
                return False
    return True


def applies(statement: dict[str, Any], request: Request) -> bool:
    return (
        any(matches(action, request.action, ignore_case=True) for action in as_list(statement["Action"]))
        and any(matches(resource, request.resource) for resource in as_list(statement["Resource"]))
        and conditions_hold(statement.get("Condition", {}), request)
    )


def allows(policy: dict[str, Any], request: Request) -> bool:
    effects = {statement["Effect"] for statement in policy["Statement"] if applies(statement, request)}
    return effects == {"Allow"}


def denied(policy: dict[str, Any], requests: dict[Request, str]) -> list[str]:
    """What the requests needed that the policy does not allow, each with the call that needed it."""
    return sorted(f"{request} (for {call})" for request, call in requests.items() if not allows(policy, request))
