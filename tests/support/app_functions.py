"""The functions app.py deploys, read from its decorators as Chalice reads them."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import API_FUNCTION

ROOT = Path(__file__).resolve().parents[2]
# Chalice's decorators that each deploy a function of their own; every route shares the one API function.
EVENT_DECORATORS = {
    "on_s3_event",
    "on_dynamodb_record",
    "schedule",
    "on_sns_message",
    "on_sqs_message",
    "on_cw_event",
    "lambda_function",
}


def handlers() -> list[tuple[str, ast.Call | ast.expr]]:
    """Each handler function of app.py with the Chalice decorator that deploys it."""
    found = []
    for node in ast.parse((ROOT / "app.py").read_text()).body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute):
                    found.append((node.name, decorator))
    return found


def kind_of(decorator: ast.Call | ast.expr) -> str:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return target.attr if isinstance(target, ast.Attribute) else ""


def deployed_functions() -> list[str]:
    """The functions app.py deploys, read from its decorators."""
    names = set()
    for name, decorator in handlers():
        kind = kind_of(decorator)
        names |= {name} if kind in EVENT_DECORATORS else {API_FUNCTION} if kind == "route" else set()
    return sorted(names)
