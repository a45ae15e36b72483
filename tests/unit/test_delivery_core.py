"""The delivery core without gRPC: sessions, fan-out, flow control, slow readers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.core.chatroom import Caller, Chatroom, ChatroomSettings
from services.core.errors import NotAllowed, NotAuthenticated, Unavailable
from services.core.model import Note
from services.core.session import MAX_BATCH_BYTES, MAX_BATCH_NOTES, Session
from tests.unit.conftest import StoreFactory

WAIT_S = 10.0


async def started(make_store: StoreFactory, **settings: Any) -> Chatroom:
    settings.setdefault("notes_per_second", 1e6)
    chatroom = Chatroom(make_store(), "admin-secret", ChatroomSettings(**settings))
    await chatroom.start()
    return chatroom


async def members(chatroom: Chatroom, group: str, *names: str) -> dict[str, Caller]:
    result = await chatroom.create_group(group, names)
    return {c.member: await chatroom.authenticate(c.token) for c in result.credentials}


async def take(batches: AsyncIterator[list[Note]], count: int) -> list[Note]:
    received: list[Note] = []
    while len(received) < count:
        received.extend(await asyncio.wait_for(anext(batches), WAIT_S))
    return received


def test_a_slow_reader_catches_up_from_storage_with_a_bounded_queue(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        chatroom = await started(make_store, session_queue_limit=4)
        who = await members(chatroom, "team", "alice", "bob")
        bob = await chatroom.open_session(who["bob"], "team")
        for i in range(50):
            await chatroom.send_note(who["alice"], "team", f"n{i}", "")
            assert len(bob._queue) <= 4
        received = await take(bob.batches(), 50)
        assert [n.seq for n in received] == list(range(1, 51))
        await chatroom.close()

    asyncio.run(scenario())


def test_live_notes_skip_the_sender_but_keep_the_order(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        chatroom = await started(make_store)
        who = await members(chatroom, "team", "alice", "bob")
        bob = await chatroom.open_session(who["bob"], "team")
        batches = bob.batches()
        for sender, text in [("alice", "a1"), ("bob", "b1"), ("bob", "b2"), ("alice", "a2")]:
            await chatroom.send_note(who[sender], "team", text, "")
        assert [(n.seq, n.text) for n in await take(batches, 2)] == [(1, "a1"), (4, "a2")]
        bob.ack(4)
        assert bob.cursor.acked_seq == 4
        await chatroom.close()

    asyncio.run(scenario())


def test_a_session_stops_at_max_unacked_until_any_session_of_its_member_acks(
    make_store: StoreFactory,
) -> None:
    async def scenario() -> None:
        chatroom = await started(make_store, max_unacked=3)
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(7):
            await chatroom.send_note(who["alice"], "team", f"n{i}", "")
        laptop = await chatroom.open_session(who["bob"], "team")
        phone = await chatroom.open_session(who["bob"], "team")
        laptop_batches = laptop.batches()
        assert [n.seq for n in await take(laptop_batches, 3)] == [1, 2, 3]
        waiting = asyncio.ensure_future(anext(laptop_batches))
        await asyncio.sleep(0)
        assert not waiting.done()
        assert [n.seq for n in await take(phone.batches(), 3)] == [1, 2, 3]
        phone.ack(2)  # any session's ack opens the window for all of the member's sessions
        assert [n.seq for n in await asyncio.wait_for(waiting, WAIT_S)] == [4, 5]
        await chatroom.close()

    asyncio.run(scenario())


def test_acks_are_clamped_and_never_move_back(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        chatroom = await started(make_store)
        who = await members(chatroom, "team", "alice", "bob")
        await chatroom.send_note(who["alice"], "team", "one", "")
        bob = await chatroom.open_session(who["bob"], "team")
        await take(bob.batches(), 1)
        bob.ack(99)
        assert bob.cursor.acked_seq == 1
        bob.ack(0)
        assert bob.cursor.acked_seq == 1
        delivery = await chatroom.list_unread("team")  # flushes the pending ack first
        assert {m.member: m.last_acked_seq for m in delivery.members} == {"alice": 0, "bob": 1}
        await chatroom.close()

    asyncio.run(scenario())


def test_removal_and_shutdown_end_sessions(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        chatroom = await started(make_store)
        who = await members(chatroom, "team", "alice", "bob")
        bob = await chatroom.open_session(who["bob"], "team")
        alice = await chatroom.open_session(who["alice"], "team")
        await chatroom.remove_members("team", ["bob"])
        with pytest.raises(NotAllowed, match="removed"):
            await take(bob.batches(), 1)
        chatroom.end_sessions()
        with pytest.raises(Unavailable):
            await take(alice.batches(), 1)
        await chatroom.close()

    asyncio.run(scenario())


def test_a_replaced_token_no_longer_authenticates(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        chatroom = await started(make_store)
        result = await chatroom.create_group("team", ["alice"])
        (old,) = result.credentials
        session: Session = await chatroom.open_session(await chatroom.authenticate(old.token), "team")
        new = await chatroom.issue_token("alice")
        with pytest.raises(NotAuthenticated):
            await chatroom.authenticate(old.token)
        with pytest.raises(NotAuthenticated, match="replaced"):
            await take(session.batches(), 1)
        assert (await chatroom.authenticate(new.token)).member == "alice"
        await chatroom.close()

    asyncio.run(scenario())


def test_a_backlog_is_packed_within_count_and_size_bounds(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        chatroom = await started(make_store, max_unacked=10_000)
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(600):
            await chatroom.send_note(who["alice"], "team", f"short {i}", "")
        for _ in range(400):
            await chatroom.send_note(who["alice"], "team", "€" * 1365, "")  # 4,095 bytes
        bob = await chatroom.open_session(who["bob"], "team")
        batches = bob.batches()
        received: list[list[Note]] = []
        while sum(map(len, received)) < 1000:
            received.append(await asyncio.wait_for(anext(batches), WAIT_S))
            bob.ack(received[-1][-1].seq)
        assert [n.seq for batch in received for n in batch] == list(range(1, 1001))
        assert len(received[0]) == MAX_BATCH_NOTES
        assert all(sum(len(n.text.encode()) for n in batch) <= MAX_BATCH_BYTES for batch in received)
        assert len(received) >= 4  # the long notes needed more messages
        await chatroom.close()

    asyncio.run(scenario())
