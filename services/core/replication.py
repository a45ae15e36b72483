"""Keeping one replica in step with the others that share its database.

Other replicas' changes arrive as events. New notes are caught up from
storage into the fan-out (catchup.py). Removals, deletions and replaced tokens
end the affected sessions here too, and a replaced token leaves the token
cache at once.

Events can be missed while the listening connection is down. Then nothing
cached may be trusted: from the moment the connection drops, every
authentication reads storage (identity.py); and once the replica listens
again it resynchronises from the tables, the only source of truth, before
relying on events again: every open session is checked against its group as
stored now (still a member? same token? same group, not deleted and created
again?) and ended if it lost its access, and every group with sessions is
caught up to its stored head. A late or lost event thus delays a note or a
revocation by the length of the outage, never longer, and loses nothing.

Presence: this replica reports its open sessions every `report_interval_s`
(that report is also its heartbeat), and counts the other live replicas'
reports when asked how many sessions a member has.
"""

from __future__ import annotations

import asyncio
import logging

from services.core.catchup import Catchup
from services.core.errors import ChatroomError, NotAllowed, NotAuthenticated
from services.core.fanout import Hub
from services.core.identity import Identities
from services.core.store import (
    GroupDeleted,
    ListenerLost,
    MembersRemoved,
    NotesCommitted,
    Replication,
    Resync,
    Store,
    StoreEvent,
    TokenReplaced,
)
from services.core.tasks import BackgroundTasks

log = logging.getLogger(__name__)

PRESENCE_REPORT_INTERVAL_S = 1.0
PRESENCE_HEARTBEAT_S = 5.0
RETRY_DELAY_S = 1.0


def removed(group: str) -> NotAllowed:
    return NotAllowed(f"you were removed from group {group!r}")


def deleted(group: str) -> NotAllowed:
    return NotAllowed(f"group {group!r} was deleted")


TOKEN_REPLACED = "your token was replaced"


class Follower:
    def __init__(
        self, store: Store, replication: Replication, hub: Hub, identities: Identities, catchup: Catchup
    ) -> None:
        self._store = store
        self._replication = replication
        self._hub = hub
        self._identities = identities
        self._catchup = catchup
        self._events: asyncio.Queue[StoreEvent] = asyncio.Queue()
        # Until the first LISTEN runs, other replicas' changes go unheard.
        identities.distrust_cache()

    def start(self, tasks: BackgroundTasks) -> None:
        tasks.start("replica-listen", lambda: self._replication.listen(self._events.put_nowait))
        tasks.start("replica-apply", self._apply_forever)
        tasks.start("replica-presence", self._report_presence_forever)

    async def online_sessions(self, group: str) -> dict[str, int]:
        """Sessions per member on every replica, this one counted exactly."""
        counts = await self._replication.online_sessions(group)
        for member, here in self._hub.online_sessions(group).items():
            counts[member] = counts.get(member, 0) + here
        return counts

    async def _apply_forever(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._apply(event)
            except ChatroomError as error:
                log.warning("could not apply %s from another replica, retrying: %s", event, error)
                await asyncio.sleep(RETRY_DELAY_S)
                self._events.put_nowait(event)

    async def _apply(self, event: StoreEvent) -> None:
        match event:
            case NotesCommitted(group, head_seq):
                self._catchup.request(group, head_seq)
            case TokenReplaced(member):
                self._identities.replaced(member, None)
                token_hash = await self._store.token_hash(member)
                if token_hash is not None:
                    self._hub.end_other_tokens(member, token_hash, NotAuthenticated(TOKEN_REPLACED))
            case MembersRemoved(group, members) if members:
                for member in members:
                    self._hub.end_member(group, member, removed(group))
            case MembersRemoved(group, _):  # too many to name: look
                await self._recheck(group)
            case GroupDeleted(group):
                self._hub.end_group(group, deleted(group))
            case ListenerLost():
                self._identities.distrust_cache()
            case Resync():
                await self._resync()

    async def _resync(self) -> None:
        groups = self._hub.groups()
        for group in groups:
            await self._recheck(group)
        for group, head_seq in (await self._replication.group_heads(groups)).items():
            self._catchup.request(group, head_seq)
        self._identities.trust_cache()
        log.info("in step with the other replicas again (%d groups with sessions checked)", len(groups))

    async def _recheck(self, group: str) -> None:
        """Ends the sessions of the group that lost their access while this replica was not told."""
        access = await self._store.group_access(group)
        for session in self._hub.sessions_in(group):
            if access is None or access[0] != session.incarnation:
                session.end(deleted(group))
            elif session.member not in access[1]:
                session.end(removed(group))
            elif access[1][session.member] != session.token_hash:
                session.end(NotAuthenticated(TOKEN_REPLACED))

    async def _report_presence_forever(self) -> None:
        reported: dict[tuple[str, str], int] | None = None
        since_report = PRESENCE_HEARTBEAT_S
        while True:
            sessions = self._hub.session_counts()
            if sessions != reported or since_report >= PRESENCE_HEARTBEAT_S:
                try:
                    await self._replication.report_presence(sessions)
                    reported, since_report = sessions, 0.0
                except ChatroomError as error:
                    log.warning("could not report presence: %s", error)
            await asyncio.sleep(PRESENCE_REPORT_INTERVAL_S)
            since_report += PRESENCE_REPORT_INTERVAL_S
