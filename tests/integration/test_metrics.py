"""/metrics after a scenario: every counter moved by exactly what happened."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.support import TIMEOUT_S, ServerProcess, Stream, send, wait_until


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    server = ServerProcess(tmp_path, extra_args=["--metrics-listen=127.0.0.1:0"]).start()
    assert server.watched is not None
    url = server.watched.expect(r"metrics on (http://\S+)")[1]
    yield server, url
    server.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_count_exactly_what_happened(metered: tuple[ServerProcess, str]) -> None:
    server, url = metered
    with server.channel() as channel:
        tokens = server.admin(channel).create_group("team", ["alice", "bob", "chad"])
        bob = Stream(channel, tokens["bob"], "team").subscribed()
        chad = Stream(channel, tokens["chad"], "team").subscribed()
        for text in ("one", "two"):
            send(channel, tokens["alice"], "team", text)
            for reader in (bob, chad):
                (note,) = reader.notes(1)
                reader.ack(note.seq)
        send(channel, tokens["alice"], "team", "one", client_msg_id="x")
        send(channel, tokens["alice"], "team", "one again", client_msg_id="x")  # a retry: not a new note
        for reader in (bob, chad):
            reader.ack(reader.notes(1)[0].seq)
        with pytest.raises(grpc.RpcError):
            send(channel, tokens["alice"], "team", "")
        admin = server.admin(channel)
        wait_until(
            lambda: all(admin.unread("team")[m].last_acked_seq == 3 for m in ("bob", "chad")),
            what="the last acks to be read",
        )
        metrics = scrape(url)
        bob.close()
        chad.close()

    def value(name: str, **labels: str) -> float:
        return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

    send_method = "/chatroom.v1.ChatService/SendNote"
    assert value("chatroom_notes_sent_total") == 3
    assert value("chatroom_deliveries_total") == 6
    assert value("chatroom_acks_total") == 6
    assert value("chatroom_sessions") == 2
    assert value("chatroom_storage_errors_total") == 0
    assert value("chatroom_rpc_duration_seconds_count", method=send_method, code="OK") == 4
    assert value("chatroom_rpc_duration_seconds_count", method=send_method, code="INVALID_ARGUMENT") == 1


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, extra_args=["--log-format=json"]).start()
    assert server.terminate() == 0
    entries = [json.loads(line) for line in server.log.splitlines()]
    assert [entry["level"] for entry in entries] == ["info"] * len(entries)
    assert any(entry["message"].startswith("chatroom listening on 127.0.0.1:") for entry in entries)
    assert entries[-1]["message"] == "stopped"


def test_health_watch_is_served_and_timed_when_metered(metered: tuple[ServerProcess, str]) -> None:
    """Watch writes with context.write instead of yielding: timing it must not break it."""
    server, url = metered
    with server.channel() as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
    method = "/grpc.health.v1.Health/Watch"
    wait_until(
        lambda: (
            scrape(url).get(
                ("chatroom_rpc_duration_seconds_count", (("code", "CANCELLED"), ("method", method)))
            )
            == 1
        ),
        what="the cancelled Watch to be timed",
    )
