"""`payload_budget.fit`: any mix of long lists fits a budget, counts stay exact, trimming is fair."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from chalicelib.domain.payload_budget import fit, kept_per_list

KINDS = ("added", "changed", "removed")


def size(data: dict[str, Any]) -> int:
    return len(json.dumps(data, separators=(",", ":")).encode())


def changes(added: list[str], changed: list[str], removed: list[str]) -> dict[str, Any]:
    lists = {"added": added, "changed": changed, "removed": removed}
    return {**lists, "counts": {name: len(names) for name, names in lists.items()}, "truncated": False}


def notification(resources: dict[str, Any] | None, outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "0123456789abcdef0123456789abcdef",
        "type": "state.changed",
        "severity": "info",
        "occurred_at": "2026-11-26T11:05:21.798Z",
        "bucket": "tfstate",
        "key": "prod/network/terraform.tfstate",
        "workspace": "default",
        "summary": "prod/network: serial 41→42: +2000 ~0 -2000",
        "details": {"serial": {"before": 41, "after": 42}, "resources": resources, "outputs": outputs},
    }


def addresses(prefix: str, count: int, length: int) -> list[str]:
    return [f'module.{prefix}.aws_s3_object.this["{"k" * length}{i}"]' for i in range(count)]


def test_a_notification_that_fits_is_returned_as_it_is() -> None:
    data = notification(changes(addresses("new", 3, 10), [], addresses("old", 3, 10)))
    assert fit(data, 10_000, size) is data


@pytest.mark.parametrize("seed", range(12))
def test_any_mix_of_long_lists_fits_with_exact_counts(seed: int) -> None:
    chance = random.Random(seed)
    lists = {
        kind: [f"{kind}.r[{'x' * chance.randint(0, 400)}{i}]" for i in range(chance.choice([0, 1, 7, 300, 2000]))]
        for kind in (*KINDS, *(f"o_{kind}" for kind in KINDS))
    }
    resources = changes(lists["added"], lists["changed"], lists["removed"])
    outputs = changes(lists["o_added"], lists["o_changed"], lists["o_removed"])
    data = notification(resources, outputs)
    budget = chance.choice([2_000, 20_000, 262_144])
    fitted = fit(data, budget, size)
    assert size(fitted) <= budget
    for kind, original in (("resources", resources), ("outputs", outputs)):
        got = fitted["details"][kind]
        assert got["counts"] == original["counts"]  # exact, whatever was listed
        for name in KINDS:
            assert got[name] == original[name][: len(got[name])]  # the heads of the lists, in order
        assert got["truncated"] == any(len(got[name]) < len(original[name]) for name in KINDS)
    assert data["details"]["resources"] is resources and resources["added"] == lists["added"]  # never modified


def test_the_largest_fitting_version_is_returned() -> None:
    data = notification(changes(addresses("new", 2000, 300), [], addresses("old", 2000, 300)))
    budget = 262_144
    fitted = fit(data, budget, size)
    resources = fitted["details"]["resources"]
    kept = len(resources["added"]) + len(resources["removed"])
    assert size(fitted) <= budget < size(fit(data, budget + 1000, size)) or kept == 4000
    # One more address would not have fitted.
    bigger = json.loads(json.dumps(fitted))
    bigger["details"]["resources"]["removed"].append(data["details"]["resources"]["removed"][kept // 2])
    assert size(bigger) > budget


def test_trimming_is_fair_across_the_lists() -> None:
    data = notification(changes(addresses("new", 2000, 300), addresses("mid", 5, 10), addresses("old", 2000, 300)))
    resources = fit(data, 100_000, size)["details"]["resources"]
    assert resources["changed"] == data["details"]["resources"]["changed"]  # a short list is kept whole
    assert abs(len(resources["added"]) - len(resources["removed"])) <= 1  # long ones lose alike
    assert len(resources["removed"]) > 100
    assert resources["truncated"] is True
    assert resources["counts"] == {"added": 2000, "changed": 5, "removed": 2000}


def test_other_lists_of_names_are_trimmed_with_their_counts() -> None:
    data = notification(None)
    data["details"]["evidence"] = {"holders": [f"ci@runner-{i:05d}" for i in range(10_000)]}
    fitted = fit(data, 5_000, size)
    evidence = fitted["details"]["evidence"]
    assert size(fitted) <= 5_000
    assert evidence["truncated"] is True and evidence["counts"] == {"holders": 10_000}
    assert 0 < len(evidence["holders"]) < 10_000


def test_when_empty_lists_do_not_fit_free_text_is_cut_visibly() -> None:
    data = notification(changes(addresses("new", 10, 10), [], []))
    data["summary"] = "s" * 5000
    data["details"]["reason"] = "r" * 5000
    fitted = fit(data, 3_000, size)
    assert size(fitted) <= 3_000
    assert fitted["summary"].endswith("…") and fitted["details"]["reason"].endswith("…")
    assert fitted["id"] == data["id"] and fitted["type"] == data["type"]  # the envelope is never cut
    assert fitted["details"]["resources"]["counts"]["added"] == 10


def test_the_size_function_decides_the_unit() -> None:
    data = notification(changes(["é" * 100] * 50, [], []))
    by_characters = fit(data, 3_000, lambda d: len(json.dumps(d, ensure_ascii=False)))
    by_bytes = fit(data, 3_000, lambda d: len(json.dumps(d, ensure_ascii=False).encode()))
    assert len(by_bytes["details"]["resources"]["added"]) < len(by_characters["details"]["resources"]["added"])


@pytest.mark.parametrize(
    ("lengths", "kept", "expected"),
    [
        ([5, 2, 10], 0, [0, 0, 0]),
        ([5, 2, 10], 7, [3, 2, 2]),
        ([5, 2, 10], 8, [3, 2, 3]),
        ([5, 2, 10], 17, [5, 2, 10]),
        ([5, 2, 10], 99, [5, 2, 10]),
        ([0, 4], 3, [0, 3]),
        ([], 3, []),
    ],
)
def test_round_robin_shares(lengths: list[int], kept: int, expected: list[int]) -> None:
    assert kept_per_list(lengths, kept) == expected


def test_without_cutting_strings_the_lists_empty_and_no_string_is_cut() -> None:
    data = notification(changes(["a" * 100] * 50, [], ["r" * 100] * 50))
    data["key"] = "k" * 1000
    budget = size({**data, "details": {}}) - 10  # not even the envelope fits
    kept = fit(data, budget, size, cut_strings=False)
    assert kept["key"] == data["key"] and kept["summary"] == data["summary"] and size(kept) > budget
    assert kept["details"]["resources"]["added"] == [] and kept["details"]["resources"]["counts"]["added"] == 50
    assert fit(data, budget, size)["key"].endswith("…")  # the default cuts, as before
