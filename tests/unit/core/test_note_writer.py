"""Group commit: sends that overlap share a commit, and a failure stays with the send that caused it."""

from __future__ import annotations

import asyncio

import pytest

from services.core.errors import InvalidRequest, Unavailable
from tests.unit.core.conftest import WAIT_S, Instrumented, members, started, subscribe, take


def test_sends_that_overlap_share_one_commit() -> None:
    async def scenario() -> None:
        store = Instrumented()
        gate = asyncio.Event()

        async def held(*_: object) -> None:
            await gate.wait()

        chatroom = await started(store)
        who = await members(chatroom, "team", "alice", "bob")
        store.before["append_notes"] = held  # the first commit waits; the others queue behind it
        sends = [
            asyncio.ensure_future(chatroom.send_note(who["alice"], "team", f"n{i}", "")) for i in range(20)
        ]
        await asyncio.sleep(0)
        gate.set()
        notes = await asyncio.wait_for(asyncio.gather(*sends), WAIT_S)
        assert sorted(note.seq for note in notes) == list(range(1, 21))
        assert store.calls["append_notes"] <= 2  # not 20: those that queued meanwhile went together
        await chatroom.close()

    asyncio.run(scenario())


def test_a_send_the_database_refuses_fails_alone() -> None:
    async def scenario() -> None:
        store = Instrumented()
        gate = asyncio.Event()

        async def refuse_poison(batch: list[object]) -> None:
            await gate.wait()
            if any(getattr(new, "text", "") == "poison" for new in batch):
                raise InvalidRequest("storage refused the data: poison")

        chatroom = await started(store)
        who = await members(chatroom, "team", "alice", "bob")
        store.before["append_notes"] = refuse_poison
        texts = ["first", "a", "poison", "b", "c"]
        sends = [asyncio.ensure_future(chatroom.send_note(who["alice"], "team", t, "")) for t in texts]
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), WAIT_S)
        assert isinstance(outcomes[2], InvalidRequest)
        stored = [o.text for o in outcomes if not isinstance(o, BaseException)]
        assert stored == ["first", "a", "b", "c"]
        await chatroom.close()

    asyncio.run(scenario())


def test_a_commit_whose_outcome_was_lost_still_reaches_the_readers() -> None:
    async def scenario() -> None:
        store = Instrumented()

        async def connection_lost(*_: object) -> None:
            del store.after["append_notes"]
            raise Unavailable("storage failed: the connection was closed")

        chatroom = await started(store)
        who = await members(chatroom, "team", "alice", "bob")
        bob = await subscribe(chatroom, who["bob"], "team")
        store.after["append_notes"] = connection_lost  # stored, but the sender hears of a failure
        with pytest.raises(Unavailable):
            await chatroom.send_note(who["alice"], "team", "stored after all", "")
        assert [n.text for n in await take(bob.items(), 1)] == ["stored after all"]
        await chatroom.close()

    asyncio.run(scenario())


def test_a_broken_store_does_not_stop_the_writer() -> None:
    async def scenario() -> None:
        store = Instrumented()

        async def bug(*_: object) -> None:
            del store.before["append_notes"]
            raise RuntimeError("an unexpected failure")

        chatroom = await started(store)
        who = await members(chatroom, "team", "alice", "bob")
        store.before["append_notes"] = bug
        with pytest.raises(Unavailable):
            await chatroom.send_note(who["alice"], "team", "lost", "")
        note = await asyncio.wait_for(chatroom.send_note(who["alice"], "team", "next", ""), WAIT_S)
        assert note.seq == 1
        assert chatroom.tasks.failures["note-writer"] == 1
        await chatroom.close()

    asyncio.run(scenario())
