"""`LambdaFanOut`: starts an asynchronous invocation of a function per batch of backends."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.services.fan_out import share_event

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


class LambdaFanOut:
    """`Invoke` with `InvocationType=Event`: Lambda queues each, and retries one that fails, as for a schedule."""

    def __init__(self, client: LambdaClient, function: str = "") -> None:
        self._client = client
        self.function = function

    def dispatch(self, event: Mapping[str, Any], batches: list[list[str]]) -> None:
        for names in batches:
            payload = json.dumps(share_event(event, names)).encode()
            try:
                self._client.invoke(FunctionName=self.function, InvocationType="Event", Payload=payload)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"invoke {self.function} for backends {', '.join(names)}") from exc
