"""Worker threads that run blocking calls for the event loop.

`loop.run_in_executor` costs about twice as much CPU per call (a concurrent
future chained to an asyncio one, the executor's bookkeeping) as a queue in
and one `call_soon_threadsafe` out, and SQLite's writer makes such a call for
every commit.

The threads start with the first call, so a store that is built and never
opened leaves none behind. They are daemon threads: a process that exits
without closing its store is not held up by them, and SQLite's journal makes
a commit cut short at exit one that never happened (no caller was told it did).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Threads:
    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(count)
        ]
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        """run() and close() may come from different threads (close runs off the event loop)."""

    def run(self, call: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """call(*args) in one of the threads; the future has its result or exception.
        After close, refused at once (as an executor refuses), never left unresolved."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the storage threads are closed")
            if not self._started:
                self._started = True
                for thread in self._threads:
                    thread.start()
            self._jobs.put((loop, future, call, args))
        return future

    def close(self) -> None:
        """Lets the jobs already queued finish, then ends the threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not self._started:
                return
            for _ in self._threads:
                self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, call, args = job
            if future.cancelled():  # as an executor skips a call cancelled before it started
                continue
            try:
                outcome: tuple[Callable[..., None], Any] = (_set_result, call(*args))
            except BaseException as error:  # handed to the awaiting coroutine, as an executor would
                outcome = (_set_exception, error)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                loop.call_soon_threadsafe(outcome[0], future, outcome[1])


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(error)
