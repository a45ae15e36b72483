"""The owner of the core's background tasks: they survive any error, and stop together.

A background task that dies takes its promise with it (an ack flusher that
stops means acks stay in memory until shutdown), and nobody notices. So each
task runs under this owner: an exception is logged with its traceback,
counted (the metrics report `failures`), and the task starts again after a
pause; `close()` cancels every task and waits for each to end.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0


class BackgroundTasks:
    def __init__(self, restart_delay_s: float = RESTART_DELAY_S) -> None:
        self._restart_delay_s = restart_delay_s
        self._tasks: list[asyncio.Task[None]] = []
        self.failures: Counter[str] = Counter()
        """Exceptions per task name since start."""

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Runs run() until it returns; when it raises, logs, counts and runs it again."""
        self._tasks.append(asyncio.create_task(self._supervise(name, run), name=name))

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures[name] += 1
                log.exception("background task %s failed; restarting it in %g s", name, self._restart_delay_s)
            await asyncio.sleep(self._restart_delay_s)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
