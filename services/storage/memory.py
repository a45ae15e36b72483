"""A Store in memory, for the delivery core's unit tests: no disk, no threads.

It keeps the contract of the SQL stores — the same suite of store tests runs
against all three — but nothing survives the process, so it is never offered
to operators.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.core.errors import GroupExists, GroupNotFound
from services.core.model import (
    CursorUpdate,
    Delivery,
    GroupInfo,
    History,
    MemberDelivery,
    Membership,
    NewNote,
    Note,
    now_us,
)
from services.core.store import Appended, AppendResult, GroupChange, Rejected, Replication, Trimmed
from services.storage.transactions import TRIM_BATCH_NOTES


@dataclass
class _Cursor:
    acked: int
    seen_us: int | None = None
    lost: int = 0


@dataclass
class _Group:
    head: int = 0
    first: int = 1
    deleted: bool = False
    incarnation: int = 0
    cursors: dict[str, _Cursor] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    """first..head, ascending, without holes."""
    by_msg_id: dict[tuple[str, str], Note] = field(default_factory=dict)


class MemoryStore:
    replication: Replication | None = None

    def __init__(self) -> None:
        self._tokens: dict[str, bytes] = {}
        self._groups: dict[str, _Group] = {}

    def __repr__(self) -> str:
        return "memory"

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    def _live(self, group: str) -> _Group:
        found = self._groups.get(group)
        if found is None or found.deleted:
            raise GroupNotFound(group)
        return found

    def _info(self, name: str) -> GroupInfo:
        group = self._live(name)
        return GroupInfo(name, tuple(sorted(group.cursors)), group.head, group.first)

    def _join(self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]) -> GroupChange:
        live = self._live(group)
        created = tuple(member for member in members if member not in self._tokens)
        for member in members:
            self._tokens.setdefault(member, token_hashes[member])
            live.cursors.setdefault(member, _Cursor(live.head))
        return GroupChange(self._info(group), created)

    async def token_hash(self, member: str) -> bytes | None:
        return self._tokens.get(member)

    async def set_token(self, member: str, token_hash: bytes) -> None:
        self._tokens[member] = token_hash

    async def create_group(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange:
        existing = self._groups.get(group)
        if existing is not None and not existing.deleted:
            raise GroupExists(group)
        head = existing.head if existing else 0
        self._groups[group] = _Group(head=head, first=head + 1, incarnation=now_us())
        return self._join(group, members, token_hashes)

    async def add_members(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange:
        return self._join(group, members, token_hashes)

    async def remove_members(self, group: str, members: Sequence[str]) -> GroupInfo:
        live = self._live(group)
        for member in members:
            live.cursors.pop(member, None)
        return self._info(group)

    async def delete_group(self, group: str) -> None:
        live = self._live(group)
        self._groups[group] = _Group(head=live.head, deleted=True)

    async def get_group(self, group: str) -> GroupInfo | None:
        try:
            return self._info(group)
        except GroupNotFound:
            return None

    async def list_groups(self) -> list[GroupInfo]:
        return [self._info(name) for name in sorted(self._groups) if not self._groups[name].deleted]

    async def count_groups(self) -> int:
        return sum(not group.deleted for group in self._groups.values())

    async def membership(self, group: str, member: str) -> Membership | None:
        found = self._groups.get(group)
        if found is None or found.deleted or member not in found.cursors:
            return None
        cursor = found.cursors[member]
        return Membership(
            group, member, cursor.acked, found.head, found.first, self._tokens[member], found.incarnation
        )

    async def group_access(self, group: str) -> tuple[int, dict[str, bytes]] | None:
        found = self._groups.get(group)
        if found is None or found.deleted:
            return None
        return found.incarnation, {member: self._tokens[member] for member in found.cursors}

    async def append_notes(self, batch: Sequence[NewNote]) -> list[AppendResult]:
        results: list[AppendResult] = []
        for new in batch:
            found = self._groups.get(new.group)
            if found is None or found.deleted or new.sender not in found.cursors:
                results.append(Rejected("not a member"))
            elif self._tokens[new.sender] != new.token_hash:
                results.append(Rejected("token replaced"))
            elif new.client_msg_id and (new.sender, new.client_msg_id) in found.by_msg_id:
                results.append(Appended(found.by_msg_id[(new.sender, new.client_msg_id)], created=False))
            else:
                found.head += 1
                note = Note(new.group, found.head, new.sender, new.text, new.sent_at_us, new.client_msg_id)
                found.notes.append(note)
                if new.client_msg_id:
                    found.by_msg_id[(new.sender, new.client_msg_id)] = note
                results.append(Appended(note, created=True))
        return results

    def _index(self, group: _Group, seq: int) -> int:
        """Position of the first note with a seq at or above seq."""
        return bisect.bisect_left(group.notes, seq, key=lambda note: note.seq)

    async def read_notes(self, group: str, after_seq: int, until_seq: int, limit: int) -> list[Note]:
        found = self._groups.get(group)
        if found is None or found.deleted:
            return []
        start = self._index(found, after_seq + 1)
        return [note for note in found.notes[start : start + limit] if note.seq <= until_seq]

    async def history(self, group: str, before_seq: int, limit: int) -> History:
        live = self._live(group)
        end = self._index(live, min(before_seq, live.head + 1))
        notes = tuple(live.notes[max(0, end - limit) : end])
        return History(notes, live.first, bool(notes) and notes[0].seq > live.first)

    async def save_cursors(self, updates: Sequence[CursorUpdate]) -> None:
        for update in updates:
            found = self._groups.get(update.group)
            cursor = None if found is None else found.cursors.get(update.member)
            if cursor is not None:
                cursor.acked = max(cursor.acked, update.last_acked_seq)
                cursor.seen_us = max(cursor.seen_us or 0, update.last_seen_us)

    def _unread(self, group: _Group, member: str) -> int:
        start = self._index(group, group.cursors[member].acked + 1)
        return sum(note.sender != member for note in group.notes[start:])

    async def delivery(self, group: str) -> Delivery:
        live = self._live(group)
        members = tuple(
            MemberDelivery(member, cursor.acked, self._unread(live, member), 0, cursor.seen_us, cursor.lost)
            for member, cursor in sorted(live.cursors.items())
        )
        return Delivery(group, live.head, members)

    async def unread_totals(self, limit: int) -> dict[str, int]:
        totals = {
            name: sum(self._unread(group, member) for member in group.cursors)
            for name, group in self._groups.items()
            if not group.deleted and group.cursors
        }
        return dict(sorted(totals.items(), key=lambda item: -item[1])[:limit])

    async def retention_candidates(self, keep_notes: int, older_than_us: int) -> list[str]:
        return sorted(
            name
            for name, group in self._groups.items()
            if not group.deleted
            and (
                group.head - group.first + 1 > keep_notes
                or (group.notes and group.notes[0].sent_at_us < older_than_us)
            )
        )

    async def trim(
        self, group: str, keep_notes: int | None, older_than_us: int | None, hard: bool
    ) -> Trimmed | None:
        found = self._groups.get(group)
        if found is None or found.deleted:
            return Trimmed(group, 0, 0, 0)
        window_end = min(found.head, found.first + TRIM_BATCH_NOTES - 1)
        end = found.first - 1
        if keep_notes is not None:
            end = max(end, min(window_end, found.head - keep_notes))
        if older_than_us is not None:
            window = found.notes[: window_end - found.first + 1]
            young = next((note.seq for note in window if note.sent_at_us >= older_than_us), None)
            end = max(end, window_end if young is None else young - 1)
        if not hard:
            end = min(end, self._read_by_all(found, end))
        deleted = [note for note in found.notes if note.seq <= end]
        if not deleted:
            return Trimmed(group, 0, found.first, 0)
        lost_total = 0
        for member, cursor in found.cursors.items():
            lost = sum(note.sender != member for note in deleted if note.seq > cursor.acked)
            if cursor.acked < end and not lost:
                cursor.acked = end
            cursor.lost += lost
            lost_total += lost
        found.notes = found.notes[len(deleted) :]
        for note in deleted:
            found.by_msg_id.pop((note.sender, note.client_msg_id), None)
        found.first = end + 1
        return Trimmed(group, len(deleted), found.first, lost_total)

    @staticmethod
    def _read_by_all(group: _Group, end: int) -> int:
        """As transactions._read_by_all."""
        ranked = sorted(group.cursors.items(), key=lambda item: item[1].acked)
        if not ranked or ranked[0][1].acked >= end:
            return end
        slowest, cursor = ranked[0][0], ranked[0][1].acked
        upto = min(end, ranked[1][1].acked) if len(ranked) > 1 else end
        unread = (n.seq for n in group.notes if cursor < n.seq <= upto and n.sender != slowest)
        return next(unread, upto + 1) - 1
