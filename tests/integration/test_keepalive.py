"""Idle streams stay up: client and server ping each other on a quiet connection, as
often as both were told, and neither takes the other's pings for abuse."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from tests.proxy import tcp_proxy
from tests.support import TIMEOUT_S, Console, ServerProcess, send

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_BYTES = 9
PING, GOAWAY = 6, 7
ACK = 0x1


class Http2Frames:
    """Counts the HTTP/2 frames that pass a proxy, by sender and type (plaintext only)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._buffers: dict[tuple[int, bool], bytearray] = {}
        self._changed = threading.Condition()

    def observe(self, connection: int, upstream: bool, data: bytes) -> None:
        key = (connection, upstream)
        if key not in self._buffers:
            self._buffers[key] = bytearray()
            if upstream:  # a client's first bytes are the preface, not a frame
                assert data.startswith(PREFACE), f"not the HTTP/2 preface in one piece: {data[:24]!r}"
                data = data[len(PREFACE) :]
        buffer = self._buffers[key]
        buffer += data
        sender = "client" if upstream else "server"
        with self._changed:
            while len(buffer) >= FRAME_HEADER_BYTES:
                length = int.from_bytes(buffer[:3], "big")
                if len(buffer) < FRAME_HEADER_BYTES + length:
                    break
                kind, flags = buffer[3], buffer[4]
                if kind == PING and not flags & ACK:
                    self.counts[(sender, "ping")] += 1
                elif kind == GOAWAY:
                    self.counts[(sender, "goaway")] += 1
                del buffer[: FRAME_HEADER_BYTES + length]
            self._changed.notify_all()

    def wait_for(self, sender: str, kind: str, count: int) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.counts[(sender, kind)] >= count, TIMEOUT_S):
                raise AssertionError(f"fewer than {count} {kind} frames from the {sender}: {self.counts}")


def test_an_idle_stream_outlives_many_keepalive_pings_both_ways(tmp_path: Path) -> None:
    """Bob listens and nobody speaks; with 1 s keepalives on both sides his one
    stream carries ping after ping and is never dropped or told to calm down."""
    server = ServerProcess(
        tmp_path / "home", extra_args=["--keepalive=1", "--min-client-ping-interval=0.5"]
    ).start()
    frames = Http2Frames()
    host, port = server.address.rsplit(":", 1)
    try:
        with server.channel() as channel, tcp_proxy(host, int(port), frames.observe) as proxy:
            tokens = server.admin(channel).create_group("team", ["alice", "bob"])
            token_file = tmp_path / "bob.token"
            token_file.write_text(tokens["bob"])
            # gRPC core's own log lines on: a GOAWAY or "too_many_pings" would show there.
            env = {**server.env, "CHATROOM_CLIENT_KEEPALIVE": "1", "GRPC_VERBOSITY": "INFO"}
            bob = Console("bob", "team", f"127.0.0.1:{proxy.port}", token_file, env).subscribed()
            try:
                frames.wait_for("client", "ping", 5)
                frames.wait_for("server", "ping", 5)
                send(channel, tokens["alice"], "team", "still there?")
                bob.wait_for_note("alice", "still there?")
                assert frames.counts[("server", "goaway")] == 0, frames.counts
                assert frames.counts[("client", "goaway")] == 0, frames.counts
                assert bob.output.count("* subscribed") == 1, bob.output
                assert "connection lost" not in bob.output, bob.output
                for output in (bob.output, server.log):
                    assert "too_many_pings" not in output and "GOAWAY" not in output, output
            finally:
                bob.stop()
    finally:
        server.stop()
