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
session reads the gap back from storage instead of buffering it. History is
kept unless retention is configured; a note retention deletes before a member
read it is never skipped silently: the member is sent a Gap naming it.

Checks happen in one order everywhere: identity, then the syntax of the
request, then membership. A group that does not exist and a group the caller
is not in look the same to a member.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from services.core import names, tokens
from services.core.acks import AckCoalescer
from services.core.catchup import Catchup
from services.core.errors import (
    ChatroomError,
    GroupNotFound,
    InvalidRequest,
    LimitExceeded,
    NotAMember,
    NotAuthenticated,
    Unavailable,
)
from services.core.fanout import Admission, Hub
from services.core.identity import Caller, Identities
from services.core.model import Delivery, GroupInfo, History, NewNote, Note, now_us
from services.core.note_writer import NoteWriter
from services.core.rate_limit import RateLimiter
from services.core.replication import TOKEN_REPLACED, Follower, deleted, removed
from services.core.retention import Retention
from services.core.session import Session, SessionLimits
from services.core.settings import ChatroomSettings
from services.core.store import GroupChange, Rejected, Store
from services.core.tasks import BackgroundTasks

log = logging.getLogger(__name__)

T = TypeVar("T")

HISTORY_PAGE = 50
MAX_HISTORY_PAGE = 500
STORAGE_PROBE_INTERVAL_S = 1.0
LARGEST_SEQ = (1 << 63) - 1
"""Seqs are uint64 on the wire and BIGINT in storage."""


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
        self.tasks = BackgroundTasks()
        self.storage_available = True
        self._storage_watchers: list[Callable[[bool], Awaitable[None]]] = []
        self._identities = Identities(store, admin_token)
        self._hub = Hub()
        self._rate = RateLimiter(settings.notes_per_second, settings.note_burst)
        self._acks = AckCoalescer(store, settings.ack_flush_interval_s)
        self.catchup = Catchup(store, self._hub)
        self._writer = NoteWriter(store, self._hub.publish, self._catch_up_groups)
        self.retention = Retention(store, settings)
        replication = store.replication
        self._follower = (
            None
            if replication is None
            else Follower(store, replication, self._hub, self._identities, self.catchup)
        )
        self._limits = SessionLimits(
            settings.max_unacked,
            settings.session_queue_limit,
            self.retention.gap_reason(),
            refresh_cursor=replication is not None,
        )

    async def start(self) -> None:
        await self.store.open()
        self.tasks.start("ack-flush", self._acks.flush_forever)
        self.tasks.start("note-writer", self._writer.write_forever)
        self.tasks.start("catch-up", self.catchup.run_forever)
        self.tasks.start("storage-probe", self._watch_storage)
        if self.settings.retains:
            self.tasks.start("retention", self.retention.run_forever)
        if self._follower is not None:
            self._follower.start(self.tasks)

    def end_sessions(self) -> None:
        """Ends every open stream so that clients reconnect elsewhere."""
        self._hub.end_all(Unavailable("server is shutting down; reconnect to resume"))

    async def close(self) -> None:
        self.end_sessions()
        await self.tasks.close()
        self._writer.fail_pending()
        try:
            await self._acks.flush()
        except ChatroomError as error:
            log.error(
                "acks received in the last moments could not be saved (they will be sent again): %s", error
            )
        await self.store.close()

    # -- storage health -------------------------------------------------------

    def watch_storage(self, watcher: Callable[[bool], Awaitable[None]]) -> None:
        """watcher(available) is awaited whenever storage becomes usable or unusable."""
        self._storage_watchers.append(watcher)

    async def _watch_storage(self) -> None:
        while True:
            try:
                await self.store.ping()
                available = True
            except ChatroomError as error:
                available = False
                if self.storage_available:
                    log.error("storage is unusable: %s", error)
            if available != self.storage_available:
                self.storage_available = available
                if available:
                    log.info("storage is usable again")
                for watcher in self._storage_watchers:
                    await watcher(available)
            await asyncio.sleep(STORAGE_PROBE_INTERVAL_S)

    def _catch_up_groups(self, groups: set[str]) -> None:
        for group in groups:
            self.catchup.request(group)

    # -- identity -------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Caller:
        return await self._identities.authenticate(token)

    async def authenticate_admin(self, token: str | None) -> None:
        await self._identities.authenticate_admin(token)

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
        new = NewNote(group, caller.member, text, now_us(), client_msg_id, caller.token_hash)
        result = await self._writer.append(new)
        if isinstance(result, Rejected):
            raise NotAuthenticated(TOKEN_REPLACED) if result.reason == "token replaced" else NotAMember(group)
        self._acks.record(group, caller.member)
        return result.note

    def admit(self, caller: Caller) -> Admission:
        """Counts a new stream of the member from its first moment (before it subscribes)."""
        return self._hub.admit(caller.member, caller.token_hash, self.settings.max_sessions_per_member)

    async def first_request(self, admission: Admission, request: Awaitable[T]) -> T:
        """The stream's first request, if it comes within subscribe_timeout_s and before the
        stream is ended (shutdown, a replaced token)."""
        reading = asyncio.ensure_future(request)
        ended = asyncio.ensure_future(admission.ended.wait())
        timeout_s = self.settings.subscribe_timeout_s
        try:
            await asyncio.wait({reading, ended}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not reading.done():
                reading.cancel()
            await asyncio.gather(reading, ended, return_exceptions=True)
        if admission.reason is not None:
            raise admission.reason
        if reading.cancelled():
            raise InvalidRequest(f"no subscribe within {timeout_s:g} s: a stream must subscribe first")
        return reading.result()

    async def open_session(self, admission: Admission, group: str) -> Session:
        """Subscribes. The session is attached before membership is read, so that a
        removal or a new token racing with it still ends it; the read itself checks
        that the token is still the member's."""
        names.check_name("group", group)
        member = admission.member
        session = Session(
            self._hub.cursor(group, member), admission.token_hash, self.store, self._acks, self._limits
        )
        self._hub.attach(session)
        try:
            membership = await self.store.membership(group, member)
            if membership is None:
                raise NotAMember(group)
            if membership.token_hash != admission.token_hash:
                raise NotAuthenticated(TOKEN_REPLACED)
        except BaseException:
            self._hub.detach(session)
            raise
        session.start(membership, self._acks.pending_cursor(group, member))
        self._hub.seen_head(group, membership.head_seq)
        self._acks.record(group, member)
        return session

    def close_stream(self, admission: Admission, session: Session | None) -> None:
        admission.release()
        if session is not None:
            self._hub.detach(session)
            self._acks.record(session.group, session.member)

    async def list_notes(self, caller: Caller, group: str, before_seq: int, limit: int) -> History:
        names.check_name("group", group)
        if limit > MAX_HISTORY_PAGE:
            raise InvalidRequest(f"limit is {limit}; at most {MAX_HISTORY_PAGE} notes come in one page")
        membership = await self.store.membership(group, caller.member)
        if membership is None:
            raise NotAMember(group)
        if membership.token_hash != caller.token_hash:
            raise NotAuthenticated(TOKEN_REPLACED)
        before = LARGEST_SEQ if before_seq == 0 else min(before_seq, LARGEST_SEQ)
        return await self.store.history(group, before, limit or HISTORY_PAGE)

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
            self._hub.end_member(group, member, removed(group))
        return info

    async def delete_group(self, group: str) -> None:
        group = names.check_name("group", group)
        await self.store.delete_group(group)
        self._hub.end_group(group, deleted(group))

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
        self._identities.replaced(member, token_hash)
        self._hub.end_other_tokens(member, token_hash, NotAuthenticated(TOKEN_REPLACED))
        return Credential(member, token)

    @staticmethod
    def _with_credentials(change: GroupChange, issued: dict[str, str]) -> GroupResult:
        credentials = tuple(Credential(member, issued[member]) for member in change.new_members)
        return GroupResult(change.group, credentials)


def _hashes(issued: dict[str, str]) -> dict[str, bytes]:
    return {member: tokens.hash_token(token) for member, token in issued.items()}
