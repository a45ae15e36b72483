"""One subscriber stream: what it has been sent, what it may be sent next.

A session first catches up from storage, then serves live notes from a bounded
in-memory queue that the fan-out fills. The queue is only a shortcut: the
session tracks the highest seq it has passed (`sent_seq`) and the highest it
knows to exist (`head_seq`), and whenever the queue does not continue exactly
at sent_seq + 1 (it overflowed, or notes committed while the session opened)
it reads the missing range from storage. So a slow reader costs a bounded
amount of memory and never misses a note.

Deleted notes: retention deletes a group's oldest notes, so the notes kept are
always first_seq..head_seq. When the next seq a session owes lies below
first_seq, those notes are gone: the session sends one Gap naming them, then
goes on after it. Nothing is skipped silently.

Flow control: a session is sent at most `max_unacked` notes above its
member's cursor, which any of the member's sessions may move by acking — on
this server at once, on another replica (`refresh_cursor`) as read back from
storage while the session waits. The member's own notes are never sent, so
they do not count: a member who sends more than a window's worth in a row
could otherwise never ack past them.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from services.core.acks import AckCoalescer
from services.core.errors import ChatroomError
from services.core.model import Membership, Note
from services.core.store import Store

MAX_BATCH_NOTES = 500
MAX_BATCH_BYTES = 1 << 20
"""A stream message stays well below gRPC's default 4 MiB limit on receiving."""
NOTE_OVERHEAD_BYTES = 64
CURSOR_POLL_S = (0.25, 5.0)
"""First and longest pause between reads of a cursor that other replicas may move."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Notes first_seq..last_seq were deleted before this session could send them."""

    first_seq: int
    last_seq: int
    reason: str


class Stored(list[Note]):
    """Notes a session read from storage for itself, not pushed to every session alike."""


class _Batch:
    """Notes for one stream message, within MAX_BATCH_NOTES and MAX_BATCH_BYTES."""

    def __init__(self) -> None:
        self.notes: list[Note] = []
        self._bytes_left = MAX_BATCH_BYTES

    def has_room_for(self, note: Note) -> bool:
        if not self.notes:
            return True
        return len(self.notes) < MAX_BATCH_NOTES and _size_bound(note) <= self._bytes_left

    def add(self, note: Note) -> None:
        self.notes.append(note)
        self._bytes_left -= _size_bound(note)


def _size_bound(note: Note) -> int:
    """At least the note's encoded size: UTF-8 takes at most 4 bytes a character."""
    return 4 * len(note.text) + NOTE_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_unacked: int
    queue_limit: int
    gap_reason: str
    refresh_cursor: bool = False
    """Other replicas may move the cursor: read it back while waiting on the window."""


@dataclass(eq=False, slots=True)
class MemberCursor:
    """A member's cursor in one group, shared by its sessions on this server."""

    group: str
    member: str
    acked_seq: int = 0
    sessions: set[Session] = field(default_factory=set)

    def advance(self, seq: int) -> bool:
        if seq <= self.acked_seq:
            return False
        self.acked_seq = seq
        for session in self.sessions:
            session.window_moved()
        return True


