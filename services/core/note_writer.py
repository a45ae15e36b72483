"""Where notes are stored: group commit of every send.

Sends queue up here and one task writes them: each transaction takes every
send that arrived while the previous one ran. A lone send is committed at
once; while sends overlap (one arrived, within the last BUSY_WITHIN_S, while
another was still waiting), a commit first waits COMMIT_WINDOW_S for more to
join it, so that many notes share one commit (one thread hop, one fsync).
Committed notes go to the fan-out before the senders hear back, so a reader
gets a note no later than its sender's confirmation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from services.core.errors import Unavailable
from services.core.model import NewNote, Note
from services.metrics import NOTES_SENT
from services.storage.base import Appended, AppendResult, Store

log = logging.getLogger(__name__)

MAX_NOTES_PER_COMMIT = 512
COMMIT_WINDOW_S = 0.0005
BUSY_WITHIN_S = 0.005

_Pending = tuple[NewNote, "asyncio.Future[AppendResult]"]


class NoteWriter:
    def __init__(self, store: Store, on_commit: Callable[[Sequence[Note]], None]) -> None:
        self._store = store
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._overlapped_at = float("-inf")

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_forever(), name="note-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        leftover = []
        while not self._queue.empty():
            leftover.append(self._queue.get_nowait())
        _fail(leftover, Unavailable("server is shutting down; retry"))

    async def append(self, new: NewNote) -> AppendResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()
        if self._in_flight:
            self._overlapped_at = loop.time()
        self._in_flight += 1
        self._queue.put_nowait((new, future))
        try:
            return await future
        finally:
            self._in_flight -= 1

    def _sends_overlap(self) -> bool:
        return asyncio.get_running_loop().time() - self._overlapped_at < BUSY_WITHIN_S

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._sends_overlap():
                await asyncio.sleep(COMMIT_WINDOW_S)
            while len(batch) < MAX_NOTES_PER_COMMIT and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self._store.append_notes([new for new, _ in batch])
        except asyncio.CancelledError:
            _fail(batch, Unavailable("server is shutting down; retry"))
            raise
        except Exception as error:
            if not isinstance(error, Unavailable):
                log.exception("storing %d notes failed", len(batch))
            _fail(batch, error)
            return
        created = [result.note for result in results if isinstance(result, Appended) and result.created]
        NOTES_SENT.inc(len(created))
        self._on_commit(created)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(batch: Sequence[_Pending], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
