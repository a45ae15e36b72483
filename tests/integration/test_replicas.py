"""Several server replicas on one PostgreSQL: any member on any replica, and every
note reaches every member exactly as on one server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from chatroom.v1 import admin_pb2
from clients import Backoff, ChatClient
from clients.model import Note
from services.storage.postgres import LISTENER_NAME
from tests.databases import postgres_database
from tests.support import TIMEOUT_S, Console, ServerProcess, Stream, send, wait_until

pytestmark = pytest.mark.postgres

FAST = Backoff(initial_s=0.05, max_s=0.5)


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with postgres_database(postgres_url) as url:
        a = ServerProcess(tmp_path / "a", db=url).start()
        b = ServerProcess(tmp_path / "b", db=url).start()
        try:
            yield a, b
        finally:
            a.stop()
            b.stop()


@pytest.fixture
def team(replicas, tmp_path: Path) -> dict[str, Path]:
    """Group team of alice, bob and chad, created on replica A; token files by member."""
    a, _ = replicas
    with a.channel() as channel:
        tokens = a.admin(channel).create_group("team", ["alice", "bob", "chad"])
        tokens["doug"] = a.admin(channel).issue_token("doug")
    files = {}
    for member, token in tokens.items():
        files[member] = tmp_path / f"{member}.token"
        files[member].write_text(token)
    return files


def test_the_three_scenarios_across_replicas(replicas, team) -> None:
    a, b = replicas
    alice = Console("alice", "team", a.address, team["alice"], a.env).subscribed()
    alice.type("Hi team, this is Alice.")
    bob = Console("bob", "team", b.address, team["bob"], b.env).subscribed()
    chad = Console("chad", "team", b.address, team["chad"], b.env).subscribed()
    try:
        for member in (bob, chad):
            member.wait_for_note("alice", "Hi team, this is Alice.")
        bob.type("Bob here.")
        alice.wait_for_note("bob", "Bob here.")
        chad.wait_for_note("bob", "Bob here.")
        alice.type("Shipping it.")
        bob.wait_for_note("alice", "Shipping it.")
        chad.wait_for_note("alice", "Shipping it.")
        doug = Console("doug", "team", b.address, team["doug"], b.env)
        assert doug.wait(TIMEOUT_S) != 0
        assert "PERMISSION_DENIED" in doug.output and doug.notes() == []
        chad.type("Bye.")
        alice.wait_for_note("chad", "Bye.")
        bob.wait_for_note("chad", "Bye.")
        assert alice.notes() == [(2, "bob", "Bob here."), (4, "chad", "Bye.")]
        assert bob.notes() == [
            (1, "alice", "Hi team, this is Alice."),
            (3, "alice", "Shipping it."),
            (4, "chad", "Bye."),
        ]
    finally:
        for console in (alice, bob, chad):
            console.stop()


def test_concurrent_senders_on_two_replicas_get_gapless_seqs_delivered_everywhere(replicas, team) -> None:
    a, b = replicas
    tokens = {member: path.read_text() for member, path in team.items()}
    per_sender = 500

    async def scenario() -> tuple[list[int], list[list[Note]]]:
        readers = [ChatClient(server.address, tokens["chad"]) for server in (a, b)]
        senders = [
            ChatClient(server.address, tokens[member]) for server in (a, b) for member in ("alice", "bob")
        ]
        reading = [asyncio.create_task(_read(reader, 4 * per_sender)) for reader in readers]

        async def flood(client: ChatClient, index: int) -> list[int]:
            return [(await client.send("team", f"s{index} n{i}")).seq for i in range(per_sender)]

        seqs = await asyncio.gather(*(flood(client, i) for i, client in enumerate(senders)))
        received = await asyncio.wait_for(asyncio.gather(*reading), TIMEOUT_S * 4)
        for client in [*readers, *senders]:
            await client.close()
        return sorted(seq for batch in seqs for seq in batch), list(received)

    sent, received = asyncio.run(scenario())
    assert sent == list(range(1, 4 * per_sender + 1))
    for notes in received:  # chad on replica A and chad on replica B
        assert [note.seq for note in notes] == sent


async def _read(client: ChatClient, count: int) -> list[Note]:
    received: list[Note] = []
    async for note in client.notes("team"):
        assert isinstance(note, Note)  # no retention: no gap
        received.append(note)
        if len(received) == count:
            break
    return received


def test_a_client_fails_over_when_its_replica_is_killed(replicas, team) -> None:
    a, b = replicas
    tokens = {member: path.read_text() for member, path in team.items()}

    async def scenario() -> list[Note]:
        alice = ChatClient([a.address, b.address], tokens["alice"], backoff=FAST)
        bob = ChatClient(b.address, tokens["bob"], backoff=FAST)
        reading = asyncio.create_task(_read(alice, 40))
        for i in range(20):
            await bob.send("team", f"before {i}")
        await asyncio.to_thread(a.kill)
        for i in range(20):
            await bob.send("team", f"after {i}")
        received = await asyncio.wait_for(reading, TIMEOUT_S)
        await alice.close()
        await bob.close()
        return received

    received = asyncio.run(scenario())
    assert [note.seq for note in received] == list(range(1, 41))


def test_presence_counts_every_replica_and_forgets_a_dead_one(replicas, team) -> None:
    a, b = replicas
    tokens = {member: path.read_text() for member, path in team.items()}
    with a.channel() as on_a, b.channel() as on_b:
        bob_a = Stream(on_a, tokens["bob"], "team").subscribed()
        bob_b = Stream(on_b, tokens["bob"], "team").subscribed()
        admin_b = b.admin(on_b)
        wait_until(
            lambda: admin_b.unread("team")["bob"].online_sessions == 2, what="sessions on both replicas"
        )
        a.kill()
        wait_until(
            lambda: admin_b.unread("team")["bob"].online_sessions == 1,
            timeout_s=30,
            what="replica A to expire",
        )
        bob_b.close()
        bob_a.close()


def test_removal_and_new_tokens_reach_streams_on_the_other_replica(replicas, team) -> None:
    a, b = replicas
    tokens = {member: path.read_text() for member, path in team.items()}
    with a.channel() as on_a, b.channel() as on_b:
        chad = Stream(on_b, tokens["chad"], "team").subscribed()
        bob = Stream(on_b, tokens["bob"], "team").subscribed()
        admin = a.admin(on_a)
        admin.issue_token("chad")
        assert chad.ended_with().name == "UNAUTHENTICATED"
        request = admin_pb2.RemoveMembersRequest(group="team", members=["bob"])
        admin.stub.RemoveMembers(request, metadata=admin.metadata, timeout=TIMEOUT_S)
        assert bob.ended_with().name == "PERMISSION_DENIED"


def test_notes_still_arrive_after_the_listening_connection_is_lost(replicas, team) -> None:
    a, b = replicas
    tokens = {member: path.read_text() for member, path in team.items()}
    with a.channel() as on_a, b.channel() as on_b:
        bob = Stream(on_b, tokens["bob"], "team").subscribed()
        send(on_a, tokens["alice"], "team", "before")
        assert [n.text for n in bob.notes(1)] == ["before"]
        assert asyncio.run(_terminate_listeners(b)) >= 1
        send(on_a, tokens["alice"], "team", "during")
        assert [n.text for n in bob.notes(1)] == ["during"]
        bob.close()


async def _terminate_listeners(server: ServerProcess) -> int:
    connection = await asyncpg.connect(server.db)
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            LISTENER_NAME,
        )
        return len(rows)
    finally:
        await connection.close()
