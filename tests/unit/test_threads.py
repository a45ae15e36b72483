"""The SQLite engine's worker threads: results, errors and shutdown as an executor's."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from services.core.errors import Unavailable
from services.storage.sqlite import SqliteStore
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


def test_no_thread_runs_before_the_first_call_nor_after_close() -> None:
    def ours() -> set[str]:
        return {thread.name for thread in threading.enumerate() if thread.name.startswith("idle-")}

    async def scenario() -> None:
        unused = Threads(2, "idle-unused")
        assert not ours()
        unused.close()
        used = Threads(2, "idle-used")
        await used.run(divmod, 7, 2)
        assert ours() == {"idle-used-0", "idle-used-1"}
        used.close()
        assert not ours()

    asyncio.run(scenario())


def test_a_store_that_fails_to_open_leaves_no_thread_behind(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")

    async def scenario() -> None:
        before = set(threading.enumerate())
        with pytest.raises(Unavailable, match="cannot open"):
            await SqliteStore(tmp_path / "a-file" / "chatroom.db").open()
        left = set(threading.enumerate()) - before
        assert not [thread for thread in left if thread.name.startswith("sqlite-")]

    asyncio.run(scenario())
