"""Health, graceful shutdown and durability across restarts of a real server process."""

from __future__ import annotations

import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import TIMEOUT_S, Console, ServerProcess, Stream, send, wait_until

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_is_serving_for_the_server_and_each_service(server: ServerProcess, channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "chatroom.v1.ChatService", "chatroom.v1.AdminService"):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_S)
        assert response.status == SERVING, service


def test_shutdown_turns_health_not_serving_ends_streams_and_exits_zero(fresh_server: ServerProcess) -> None:
    with fresh_server.channel() as channel:
        tokens = fresh_server.admin(channel).create_group("team", ["alice", "bob"])
        bob = Stream(channel, tokens["bob"], "team").subscribed()
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
        assert next(watch).status == SERVING
        statuses: list[int] = []
        watcher = threading.Thread(target=lambda: statuses.extend(_statuses(watch)))
        watcher.start()
        assert fresh_server.terminate() == 0
        watcher.join(TIMEOUT_S)
        assert statuses[:1] == [NOT_SERVING]
        assert bob.ended_with() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in fresh_server.log


def _statuses(watch: grpc.Future) -> list[int]:
    seen = []
    try:
        for response in watch:
            seen.append(response.status)
    except grpc.RpcError:
        pass
    return seen


def test_acks_are_written_before_a_graceful_exit(tmp_path) -> None:
    # Acks would wait a minute to be written: only the shutdown can write this one.
    fresh_server = ServerProcess(tmp_path, extra_args=["--ack-flush-interval=60"]).start()
    with fresh_server.channel() as channel:
        tokens = fresh_server.admin(channel).create_group("team", ["alice", "bob"])
        for text in ("one", "two"):
            send(channel, tokens["alice"], "team", text)
        bob = Stream(channel, tokens["bob"], "team").subscribed()
        bob.notes(2)
        bob.ack(2)
        # Wait until the server has read the ack (it moves online cursors at once),
        # then stop it at once: the ack is still only in memory, to be flushed on exit.
        send(channel, tokens["alice"], "team", "three")
        bob.notes(1)
        assert fresh_server.terminate() == 0
    fresh_server.restart()
    try:
        with fresh_server.channel() as channel:
            assert fresh_server.admin(channel).unread("team")["bob"].last_acked_seq == 2
    finally:
        fresh_server.stop()


def test_notes_sent_while_bob_is_offline_survive_kill_9(fresh_server: ServerProcess, tmp_path) -> None:
    with fresh_server.channel() as channel:
        tokens = fresh_server.admin(channel).create_group("team", ["alice", "bob"])
        texts = [f"while you were out {i}" for i in range(5)]
        for text in texts:
            send(channel, tokens["alice"], "team", text)
    fresh_server.kill()
    fresh_server.restart()
    token_file = tmp_path / "bob.token"
    token_file.write_text(tokens["bob"])
    bob = Console("bob", "team", fresh_server.address, token_file, fresh_server.env).subscribed()
    try:
        bob.wait_for_note("alice", texts[-1])
        assert bob.notes() == [(i + 1, "alice", text) for i, text in enumerate(texts)]
    finally:
        bob.stop()


def test_notes_bob_acked_before_a_graceful_stop_are_not_sent_again(
    fresh_server: ServerProcess, tmp_path
) -> None:
    with fresh_server.channel() as channel:
        admin = fresh_server.admin(channel)
        tokens = admin.create_group("team", ["alice", "bob"])
        token_file = tmp_path / "bob.token"
        token_file.write_text(tokens["bob"])
        bob = Console("bob", "team", fresh_server.address, token_file, fresh_server.env).subscribed()
        for text in ("one", "two", "three"):
            send(channel, tokens["alice"], "team", text)
        bob.wait_for_note("alice", "three")
        wait_until(lambda: admin.unread("team")["bob"].last_acked_seq == 3, what="bob's acks")
        bob.stop()
    assert fresh_server.terminate() == 0
    fresh_server.restart()
    with fresh_server.channel() as channel:
        send(channel, tokens["alice"], "team", "four")
    bob = Console("bob", "team", fresh_server.address, token_file, fresh_server.env).subscribed()
    try:
        bob.wait_for_note("alice", "four")
        assert bob.notes() == [(4, "alice", "four")]
    finally:
        bob.stop()
