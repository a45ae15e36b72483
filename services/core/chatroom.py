"""The delivery core: groups, members, notes and who has received what.

Delivery model. Every group numbers its notes 1, 2, 3 ... without gaps, in
commit order. Every member of a group has a cursor, the highest seq it has
acknowledged; everything above the cursor that the member did not send itself
is unread, and that is all the server ever sends it. A subscriber first gets
its unread notes from storage, then live ones as they commit, in one ordered
stream; acks are cumulative and move the cursor forward only. Because the
cursor is only moved by acks, a note in flight when a connection drops is
simply sent again on reconnect (the client drops what it has already shown),
and a note is never lost. A reader that falls behind costs bounded memory: its
session reads the gap back from storage instead of buffering it.

Checks happen in one order everywhere: identity, then the syntax of the
request, then membership. A group that does not exist and a group the caller
is not in look the same to a member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from services.core import names, tokens
from services.core.acks import AckCoalescer
from services.core.errors import (
    GroupNotFound,
    LimitExceeded,
    NotAllowed,
    NotAMember,
    NotAuthenticated,
    Unavailable,
)
from services.core.fanout import Hub
from services.core.model import Delivery, GroupInfo, NewNote, Note, now_us
from services.core.note_writer import NoteWriter
from services.core.rate_limit import RateLimiter
from services.core.replication import Follower
from services.core.session import Session, SessionLimits
from services.storage.base import Appended, GroupChange, Store


@dataclass(frozen=True, slots=True)
class ChatroomSettings:
    max_text_bytes: int = 4096
    """Longest note text, in bytes of UTF-8."""
    max_unacked: int = 1000
    """Seqs a session may run ahead of its member's cursor before it waits for acks."""
    session_queue_limit: int = 1024
    """Live notes buffered per session; past it the session reads from storage."""
    ack_flush_interval_s: float = 0.05
    """Longest time an ack waits in memory before it is written."""
    max_sessions_per_member: int = 16
    """Open streams one member may hold on one server."""
    notes_per_second: float = 20.0
    """Average sending rate allowed per member."""
    note_burst: int = 40
    """Notes a member may send at once before the rate applies."""
    max_group_members: int = 1000
    max_groups: int = 10_000

    @property
    def session_limits(self) -> SessionLimits:
        return SessionLimits(self.max_unacked, self.session_queue_limit)


@dataclass(frozen=True, slots=True)
class Caller:
    member: str
    token_hash: bytes


@dataclass(frozen=True, slots=True)
class Credential:
    member: str
    token: str


@dataclass(frozen=True, slots=True)
class GroupResult:
    group: GroupInfo
    credentials: tuple[Credential, ...]


