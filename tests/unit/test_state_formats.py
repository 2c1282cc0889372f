"""Everything Terraform reads as a state is one: formats 1 to 3, and format 4 without a lineage or a serial.

And everything it does not read is refused with a reason a person can act on.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain.rollback import likely_serial_after, with_serial
from chalicelib.domain.state import StateHeader, parse_state_header
from chalicelib.domain.state_index import StateDiff, chunks_of, compare_for_rollback, index_state, state_header
from chalicelib.errors import NotAStateError
from tests.support.events import state_bytes
from tests.support.secrets import leaks

V3 = "handmade_v3_tf0.11.14_modules.json"  # Terraform 0.11's shape, written as it wrote it (4-space indent)
V3_ADDRESSES = [
    "aws_db_instance.main",
    "aws_db_instance.main (deposed 00000001)",
    "aws_instance.web[0]",
    "aws_instance.web[1]",
    "aws_security_group.web",
    "data.aws_ami.ubuntu",
    "module.network.aws_subnet.private[0]",
    "module.network.aws_subnet.private[1]",
    "module.network.aws_vpc.main",
]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def v3() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(state_bytes(V3))
    return state


def go_layout(state: dict[str, Any], indent: int = 4) -> bytes:
    return (json.dumps(state, indent=indent) + "\n").encode()


@pytest.mark.parametrize("size", [7, 64, 1 << 20])
def test_a_format_3_state_indexes_with_todays_addresses(size: int) -> None:
    data = state_bytes(V3)
    index = index_state(chunked(data, size))
    assert index.header == StateHeader(
        serial=12, lineage="5f0e2a4c-8b1d-4e3f-9a7c-6d5b4a3c2e1f", terraform_version="0.11.14", encrypted=False
    )
    assert parse_state_header(data, complete=True) == parse_state_header(data[:300], complete=False) == index.header
    assert sorted(index.resources) == V3_ADDRESSES
    assert sorted(index.outputs) == ["db_password", "subnet_ids", "web_ips"]  # the root module's, as Terraform's
    assert leaks(repr(index)) == []


def upgraded(state: dict[str, Any]) -> dict[str, Any]:
    """The format 4 state Terraform 0.12 writes from a format 3 one (its `upgradeStateV3ToV4`)."""
    resources: dict[tuple[str, ...], dict[str, Any]] = {}
    for module in state["modules"]:
        module_address = ".".join(f"module.{name}" for name in module["path"][1:])
        for key, old in module["resources"].items():
            parts = key.split(".")
            mode = "data" if parts[0] == "data" else "managed"
            parts = parts[1:] if mode == "data" else parts
            resource = resources.setdefault(
                (module_address, mode, parts[0], parts[1]),
                {**({"module": module_address} if module_address else {}), "mode": mode, "type": parts[0],
                 "name": parts[1], "provider": 'provider["registry.terraform.io/-/aws"]', "instances": []},
            )  # fmt: skip
            for number, instance in enumerate([old["primary"], *old["deposed"]]):
                new: dict[str, Any] = {"index_key": int(parts[2])} if len(parts) == 3 else {}
                if instance["tainted"]:
                    new["status"] = "tainted"
                if number:
                    new["deposed"] = f"{number:08x}"
                new.update(schema_version=0, attributes_flat=dict(sorted(instance["attributes"].items())))
                resource["instances"].append(new)
    root = next(module for module in state["modules"] if module["path"] == ["root"])
    return {
        "version": 4,
        "terraform_version": "0.12.31",
        "serial": state["serial"] + 1,
        "lineage": state["lineage"],
        "outputs": {name: {"value": output["value"], "type": "string"} for name, output in root["outputs"].items()},
        "resources": list(resources.values()),
    }


def test_a_format_3_instance_digests_as_its_upgrade_to_format_4_does() -> None:
    """Tainted and deposed instances too: Terraform's first write after the upgrade changes no resource."""
    old = index_state([state_bytes(V3)])
    new = index_state([go_layout(upgraded(v3()), indent=2)], decoded=True)
    assert new.resources == old.resources
    diff = StateDiff.between(old, new)
    assert (diff.resources_added, diff.resources_changed, diff.resources_removed) == ([], [], [])


