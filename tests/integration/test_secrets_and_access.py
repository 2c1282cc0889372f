"""Every route is IAM-authorized, in the app, in what Chalice would deploy and in the API's document; and the
suite-wide planted-secret scan sees API answers too."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from chalice.app import Chalice, IAMAuthorizer
from chalice.deploy.swagger import CFNSwaggerGenerator
from chalice.test import Client

from local_stack.emulator import free_port
from tests.conftest import _SURFACES, RunningStack
from tests.support.secrets import PLANTED, leaks

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def operations(stack: RunningStack) -> set[tuple[str, str]]:
    return {(path, method.lower()) for path, methods in stack.app.app.routes.items() for method in methods}


def test_every_route_has_the_iam_authorizer(stack: RunningStack) -> None:
    routes = stack.app.app.routes
    assert len(operations(stack)) >= 9
    unauthorized = [
        f"{method} {path}"
        for path, methods in routes.items()
        for method, entry in methods.items()
        if not isinstance(entry.authorizer, IAMAuthorizer) or entry.authorizer is not stack.app.iam
    ]
    assert unauthorized == []


def test_what_chalice_would_deploy_asks_sigv4_of_every_operation(stack: RunningStack) -> None:
    """The API Gateway definition `chalice package` would write, made in process by Chalice's own generator."""
    swagger = CFNSwaggerGenerator().generate_swagger(stack.app.app)
    assert swagger["securityDefinitions"] == {"sigv4": IAMAuthorizer().to_swagger()}
    deployed = {
        (path, method): operation.get("security")
        for path, methods in swagger["paths"].items()
        for method, operation in methods.items()
        if method in HTTP_METHODS
    }
    assert set(deployed) == operations(stack)
    assert {f"{m} {p}": s for (p, m), s in deployed.items() if s != [{"sigv4": []}]} == {}


def test_the_openapi_document_declares_sigv4_for_every_operation() -> None:
    document = json.loads(OPENAPI.read_text())
    schemes = document.get("components", {}).get("securitySchemes", {})
    sigv4 = [name for name, scheme in schemes.items() if scheme.get("x-amazon-apigateway-authtype") == "awsSigv4"]
    assert sigv4, "no securityScheme with x-amazon-apigateway-authtype awsSigv4"
    unsecured = [
        f"{method} {path}"
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if method in HTTP_METHODS
        and not any(
            name in requirement
            for requirement in operation.get("security", document.get("security", []))
            for name in sigv4
        )
    ]
    assert unsecured == []


def test_api_answers_are_scanned_for_planted_secrets() -> None:
    """A route that leaks is caught by the suite-wide scan (then the entry is taken back so this test passes)."""
    leaky = Chalice(app_name="leaky")

    @leaky.route("/leak")
    def leak() -> dict[str, str]:
        return {"output": PLANTED[3]}

    with Client(leaky) as client:
        assert client.http.get("/leak").status_code == 200
    said = [(where, text) for where, text in _SURFACES if leaks(text)]
    assert [where for where, _ in said] == ["api response"]
    for entry in said:
        _SURFACES.remove(entry)


def test_the_local_servers_answers_are_scanned_too(stack_with) -> None:
    """The local stack's HTTP server (the CLI's and the fuzz run's way in) goes through the same gateway."""
    local = stack_with(api_port=free_port())
    with urllib.request.urlopen(f"{local.api_url}/health", timeout=10) as response:
        assert json.load(response) == {"status": "ok"}
    assert ("api response", '{"status":"ok"}') in _SURFACES
