"""`HttpLivenessCheck`: the reference liveness check; asks an HTTPS endpoint whether a lock's holder still runs.

The URL is a template with `{who}`, `{id}` and `{operation}` in its path or query, e.g. a small service in front of
a CI system that answers `{"alive": true}` while the job named in `Who` runs, `{"alive": false}` once it ended,
and `{"alive": null}` when it does not know the job. Anything else counts as alive: the lock is kept. Each value
is percent-encoded whole (`/`, `?`, `&` and `#` too), and a redirect is an error, never followed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote

from chalicelib.channels.http import check_url_template, open_url
from chalicelib.domain.locks import LockInfo
from chalicelib.errors import TransientAwsError

SETTING = "GUARDIAN_LIVENESS_URL"
PLACEHOLDERS = frozenset({"who", "id", "operation"})


def check_liveness_url(template: str | None) -> str | None:
    """The template, if it is one `HttpLivenessCheck` can fill in; `SettingsError` naming the setting if not."""
    if template is not None:
        check_url_template(template, PLACEHOLDERS, SETTING)
    return template


class HttpLivenessCheck:
    name = "http"

    def __init__(self, url_template: str) -> None:
        check_liveness_url(url_template)
        self._template = url_template

    def url_for(self, lock: LockInfo) -> str:
        values = {"who": lock.who, "id": lock.id, "operation": lock.operation}
        return self._template.format_map({name: quote(value, safe="") for name, value in values.items()})

    def is_alive(self, lock: LockInfo) -> bool | None:
        request = urllib.request.Request(self.url_for(lock), headers={"Accept": "application/json"})  # noqa: S310
        try:
            with open_url(request) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            raise TransientAwsError(f"the liveness endpoint answered {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            raise TransientAwsError(f"the liveness endpoint did not answer: {type(exc).__name__}") from None
        alive = answer.get("alive") if isinstance(answer, dict) else "invalid"
        if alive is None or isinstance(alive, bool):
            return alive
        raise TransientAwsError("the liveness endpoint answered something other than true, false or null")
