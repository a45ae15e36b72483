"""Plain values the core and the stores exchange."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple


def now_us() -> int:
    """Wall-clock time in microseconds since the epoch, as stored."""
    return time.time_ns() // 1000


class Note(NamedTuple):
    """A named tuple, not a frozen dataclass: as immutable, and built in half the
    time, which counts in a catch-up that builds one for every note it reads."""

    group: str
    seq: int
    sender: str
    text: str
    sent_at_us: int
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class NewNote:
    """A note before storage has given it a seq."""

    group: str
    sender: str
    text: str
    sent_at_us: int
    client_msg_id: str
    token_hash: bytes
    """The sender's token as authenticated: stored only if it is still the sender's at commit."""


@dataclass(frozen=True, slots=True)
class GroupInfo:
    group: str
    members: tuple[str, ...]
    head_seq: int
    first_seq: int
    """The oldest note kept; head_seq + 1 when the group keeps none."""


@dataclass(frozen=True, slots=True)
class Membership:
    """A member's standing in a group, read in one go when a stream opens."""

    group: str
    member: str
    last_acked_seq: int
    head_seq: int
    first_seq: int
    token_hash: bytes
    """The member's current token."""
    incarnation: int
    """When the group was (re)created: a group deleted and created again is another group."""


@dataclass(frozen=True, slots=True)
class History:
    """A page of notes, ascending, and what lies below it."""

    notes: tuple[Note, ...]
    first_seq: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class MemberDelivery:
    member: str
    last_acked_seq: int
    unread_count: int
    online_sessions: int
    last_seen_us: int | None
    lost_to_retention: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    group: str
    head_seq: int
    members: tuple[MemberDelivery, ...]


@dataclass(frozen=True, slots=True)
class CursorUpdate:
    """Coalesced activity of one member in one group, written in one go."""

    group: str
    member: str
    last_acked_seq: int
    last_seen_us: int
