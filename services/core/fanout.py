"""Where notes are fanned out: the sessions open on this server, by group and member.

A committed note is offered to every session of its group straight from
memory; each session decides for itself whether to send it (never to its own
sender) or to read it back from storage later. The hub also counts every
stream of a member, subscribed or not yet, against the member's limit, and
ends sessions when their access goes away: removal, deletion, a replaced
token, shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from services.core.errors import ChatroomError, LimitExceeded
from services.core.model import Note
from services.core.session import MemberCursor, Session


class Admission:
    """A member's stream, counted from before it subscribes until it ends."""

    def __init__(self, hub: Hub, member: str, token_hash: bytes) -> None:
        self.member = member
        self.token_hash = token_hash
        self._hub = hub
        self.ended = asyncio.Event()
        self.reason: ChatroomError | None = None
        self._released = False

    def end(self, reason: ChatroomError) -> None:
        if self.reason is None:
            self.reason = reason
            self.ended.set()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._hub._release(self)


class Hub:
    def __init__(self) -> None:
        self._groups: dict[str, dict[str, MemberCursor]] = {}
        self._heads: dict[str, int] = {}
        """The highest seq published here, for groups with sessions."""
        self._streams: dict[str, set[Admission]] = {}
        """Every open stream of each member, subscribed or not."""

    # -- streams --------------------------------------------------------------

    def admit(self, member: str, token_hash: bytes, limit: int) -> Admission:
        streams = self._streams.setdefault(member, set())
        if len(streams) >= limit:
            raise LimitExceeded(
                f"{member} already has {len(streams)} open streams on this server; close one first"
            )
        admission = Admission(self, member, token_hash)
        streams.add(admission)
        return admission

    def _release(self, admission: Admission) -> None:
        streams = self._streams.get(admission.member)
        if streams is not None:
            streams.discard(admission)
            if not streams:
                del self._streams[admission.member]

    def streams_of(self, member: str) -> int:
        return len(self._streams.get(member, ()))

    # -- sessions -------------------------------------------------------------

    def cursor(self, group: str, member: str) -> MemberCursor:
        """The member's shared cursor; kept while any of its sessions is attached."""
        members = self._groups.setdefault(group, {})
        cursor = members.get(member)
        if cursor is None:
            cursor = members[member] = MemberCursor(group, member)
        return cursor

    def attach(self, session: Session) -> None:
        session.cursor.sessions.add(session)

    def detach(self, session: Session) -> None:
        cursor = session.cursor
        cursor.sessions.discard(session)
        if cursor.sessions:
            return
        members = self._groups.get(cursor.group)
        if members is not None and members.get(cursor.member) is cursor:
            del members[cursor.member]
            if not members:
                del self._groups[cursor.group]
                self._heads.pop(cursor.group, None)

    def publish(self, notes: Iterable[Note]) -> None:
        for note in notes:
            members = self._groups.get(note.group)
            if members is None:
                continue
            for cursor in members.values():
                for session in cursor.sessions:
                    session.push(note)
            if note.seq > self._heads.get(note.group, 0):
                self._heads[note.group] = note.seq

    def raise_head(self, group: str, head_seq: int) -> None:
        """Notes up to head_seq exist but were not published here: sessions read them themselves."""
        for session in self._sessions(group=group):
            session.raise_head(head_seq)

    def seen_head(self, group: str, head_seq: int) -> None:
        """Where publishing starts for a group that had no sessions here until now."""
        if group in self._groups:
            self._heads.setdefault(group, head_seq)

    def published_head(self, group: str) -> int | None:
        return self._heads.get(group)

    def groups(self) -> list[str]:
        return list(self._groups)

    def sessions_in(self, group: str) -> list[Session]:
        return list(self._sessions(group=group))

    def session_counts(self) -> dict[tuple[str, str], int]:
        return {
            (group, member): len(cursor.sessions)
            for group, members in self._groups.items()
            for member, cursor in members.items()
            if cursor.sessions
        }

    def online_sessions(self, group: str) -> dict[str, int]:
        return {
            member: len(cursor.sessions)
            for member, cursor in self._groups.get(group, {}).items()
            if cursor.sessions
        }

    # -- ending ---------------------------------------------------------------

    def end_group(self, group: str, reason: ChatroomError) -> None:
        for session in self._sessions(group=group):
            session.end(reason)

    def end_member(self, group: str, member: str, reason: ChatroomError) -> None:
        for session in self._sessions(group=group, member=member):
            session.end(reason)

    def end_other_tokens(self, member: str, token_hash: bytes, reason: ChatroomError) -> None:
        """Ends the member's streams opened with any token but this one, subscribed or not."""
        for session in self._sessions(member=member):
            if session.token_hash != token_hash:
                session.end(reason)
        for admission in list(self._streams.get(member, ())):
            if admission.token_hash != token_hash:
                admission.end(reason)

    def end_all(self, reason: ChatroomError) -> None:
        for session in self._sessions():
            session.end(reason)
        for streams in list(self._streams.values()):
            for admission in list(streams):
                admission.end(reason)

    def _sessions(self, group: str | None = None, member: str | None = None) -> Iterator[Session]:
        groups = self._groups if group is None else {group: self._groups.get(group, {})}
        for members in list(groups.values()):
            for cursor in list(members.values()):
                if member is None or cursor.member == member:
                    yield from list(cursor.sessions)
