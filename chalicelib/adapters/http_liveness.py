"""`HttpLivenessCheck`: the reference liveness check; asks an HTTPS endpoint whether a lock's holder still runs.

The URL is a template with `{who}`, `{id}` and `{operation}`, e.g. a small service in front of a CI system that
answers `{"alive": true}` while the job named in `Who` runs, `{"alive": false}` once it ended, and
`{"alive": null}` when it does not know the job. Anything else counts as alive: the lock is kept.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote

from chalicelib.channels.http import TIMEOUT_S, check_url
from chalicelib.domain.locks import LockInfo
from chalicelib.errors import TransientAwsError


class HttpLivenessCheck:
    name = "http"

    def __init__(self, url_template: str) -> None:
        check_url(url_template.split("{", 1)[0] or url_template, "GUARDIAN_LIVENESS_URL")
        self._template = url_template

    def is_alive(self, lock: LockInfo) -> bool | None:
        url = self._template.format(who=quote(lock.who), id=quote(lock.id), operation=quote(lock.operation))
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - checked scheme
                answer = json.load(response)
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            raise TransientAwsError(f"the liveness endpoint did not answer: {type(exc).__name__}") from None
        alive = answer.get("alive") if isinstance(answer, dict) else "invalid"
        if alive is None or isinstance(alive, bool):
            return alive
        raise TransientAwsError("the liveness endpoint answered something other than true, false or null")
