"""Streams from their first moment: counted, given a deadline to subscribe, ended at shutdown,
and never served with a token that was replaced before they subscribed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from chatroom.v1 import metadata
from tests.support import ServerProcess, Stream, wait_until


def counted(server: ServerProcess, channel: grpc.Channel, member: str, token: str) -> Stream:
    """Opens a stream that does not subscribe, once the server counts it: once a second
    stream of the member is refused."""
    admin = server.admin(channel)
    while True:
        waiting = Stream(channel, token, group=None)
        while True:
            probe = Stream(channel, token, "team")
            if metadata.SUBSCRIBED not in dict(probe.initial_metadata()):
                assert probe.ended_with() == grpc.StatusCode.RESOURCE_EXHAUSTED
                return waiting
            probe.close()  # it came first: wait until the server let it go, and look again
            wait_until(lambda: admin.unread("team")[member].online_sessions == 0, what="the probe to go")
            if waiting.done():  # refused while the probe held the place
                break


@pytest.fixture
def one_stream_each(fresh_database: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server allowing each member a single stream, and a long time to subscribe."""
    extra = ["--max-sessions-per-member=1", "--subscribe-timeout=60", "--shutdown-grace=60"]
    server = ServerProcess(tmp_path / "home", db=fresh_database, extra_args=extra).start()
    yield server
    server.stop()


def test_a_stream_opened_before_a_new_token_cannot_subscribe_after_it(one_stream_each: ServerProcess) -> None:
    server = one_stream_each
    with server.channel() as channel:
        admin = server.admin(channel)
        tokens = admin.create_group("team", ["alice"])
        waiting = counted(server, channel, "alice", tokens["alice"])
        admin.issue_token("alice")
        waiting.subscribe("team")
        assert waiting.ended_with() == grpc.StatusCode.UNAUTHENTICATED


def test_a_stream_that_never_subscribes_is_ended_at_its_deadline(fresh_database: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home", db=fresh_database, extra_args=["--subscribe-timeout=1"]).start()
    try:
        with server.channel() as channel:
            tokens = server.admin(channel).create_group("team", ["alice"])
            silent = Stream(channel, tokens["alice"], group=None)
            with pytest.raises(grpc.RpcError) as ended:
                silent.read_to_end()
            assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "no subscribe within 1 s" in (ended.value.details() or "")
    finally:
        server.stop()


def test_shutdown_does_not_wait_for_streams_that_never_subscribed(one_stream_each: ServerProcess) -> None:
    server = one_stream_each
    with server.channel() as channel:
        tokens = server.admin(channel).create_group("team", ["alice", "bob"])
        silent = [counted(server, channel, member, tokens[member]) for member in ("alice", "bob")]
        # The grace for calls in flight is 60 s; streams are not calls to wait for.
        assert server.terminate() == 0  # within 30 s, or this raises
        assert [stream.ended_with() for stream in silent] == [grpc.StatusCode.UNAVAILABLE] * 2
