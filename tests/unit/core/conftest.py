"""The delivery core on the in-memory store: chatrooms, members, and a store that can be held up."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from services.core.chatroom import Chatroom
from services.core.identity import Caller
from services.core.model import Note
from services.core.session import Gap, Session
from services.core.settings import ChatroomSettings
from services.core.store import Resync, Store, StoreEvent
from services.storage.memory import MemoryStore

WAIT_S = 10.0


class Bus:
    """Replication for chatrooms sharing one in-memory store: each hears what the test sends it.

    It stands in for PostgreSQL's LISTEN/NOTIFY (tested for real in the integration
    tests) so that the core's reaction to each event can be tested alone."""

    def __init__(self, replica_id: str = "r1") -> None:
        self.replica_id = replica_id
        self.inbox: asyncio.Queue[StoreEvent] = asyncio.Queue()
        self.presence: dict[tuple[str, str], int] = {}

    async def listen(self, handler: Callable[[StoreEvent], None]) -> None:
        handler(Resync())
        while True:
            handler(await self.inbox.get())

    async def group_heads(self, groups: Sequence[str]) -> dict[str, int]:
        return {}

    async def report_presence(self, sessions: Mapping[tuple[str, str], int]) -> None:
        self.presence = dict(sessions)

    async def online_sessions(self, group: str) -> dict[str, int]:
        return {}


class Instrumented:
    """A store that counts its calls and lets a test hold a call up or make it fail."""

    def __init__(self, store: Store | None = None, replication: Bus | None = None) -> None:
        self.store = store or MemoryStore()
        self.replication = replication
        self.calls: Counter[str] = Counter()
        self.before: dict[str, Callable[..., Awaitable[None]]] = {}
        """An awaitable run before the named method: hold it up, or raise to make it fail."""
        self.after: dict[str, Callable[..., Awaitable[None]]] = {}
        """An awaitable run after it (the call already happened): raise to lose its outcome."""

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if not callable(method):
            return method

        async def call(*args: Any) -> Any:
            self.calls[name] += 1
            if name in self.before:
                await self.before[name](*args)
            result = await method(*args)
            if name in self.after:
                await self.after[name](*args)
            return result

        return call


async def started(store: Any = None, **settings: Any) -> Chatroom:
    settings.setdefault("notes_per_second", 1e6)
    settings.setdefault("note_burst", 1_000_000)
    chatroom = Chatroom(store or MemoryStore(), "admin-secret", ChatroomSettings(**settings))
    await chatroom.start()
    return chatroom


async def members(chatroom: Chatroom, group: str, *names: str) -> dict[str, Caller]:
    result = await chatroom.create_group(group, names)
    return {c.member: await chatroom.authenticate(c.token) for c in result.credentials}


async def subscribe(chatroom: Chatroom, caller: Caller, group: str) -> Session:
    return await chatroom.open_session(chatroom.admit(caller), group)


async def take(items: AsyncIterator[list[Note] | Gap], count: int) -> list[Note]:
    """The next `count` notes (gaps are not expected here)."""
    received: list[Note] = []
    while len(received) < count:
        item = await asyncio.wait_for(anext(items), WAIT_S)
        assert not isinstance(item, Gap), item
        received.extend(item)
    return received


async def eventually(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Lets the event loop run until condition holds (a background task's work)."""

    async def holds() -> bool:
        result = condition()
        return await result if isinstance(result, Awaitable) else result

    try:
        async with asyncio.timeout(WAIT_S):
            while not await holds():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
