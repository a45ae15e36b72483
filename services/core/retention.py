"""Retention: deleting a group's oldest notes, never a member's unread one without telling it.

Soft limits (`retention_age_s`, `retention_notes`) delete a note once it is
past a limit and no member has it unread: every member has acked past it or
sent it (JetStream's interest policy). The hard limit
(`retention_max_notes`) keeps the disk bounded whatever readers do: it deletes
past the limit regardless, and a member whose unread notes it took is told so
on its stream (a Gap, see session.py) and counted in `lost_to_retention`.

Deletion runs here in the background, in bounded batches (one short
transaction each, so sends never wait long behind it), from each group's
oldest note forward, so that the notes kept are always first_seq..head_seq.
With several replicas, one deletes at a time (the store's lock).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from services.core.model import now_us
from services.core.settings import ChatroomSettings
from services.core.store import Store

NEVER = 1 << 62


class Retention:
    def __init__(self, store: Store, settings: ChatroomSettings) -> None:
        self._store = store
        self._settings = settings
        self.deleted: Counter[str] = Counter()
        """Notes deleted since start, by reason: "soft_limit" or "hard_limit"."""
        self.lost = 0
        """Of those, notes some member had not read."""

    def gap_reason(self) -> str:
        if self._settings.retention_max_notes is not None:
            return f"the group keeps at most {self._settings.retention_max_notes} notes"
        return "they were deleted before you read them"

    async def run_forever(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._settings.retention_interval_s)

    async def run_once(self) -> None:
        settings = self._settings
        if settings.retention_max_notes is not None:
            await self._apply(settings.retention_max_notes, None, hard=True)
        if settings.retention_notes is not None or settings.retention_age_s is not None:
            older_than = (
                None if settings.retention_age_s is None else now_us() - int(settings.retention_age_s * 1e6)
            )
            await self._apply(settings.retention_notes, older_than, hard=False)

    async def _apply(self, keep_notes: int | None, older_than_us: int | None, hard: bool) -> None:
        reason = "hard_limit" if hard else "soft_limit"
        groups = await self._store.retention_candidates(
            NEVER if keep_notes is None else keep_notes, 0 if older_than_us is None else older_than_us
        )
        for group in groups:
            while True:
                trimmed = await self._store.trim(group, keep_notes, older_than_us, hard)
                if trimmed is None or not trimmed.deleted:
                    break  # done, or another replica is deleting
                self.deleted[reason] += trimmed.deleted
                self.lost += trimmed.lost
                await asyncio.sleep(0)  # between batches, let sends through
