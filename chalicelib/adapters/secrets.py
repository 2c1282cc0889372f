"""`SecretValue`: a channel secret read from SSM Parameter Store or Secrets Manager, never from plain config."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.errors import SettingsError, TransientAwsError

CACHE_S = 300


class SecretValue:
    """A reference `ssm:/path/to/parameter` (a SecureString) or `secretsmanager:name`, resolved on use."""

    def __init__(self, reference: str) -> None:
        store, sep, name = reference.partition(":")
        if not sep or not name or store not in ("ssm", "secretsmanager"):
            raise SettingsError(f"{reference!r} must be ssm:<parameter name> or secretsmanager:<secret name>")
        self._store = store
        self._name = name

    def get(self) -> str:
        """The value, cached for a few minutes as Powertools Parameters does."""
        try:
            if self._store == "ssm":
                value = parameters.get_parameter(self._name, decrypt=True, max_age=CACHE_S)
            else:
                value = parameters.get_secret(self._name, max_age=CACHE_S)
        except parameters.exceptions.GetParameterError as exc:
            cause = exc.__context__  # Powertools re-raises without `from`
            if isinstance(cause, (ClientError, BotoCoreError)):
                raise translate(cause, f"read the secret {self._store}:{self._name}") from exc
            raise TransientAwsError(f"read the secret {self._store}:{self._name}") from exc
        if not isinstance(value, str) or not value:
            raise SettingsError(f"the secret {self._store}:{self._name} is empty")
        return value
