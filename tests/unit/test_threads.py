"""The SQLite engine's worker threads: results, errors and shutdown as an executor's."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.storage.threads import Threads


def test_results_and_errors_reach_the_awaiting_coroutine_from_another_thread() -> None:
    async def scenario() -> None:
        threads = Threads(2, "test")
        try:
            assert await threads.run(threading.current_thread) is not threading.current_thread()
            assert await threads.run(divmod, 7, 2) == (3, 1)
            with pytest.raises(ZeroDivisionError):
                await threads.run(divmod, 1, 0)
        finally:
            threads.close()

    asyncio.run(scenario())


def test_a_call_cancelled_before_it_started_never_runs_and_close_finishes_the_queued_ones() -> None:
    async def scenario() -> None:
        threads = Threads(1, "test")
        release = threading.Event()
        ran: list[str] = []
        blocker = threads.run(release.wait)
        cancelled = threads.run(ran.append, "cancelled")
        queued = threads.run(ran.append, "queued")
        cancelled.cancel()
        release.set()
        await blocker
        threads.close()
        assert ran == ["queued"]
        await queued

    asyncio.run(scenario())


def test_a_call_after_close_is_refused_at_once_not_left_waiting() -> None:
    async def scenario() -> None:
        threads = Threads(2, "test")
        threads.close()
        threads.close()
        with pytest.raises(RuntimeError, match="closed"):
            threads.run(print, "never")

    asyncio.run(scenario())
