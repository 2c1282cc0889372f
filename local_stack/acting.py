"""Acting as an IAM principal on the local stack's API, which has no IAM in front of it (local only, never deployed).

API Gateway passes the identity that signed a request in `requestContext.identity.userArn`; the deployed API reads
nothing else. Locally a request may name that identity in the `X-Guardian-Act-As` header, so that the caller rules
of `GUARDIAN_API_CALLERS` can be tried as a user would: `curl -H 'X-Guardian-Act-As: arn:aws:iam::…' …` or
`tfguardian --act-as arn:aws:iam::… states`.
"""

from __future__ import annotations

from typing import Any

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LambdaEventConverter, LocalGateway

ACT_AS_HEADER = "x-guardian-act-as"
LOCAL_ACCOUNT = "123456789012"


class _ActingEventConverter:
    """Chalice's converter, then the identity the request names, where API Gateway would put the signer's."""

    def __init__(self, converter: LambdaEventConverter) -> None:
        self._converter = converter

    def create_lambda_event(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> Any:
        event = self._converter.create_lambda_event(method=method, path=path, headers=headers, body=body)
        principal = event["headers"].pop(ACT_AS_HEADER, None)
        if principal:
            event["requestContext"]["identity"].update(userArn=principal, accountId=LOCAL_ACCOUNT)
        return event


class ActingGateway(LocalGateway):
    def __init__(self, app_object: Any, config: Config) -> None:
        super().__init__(app_object, config)
        self.event_converter = _ActingEventConverter(self.event_converter)  # type: ignore[assignment]


class ActingRequestHandler(ChaliceRequestHandler):
    """The local server's request handler, with a gateway that honours `X-Guardian-Act-As`."""

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Config) -> None:
        self.local_gateway = ActingGateway(app_object, config)
        # Skip ChaliceRequestHandler.__init__, which would build a plain gateway; serve as it would.
        super(ChaliceRequestHandler, self).__init__(request, client_address, server)
