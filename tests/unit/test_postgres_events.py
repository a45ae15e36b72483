"""How replicas hear of each other through PostgreSQL, including after the
listening connection is lost."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.core.model import NewNote, now_us
from services.core.store import ListenerLost, NotesCommitted, Resync, StoreEvent, TokenReplaced
from services.storage.postgres import LISTENER_NAME, PostgresStore
from tests.databases import postgres_database

pytestmark = pytest.mark.postgres

WAIT_S = 10.0


async def next_event(events: asyncio.Queue[StoreEvent]) -> StoreEvent:
    return await asyncio.wait_for(events.get(), WAIT_S)


async def listener_ready(url: str) -> None:
    """Waits until the listening connection has run its LISTENs."""
    connection = await asyncpg.connect(url)
    try:
        async with asyncio.timeout(WAIT_S):
            while not await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
                LISTENER_NAME,
            ):
                await asyncio.sleep(0.01)
    finally:
        await connection.close()


def test_a_replica_hears_the_others_commits_not_its_own_and_says_when_it_may_have_missed_some(
    postgres_url: str,
) -> None:
    with postgres_database(postgres_url) as url:

        async def scenario() -> None:
            here, there = PostgresStore(url), PostgresStore(url)
            await here.open()
            await there.open()
            events: asyncio.Queue[StoreEvent] = asyncio.Queue()
            listening = asyncio.create_task(here.listen(events.put_nowait))
            try:
                await listener_ready(url)
                assert await next_event(events) == Resync()  # listening: from here on, nothing is missed
                await there.create_group("team", ["alice"], {"alice": b"h"})
                await here.append_notes([NewNote("team", "alice", "mine", now_us(), "", b"h")])
                await there.append_notes([NewNote("team", "alice", "theirs", now_us(), "", b"h")] * 2)
                assert await next_event(events) == NotesCommitted("team", 3)
                await there.set_token("alice", b"new")
                assert await next_event(events) == TokenReplaced("alice")

                connection = await asyncpg.connect(url)
                await connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    LISTENER_NAME,
                )
                await connection.close()
                assert await next_event(events) == ListenerLost()
                assert await next_event(events) == Resync()
            finally:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)
                await here.close()
                await there.close()

        asyncio.run(scenario())
