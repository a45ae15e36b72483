"""The Store interface: everything the delivery core needs from a database.

Each method is one transaction. Implementations: SQLite (embedded default) and
PostgreSQL (several replicas on one database). They raise the core's errors
(GroupExists, GroupNotFound) for conditions a caller can act on and Unavailable
when the database itself fails; nothing is half-written in either case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.core.model import CursorUpdate, Delivery, GroupInfo, Membership, NewNote, Note


@dataclass(frozen=True, slots=True)
class Appended:
    note: Note
    created: bool  # False: a retry of an earlier send; the original is returned


@dataclass(frozen=True, slots=True)
class Rejected:
    """The sender is not (or no longer) a member of the group."""


AppendResult = Appended | Rejected


@dataclass(frozen=True, slots=True)
class GroupChange:
    group: GroupInfo
    new_members: tuple[str, ...]  # members created by this change, with their token


class Store(Protocol):
    @property
    def replication(self) -> Replication | None:
        """Set when other replicas share the database."""

    async def open(self) -> None:
        """Connects and brings the schema to the current version."""

    async def close(self) -> None: ...

    async def token_hash(self, member: str) -> bytes | None: ...

    async def set_token(self, member: str, token_hash: bytes) -> None:
        """Creates the member if new and replaces its token."""

    async def create_group(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange:
        """token_hashes: a token for every member, used only for new members."""

    async def add_members(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange: ...

    async def remove_members(self, group: str, members: Sequence[str]) -> GroupInfo: ...

    async def delete_group(self, group: str) -> None: ...

    async def get_group(self, group: str) -> GroupInfo | None: ...

    async def list_groups(self) -> list[GroupInfo]: ...

    async def count_groups(self) -> int: ...

    async def membership(self, group: str, member: str) -> Membership | None: ...

    async def append_notes(self, batch: Sequence[NewNote]) -> list[AppendResult]:
        """Stores a batch in one transaction, one result per note in order."""

    async def read_notes(self, group: str, after_seq: int, until_seq: int, limit: int) -> list[Note]:
        """Notes with after_seq < seq <= until_seq, ascending, at most limit."""

    async def save_cursors(self, updates: Sequence[CursorUpdate]) -> None:
        """Moves cursors and last-seen times forward only; removed members are skipped."""

    async def delivery(self, group: str) -> Delivery:
        """Cursors and unread counts; online_sessions is left at 0 for the core."""

    async def unread_totals(self, limit: int) -> dict[str, int]:
        """Unread notes summed over members, for the `limit` groups with the most."""


# -- several replicas on one database ---------------------------------------------


@dataclass(frozen=True, slots=True)
class NotesCommitted:
    """Another replica committed notes in a group, up to head_seq."""

    group: str
    head_seq: int


@dataclass(frozen=True, slots=True)
class TokenReplaced:
    member: str


@dataclass(frozen=True, slots=True)
class MembersRemoved:
    group: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupDeleted:
    group: str


@dataclass(frozen=True, slots=True)
class Resync:
    """Events may have been missed (the listening connection dropped): catch up."""


StoreEvent = NotesCommitted | TokenReplaced | MembersRemoved | GroupDeleted | Resync


class Replication(Protocol):
    """What a store shared by several server replicas adds: hearing of the
    others' changes, and counting sessions across all of them."""

    replica_id: str

    async def listen(self, handler: Callable[[StoreEvent], None]) -> None:
        """Delivers other replicas' events to handler until closed; owns its reconnects."""

    async def group_heads(self, groups: Sequence[str]) -> dict[str, int]: ...

    async def report_presence(self, sessions: Mapping[tuple[str, str], int]) -> None:
        """This replica's open sessions by (group, member); doubles as its heartbeat."""

    async def online_sessions(self, group: str) -> dict[str, int]:
        """Sessions per member on the other live replicas."""
