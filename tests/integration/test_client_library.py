"""ChatClient and SyncChatClient against a real server: exactly once to the application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from clients import Backoff, ChatClient, ChatError, SyncChatClient
from clients.model import Gap, Note
from tests.support import TIMEOUT_S, Admin, InProcessServer, ServerProcess, wait_until

FAST = Backoff(initial_s=0.05, max_s=0.5)


def only_note(item: Note | Gap) -> Note:
    """A group without retention never has a gap."""
    assert isinstance(item, Note), item
    return item


async def next_note(notes: AsyncIterator[Note | Gap]) -> Note:
    return only_note(await asyncio.wait_for(anext(notes), TIMEOUT_S))


async def collect(client: ChatClient, group: str, count: int) -> list[Note]:
    received: list[Note] = []
    async for note in client.notes(group):
        received.append(only_note(note))
        if len(received) == count:
            break
    return received


def test_notes_come_in_order_and_are_acked_once_seen(server: ServerProcess, admin: Admin, name: str) -> None:
    tokens = admin.create_group(name, [f"{name}-alice", f"{name}-bob"])

    def bobs_cursor() -> int:
        return int(admin.unread(name)[f"{name}-bob"].last_acked_seq)

    async def scenario() -> list[Note]:
        async with (
            ChatClient(server.address, tokens[f"{name}-alice"]) as alice,
            ChatClient(server.address, tokens[f"{name}-bob"]) as bob,
        ):
            await alice.send(name, "before bob")
            notes = bob.notes(name)
            received = [await next_note(notes)]
            for text in ("live one", "live two"):
                await alice.send(name, text)
            received += [await next_note(notes) for _ in range(2)]
            # Bob has asked past notes 1 and 2, not yet past 3: those two are acked.
            await asyncio.to_thread(wait_until, lambda: bobs_cursor() == 2, what="bob's acks")
            await notes.aclose()
            return received

    received = asyncio.run(scenario())
    assert [(n.seq, n.text) for n in received] == [(1, "before bob"), (2, "live one"), (3, "live two")]


def test_a_backlog_far_past_a_small_window_is_caught_up_without_pausing(tmp_path: Path) -> None:
    """The server sends 4 notes and waits for an ack; the client learns so on subscribe.
    A client that waited its usual 2 s between acks would need 50 s for these 100 notes."""
    server = InProcessServer(tmp_path, max_unacked=4).start()
    try:
        with server.channel() as channel:
            tokens = server.admin(channel).create_group("team", ["alice", "bob"])

        async def scenario() -> list[int]:
            async with (
                ChatClient(server.address, tokens["alice"]) as alice,
                ChatClient(server.address, tokens["bob"]) as bob,
            ):
                for i in range(100):
                    await alice.send("team", f"n{i}")
                return [n.seq for n in await asyncio.wait_for(collect(bob, "team", 100), TIMEOUT_S)]

        assert asyncio.run(scenario()) == list(range(1, 101))
    finally:
        server.stop()


def test_a_reconnect_after_kill_9_loses_nothing_and_repeats_nothing(fresh_server: ServerProcess) -> None:
    with fresh_server.channel() as channel:
        tokens = fresh_server.admin(channel).create_group("team", ["alice", "bob"])

    async def scenario() -> list[Note]:
        async with (
            ChatClient(fresh_server.address, tokens["alice"], backoff=FAST) as alice,
            ChatClient(fresh_server.address, tokens["bob"], backoff=FAST) as bob,
        ):
            reading = asyncio.create_task(collect(bob, "team", 6))
            for i in range(3):
                await alice.send("team", f"before {i}")
            await asyncio.to_thread(fresh_server.kill)
            await asyncio.to_thread(fresh_server.restart)
            for i in range(3):
                await alice.send("team", f"after {i}")
            return await asyncio.wait_for(reading, TIMEOUT_S)

    received = asyncio.run(scenario())
    assert [n.seq for n in received] == [1, 2, 3, 4, 5, 6]


def test_a_send_during_an_outage_is_retried_and_stored_once(fresh_server: ServerProcess) -> None:
    with fresh_server.channel() as channel:
        tokens = fresh_server.admin(channel).create_group("team", ["alice", "bob"])
    fresh_server.kill()

    async def scenario() -> Note:
        async with ChatClient(fresh_server.address, tokens["alice"], backoff=FAST) as alice:
            sending = asyncio.create_task(alice.send("team", "are you back?"))
            await asyncio.to_thread(fresh_server.restart)
            return await asyncio.wait_for(sending, TIMEOUT_S)

    assert asyncio.run(scenario()).seq == 1
    with fresh_server.channel() as channel:
        assert fresh_server.admin(channel).group("team").head_seq == 1


def test_a_refused_subscription_raises_chat_error(server: ServerProcess, admin: Admin, name: str) -> None:
    admin.create_group(name, [f"{name}-alice"])
    outsider = admin.issue_token(f"{name}-doug")

    async def scenario() -> None:
        async with ChatClient(server.address, outsider) as doug:
            await collect(doug, name, 1)

    with pytest.raises(ChatError) as refused:
        asyncio.run(scenario())
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_a_refused_send_raises_at_once(server: ServerProcess, admin: Admin, name: str) -> None:
    tokens = admin.create_group(name, [f"{name}-alice"])

    async def scenario() -> None:
        async with ChatClient(server.address, tokens[f"{name}-alice"]) as alice:
            await alice.send(name, "")

    with pytest.raises(ChatError) as refused:
        asyncio.run(scenario())
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_the_blocking_client_listens_like_the_classic_loop(
    server: ServerProcess, admin: Admin, name: str
) -> None:
    tokens = admin.create_group(name, [f"{name}-alice", f"{name}-bob"])
    with (
        SyncChatClient(server.address, tokens[f"{name}-alice"]) as alice,
        SyncChatClient(server.address, tokens[f"{name}-bob"]) as bob,
    ):
        alice.send(name, "one")
        alice.send(name, "two")
        messages = bob.listen_messages(name)
        assert [only_note(next(messages)).text, only_note(next(messages)).text] == ["one", "two"]
        alice.send(name, "three")
        assert only_note(next(messages)).text == "three"  # asking for it acknowledged one and two
        wait_until(lambda: admin.unread(name)[f"{name}-bob"].last_acked_seq >= 2, what="bob's acks")
        messages.close()
