"""Where notes are stored: group commit of every send.

Sends queue up here and one task writes them: each transaction takes every
send that arrived while the previous one ran. A lone send is committed at
once; while sends overlap (one arrived, within the last BUSY_WITHIN_S, while
another was still waiting), a commit first waits COMMIT_WINDOW_S for more to
join it, so that many notes share one commit (one thread hop, one fsync).
Committed notes go to the fan-out before the senders hear back, so a reader
gets a note no later than its sender's confirmation.

Failures stay with the send that caused them. Data the database refuses fails
the batch, which is then written again one send at a time, so that one bad
send never fails its neighbours. When the database fails, every send of the
batch answers Unavailable (the client retries with the same client_msg_id,
which stores nothing twice) — but the commit may have happened nonetheless, so
the groups of the batch are handed to `on_uncertain`, which reads back from
storage whatever was stored and not yet published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from services.core.errors import ChatroomError, InvalidRequest, Unavailable
from services.core.model import NewNote, Note
from services.core.store import Appended, AppendResult, Store

MAX_NOTES_PER_COMMIT = 512
"""Six values a note in one INSERT: far below the 32,766 parameters a statement may carry."""
COMMIT_WINDOW_S = 0.0005
BUSY_WITHIN_S = 0.005

_Pending = tuple[NewNote, "asyncio.Future[AppendResult]"]


class NoteWriter:
    def __init__(
        self,
        store: Store,
        on_commit: Callable[[Sequence[Note]], None],
        on_uncertain: Callable[[set[str]], None],
    ) -> None:
        self._store = store
        self._on_commit = on_commit
        self._on_uncertain = on_uncertain
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._in_flight = 0
        self._overlapped_at = float("-inf")
        self._batch: list[_Pending] = []

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

    def fail_pending(self) -> None:
        """At shutdown: every send not yet written is told to retry (elsewhere)."""
        leftover = self._batch
        while not self._queue.empty():
            leftover.append(self._queue.get_nowait())
        _fail(leftover, Unavailable("server is shutting down; retry"))

    def _sends_overlap(self) -> bool:
        return asyncio.get_running_loop().time() - self._overlapped_at < BUSY_WITHIN_S

    async def write_forever(self) -> None:
        while True:
            self._batch = [await self._queue.get()]
            if self._sends_overlap():
                await asyncio.sleep(COMMIT_WINDOW_S)
            while len(self._batch) < MAX_NOTES_PER_COMMIT and not self._queue.empty():
                self._batch.append(self._queue.get_nowait())
            try:
                await self._commit(self._batch)
            finally:
                _fail(self._batch, Unavailable("the note could not be stored; retry"))
                self._batch = []

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self._store.append_notes([new for new, _ in batch])
        except InvalidRequest as error:
            if len(batch) == 1:
                _fail(batch, error)
                return
            for single in batch:  # find the one the database refuses; the others go through
                await self._commit([single])
            return
        except ChatroomError as error:
            _fail(batch, error)
            self._on_uncertain({new.group for new, _ in batch})
            return
        created = [result.note for result in results if isinstance(result, Appended) and result.created]
        self._on_commit(created)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(batch: Sequence[_Pending], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
