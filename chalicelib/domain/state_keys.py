"""How Terraform's S3 backend names things: workspace keys and lockfiles."""

from __future__ import annotations

from dataclasses import dataclass

LOCKFILE_SUFFIX = ".tflock"
DEFAULT_WORKSPACE = "default"
DEFAULT_STATE_FILE = "terraform.tfstate"


@dataclass(frozen=True)
class StateKey:
    """An S3 key read as Terraform names it: `<workspace_key_prefix>/<workspace>/<key>` or `<key>`."""

    key: str
    workspace: str
    backend_key: str

    @classmethod
    def parse(cls, key: str, workspace_key_prefixes: tuple[str, ...]) -> StateKey:
        for prefix in workspace_key_prefixes:
            head = prefix + "/"
            if key.startswith(head):
                workspace, sep, rest = key[len(head) :].partition("/")
                if workspace and sep and rest:
                    return cls(key=key, workspace=workspace, backend_key=rest)
        return cls(key=key, workspace=DEFAULT_WORKSPACE, backend_key=key)

    @property
    def display_name(self) -> str:
        """A short name for one-line summaries, e.g. `prod/network` or `app [staging]`."""
        name = self.backend_key
        if name.endswith("/" + DEFAULT_STATE_FILE):
            name = name[: -len(DEFAULT_STATE_FILE) - 1]
        if self.workspace != DEFAULT_WORKSPACE:
            return f"{name} [{self.workspace}]"
        return name


@dataclass(frozen=True)
class StateKeyFilter:
    """Which object keys hold states: by suffix, and optionally under given prefixes."""

    suffixes: tuple[str, ...]
    prefixes: tuple[str, ...] = ()

    def matches(self, key: str) -> bool:
        if self.prefixes and not key.startswith(self.prefixes):
            return False
        return key.endswith(self.suffixes)


def is_lockfile(key: str) -> bool:
    """Whether an object key is an S3 lockfile (`<state key>.tflock`) rather than a state."""
    return key.endswith(LOCKFILE_SUFFIX)


def state_key_of_lockfile(key: str) -> str:
    """The state key a lockfile locks: `<state key>.tflock` without its suffix."""
    return key[: -len(LOCKFILE_SUFFIX)]
