"""Replicas under faults: a listener that drops, PostgreSQL restarted under a running server,
the same send reaching two replicas, a window moved on another replica. Nothing a replica
missed may keep anyone in who was let out, and nothing stored may be lost or stuck."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatroom.v1 import admin_pb2
from services.storage.postgres import LISTENER_NAME
from tests.databases import embedded_postgres, postgres_database, postgres_rows, start_postgres
from tests.support import TIMEOUT_S, ServerProcess, Stream, send, wait_until

pytestmark = pytest.mark.postgres
T = TypeVar("T")


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with postgres_database(postgres_url) as url:
        a = ServerProcess(tmp_path / "a", db=url).start()
        b = ServerProcess(tmp_path / "b", db=url, extra_args=["--max-unacked=5"]).start()
        try:
            yield a, b
        finally:
            a.stop()
            b.stop()


async def _terminate_listeners(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            LISTENER_NAME,
        )
        return len(rows)
    finally:
        await connection.close()


def cut_listeners(server: ServerProcess) -> None:
    """Ends the LISTEN connections of every replica on the server's database."""
    assert asyncio.run(_terminate_listeners(server.db)) >= 1


def test_a_rotation_and_a_removal_made_while_a_replica_was_not_listening_reach_it(replicas) -> None:
    a, b = replicas
    with a.channel() as on_a, b.channel() as on_b:
        admin = a.admin(on_a)
        tokens = admin.create_group("team", ["alice", "bob", "chad"])
        bob = Stream(on_b, tokens["bob"], "team").subscribed()
        chad = Stream(on_b, tokens["chad"], "team").subscribed()
        send(on_b, tokens["bob"], "team", "bob's token is in B's cache now")

        cut_listeners(b)  # and at once, on A:
        new_bob = admin.issue_token("bob")
        request = admin_pb2.RemoveMembersRequest(group="team", members=["chad"])
        admin.stub.RemoveMembers(request, metadata=admin.metadata, timeout=TIMEOUT_S)

        assert bob.ended_with() == grpc.StatusCode.UNAUTHENTICATED
        assert chad.ended_with() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as refused:
            send(on_b, tokens["bob"], "team", "with the old token")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert send(on_b, new_bob, "team", "with the new one").sender == "bob"
        texts = [
            row[3] for row in postgres_rows(a.db, {"notes": "SELECT * FROM notes ORDER BY seq"})["notes"]
        ]
        assert "with the old token" not in texts


def test_a_note_sent_to_two_replicas_at_once_is_stored_once_and_fails_no_one(replicas) -> None:
    a, b = replicas
    with a.channel() as on_a, b.channel() as on_b:
        tokens = a.admin(on_a).create_group("team", ["alice", "bob"])

        def round_(i: int) -> list[object]:
            calls = [
                (on_a, "alice", f"retried {i}", f"id-{i}"),
                (on_b, "alice", f"retried {i}", f"id-{i}"),
                (on_a, "bob", f"bystander a{i}", ""),
                (on_b, "bob", f"bystander b{i}", ""),
            ]
            start = threading.Barrier(len(calls))

            def call(channel: grpc.Channel, member: str, text: str, msg_id: str) -> object:
                start.wait()
                return send(channel, tokens[member], "team", text, client_msg_id=msg_id)

            with ThreadPoolExecutor(len(calls)) as pool:
                return list(pool.map(lambda args: call(*args), calls))

        for i in range(60):
            first, second, *bystanders = round_(i)  # every call succeeds, or this raises
            assert first.seq == second.seq  # type: ignore[attr-defined]
            assert len(bystanders) == 2
        rows = postgres_rows(a.db, {"notes": "SELECT seq, text FROM notes ORDER BY seq"})["notes"]
        assert [seq for seq, _ in rows] == list(range(1, 60 * 3 + 1))  # gapless, the retries once


