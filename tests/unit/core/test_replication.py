"""A replica among others: what it does with each event, and after hearing nothing for a while.

Two chatrooms share one in-memory store, as two replicas share PostgreSQL;
the test carries events to replica B as LISTEN/NOTIFY would (or does not, as
when B's listening connection is down)."""

from __future__ import annotations

import asyncio

import pytest

from services.core.errors import NotAllowed, NotAuthenticated
from services.core.model import Membership
from services.core.store import ListenerLost, NotesCommitted, Resync
from services.storage.memory import MemoryStore
from tests.unit.core.conftest import WAIT_S, Bus, Instrumented, eventually, members, started, subscribe, take


class SlowMembership(Instrumented):
    """The next membership read, once armed, takes its snapshot and answers only when released."""

    def __init__(self, store: MemoryStore, replication: Bus) -> None:
        super().__init__(store, replication)
        self.armed = False
        self.read = asyncio.Event()
        self.release = asyncio.Event()

    async def membership(self, group: str, member: str) -> Membership | None:
        snapshot = await self.store.membership(group, member)
        if self.armed:
            self.armed = False
            self.read.set()
            await self.release.wait()
        return snapshot


def test_a_note_committed_elsewhere_while_a_stream_opens_here_is_not_stuck() -> None:
    async def scenario() -> None:
        shared = MemoryStore()
        bus = Bus()
        store_b = SlowMembership(shared, bus)
        a = await started(shared)
        b = await started(store_b)
        who = await members(a, "team", "alice", "bob")
        store_b.armed = True
        opening = asyncio.ensure_future(subscribe(b, who["bob"], "team"))
        await asyncio.wait_for(store_b.read.wait(), WAIT_S)  # B read bob's membership before...
        note = await a.send_note(who["alice"], "team", "committed on A meanwhile", "")
        bus.inbox.put_nowait(NotesCommitted("team", note.seq))  # ...the commit, and hears of it now
        await eventually(lambda: b.catchup.handled == 1, "B took the event")
        store_b.release.set()
        bob = await asyncio.wait_for(opening, WAIT_S)
        assert [n.text for n in await take(bob.items(), 1)] == ["committed on A meanwhile"]
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_after_a_listening_outage_every_session_is_checked_against_storage() -> None:
    async def scenario() -> None:
        shared = MemoryStore()
        bus = Bus()
        a = await started(shared)
        b = await started(Instrumented(shared, replication=bus))
        who = await members(a, "team", "alice", "bob", "chad", "doug")
        sessions = {name: await subscribe(b, who[name], "team") for name in ("bob", "chad", "doug")}
        bus.inbox.put_nowait(ListenerLost())
        # Changes made on A that B does not hear of:
        await a.remove_members("team", ["bob"])
        new_chad = await a.issue_token("chad")
        bus.inbox.put_nowait(Resync())  # B listens again
        with pytest.raises(NotAllowed, match="removed"):
            await take(sessions["bob"].items(), 1)
        with pytest.raises(NotAuthenticated, match="replaced"):
            await take(sessions["chad"].items(), 1)
        assert (await b.authenticate(new_chad.token)).member == "chad"
        note = await a.send_note(who["alice"], "team", "doug is still in", "")
        bus.inbox.put_nowait(NotesCommitted("team", note.seq))
        assert [n.text for n in await take(sessions["doug"].items(), 1)] == ["doug is still in"]
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_while_not_listening_a_replaced_token_is_refused_at_once() -> None:
    async def scenario() -> None:
        shared = MemoryStore()
        bus = Bus()
        a = await started(shared)
        b = await started(Instrumented(shared, replication=bus))
        (old,) = (await a.create_group("team", ["alice"])).credentials
        await b.authenticate(old.token)  # now in B's cache
        bus.inbox.put_nowait(ListenerLost())
        bus.inbox.put_nowait(NotesCommitted("team", 0))  # events are taken in order: once this one is...
        await eventually(lambda: b.catchup.handled == 1, "B took the events")
        new = await a.issue_token("alice")  # B does not hear of it
        with pytest.raises(NotAuthenticated):
            await b.authenticate(old.token)
        assert (await b.authenticate(new.token)).member == "alice"
        await a.close()
        await b.close()

    asyncio.run(scenario())
