"""Reading back into the fan-out what was committed but not published here.

Two things commit notes that this server's sessions were not handed: another
replica (it says so with an event), and a commit of our own whose outcome got
lost with the connection. For either, the group is caught up from storage:
the notes after the highest seq published here are read once and published,
exactly as a local commit would be. A group whose sessions are still opening
has nothing published yet: its sessions are told the new head instead, and
read the notes themselves. Storage that fails is tried again later; the
requests wait, merged per group.
"""

from __future__ import annotations

import asyncio
import logging

from services.core.errors import ChatroomError
from services.core.fanout import Hub
from services.core.store import Store

log = logging.getLogger(__name__)

READ_CHUNK = 1000
RETRY_DELAY_S = 1.0


class Catchup:
    def __init__(self, store: Store, hub: Hub) -> None:
        self._store = store
        self._hub = hub
        self._wanted: dict[str, int | None] = {}
        """Groups to catch up, to this head (None: whatever storage holds)."""
        self._requested = asyncio.Event()
        self.handled = 0
        """Catch-ups done since start (each: a group's new notes read back once)."""

    def request(self, group: str, head_seq: int | None = None) -> None:
        if group in self._wanted:
            earlier = self._wanted[group]
            head_seq = None if earlier is None or head_seq is None else max(earlier, head_seq)
        self._wanted[group] = head_seq
        self._requested.set()

    async def run_forever(self) -> None:
        while True:
            await self._requested.wait()
            self._requested.clear()
            wanted, self._wanted = self._wanted, {}
            for group, head_seq in wanted.items():
                try:
                    await self.catch_up(group, head_seq)
                    self.handled += 1
                except ChatroomError as error:
                    log.warning("could not catch up group %s, retrying: %s", group, error)
                    self.request(group, head_seq)
                    await asyncio.sleep(RETRY_DELAY_S)

    async def catch_up(self, group: str, head_seq: int | None) -> None:
        if not self._hub.sessions_in(group):
            return
        if head_seq is None:
            info = await self._store.get_group(group)
            if info is None:
                return
            head_seq = info.head_seq
        if self._hub.published_head(group) is None:
            self._hub.raise_head(group, head_seq)
        while (after := self._hub.published_head(group)) is not None and after < head_seq:
            notes = await self._store.read_notes(group, after, head_seq, READ_CHUNK)
            if not notes:
                self._hub.raise_head(group, head_seq)  # not there (deleted): sessions look themselves
                return
            self._hub.publish(notes)
