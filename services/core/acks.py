"""Where acks land: coalesced cursor writes.

A busy member acks many times a second; writing each ack would cost a disk
write per delivery. Instead the latest cursor and last-seen time of each
(group, member) are kept here and written in one transaction at most
`flush_interval_s` after the first unsaved change. A crash can therefore
redeliver what was acked in that window, never lose a note. Cursors only move
forward, here and in storage, so a late or repeated write changes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from services.core.model import CursorUpdate, now_us
from services.core.store import Store

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


class AckCoalescer:
    def __init__(self, store: Store, flush_interval_s: float) -> None:
        self._store = store
        self._flush_interval_s = flush_interval_s
        self._pending: dict[tuple[str, str], CursorUpdate] = {}
        self._dirty = asyncio.Event()
        self._flush_lock = asyncio.Lock()

    def record(self, group: str, member: str, acked_seq: int = 0) -> None:
        """Notes activity (and a cursor, if acked_seq > 0) to be written soon."""
        key = (group, member)
        earlier = self._pending.get(key)
        if earlier is not None:
            acked_seq = max(acked_seq, earlier.last_acked_seq)
        self._pending[key] = CursorUpdate(group, member, acked_seq, now_us())
        self._dirty.set()

    def pending_cursor(self, group: str, member: str) -> int:
        update = self._pending.get((group, member))
        return 0 if update is None else update.last_acked_seq

    async def flush(self) -> None:
        """Writes what is pending; returns once everything recorded so far is stored."""
        async with self._flush_lock:
            self._dirty.clear()
            if not self._pending:
                return
            updates = list(self._pending.values())
            self._pending.clear()
            try:
                await self._store.save_cursors(updates)
            except BaseException:
                for update in updates:
                    self._merge_back(update)
                raise

    def _merge_back(self, update: CursorUpdate) -> None:
        key = (update.group, update.member)
        newer = self._pending.get(key)
        if newer is not None:
            update = CursorUpdate(
                update.group,
                update.member,
                max(update.last_acked_seq, newer.last_acked_seq),
                max(update.last_seen_us, newer.last_seen_us),
            )
        self._pending[key] = update
        self._dirty.set()

    async def flush_forever(self) -> None:
        """Writes what is pending within flush_interval_s of its first change; on any failure
        keeps it and tries again, so that no ack waits longer than the storage is away."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._flush_interval_s)
            try:
                await self.flush()
            except Exception as error:
                log.warning("could not save cursors, retrying in %.0f s: %s", RETRY_DELAY_S, error)
                await asyncio.sleep(RETRY_DELAY_S)
