"""The Store of both SQL engines: each method runs one transaction of transactions.py.

An engine says only how a transaction runs (`_read`, `_write`) and overrides
the few methods where it truly does more (PostgreSQL's one-round-trip append
and the notifications that tell other replicas of a change).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TypeVar

from services.core.model import CursorUpdate, Delivery, GroupInfo, History, Membership, NewNote, Note
from services.core.store import AppendResult, GroupChange, Replication, Trimmed
from services.storage import transactions as txn
from services.storage.sql import Txn, rows

T = TypeVar("T")


class SqlStore(ABC):
    replication: Replication | None = None

    @abstractmethod
    async def _read(self, transaction: Txn[T]) -> T: ...

    @abstractmethod
    async def _write(self, transaction: Txn[T]) -> T: ...

    async def ping(self) -> None:
        await self._read(_ping())

    async def token_hash(self, member: str) -> bytes | None:
        return await self._read(txn.token_hash(member))

    async def set_token(self, member: str, token_hash: bytes) -> None:
        await self._write(txn.set_token(member, token_hash))

    async def create_group(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange:
        return await self._write(txn.create_group(group, members, token_hashes))

    async def add_members(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange:
        return await self._write(txn.add_members(group, members, token_hashes))

    async def remove_members(self, group: str, members: Sequence[str]) -> GroupInfo:
        return await self._write(txn.remove_members(group, members))

    async def delete_group(self, group: str) -> None:
        await self._write(txn.delete_group(group))

    async def get_group(self, group: str) -> GroupInfo | None:
        return await self._read(txn.get_group(group))

    async def list_groups(self) -> list[GroupInfo]:
        return await self._read(txn.list_groups())

    async def count_groups(self) -> int:
        return await self._read(txn.count_groups())

    async def membership(self, group: str, member: str) -> Membership | None:
        return await self._read(txn.membership(group, member))

    async def group_access(self, group: str) -> tuple[int, dict[str, bytes]] | None:
        return await self._read(txn.group_access(group))

    async def append_notes(self, batch: Sequence[NewNote]) -> list[AppendResult]:
        return await self._write(txn.append_notes(batch))

    async def read_notes(self, group: str, after_seq: int, until_seq: int, limit: int) -> list[Note]:
        return await self._read(txn.read_notes(group, after_seq, until_seq, limit))

    async def history(self, group: str, before_seq: int, limit: int) -> History:
        return await self._read(txn.history(group, before_seq, limit))

    async def save_cursors(self, updates: Sequence[CursorUpdate]) -> None:
        await self._write(txn.save_cursors(updates))

    async def delivery(self, group: str) -> Delivery:
        return await self._read(txn.delivery(group))

    async def unread_totals(self, limit: int) -> dict[str, int]:
        return await self._read(txn.unread_totals(limit))

    async def trim(
        self, group: str, keep_notes: int | None, older_than_us: int | None, hard: bool
    ) -> Trimmed | None:
        return await self._write(txn.trim(group, keep_notes, older_than_us, hard))

    async def retention_candidates(self, keep_notes: int, older_than_us: int) -> list[str]:
        return await self._read(txn.retention_candidates(keep_notes, older_than_us))


def _ping() -> Txn[None]:
    yield rows("SELECT 1")
