"""What the client library hands to applications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import grpc

from chatroom.v1 import chat_pb2


@dataclass(frozen=True, slots=True)
class Note:
    group: str
    seq: int
    sender: str
    text: str
    sent_at: datetime
    client_msg_id: str

    @classmethod
    def from_proto(cls, note: chat_pb2.Note) -> Note:
        sent_at = datetime.fromtimestamp(note.sent_at.seconds + note.sent_at.nanos / 1e9, tz=UTC)
        return cls(note.group, note.seq, note.sender, note.text, sent_at, note.client_msg_id)


EventKind = Literal["subscribed", "lost", "attempt_failed"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Notes first_seq..last_seq were deleted before this member read them (retention).

    The notes stream hands it over in their place, once, so that an application
    can say what was lost instead of skipping it silently."""

    first_seq: int
    last_seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class NotePage:
    """A page of history: notes in seq order, ending just below the seq asked for."""

    notes: tuple[Note, ...]
    first_seq: int
    """The oldest note the group still keeps (head + 1 when it keeps none)."""
    has_more: bool
    """Whether older notes are kept below this page."""


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """Reported to the application as a subscription connects or loses its server.

    lost: a subscribed stream ended; attempt_failed: an attempt to subscribe did
    not get that far (nothing answers, or the server refused for now). Either
    way the client retries after retry_in_s."""

    kind: EventKind
    server: str
    group: str
    detail: str = ""
    retry_in_s: float = 0.0


class ChatError(Exception):
    """A call failed for good: bad token, not a member, invalid request."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
