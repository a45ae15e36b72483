"""The Store interface: everything the delivery core needs from a database.

The core owns this interface and the storage engines implement it: SQLite
(the embedded default), PostgreSQL (several replicas on one database) and an
in-memory store for the core's own unit tests. Each method is one
transaction. A store raises the core's errors for conditions a caller can act
on (GroupExists, GroupNotFound, InvalidRequest for data it cannot hold) and
Unavailable when the database itself fails; nothing is half-written in any
case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from services.core.model import (
    CursorUpdate,
    Delivery,
    GroupInfo,
    History,
    Membership,
    NewNote,
    Note,
)


@dataclass(frozen=True, slots=True)
class Appended:
    note: Note
    created: bool
    """False: a retry of an earlier send with the same client_msg_id; the original is returned."""


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Literal["not a member", "token replaced"]


AppendResult = Appended | Rejected


@dataclass(frozen=True, slots=True)
class GroupChange:
    group: GroupInfo
    new_members: tuple[str, ...]
    """Members created by this change, with the token they were given."""


@dataclass(frozen=True, slots=True)
class Trimmed:
    """What one retention batch deleted in a group."""

    group: str
    deleted: int
    first_seq: int
    """The group's oldest note after the batch."""
    lost: int
    """Notes other members had not read yet (the hard limit only)."""


class Store(Protocol):
    @property
    def replication(self) -> Replication | None:
        """Set when other replicas share the database."""

    async def open(self) -> None:
        """Connects and brings the schema to the current version."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Returns once the database answers a read; raises Unavailable if it does not."""

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

    async def group_access(self, group: str) -> tuple[int, dict[str, bytes]] | None:
        """The group's incarnation and its members' current token hashes (None: no such group)."""

    async def append_notes(self, batch: Sequence[NewNote]) -> list[AppendResult]:
        """Stores a batch in one transaction, one result per note in order."""

    async def read_notes(self, group: str, after_seq: int, until_seq: int, limit: int) -> list[Note]:
        """Notes with after_seq < seq <= until_seq, ascending, at most limit."""

    async def history(self, group: str, before_seq: int, limit: int) -> History:
        """The newest `limit` notes with seq < before_seq, ascending."""

    async def save_cursors(self, updates: Sequence[CursorUpdate]) -> None:
        """Moves cursors and last-seen times forward only; removed members are skipped."""

    async def delivery(self, group: str) -> Delivery:
        """Cursors and unread counts; online_sessions is left at 0 for the core."""

    async def unread_totals(self, limit: int) -> dict[str, int]:
        """Unread notes summed over members, for the `limit` groups with the most."""

    async def trim(
        self, group: str, keep_notes: int | None, older_than_us: int | None, hard: bool
    ) -> Trimmed | None:
        """Deletes a bounded batch of the group's oldest notes past a limit (keep the newest
        keep_notes; of the others, those sent before older_than_us).

        Soft (hard=False): only notes no member has unread; a member whose only
        unread notes in the batch were its own moves past them. Hard: regardless,
        counting what each member loses. None when another replica is trimming."""

    async def retention_candidates(self, keep_notes: int, older_than_us: int) -> list[str]:
        """Groups with more than keep_notes notes kept, or whose oldest note is older than older_than_us."""


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
    """Events may have been missed (the listening connection dropped): catch up on everything."""


@dataclass(frozen=True, slots=True)
class ListenerLost:
    """The listening connection dropped: until the next Resync, events may be missed."""


StoreEvent = NotesCommitted | TokenReplaced | MembersRemoved | GroupDeleted | Resync | ListenerLost


class Replication(Protocol):
    """What a store shared by several server replicas adds: hearing of the
    others' changes, and counting sessions across all of them."""

    replica_id: str

    async def listen(self, handler: Callable[[StoreEvent], None]) -> None:
        """Delivers other replicas' events to handler until cancelled; owns its reconnects."""

    async def group_heads(self, groups: Sequence[str]) -> dict[str, int]: ...

    async def report_presence(self, sessions: Mapping[tuple[str, str], int]) -> None:
        """This replica's open sessions by (group, member); doubles as its heartbeat."""

    async def online_sessions(self, group: str) -> dict[str, int]:
        """Sessions per member on the other live replicas."""