def test_acks_on_another_replica_open_the_window_here(replicas) -> None:
    a, b = replicas
    with a.channel() as on_a, b.channel() as on_b:
        tokens = a.admin(on_a).create_group("team", ["alice", "bob"])
        for i in range(10):
            send(on_a, tokens["alice"], "team", f"n{i + 1}")
        laptop = Stream(on_b, tokens["bob"], "team").subscribed()  # B allows 5 unacked
        assert [n.seq for n in laptop.notes(5)] == [1, 2, 3, 4, 5]
        phone = Stream(on_a, tokens["bob"], "team").subscribed()
        assert [n.seq for n in phone.notes(10)] == list(range(1, 11))
        phone.ack(10)  # on A
        assert [n.seq for n in laptop.notes(5)] == [6, 7, 8, 9, 10]
        laptop.close()
        phone.close()


def test_a_note_committed_on_one_replica_while_a_stream_opens_on_another_arrives(replicas) -> None:
    """The note lands between the stream's catch-up read and its joining the fan-out: it must
    still arrive at once, not when the next note is sent to the (here quiet) group."""
    a, b = replicas  # bob reads on A, which has no small window to fill
    with a.channel() as on_a, b.channel() as on_b, ThreadPoolExecutor(2) as pool:
        tokens = a.admin(on_a).create_group("team", ["alice", "bob"])
        for i in range(200):
            together = threading.Barrier(2)
            opening = pool.submit(_when, together, lambda: Stream(on_a, tokens["bob"], "team").subscribed())
            sending = pool.submit(_when, together, lambda: send(on_b, tokens["alice"], "team", "hi").seq)
            stream, seq = opening.result(TIMEOUT_S), sending.result(TIMEOUT_S)
            arrived = pool.submit(_read_until, stream, seq)
            try:
                assert arrived.result(10) == seq, f"round {i}: note {seq} is stuck"
                stream.ack(seq)
            finally:
                stream.close()


def _when(together: threading.Barrier, call: Callable[[], T]) -> T:
    together.wait()
    return call()


def _read_until(stream: Stream, seq: int) -> int:
    while seq not in {note.seq for note in stream.batch()}:
        pass
    return seq


def serving(channel: grpc.Channel) -> bool:
    try:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError:
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def test_postgresql_restarted_under_a_running_server(tmp_path: Path) -> None:
    """Sends are stored or refused with UNAVAILABLE, never UNKNOWN; health says when storage is
    away; and afterwards acks are written again within moments, whatever the driver raised."""
    with embedded_postgres(tmp_path / "postgres") as (postgres, process):
        server = ServerProcess(
            tmp_path / "home", db=postgres.url(), extra_args=["--ack-flush-interval=0.05"]
        ).start()
        try:
            with server.channel() as channel:
                tokens = server.admin(channel).create_group("team", ["alice", "bob"])
                bob = Stream(channel, tokens["bob"], "team").subscribed()
                send(channel, tokens["alice"], "team", "before")
                assert [n.text for n in bob.notes(1)] == ["before"]

                outcomes: list[str] = []
                stop_sending = threading.Event()

                def keep_sending() -> None:
                    i = 0
                    while not stop_sending.is_set():
                        i += 1
                        try:
                            send(channel, tokens["alice"], "team", f"during {i}", client_msg_id=f"during-{i}")
                            outcomes.append("stored")
                        except grpc.RpcError as error:
                            outcomes.append(error.code().name)

                sender = threading.Thread(target=keep_sending)
                sender.start()
                try:
                    process.stop()  # PostgreSQL's fast shutdown: every connection is cut
                    wait_until(lambda: not serving(channel), what="health to say NOT_SERVING")
                    process = start_postgres(postgres, [])
                    wait_until(lambda: serving(channel), what="health to say SERVING again")
                    wait_until(lambda: outcomes[-3:] == ["stored"] * 3, what="sends to be stored again")
                finally:
                    stop_sending.set()
                    sender.join(TIMEOUT_S)
                assert set(outcomes) <= {"stored", "UNAVAILABLE"}, set(outcomes)

                head = server.admin(channel).group("team").head_seq
                received = [n.seq for n in bob.notes(head - 1)] if head > 1 else []
                assert received == list(range(2, head + 1))  # every stored note reached bob
                bob.ack(head)

                def cursor_stored() -> bool:
                    query = {"bob": "SELECT last_acked_seq FROM memberships WHERE member = 'bob'"}
                    return postgres_rows(postgres.url(), query)["bob"] == [(head,)]

                wait_until(cursor_stored, timeout_s=5, what="bob's ack to be written without being asked")
                bob.close()
        finally:
            server.stop()
            process.stop()