@pytest.mark.parametrize(
    ("change", "resources", "outputs"),
    [
        (lambda s: s["modules"][0]["resources"]["aws_instance.web.1"]["primary"].update(tainted=False),
         ([], ["aws_instance.web[1]"], []), ([], [], [])),
        (lambda s: s["modules"][1]["resources"]["aws_vpc.main"]["primary"]["attributes"].update({"tags.Name": "b"}),
         ([], ["module.network.aws_vpc.main"], []), ([], [], [])),
        (lambda s: s["modules"][0]["resources"]["aws_db_instance.main"].update(deposed=[]),
         ([], [], ["aws_db_instance.main (deposed 00000001)"]), ([], [], [])),
        (lambda s: s["modules"][1]["resources"].pop("aws_subnet.private.1"),
         ([], [], ["module.network.aws_subnet.private[1]"]), ([], [], [])),
        (lambda s: s["modules"][0]["outputs"]["web_ips"]["value"].update({"web-1": "10.0.9.9"}),
         ([], [], []), ([], ["web_ips"], [])),
        (lambda s: s["modules"][1]["outputs"].update(extra={"sensitive": False, "type": "string", "value": "x"}),
         ([], [], []), ([], [], [])),  # a child module's outputs are not the state's
        (lambda s: s["modules"].append({"path": ["root", "dns"], "outputs": {}, "resources": {
            "aws_route53_zone.main": {"type": "aws_route53_zone", "primary": {"id": "Z1", "attributes": {}}}}}),
         (["module.dns.aws_route53_zone.main"], [], []), ([], [], [])),
    ],
)  # fmt: skip
def test_a_format_3_state_diffs_with_what_it_has(change, resources, outputs) -> None:
    after = v3()
    change(after)
    for layout in (go_layout, lambda state: json.dumps(state, separators=(",", ":")).encode()):
        diff = StateDiff.between(index_state([state_bytes(V3)]), index_state(chunked(layout(after), 100)))
        assert (diff.resources_added, diff.resources_changed, diff.resources_removed) == resources
        assert (diff.outputs_added, diff.outputs_changed, diff.outputs_removed) == outputs


def test_a_format_3_state_without_modules_is_an_empty_state() -> None:
    index = index_state([state_bytes("handmade_v3_empty_modules.json")])  # once in the poison corpus
    assert (index.header.serial, index.header.terraform_version) == (4, "0.11.14")
    assert index.resources == index.outputs == {}


def test_formats_1_and_2_are_read_like_3() -> None:
    v1 = {
        "version": 1,
        "serial": 3,
        "modules": [
            {"outputs": {"ip": "10.0.0.1"},  # a format 1 output is a bare string; a module may have no path
             "resources": {"aws_eip.ip": {"type": "aws_eip", "primary": {"id": "eipalloc-1", "attributes": {}}},
                           "aws_instance.web.0": {"type": "aws_instance", "primary": {"id": "i-1"}}}},
        ],
    }  # fmt: skip
    index = index_state([json.dumps(v1).encode()])
    assert (index.header.serial, index.header.lineage) == (3, None)
    assert sorted(index.resources) == ["aws_eip.ip", "aws_instance.web[0]"] and list(index.outputs) == ["ip"]
    v2 = {**v1, "version": 2, "lineage": "L"}
    assert index_state([json.dumps(v2).encode()]).resources == index.resources


@pytest.mark.parametrize(
    "modules",
    [
        '{"path": ["net"], "resources": {}}',  # a path that does not start at root
        '{"path": ["root"], "resources": {"aws_instance": {}}}',  # an address without a name
        '{"path": ["root"], "resources": {"aws_instance.web.first": {}}}',  # an index that is not a number
        '{"path": ["root"], "resources": {"a.b.c.d": {}}}',
        '{"path": ["root"], "resources": {"aws_instance.web": []}}',
        '{"path": ["root"], "resources": {"aws_instance.web": {"primary": {"attributes": []}}}}',
        '{"path": ["root"], "resources": []}',
        '{"path": ["root"], "outputs": []}',
        "[]",
    ],
)
def test_format_3_shapes_terraform_refuses_are_not_states(modules: str) -> None:
    data = f'{{"version": 3, "serial": 1, "lineage": "L", "modules": [{modules}]}}'.encode()
    with pytest.raises(NotAStateError):
        index_state([data])


