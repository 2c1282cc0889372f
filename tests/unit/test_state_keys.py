import pytest

from chalicelib.domain.state_keys import StateKey, is_lockfile


@pytest.mark.parametrize(
    ("key", "prefixes", "workspace", "display"),
    [
        ("app/terraform.tfstate", ("env:",), "default", "app"),
        ("env:/staging/app/terraform.tfstate", ("env:",), "staging", "app [staging]"),
        ("wsp/dev/persist/terraform.tfstate", ("env:", "wsp"), "dev", "persist [dev]"),
        ("teams/a/prod/net.tfstate", ("teams/a",), "prod", "net.tfstate [prod]"),
        ("env:/staging", ("env:",), "default", "env:/staging"),
        ("terraform.tfstate", ("env:",), "default", "terraform.tfstate"),
        ("prod/network/terraform.tfstate", ("env:",), "default", "prod/network"),
    ],
)
def test_state_keys_are_read_as_terraform_names_them(
    key: str, prefixes: tuple[str, ...], workspace: str, display: str
) -> None:
    parsed = StateKey.parse(key, prefixes)
    assert parsed.workspace == workspace
    assert parsed.display_name == display


def test_lockfiles_are_told_from_states() -> None:
    assert is_lockfile("app/terraform.tfstate.tflock")
    assert not is_lockfile("app/terraform.tfstate")