class Chatroom:
    def __init__(self, store: Store, admin_token: str, settings: ChatroomSettings) -> None:
        self.store = store
        self.settings = settings
        self._admin_token_hash = tokens.hash_token(admin_token)
        self._token_hashes: dict[str, bytes] = {}
        self._hub = Hub()
        self._rate = RateLimiter(settings.notes_per_second, settings.note_burst)
        self._acks = AckCoalescer(store, settings.ack_flush_interval_s)
        self._writer = NoteWriter(store, self._hub.publish)
        replication = store.replication
        self._follower = (
            None if replication is None else Follower(store, replication, self._hub, self._token_replaced)
        )

    async def start(self) -> None:
        await self.store.open()
        self._acks.start()
        self._writer.start()
        if self._follower is not None:
            self._follower.start()

    def end_sessions(self) -> None:
        """Ends every open stream so that clients reconnect elsewhere."""
        self._hub.end_all(Unavailable("server is shutting down; reconnect to resume"))

    async def close(self) -> None:
        self.end_sessions()
        if self._follower is not None:
            await self._follower.close()
        await self._writer.close()
        await self._acks.close()
        await self.store.close()

    # -- identity -------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Caller:
        member = tokens.claimed_member(token) if token else None
        if token is None or member is None:
            raise NotAuthenticated("missing or malformed token: send 'authorization: Bearer <token>'")
        stored = self._token_hashes.get(member)
        if stored is None:
            stored = await self.store.token_hash(member)
            if stored is not None:
                self._token_hashes[member] = stored
        if stored is None or not tokens.matches(token, stored):
            raise NotAuthenticated("invalid or replaced token")
        return Caller(member, stored)

    async def authenticate_admin(self, token: str | None) -> None:
        if token is not None and tokens.matches(token, self._admin_token_hash):
            return
        try:
            await self.authenticate(token)
        except NotAuthenticated:
            raise NotAuthenticated("missing or invalid admin token") from None
        raise NotAllowed("this call needs the admin token, not a member token")

    # -- chat -----------------------------------------------------------------

    async def send_note(self, caller: Caller, group: str, text: str, client_msg_id: str) -> Note:
        names.check_name("group", group)
        names.check_text(text, self.settings.max_text_bytes)
        names.check_client_msg_id(client_msg_id)
        wait_s = self._rate.take(caller.member)
        if wait_s:
            raise LimitExceeded(
                f"more than {self.settings.notes_per_second:g} notes per second; retry in {wait_s:.2f} s",
                retry_after_s=wait_s,
            )
        new = NewNote(group, caller.member, text, now_us(), client_msg_id)
        result = await self._writer.append(new)
        if not isinstance(result, Appended):
            raise NotAMember(group)
        self._acks.record(group, caller.member)
        return result.note

    async def open_session(self, caller: Caller, group: str) -> Session:
        """Subscribes; the session is attached before membership is read so that
        a removal racing with it still ends it."""
        names.check_name("group", group)
        open_sessions = self._hub.sessions_of(caller.member)
        if open_sessions >= self.settings.max_sessions_per_member:
            raise LimitExceeded(
                f"{caller.member} already has {open_sessions} open streams on this server; close one first"
            )
        cursor = self._hub.cursor(group, caller.member)
        session = Session(cursor, caller.token_hash, self.store, self._acks, self.settings.session_limits)
        self._hub.attach(session)
        try:
            membership = await self.store.membership(group, caller.member)
        except BaseException:
            self._hub.detach(session)
            raise
        if membership is None:
            self._hub.detach(session)
            raise NotAMember(group)
        acked = max(membership.last_acked_seq, self._acks.pending_cursor(group, caller.member))
        session.start(acked, membership.head_seq)
        self._hub.seen_head(group, membership.head_seq)
        self._acks.record(group, caller.member)
        return session

    def close_session(self, session: Session) -> None:
        self._hub.detach(session)
        self._acks.record(session.group, session.member)

    # -- admin ----------------------------------------------------------------

    async def create_group(self, group: str, members: Sequence[str]) -> GroupResult:
        group = names.check_name("group", group)
        members = names.check_names("member", members)
        self._check_group_size(len(members))
        if await self.store.count_groups() >= self.settings.max_groups:
            raise LimitExceeded(f"this server already has {self.settings.max_groups} groups, its limit")
        issued = {member: tokens.new_member_token(member) for member in members}
        change = await self.store.create_group(group, members, _hashes(issued))
        return self._with_credentials(change, issued)

    async def add_members(self, group: str, members: Sequence[str]) -> GroupResult:
        group = names.check_name("group", group)
        members = names.check_names("member", members)
        current = await self.get_group(group)
        self._check_group_size(len(set(current.members) | set(members)))
        issued = {member: tokens.new_member_token(member) for member in members}
        change = await self.store.add_members(group, members, _hashes(issued))
        return self._with_credentials(change, issued)

    def _check_group_size(self, size: int) -> None:
        if size > self.settings.max_group_members:
            raise LimitExceeded(
                f"a group may have at most {self.settings.max_group_members} members, not {size}"
            )

    async def remove_members(self, group: str, members: Sequence[str]) -> GroupInfo:
        group = names.check_name("group", group)
        members = names.check_names("member", members)
        info = await self.store.remove_members(group, members)
        for member in members:
            self._hub.end_member(group, member, NotAllowed(f"you were removed from group {group!r}"))
        return info

    async def delete_group(self, group: str) -> None:
        group = names.check_name("group", group)
        await self.store.delete_group(group)
        self._hub.end_group(group, NotAllowed(f"group {group!r} was deleted"))

    async def get_group(self, group: str) -> GroupInfo:
        group = names.check_name("group", group)
        info = await self.store.get_group(group)
        if info is None:
            raise GroupNotFound(group)
        return info

    async def list_groups(self) -> list[GroupInfo]:
        return await self.store.list_groups()

    async def list_unread(self, group: str) -> Delivery:
        group = names.check_name("group", group)
        await self._acks.flush()
        delivery = await self.store.delivery(group)
        if self._follower is None:
            online = self._hub.online_sessions(group)
        else:
            online = await self._follower.online_sessions(group)
        members = tuple(replace(m, online_sessions=online.get(m.member, 0)) for m in delivery.members)
        return replace(delivery, members=members)

    async def issue_token(self, member: str) -> Credential:
        member = names.check_name("member", member)
        token = tokens.new_member_token(member)
        token_hash = tokens.hash_token(token)
        await self.store.set_token(member, token_hash)
        self._use_token(member, token_hash)
        return Credential(member, token)

    async def _token_replaced(self, member: str) -> None:
        """Another replica issued a new token for this member."""
        self._token_hashes.pop(member, None)
        token_hash = await self.store.token_hash(member)
        if token_hash is not None:
            self._use_token(member, token_hash)

    def _use_token(self, member: str, token_hash: bytes) -> None:
        self._token_hashes[member] = token_hash
        self._hub.end_other_tokens(member, token_hash, NotAuthenticated("your token was replaced"))

    @staticmethod
    def _with_credentials(change: GroupChange, issued: dict[str, str]) -> GroupResult:
        credentials = tuple(Credential(member, issued[member]) for member in change.new_members)
        return GroupResult(change.group, credentials)


def _hashes(issued: dict[str, str]) -> dict[str, bytes]:
    return {member: tokens.hash_token(token) for member, token in issued.items()}