def test_format_4_keys_in_a_format_3_state_are_ignored_as_terraform_ignores_them() -> None:
    state = {**v3(), "resources": [{"mode": "managed", "type": "x", "name": "y", "instances": [{"attributes": {}}]}]}
    assert sorted(index_state([go_layout(state)]).resources) == V3_ADDRESSES
    modern = json.loads(state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    with_modules = {**modern, "modules": v3()["modules"]}
    assert index_state([go_layout(with_modules, 2)]).resources == index_state([go_layout(modern, 2)]).resources


def test_a_format_3_state_is_a_rollback_target_and_a_current_version() -> None:
    target, current = state_bytes(V3), state_bytes("state_tf1.11.4_second_apply_serial2.json")
    comparison = compare_for_rollback(target, chunks_of(current))
    assert comparison.current is not None and (comparison.current.serial, comparison.target.serial) == (2, 12)
    assert comparison.diff == StateDiff.between(index_state([current], decoded=True), index_state([target]))
    assert sorted(comparison.diff.resources_added) == V3_ADDRESSES
    assert likely_serial_after(target, current) == 3
    restored = with_serial(target, 3)
    assert json.loads(restored) == {**json.loads(target), "serial": 3}
    assert restored == target.replace(b'"serial": 12,', b'"serial": 3,')
    back = compare_for_rollback(current, chunks_of(target))
    assert back.current is not None and back.current.serial == 12
    assert sorted(back.diff.resources_removed) == V3_ADDRESSES


def test_a_state_without_a_lineage_or_a_serial_indexes_and_rolls_back() -> None:
    data = state_bytes("handmade_v4_lineage_missing.json")
    index = index_state([data])
    assert (index.header.serial, index.header.lineage) == (1, None)
    assert list(index.resources) == ["terraform_data.probe"] and sorted(index.outputs) == ["data_id", "v"]
    bare = json.loads(data)
    del bare["serial"]
    no_serial = go_layout(bare, 2)
    assert index_state([no_serial]).header.serial == 0
    assert state_header([no_serial]) == parse_state_header(no_serial, complete=True) == index_state([no_serial]).header
    comparison = compare_for_rollback(no_serial, chunks_of(state_bytes("state_tf1.11.4_second_apply_serial2.json")))
    assert comparison.current is not None and not comparison.target.lineage_differs(comparison.current)
    restored = with_serial(no_serial, 3)  # Go read no serial as 0: the restored state gets one, first
    assert restored == no_serial.replace(b'{\n  "version"', b'{\n  "serial": 3,\n  "version"', 1)
    assert json.loads(restored) == {**bare, "serial": 3}


@pytest.mark.parametrize(
    "data",
    [
        b'{"version": 4, "serial": 1, "lineage": "L", "outputs": null, "resources": null, "check_results": null}',
        b'{\n  "version": 4,\n  "serial": 1,\n  "lineage": "L",\n  "outputs": null,\n  "resources": null\n}\n',
        b'{"version": 3, "serial": 1, "lineage": "L", "modules": null}',
        b'{"version": 3, "serial": 1, "lineage": "L", "modules": [{"path": null, "outputs": null, "resources": null}]}',
    ],
)
def test_null_is_read_as_empty_as_go_reads_it(data: bytes) -> None:
    index = index_state(chunked(data, 9))
    assert (index.header.serial, index.resources, index.outputs) == (1, {}, {})


LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1048576\n"
)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the object is empty"),
        (b" \n\t\n", "the object holds only whitespace"),
        (b"{}", "no state format version"),
        (b'{"serial": 3, "lineage": "L", "resources": []}', "no state format version"),
        (b"[]", "not a JSON object"),
        (b"null", "not a JSON object"),
        (b"<html>not a state</html>", "not valid JSON"),
        (b'{"version": 4, "serial": 1, "lineage": "L", "resources": [', "the JSON ends too early"),
        (b'{"version": 4, "serial": 1, "lineage": "L", "outputs": {"o": {"value": "x', "the JSON ends too early"),
        (b'{"version": 6, "serial": 1, "lineage": "L"}', "state format version 6 is not one Terraform reads"),
        (LFS_POINTER, "Git LFS pointer"),
        (b"../../shared/prod/terraform.tfstate", "symbolic link"),
        (b"terraform.tfstate.d/prod/terraform.tfstate\n", "symbolic link"),
    ],
)
def test_what_is_not_a_state_says_why(data: bytes, reason: str) -> None:
    for read in (
        lambda: index_state(chunked(data, 5) or [b""]),
        lambda: index_state([data]),
        lambda: parse_state_header(data, complete=True),
        lambda: state_header([data]),
    ):
        with pytest.raises(NotAStateError, match=reason):
            read()


@pytest.mark.parametrize("data", [b"", b"{}", b"[]", b"not json", LFS_POINTER, b"../x/terraform.tfstate"])
def test_what_is_not_a_state_is_no_rollback_target(data: bytes) -> None:
    with pytest.raises(NotAStateError):
        compare_for_rollback(data, None)
    assert likely_serial_after(data, state_bytes("state_tf1.11.4_second_apply_serial2.json")) is None
