"""Storage that fails under a running server: a full disk, a database that goes
away. Sends fail with UNAVAILABLE and say why, nothing is half-written, health
says NOT_SERVING while the database cannot be reached, and the server recovers
by itself once storage is back."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.databases import postgres_database
from tests.proxy import tcp_proxy
from tests.support import TIMEOUT_S, ServerProcess, send, storage_rows, wait_until


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB filesystem of the test's own (tmpfs; needs root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here (needs root): {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def serving(server: ServerProcess, channel: grpc.Channel) -> bool:
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def test_a_full_disk_refuses_sends_cleanly_and_recovers(small_disk: Path, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home", db=str(small_disk / "chatroom.db")).start()
    try:
        with server.channel() as channel:
            tokens = server.admin(channel).create_group("team", ["alice", "bob"])
            filler = small_disk / "filler"
            free = os.statvfs(small_disk)
            filler.write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 64 * 1024))
            sent = 0
            with pytest.raises(grpc.RpcError) as full:
                while sent < 10_000:
                    send(channel, tokens["alice"], "team", "x" * 4000)
                    sent += 1
            assert full.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "full" in full.value.details() and "nothing was written" in full.value.details()
            before = storage_rows(server)
            assert [row[1] for row in before["notes"]] == list(range(1, sent + 1))
            assert serving(server, channel)

            filler.unlink()
            assert send(channel, tokens["alice"], "team", "space again").seq == sent + 1
    finally:
        server.stop()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    credentials = f"{netloc[0]}@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{port}"))


@pytest.mark.postgres
def test_postgres_going_away_refuses_sends_cleanly_and_recovers(tmp_path: Path, postgres_url: str) -> None:
    with postgres_database(postgres_url) as url:
        parts = urlsplit(url)
        with tcp_proxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
            server = ServerProcess(tmp_path, db=_through(url, proxy.port)).start()
            try:
                with server.channel() as channel:
                    tokens = server.admin(channel).create_group("team", ["alice", "bob"])
                    assert send(channel, tokens["alice"], "team", "before").seq == 1
                    proxy.cut()
                    with pytest.raises(grpc.RpcError) as down:
                        send(channel, tokens["alice"], "team", "while the database is away")
                    assert down.value.code() == grpc.StatusCode.UNAVAILABLE
                    assert down.value.details().startswith("storage failed")
                    wait_until(lambda: not serving(server, channel), what="health says NOT_SERVING")
                    proxy.restore()
                    wait_until(lambda: serving(server, channel), what="health says SERVING again")
                    assert send(channel, tokens["alice"], "team", "after").seq == 2
                notes = storage_rows(ServerProcess(tmp_path, db=url))["notes"]
                assert [row[3] for row in notes] == ["before", "after"]
            finally:
                server.stop()
