"""Acks: coalesced into few writes, each within the flush interval, and never given up on."""

from __future__ import annotations

import asyncio

from services.core.errors import Unavailable
from tests.unit.core.conftest import Instrumented, eventually, members, started, subscribe, take


async def stored_cursor(store: Instrumented, group: str, member: str) -> int:
    delivery = await store.store.delivery(group)
    return next(m.last_acked_seq for m in delivery.members if m.member == member)


async def _is_stored(store: Instrumented, seq: int) -> bool:
    return await stored_cursor(store, "team", "bob") == seq


def test_many_acks_within_the_interval_are_one_write() -> None:
    async def scenario() -> None:
        store = Instrumented()
        chatroom = await started(store, ack_flush_interval_s=0.2)
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(10):
            await chatroom.send_note(who["alice"], "team", f"n{i}", "")
        bob = await subscribe(chatroom, who["bob"], "team")
        await take(bob.items(), 10)
        writes_before = store.calls["save_cursors"]
        for seq in range(1, 11):
            bob.ack(seq)
        await eventually(lambda: store.calls["save_cursors"] > writes_before, "the flush")
        assert store.calls["save_cursors"] == writes_before + 1
        assert await stored_cursor(store, "team", "bob") == 10
        await chatroom.close()

    asyncio.run(scenario())


def test_the_flusher_survives_any_storage_error_and_writes_later() -> None:
    async def scenario() -> None:
        store = Instrumented()
        failures = iter([Unavailable("storage failed"), RuntimeError("cannot switch to state 15")])

        async def failing(*_: object) -> None:
            error = next(failures, None)
            if error is not None:
                raise error

        chatroom = await started(store, ack_flush_interval_s=0.01)
        who = await members(chatroom, "team", "alice", "bob")
        await chatroom.send_note(who["alice"], "team", "one", "")
        bob = await subscribe(chatroom, who["bob"], "team")
        await take(bob.items(), 1)
        store.before["save_cursors"] = failing
        bob.ack(1)
        await eventually(lambda: store.calls["save_cursors"] >= 3, "two failed writes and a third")
        await eventually(lambda: _is_stored(store, 1), "the ack written")
        await chatroom.close()

    asyncio.run(scenario())
