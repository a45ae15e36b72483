"""A blocking facade over ChatClient for code without an event loop.

It runs the asynchronous client on a private event loop in a daemon thread, so
the classic loop reads naturally::

    with SyncChatClient("localhost:50051", token) as client:
        client.send("team", "hello")
        for item in client.listen_messages("team"):
            if isinstance(item, Note):
                print(item.sender, item.text)
            else:  # a Gap: notes deleted before they were read
                print(f"notes {item.first_seq}-{item.last_seq} were deleted")
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Sequence
from typing import Any, TypeVar

from clients.chat_client import HISTORY_PAGE, ChatClient
from clients.model import Gap, Note, NotePage

T = TypeVar("T")


class SyncChatClient:
    def __init__(self, servers: str | Sequence[str], token: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chat-client", daemon=True)
        self._thread.start()
        self._client = self._run(_make_client(servers, token, options))

    def __enter__(self) -> SyncChatClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def send(self, group: str, text: str, *, client_msg_id: str | None = None) -> Note:
        return self._run(self._client.send(group, text, client_msg_id=client_msg_id))

    def history(self, group: str, before_seq: int = 0, limit: int = HISTORY_PAGE) -> NotePage:
        return self._run(self._client.history(group, before_seq, limit))

    def listen_messages(self, group: str) -> Generator[Note | Gap, None, None]:
        """Blocks for each next note (or gap); it is acknowledged when the loop asks for the next."""
        notes = self._client.notes(group)
        try:
            while True:
                try:
                    yield self._run(_next(notes))
                except StopAsyncIteration:
                    return
        finally:
            self._run(notes.aclose())

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._client.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


async def _make_client(servers: str | Sequence[str], token: str, options: dict[str, Any]) -> ChatClient:
    return ChatClient(servers, token, **options)


async def _next(notes: AsyncIterator[Note | Gap]) -> Note | Gap:
    return await anext(notes)
