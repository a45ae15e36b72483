"""Keeping one replica in step with the others that share its database.

A note committed on another replica arrives as an event naming its group and
new head; if sessions of that group are open here, the notes up to that head
are read once from storage and handed to the fan-out, exactly as a local
commit would be. Removals, deletions and replaced tokens end the affected
sessions here too. If events may have been lost (the listening connection
dropped), every group with open sessions is caught up from storage; and a
session that sees a gap in its seqs reads the gap itself, so a late or lost
event delays a note but never loses it.

Presence: this replica reports its open sessions every `report_interval_s`
(that report is also its heartbeat), and counts the other live replicas'
reports when asked how many sessions a member has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from services.core.errors import ChatroomError, NotAllowed
from services.core.fanout import Hub
from services.storage.base import (
    GroupDeleted,
    MembersRemoved,
    NotesCommitted,
    Replication,
    Resync,
    Store,
    StoreEvent,
    TokenReplaced,
)

log = logging.getLogger(__name__)

READ_CHUNK = 1000
PRESENCE_REPORT_INTERVAL_S = 1.0
PRESENCE_HEARTBEAT_S = 5.0


class Follower:
    def __init__(
        self,
        store: Store,
        replication: Replication,
        hub: Hub,
        on_token_replaced: Callable[[str], Awaitable[None]],
    ) -> None:
        self._store = store
        self._replication = replication
        self._hub = hub
        self._on_token_replaced = on_token_replaced
        self._events: asyncio.Queue[StoreEvent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._replication.listen(self._events.put_nowait), name="replica-listen"),
            asyncio.create_task(self._apply_forever(), name="replica-apply"),
            asyncio.create_task(self._report_presence_forever(), name="replica-presence"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

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
                log.warning("could not apply %s from another replica: %s", event, error)
                if isinstance(event, NotesCommitted):
                    await asyncio.sleep(1.0)
                    self._events.put_nowait(event)

    async def _apply(self, event: StoreEvent) -> None:
        match event:
            case NotesCommitted(group, head_seq):
                await self._catch_up(group, head_seq)
            case TokenReplaced(member):
                await self._on_token_replaced(member)
            case MembersRemoved(group, members):
                for member in members:
                    self._hub.end_member(group, member, NotAllowed(f"you were removed from group {group!r}"))
            case GroupDeleted(group):
                self._hub.end_group(group, NotAllowed(f"group {group!r} was deleted"))
            case Resync():
                heads = await self._replication.group_heads(self._hub.groups())
                for group, head_seq in heads.items():
                    await self._catch_up(group, head_seq)

    async def _catch_up(self, group: str, head_seq: int) -> None:
        """Publishes the group's notes up to head_seq, if sessions here listen.

        A group whose sessions are still opening has no published head yet;
        they read from storage what committed before they started."""
        while (after := self._hub.published_head(group)) is not None and after < head_seq:
            notes = await self._store.read_notes(group, after, head_seq, READ_CHUNK)
            if not notes:
                return
            self._hub.publish(notes)

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
