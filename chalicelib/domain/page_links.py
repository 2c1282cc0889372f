"""Links into the status page: the one place that says where a state's own page is, for messages and the page alike."""

from __future__ import annotations

from urllib.parse import quote


def state_page_url(base: str, key: str, backend: str | None = None) -> str:
    """The page of the state at `key`, on the status page served at `base` (`GUARDIAN_PAGE_URL`).

    `state_page_url("https://guardian.example.com/", "env:/prod/app.tfstate")` is
    `https://guardian.example.com/#/state?key=env%3A%2Fprod%2Fapp.tfstate`: the whole key is percent-encoded (a `/`
    included), so no key can add a parameter, leave the fragment or point the link anywhere else.
    With `backend` (the page needs it when the guardian watches several), `&backend=<name>` follows.
    """
    link = f"{base.rstrip('/')}/#/state?key={quote(key, safe='')}"
    return f"{link}&backend={quote(backend, safe='')}" if backend else link
