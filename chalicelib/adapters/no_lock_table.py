"""`NoLockTable`: the lock table of a backend whose states lock with `.tflock` lockfiles only, which holds nothing."""

from __future__ import annotations

from chalicelib.adapters.dynamo_lock_table import DynamoLockTable


class NoLockTable(DynamoLockTable):
    """No lock items and no digest items: Terraform keeps a state's digest only in a DynamoDB lock table."""

    def __init__(self) -> None:  # no client: nothing here is ever asked of AWS
        self.name = ""

    def digest_of(self, state_path: str) -> str | None:
        return None

    def held_locks(self) -> list[tuple[str, str]]:
        return []

    def delete_lock_if_unchanged(self, lock_id: str, info: str) -> bool:
        return False

    def current_lock(self, state_path: str) -> str | None:
        return None

    def take_lock(self, state_path: str, info: str) -> bool:
        return True  # the `.tflock` the guardian takes beside it is the whole lock

    def put_digest_if(self, state_path: str, digest: str, *, expected: str | None) -> bool:
        return True  # no Terraform client of this backend reads a digest

    def put_digest(self, state_path: str, digest: str) -> None:
        return None
