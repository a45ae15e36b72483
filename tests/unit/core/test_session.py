"""Sessions: order, own notes, flow control, slow readers, batches, gaps."""

from __future__ import annotations

import asyncio

import pytest

from services.core.errors import NotAllowed, Unavailable
from services.core.model import CursorUpdate, Note, now_us
from services.core.session import MAX_BATCH_BYTES, MAX_BATCH_NOTES, Gap
from tests.unit.core.conftest import WAIT_S, Bus, Instrumented, eventually, members, started, subscribe, take


def test_live_notes_skip_the_sender_but_keep_the_order() -> None:
    async def scenario() -> None:
        chatroom = await started()
        who = await members(chatroom, "team", "alice", "bob")
        bob = await subscribe(chatroom, who["bob"], "team")
        items = bob.items()
        for sender, text in [("alice", "a1"), ("bob", "b1"), ("bob", "b2"), ("alice", "a2")]:
            await chatroom.send_note(who[sender], "team", text, "")
        assert [(n.seq, n.text) for n in await take(items, 2)] == [(1, "a1"), (4, "a2")]
        await chatroom.close()

    asyncio.run(scenario())


def test_a_reader_that_stops_reading_is_served_from_storage_not_from_a_growing_queue() -> None:
    async def scenario() -> None:
        store = Instrumented()
        chatroom = await started(store, session_queue_limit=4)
        who = await members(chatroom, "team", "alice", "bob")
        bob = await subscribe(chatroom, who["bob"], "team")
        for i in range(50):
            await chatroom.send_note(who["alice"], "team", f"n{i}", "")
        reads_before = store.calls["read_notes"]
        received = await take(bob.items(), 50)
        assert [n.seq for n in received] == list(range(1, 51))
        # Only 4 notes fit in memory: the other 46 had to come from storage.
        assert store.calls["read_notes"] > reads_before
        await chatroom.close()

    asyncio.run(scenario())


def test_a_session_stops_at_max_unacked_until_any_session_of_its_member_acks() -> None:
    async def scenario() -> None:
        chatroom = await started(max_unacked=3)
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(7):
            await chatroom.send_note(who["alice"], "team", f"n{i}", "")
        laptop = await subscribe(chatroom, who["bob"], "team")
        phone = await subscribe(chatroom, who["bob"], "team")
        laptop_items = laptop.items()
        # Seven notes are stored; a session without a window would take them all at once.
        assert [n.seq for n in await asyncio.wait_for(anext(laptop_items), WAIT_S)] == [1, 2, 3]  # type: ignore[union-attr]
        assert [n.seq for n in await take(phone.items(), 3)] == [1, 2, 3]
        phone.ack(2)  # any session's ack opens the window for all of the member's sessions
        assert [n.seq for n in await asyncio.wait_for(anext(laptop_items), WAIT_S)] == [4, 5]  # type: ignore[union-attr]
        await chatroom.close()

    asyncio.run(scenario())


def test_a_members_own_notes_never_fill_its_window() -> None:
    """Own notes are not sent, so they cannot be acked: counting them, bob would
    wait for an ack that never comes once he sent a window's worth in a row."""

    async def scenario() -> None:
        chatroom = await started(max_unacked=3)
        who = await members(chatroom, "team", "alice", "bob")
        bob = await subscribe(chatroom, who["bob"], "team")
        items = bob.items()
        await chatroom.send_note(who["alice"], "team", "a1", "")
        assert [n.seq for n in await take(items, 1)] == [1]
        for i in range(5):
            await chatroom.send_note(who["bob"], "team", f"b{i}", "")
        await chatroom.send_note(who["alice"], "team", "a2", "")
        assert [n.seq for n in await take(items, 1)] == [7]
        for i in range(5):
            await chatroom.send_note(who["bob"], "team", f"again {i}", "")
        await chatroom.send_note(who["alice"], "team", "a3", "")
        # Alice's three notes fill the window that bob's ten did not.
        assert [n.seq for n in await take(items, 1)] == [13]
        await chatroom.send_note(who["alice"], "team", "a4", "")
        later = await subscribe(chatroom, who["bob"], "team")  # from storage, after bob's cursor (0)
        assert [n.seq for n in await take(later.items(), 3)] == [1, 7, 13]
        bob.ack(13)
        assert [n.seq for n in await take(items, 1)] == [14]
        await chatroom.close()

    asyncio.run(scenario())


def test_a_small_window_reads_no_more_from_storage_than_it_may_send() -> None:
    """Reading a full batch for a window of 4 would read most of 500 rows again for every 4 sent."""

    async def scenario() -> None:
        store = Instrumented()
        limits: list[int] = []

        async def record(group: str, after_seq: int, until_seq: int, limit: int) -> None:
            limits.append(limit)

        store.before["read_notes"] = record
        chatroom = await started(store, max_unacked=4)
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(40):
            await chatroom.send_note(who["alice"], "team", f"n{i}", "")
        bob = await subscribe(chatroom, who["bob"], "team")
        items = bob.items()
        for first in range(1, 41, 4):
            assert [n.seq for n in await take(items, 4)] == list(range(first, first + 4))
            bob.ack(first + 3)
        assert limits and max(limits) <= 4, limits
        await chatroom.close()

    asyncio.run(scenario())


def test_an_acked_session_keeps_no_record_of_what_it_was_sent() -> None:
    """White-box: an idle session's memory is what 10,000 of them cost; its sent seqs
    are let go when the cursor passes them, not the next time it has notes to send."""

    async def scenario() -> None:
        chatroom = await started()
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(50):
            await chatroom.send_note(who["alice"], "team", f"n{i}", "")
        laptop = await subscribe(chatroom, who["bob"], "team")
        phone = await subscribe(chatroom, who["bob"], "team")
        await take(laptop.items(), 50)
        await take(phone.items(), 50)
        phone.ack(50)
        assert (laptop._sent_seqs, phone._sent_seqs) == ([], [])
        await chatroom.close()

    asyncio.run(scenario())


