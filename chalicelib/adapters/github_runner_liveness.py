"""`GitHubRunnerLivenessCheck`: a lock held from a self-hosted GitHub Actions runner (its `Who` host is the runner's
name, as the runner is named by default) lives while the runner is busy, and its holder is gone once the runner is
online and idle: the job that took the lock has ended, and the runner ends a job's processes with it.

A runner that is not listed (another repository's or organization's, or an ephemeral one already removed) or is
offline (it may have lost GitHub while its job still runs) proves nothing. Any answer but a runner list, a redirect
included, raises, which keeps the lock. The token is read from SSM or Secrets Manager on use and sent to the
configured API only.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.http import check_url, open_url
from chalicelib.domain.holders import host_of
from chalicelib.domain.locks import LockInfo
from chalicelib.errors import SettingsError, TransientAwsError

SETTING = "GUARDIAN_LIVENESS_GITHUB"
API_URL_SETTING = "GUARDIAN_LIVENESS_GITHUB_API_URL"
API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100  # GitHub's most
MAX_PAGES = 10
DEADLINE_S = 15.0  # for every page of one lock's question: the reaper has other locks to judge in its 45 s
ANSWER_MAX_BYTES = 4 * 1024 * 1024
_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_REPO = r"[A-Za-z0-9._-]{1,100}"


def runners_path(target: str) -> str:
    """The API path listing the runners of `owner/repo`, `org:<name>` or `enterprise:<slug>`; else `SettingsError`."""
    kind, colon, name = target.partition(":")
    if colon and kind in ("org", "enterprise") and re.fullmatch(_OWNER, name):
        return f"/{'orgs' if kind == 'org' else 'enterprises'}/{name}/actions/runners"
    owner, slash, repo = target.partition("/")
    if not colon and slash and re.fullmatch(_OWNER, owner) and re.fullmatch(_REPO, repo) and repo not in (".", ".."):
        return f"/repos/{owner}/{repo}/actions/runners"
    raise SettingsError(f"{SETTING} must be owner/repo, org:<organization> or enterprise:<enterprise>")


def check_api_url(url: str) -> str:
    """The API's base URL without a trailing slash: https://api.github.com, or GitHub Enterprise Server's /api/v3."""
    check_url(url, API_URL_SETTING)
    if any(char.isspace() for char in url) or "?" in url or "#" in url:
        raise SettingsError(f"{API_URL_SETTING} must be a base URL, without spaces, query or fragment")
    return url.rstrip("/")


class GitHubRunnerLivenessCheck:
    name = "github-runner"

    def __init__(self, target: str, token: SecretValue, *, api_url: str = API_URL) -> None:
        self._url = check_api_url(api_url) + runners_path(target)
        self._token = token

    def is_alive(self, lock: LockInfo) -> bool | None:
        host = host_of(lock.who)
        if host is None:
            return None
        runners = [runner for runner in self.runners_named(host) if runner.get("name") == host]
        if any(runner.get("busy") is True for runner in runners):
            return True
        if runners and all(runner.get("status") == "online" and runner.get("busy") is False for runner in runners):
            return False
        return None

    def runners_named(self, name: str) -> list[dict[str, Any]]:
        """The runners GitHub lists for `name` (its `name` filter; every page, should a server ignore the filter)."""
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self._token.get()}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "tfstate-guardian",
        }
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + DEADLINE_S
        for page in range(1, MAX_PAGES + 1):
            if time.monotonic() > deadline:
                raise TransientAwsError("GitHub took too long to list the runners")
            query = urlencode({"name": name, "per_page": PER_PAGE, "page": page}, quote_via=quote)
            runners, total = self._page(urllib.request.Request(f"{self._url}?{query}", headers=headers))  # noqa: S310
            found += runners
            if len(runners) < PER_PAGE or len(found) >= total:
                break
        return found

    def _page(self, request: urllib.request.Request) -> tuple[list[dict[str, Any]], int]:
        try:
            with open_url(request) as response:
                answer = json.loads(response.read(ANSWER_MAX_BYTES))
        except urllib.error.HTTPError as exc:
            raise TransientAwsError(f"GitHub answered {exc.code} to the runner list") from None
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            raise TransientAwsError(f"GitHub did not list the runners: {type(exc).__name__}") from None
        runners = answer.get("runners") if isinstance(answer, dict) else None
        total = answer.get("total_count") if isinstance(answer, dict) else None
        if not isinstance(runners, list) or not all(isinstance(r, dict) for r in runners) or type(total) is not int:
            raise TransientAwsError("GitHub answered something other than a runner list")
        return runners, total
