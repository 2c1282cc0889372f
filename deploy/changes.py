"""A command's plan: every change it found to make, made in order or only shown (dry run), and what is left to do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

DRY_RUN_PREFIX = "[dry run] "
NOTHING_TO_CHANGE = "nothing to change"


@dataclass(frozen=True)
class Change:
    """One change: the line that describes it, and the AWS calls that make it."""

    description: str
    make: Callable[[], None]


@dataclass
class Plan:
    """What a command found by reading the account; nothing is written until `carry_out`."""

    changes: list[Change] = field(default_factory=list)
    # Things the operator must do (a missing secret value, a setting to update): the command exits non-zero.
    to_do: list[str] = field(default_factory=list)

    def add(self, description: str, make: Callable[[], None]) -> None:
        self.changes.append(Change(description, make))

    def carry_out(self, *, dry_run: bool, say: Callable[[str], None]) -> None:
        """Make each change in order, saying it first; the first failure stops the rest."""
        for change in self.changes:
            say(DRY_RUN_PREFIX + change.description if dry_run else change.description)
            if not dry_run:
                change.make()
        if not self.changes:
            say(NOTHING_TO_CHANGE)
