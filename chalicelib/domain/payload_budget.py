"""Fitting a notification into a channel's byte budget: its lists of names are trimmed, fairly, and counts stay exact.

A notification (the contract's dict, `Notification.to_dict()`) carries lists of names: `details.resources` and
`details.outputs` (`added`, `changed`, `removed`), and any other list of strings in `details`. `fit` returns the
largest version of it whose size, as the channel measures it, is within the channel's budget:

- if the whole notification fits, it is returned as it is;
- otherwise items are dropped from the ends of the lists, round-robin, so that every list keeps as many items as
  the others or all of its own (a long `added` never empties `removed`); each dict holding a trimmed list gets
  `truncated: true` and `counts` with every list's full length (the contract's `counts` are already there);
- if even empty lists do not fit, every free-text string is cut (with `…`) to the longest length that fits; or,
  with `cut_strings=False`, the version with empty lists is returned as it is, over the budget, for a channel that
  would rather show less than show a cut key (a command built from a cut key is another command).

The channel says how it measures: `size` takes a candidate dict and returns its size in the channel's unit
(bytes of the request, characters of a Slack section); `fit` never encodes anything itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.domain.text import bound

Size = Callable[[dict[str, Any]], int]

# The envelope fields a channel routes and deduplicates on: never cut.
_FIXED = frozenset({"id", "type", "severity", "occurred_at"})
_SHORTEST_CUT = 8  # characters left of a string cut by the last resort (the ellipsis included)


def fit(
    data: dict[str, Any], budget: int, size: Size, *, under: str | None = "details", cut_strings: bool = True
) -> dict[str, Any]:
    """The largest version of `data` with `size(...) <= budget`; `data` itself when it fits, never modified.

    The lists trimmed are those below `under` (a notification's `details`), or anywhere in `data` with None. With
    `cut_strings=False` no string is ever cut: the result may then be over the budget, with every list emptied.
    """
    if size(data) <= budget:
        return data
    lists = list(_name_lists(data, under))
    total = sum(len(names) for _, _, names in lists)
    if total:
        candidate = _trimmed(data, lists, 0)
        if size(candidate) <= budget:
            # The largest number of names kept, found by bisection: size grows with every name kept.
            low, high = 0, total - 1
            while low < high:
                middle = (low + high + 1) // 2
                if size(_trimmed(data, lists, middle)) <= budget:
                    low = middle
                else:
                    high = middle - 1
            return _trimmed(data, lists, low)
        data = candidate
    return _shortened(data, budget, size) if cut_strings else data


def kept_per_list(lengths: list[int], kept: int) -> list[int]:
    """How many items each list keeps when `kept` items in all are taken round-robin from the lists' heads."""
    remaining = min(kept, sum(lengths))
    level = 0
    # Raise the level every list is filled to while whole rounds still fit.
    for length in sorted(set(lengths)):
        round_cost = sum(min(n, length) for n in lengths) - sum(min(n, level) for n in lengths)
        if round_cost > remaining:
            break
        remaining -= round_cost
        level = length
    open_lists = [n > level for n in lengths]
    width = sum(open_lists)
    extra_rounds, leftover = divmod(remaining, width) if width else (0, 0)
    counts = []
    for length, is_open in zip(lengths, open_lists, strict=True):
        if not is_open:
            counts.append(length)
            continue
        take = level + extra_rounds + (1 if leftover > 0 else 0)
        leftover -= 1
        counts.append(min(length, take))
    return counts


def _name_lists(data: dict[str, Any], under: str | None) -> Iterator[tuple[tuple[str, ...], str, list[str]]]:
    """Every non-empty list of strings below `under`: (path of its dict, its name, the list)."""

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str, list[str]]]:
        for name, value in node.items():
            if isinstance(value, dict):
                yield from walk(value, (*path, name))
            elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
                yield path, name, value

    if under is None:
        yield from walk(data, ())
        return
    below = data.get(under)
    if isinstance(below, dict):
        yield from walk(below, (under,))


def _trimmed(data: dict[str, Any], lists: list[tuple[tuple[str, ...], str, list[str]]], kept: int) -> dict[str, Any]:
    counts = kept_per_list([len(names) for _, _, names in lists], kept)
    result = _copy_along(data, {path for path, _, _ in lists})
    for (path, name, names), keep in zip(lists, counts, strict=True):
        holder = _at(result, path)
        holder[name] = names[:keep]
        if keep < len(names):
            holder["truncated"] = True
            holder["counts"] = {**holder["counts"]} if isinstance(holder.get("counts"), dict) else {}
            holder["counts"].setdefault(name, len(names))
    return result


def _copy_along(data: dict[str, Any], paths: set[tuple[str, ...]]) -> dict[str, Any]:
    """A copy of `data` that shares everything but the dicts on `paths` (which `_trimmed` changes)."""
    result = dict(data)
    for path in paths:
        node = result
        for name in path:
            node[name] = dict(node[name])
            node = node[name]
    return result


def _at(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = data
    for name in path:
        node = node[name]
    return node


def _shortened(data: dict[str, Any], budget: int, size: Size) -> dict[str, Any]:
    """The last resort: every string but the fixed envelope fields cut to the longest length that fits."""
    longest = _longest_string(data)
    low, high = _SHORTEST_CUT, max(longest, _SHORTEST_CUT)
    if size(_cut_strings(data, high)) <= budget:
        return _cut_strings(data, high)
    while low < high:
        middle = (low + high + 1) // 2
        if size(_cut_strings(data, middle)) <= budget:
            low = middle
        else:
            high = middle - 1
    # At the shortest cut it may still not fit (a budget smaller than the envelope): the channel will say so.
    return _cut_strings(data, low)


def _longest_string(node: Any) -> int:
    if isinstance(node, str):
        return len(node)
    if isinstance(node, dict):
        return max((_longest_string(value) for value in node.values()), default=0)
    if isinstance(node, list):
        return max((_longest_string(value) for value in node), default=0)
    return 0


def _cut_strings(data: dict[str, Any], limit: int) -> dict[str, Any]:
    def cut(node: Any) -> Any:
        if isinstance(node, str):
            return bound(node, limit)
        if isinstance(node, dict):
            return {name: cut(value) for name, value in node.items()}
        if isinstance(node, list):
            return [cut(value) for value in node]
        return node

    result = {name: value if name in _FIXED else cut(value) for name, value in data.items()}
    if isinstance(result.get("details"), dict) and result != data:
        result["details"] = {**result["details"], "truncated": True}
    return result
