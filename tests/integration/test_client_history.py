"""The client library against a real server that deletes notes: a gap is an event, told
once, and acked; history pages come back as the server keeps them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from clients import Backoff, ChatClient, ChatError, Gap, Note, SyncChatClient
from tests.support import TIMEOUT_S, ServerProcess, wait_until

LIMIT = 5
FAST = Backoff(initial_s=0.05, max_s=0.5)


@pytest.fixture
def bounded(fresh_database: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server process that keeps at most LIMIT notes per group."""
    process = ServerProcess(
        tmp_path / "home", db=fresh_database, extra_args=[f"--retention-max-notes={LIMIT}"]
    )
    process.start()
    yield process
    process.stop()


def prepare(server: ServerProcess, count: int) -> dict[str, str]:
    """Group team of alice and bob; alice sends `count` notes that bob does not read."""
    with server.channel() as channel:
        tokens = server.admin(channel).create_group("team", ["alice", "bob"])

    async def flood() -> None:
        async with ChatClient(server.address, tokens["alice"]) as alice:
            for i in range(count):
                await alice.send("team", f"n{i + 1}")

    asyncio.run(flood())
    return tokens


def bobs_cursor(server: ServerProcess) -> int:
    with server.channel() as channel:
        return int(server.admin(channel).unread("team")["bob"].last_acked_seq)


def first_kept(server: ServerProcess) -> int:
    with server.channel() as channel:
        return int(server.admin(channel).group("team").first_seq)


async def take(items: AsyncIterator[Note | Gap]) -> Note | Gap:
    return await asyncio.wait_for(anext(items), TIMEOUT_S)


def seqs(items: list[Note | Gap]) -> list[object]:
    return [(item.first_seq, item.last_seq) if isinstance(item, Gap) else item.seq for item in items]


def test_a_gap_comes_once_before_the_notes_and_moves_the_cursor_past_it(bounded: ServerProcess) -> None:
    tokens = prepare(bounded, 20)
    wait_until(lambda: first_kept(bounded) == 16, what="the hard limit to delete 1..15")

    async def scenario() -> list[Note | Gap]:
        async with ChatClient(bounded.address, tokens["bob"], backoff=FAST) as bob:
            notes = bob.notes("team")
            received = [await take(notes)]
            # Not acked yet: the restarted server tells the gap again, the client drops it.
            await asyncio.to_thread(bounded.kill)
            await asyncio.to_thread(bounded.restart)
            received += [await take(notes) for _ in range(5)]
            await asyncio.to_thread(wait_until, lambda: bobs_cursor(bounded) == 19, what="acks up to 19")
            await notes.aclose()  # bob never asked past 20: it counts as unread
            async with ChatClient(bounded.address, tokens["alice"]) as alice:
                for i in range(10):  # bob is not reading: 20..25 go
                    await alice.send("team", f"later {i}")
            await asyncio.to_thread(wait_until, lambda: first_kept(bounded) == 26, what="20..25 deleted")
            again = bob.notes("team")
            received += [await take(again) for _ in range(6)]
            await asyncio.to_thread(wait_until, lambda: bobs_cursor(bounded) == 29, what="acks past the gap")
            await again.aclose()
            return received

    received = asyncio.run(scenario())
    assert seqs(received) == [(1, 15), 16, 17, 18, 19, 20, (20, 25), 26, 27, 28, 29, 30]
    gap = received[0]
    assert isinstance(gap, Gap) and str(LIMIT) in gap.reason


def test_asking_past_a_gap_acks_it_alone(bounded: ServerProcess) -> None:
    """The cursor moves past the gap as soon as the application asks for the next
    item, while the note it is then handed is not acked yet."""
    tokens = prepare(bounded, 8)
    wait_until(lambda: first_kept(bounded) == 4, what="the hard limit to delete 1..3")

    async def scenario() -> list[Note | Gap]:
        async with ChatClient(bounded.address, tokens["bob"]) as bob:
            notes = bob.notes("team")
            received = [await take(notes)]
            await asyncio.to_thread(wait_until, lambda: bobs_cursor(bounded) == 0, what="no ack yet")
            received.append(await take(notes))
            await asyncio.to_thread(wait_until, lambda: bobs_cursor(bounded) == 3, what="the gap's ack")
            await notes.aclose()
        return received

    assert seqs(asyncio.run(scenario())) == [(1, 3), 4]


def test_the_blocking_client_hands_over_the_gap_too(bounded: ServerProcess) -> None:
    tokens = prepare(bounded, 9)
    wait_until(lambda: first_kept(bounded) == 5, what="the hard limit to delete 1..4")
    with SyncChatClient(bounded.address, tokens["bob"]) as bob:
        messages = bob.listen_messages("team")
        received = [next(messages) for _ in range(2)]
        wait_until(lambda: bobs_cursor(bounded) == 4, what="the gap's ack")
        messages.close()
        page = bob.history("team", limit=2)
    assert seqs(received) == [(1, 4), 5]
    assert ([n.seq for n in page.notes], page.first_seq, page.has_more) == ([8, 9], 5, True)


def test_history_pages_back_to_the_first_kept_note(bounded: ServerProcess) -> None:
    tokens = prepare(bounded, 12)
    wait_until(lambda: first_kept(bounded) == 8, what="the hard limit to delete 1..7")
    with bounded.channel() as channel:
        outsider = bounded.admin(channel).issue_token("doug")

    async def scenario() -> list[tuple[list[tuple[int, str, str]], int, bool]]:
        pages = []
        async with ChatClient(bounded.address, tokens["bob"]) as bob:
            for before, limit in ((0, 3), (10, 3), (8, 50)):
                page = await bob.history("team", before_seq=before, limit=limit)
                notes = [(n.seq, n.sender, n.text) for n in page.notes]
                pages.append((notes, page.first_seq, page.has_more))
        return pages

    assert asyncio.run(scenario()) == [
        ([(10, "alice", "n10"), (11, "alice", "n11"), (12, "alice", "n12")], 8, True),
        ([(8, "alice", "n8"), (9, "alice", "n9")], 8, False),
        ([], 8, False),
    ]

    async def refused(token: str, group: str, limit: int) -> None:
        async with ChatClient(bounded.address, token) as client:
            await client.history(group, limit=limit)

    for token, group, limit, code in (
        (outsider, "team", 10, grpc.StatusCode.PERMISSION_DENIED),
        (tokens["bob"], "ghost", 10, grpc.StatusCode.PERMISSION_DENIED),
        (tokens["bob"], "team", 501, grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(ChatError) as error:
            asyncio.run(refused(token, group, limit))
        assert error.value.code == code
