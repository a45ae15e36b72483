"""Every limit: a flag, a clear RESOURCE_EXHAUSTED, and nothing written past it.
Keepalive and connection age: vanished clients go, long streams move, nothing is lost."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from chatroom.v1 import admin_pb2, metadata
from tests.support import TIMEOUT_S, Console, ServerProcess, Stream, send, storage_rows, wait_until


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path,
        extra_args=[
            "--notes-per-second=1",
            "--note-burst=3",
            "--max-sessions-per-member=2",
            "--max-group-members=3",
            "--max-groups=2",
            "--max-message-bytes=2048",
        ],
    ).start()
    yield server
    server.stop()


def refusal(server: ServerProcess, call: object) -> grpc.RpcError:
    before = storage_rows(server)
    with pytest.raises(grpc.RpcError) as refused:
        call()  # type: ignore[operator]
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert storage_rows(server) == before
    return refused.value


def exhausted(server: ServerProcess, call: object) -> str:
    return str(refusal(server, call).details())


def test_a_member_sending_too_fast_is_told_when_to_retry(limited: ServerProcess) -> None:
    with limited.channel() as channel:
        tokens = limited.admin(channel).create_group("team", ["alice", "bob"])
        assert [send(channel, tokens["alice"], "team", f"n{i}").seq for i in range(3)] == [1, 2, 3]
        refused = refusal(limited, lambda: send(channel, tokens["alice"], "team", "one too many"))
        assert refused.details().startswith("more than 1 notes per second; retry in ")
        retry_after_ms = int(dict(refused.trailing_metadata())[metadata.RETRY_AFTER_MS])
        assert 0 < retry_after_ms <= 1000
        assert send(channel, tokens["bob"], "team", "bob has his own bucket").seq == 4


def test_a_member_may_hold_only_so_many_streams(limited: ServerProcess) -> None:
    with limited.channel() as channel:
        tokens = limited.admin(channel).create_group("team", ["alice"])
        streams = [Stream(channel, tokens["alice"], "team").subscribed() for _ in range(2)]
        third = Stream(channel, tokens["alice"], "team")
        assert third.ended_with() == grpc.StatusCode.RESOURCE_EXHAUSTED
        streams.pop().close()
        wait_until(
            lambda: limited.admin(channel).unread("team")["alice"].online_sessions == 1, what="a close"
        )
        Stream(channel, tokens["alice"], "team").subscribed().close()
        streams[0].close()


def test_groups_and_their_members_are_bounded(limited: ServerProcess) -> None:
    with limited.channel() as channel:
        admin = limited.admin(channel)
        message = exhausted(limited, lambda: admin.create_group("big", ["a", "b", "c", "d"]))
        assert message == "a group may have at most 3 members, not 4"
        admin.create_group("one", ["a", "b", "c"])
        request = admin_pb2.AddMembersRequest(group="one", members=["d"])
        exhausted(limited, lambda: admin.stub.AddMembers(request, metadata=admin.metadata, timeout=TIMEOUT_S))
        admin.create_group("two", ["a"])
        assert exhausted(limited, lambda: admin.create_group("three", ["a"])) == (
            "this server already has 2 groups, its limit"
        )


def test_an_oversized_request_is_refused_by_size(limited: ServerProcess) -> None:
    with limited.channel() as channel:
        tokens = limited.admin(channel).create_group("team", ["alice"])
        message = exhausted(limited, lambda: send(channel, tokens["alice"], "team", "x" * 3000))
        assert "larger than max" in message


def test_a_vanished_client_stops_counting_as_online(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home", extra_args=["--keepalive=1"]).start()
    try:
        with server.channel() as channel:
            admin = server.admin(channel)
            tokens = admin.create_group("team", ["alice", "bob"])
            token_file = tmp_path / "bob.token"
            token_file.write_text(tokens["bob"])
            bob = Console("bob", "team", server.address, token_file, server.env).subscribed()
            wait_until(lambda: admin.unread("team")["bob"].online_sessions == 1, what="bob online")
            bob.send(signal.SIGSTOP)  # alive to TCP, silent to HTTP/2 pings
            try:
                wait_until(
                    lambda: admin.unread("team")["bob"].online_sessions == 0, what="bob's session to end"
                )
            finally:
                bob.send(signal.SIGCONT)
                bob.stop()
    finally:
        server.stop()


def test_an_old_connection_is_recycled_and_its_stream_resumes(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home", extra_args=["--max-connection-age=1"]).start()
    try:
        with server.channel() as channel:
            tokens = server.admin(channel).create_group("team", ["alice", "bob"])
            token_file = tmp_path / "bob.token"
            token_file.write_text(tokens["bob"])
            bob = Console("bob", "team", server.address, token_file, server.env).subscribed()
            try:
                send(channel, tokens["alice"], "team", "before")
                bob.wait_for_note("alice", "before")
                bob.expect_count("* connection lost", 1)
                bob.expect_count("* subscribed", 2)
                send(channel, tokens["alice"], "team", "after")
                bob.wait_for_note("alice", "after")
                assert bob.notes() == [(1, "alice", "before"), (2, "alice", "after")]
            finally:
                bob.stop()
    finally:
        server.stop()


def test_a_console_sending_over_the_rate_limit_waits_and_keeps_its_subscription(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, extra_args=["--notes-per-second=2", "--note-burst=1"]).start()
    try:
        with server.channel() as channel:
            tokens = server.admin(channel).create_group("team", ["alice", "bob"])
        token_file = tmp_path / "alice.token"
        token_file.write_text(tokens["alice"])
        alice = Console("alice", "team", server.address, token_file, server.env).subscribed()
        try:
            for i in range(5):
                alice.write_line(f"quick {i}")
            alice.expect_count("* sent #", 5)
            assert [line for line in alice.lines if line.startswith(("* not sent", "* connection"))] == []
            assert alice.process.poll() is None
        finally:
            alice.stop()
    finally:
        server.stop()