def test_acks_are_clamped_and_never_move_back() -> None:
    async def scenario() -> None:
        chatroom = await started()
        who = await members(chatroom, "team", "alice", "bob")
        await chatroom.send_note(who["alice"], "team", "one", "")
        bob = await subscribe(chatroom, who["bob"], "team")
        await take(bob.items(), 1)
        bob.ack(99)
        bob.ack(0)
        delivery = await chatroom.list_unread("team")  # flushes the pending ack first
        assert {m.member: m.last_acked_seq for m in delivery.members} == {"alice": 0, "bob": 1}
        await chatroom.close()

    asyncio.run(scenario())


def test_removal_and_shutdown_end_sessions() -> None:
    async def scenario() -> None:
        chatroom = await started()
        who = await members(chatroom, "team", "alice", "bob")
        bob = await subscribe(chatroom, who["bob"], "team")
        alice = await subscribe(chatroom, who["alice"], "team")
        await chatroom.remove_members("team", ["bob"])
        with pytest.raises(NotAllowed, match="removed"):
            await take(bob.items(), 1)
        chatroom.end_sessions()
        with pytest.raises(Unavailable):
            await take(alice.items(), 1)
        await chatroom.close()

    asyncio.run(scenario())


def test_a_backlog_is_packed_within_count_and_size_bounds() -> None:
    async def scenario() -> None:
        chatroom = await started(max_unacked=10_000)
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(600):
            await chatroom.send_note(who["alice"], "team", f"short {i}", "")
        for _ in range(400):
            await chatroom.send_note(who["alice"], "team", "€" * 1365, "")  # 4,095 bytes
        bob = await subscribe(chatroom, who["bob"], "team")
        items = bob.items()
        received: list[list[Note]] = []
        while sum(map(len, received)) < 1000:
            batch = await asyncio.wait_for(anext(items), WAIT_S)
            assert not isinstance(batch, Gap)
            received.append(batch)
            bob.ack(batch[-1].seq)
        assert [n.seq for batch in received for n in batch] == list(range(1, 1001))
        assert len(received[0]) == MAX_BATCH_NOTES
        assert all(sum(len(n.text.encode()) for n in batch) <= MAX_BATCH_BYTES for batch in received)
        assert len(received) >= 4  # the long notes needed more messages
        await chatroom.close()

    asyncio.run(scenario())


def test_notes_deleted_before_a_member_read_them_come_as_one_gap_then_the_rest() -> None:
    async def scenario() -> None:
        chatroom = await started(retention_max_notes=3)
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(10):
            await chatroom.send_note(who["alice"], "team", f"n{i + 1}", "")
        await chatroom.retention.run_once()
        bob = await subscribe(chatroom, who["bob"], "team")
        items = bob.items()
        gap = await asyncio.wait_for(anext(items), WAIT_S)
        assert gap == Gap(1, 7, "the group keeps at most 3 notes")
        assert [n.seq for n in await take(items, 3)] == [8, 9, 10]
        bob.ack(10)
        delivery = await chatroom.list_unread("team")
        bob_state = next(m for m in delivery.members if m.member == "bob")
        assert (bob_state.last_acked_seq, bob_state.unread_count, bob_state.lost_to_retention) == (10, 0, 7)
        await chatroom.close()

    asyncio.run(scenario())


def test_a_live_reader_that_falls_behind_the_hard_limit_is_told_of_the_gap() -> None:
    async def scenario() -> None:
        chatroom = await started(retention_max_notes=5, session_queue_limit=2, max_unacked=100)
        who = await members(chatroom, "team", "alice", "bob")
        bob = await subscribe(chatroom, who["bob"], "team")
        items = bob.items()
        await chatroom.send_note(who["alice"], "team", "first", "")
        received = [n.seq for n in await take(items, 1)]
        assert received == [1]
        for i in range(20):  # bob's queue overflows while he does not read
            await chatroom.send_note(who["alice"], "team", f"n{i + 2}", "")
        await chatroom.retention.run_once()
        gaps = []
        while received[-1] < 21:
            item = await asyncio.wait_for(anext(items), WAIT_S)
            if isinstance(item, Gap):
                gaps.append((item.first_seq, item.last_seq))
            else:
                received += [n.seq for n in item]
        # Whatever memory still held was sent; the rest came after exactly one gap.
        assert len(gaps) == 1
        first, last = gaps[0]
        assert sorted(received + list(range(first, last + 1))) == list(range(1, 22))
        await chatroom.close()

    asyncio.run(scenario())


def test_a_cursor_moved_on_another_replica_opens_the_window_here() -> None:
    async def scenario() -> None:
        store = Instrumented(replication=Bus())
        chatroom = await started(store, max_unacked=2)
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(4):
            await chatroom.send_note(who["alice"], "team", f"n{i}", "")
        bob = await subscribe(chatroom, who["bob"], "team")
        items = bob.items()
        assert [n.seq for n in await take(items, 2)] == [1, 2]
        waiting = asyncio.ensure_future(anext(items))
        # Bob's phone on another replica acked 2 there: only storage knows.
        await store.save_cursors([CursorUpdate("team", "bob", 2, now_us())])
        batch = await asyncio.wait_for(waiting, WAIT_S)
        assert not isinstance(batch, Gap) and [n.seq for n in batch] == [3, 4]
        await eventually(lambda: store.calls["membership"] >= 2, "the cursor was read back")
        await chatroom.close()

    asyncio.run(scenario())