class Session:
    def __init__(
        self,
        cursor: MemberCursor,
        token_hash: bytes,
        store: Store,
        acks: AckCoalescer,
        limits: SessionLimits,
    ) -> None:
        self.cursor = cursor
        self.token_hash = token_hash
        self._store = store
        self._acks = acks
        self._limits = limits
        self._queue: deque[Note] = deque()
        self._wake = asyncio.Event()
        self._ended: ChatroomError | None = None
        self._gap: Gap | None = None
        self._stalled = False
        """Waiting because the window is full: only then does an ack wake it."""
        self.sent_seq = 0
        self.head_seq = 0
        self.incarnation = 0
        self._sent_seqs: list[int] = []
        """Seqs this session was sent above the member's cursor, ascending: its window's fill."""

    @property
    def group(self) -> str:
        return self.cursor.group

    @property
    def member(self) -> str:
        return self.cursor.member

    @property
    def max_unacked(self) -> int:
        return self._limits.max_unacked

    def start(self, membership: Membership, pending_acked_seq: int) -> None:
        """Begins after the member's cursor; called once membership is confirmed."""
        self.cursor.advance(max(membership.last_acked_seq, pending_acked_seq))
        self.sent_seq = self.cursor.acked_seq
        self.head_seq = max(self.head_seq, membership.head_seq)
        self.incarnation = membership.incarnation
        if membership.first_seq > self.sent_seq + 1:
            self._gap = Gap(self.sent_seq + 1, membership.first_seq - 1, self._limits.gap_reason)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def window_moved(self) -> None:
        """The member's cursor moved: what this session was sent up to it is acked."""
        sent = self._sent_seqs
        del sent[: bisect_right(sent, self.cursor.acked_seq)]
        if self._stalled:
            self._wake.set()

    def push(self, note: Note) -> None:
        """Offers a just-committed note; dropped (and later read from storage) when full."""
        if note.seq > self.head_seq:
            self.head_seq = note.seq
        if len(self._queue) < self._limits.queue_limit:
            self._queue.append(note)
        self._wake.set()

    def raise_head(self, head_seq: int) -> None:
        """Notes up to head_seq exist, though they were not pushed here: read them from storage."""
        if head_seq > self.head_seq:
            self.head_seq = head_seq
            self._wake.set()

    def end(self, reason: ChatroomError) -> None:
        if self._ended is None:
            self._ended = reason
            self._wake.set()

    def ack(self, seq: int) -> None:
        """A cumulative ack, clamped to what this session was sent."""
        seq = min(seq, self.sent_seq)
        if self.cursor.advance(seq):
            self._acks.record(self.group, self.member, seq)

    async def items(self) -> AsyncIterator[list[Note] | Gap]:
        """Yields notes for this member in seq order (and gaps) until the session is ended."""
        poll_s = CURSOR_POLL_S[0]
        while True:
            self._wake.clear()
            if self._ended is not None:
                raise self._ended
            if self._gap is not None:
                gap, self._gap = self._gap, None
                self.sent_seq = max(self.sent_seq, gap.last_seq)
                yield gap
                continue
            before = self.sent_seq
            batch = self._take_queued()
            if batch is None:
                batch = await self._read_stored()
            if batch:
                poll_s = CURSOR_POLL_S[0]
                yield batch
            elif self.sent_seq == before and self._gap is None:
                self._stalled = self._waits_for_acks
                if self._limits.refresh_cursor and self._stalled:
                    poll_s = await self._wait_or_refresh(poll_s)
                else:
                    await self._wake.wait()

    def _window_room(self) -> int:
        """How many more notes may be sent before an ack."""
        return self._limits.max_unacked - len(self._sent_seqs)

    @property
    def _waits_for_acks(self) -> bool:
        return self.head_seq > self.sent_seq and self._window_room() <= 0

    async def _wait_or_refresh(self, poll_s: float) -> float:
        """Waits for a wake-up; failing that, reads the cursor that other replicas may have moved."""
        try:
            await asyncio.wait_for(self._wake.wait(), poll_s)
            return CURSOR_POLL_S[0]
        except TimeoutError:
            pass
        membership = await self._store.membership(self.group, self.member)
        if membership is not None and self.cursor.advance(membership.last_acked_seq):
            return CURSOR_POLL_S[0]
        return min(poll_s * 2, CURSOR_POLL_S[1])

    def _take_queued(self) -> list[Note] | None:
        """Notes that continue sent_seq from memory, or None if storage must fill a gap."""
        queue = self._queue
        while queue and queue[0].seq <= self.sent_seq:
            queue.popleft()
        if not queue:
            return None if self.head_seq > self.sent_seq else []
        if queue[0].seq != self.sent_seq + 1:
            return None
        batch = _Batch()
        room = self._window_room()
        while queue and queue[0].seq == self.sent_seq + 1:
            note = queue[0]
            if note.sender != self.member:
                if len(batch.notes) >= room or not batch.has_room_for(note):
                    break
                batch.add(note)
                self._sent_seqs.append(note.seq)
            queue.popleft()
            self.sent_seq = note.seq
        return batch.notes

    async def _read_stored(self) -> list[Note]:
        room = self._window_room()
        if self.head_seq <= self.sent_seq or room <= 0:
            return []
        limit = min(room, MAX_BATCH_NOTES)  # never more than may be sent: a small window reads little
        notes = await self._store.read_notes(self.group, self.sent_seq, self.head_seq, limit)
        if not notes or notes[0].seq != self.sent_seq + 1:
            await self._look_for_deleted()
            return []
        batch = _Batch()
        for note in notes:
            if note.sender != self.member:
                if not batch.has_room_for(note):
                    break  # the rest is read again for the next batch
                batch.add(note)
                self._sent_seqs.append(note.seq)
            self.sent_seq = note.seq
        return Stored(batch.notes)

    async def _look_for_deleted(self) -> None:
        """Storage lacks the next note: retention may have deleted it (else it is not visible yet)."""
        membership = await self._store.membership(self.group, self.member)
        if membership is not None and membership.first_seq > self.sent_seq + 1:
            self._gap = Gap(self.sent_seq + 1, membership.first_seq - 1, self._limits.gap_reason)
