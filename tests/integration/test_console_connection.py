"""What the console says about its connection: once per change, in its own words,
never a line per retry and never gRPC core's log lines."""

from __future__ import annotations

import re
from pathlib import Path

from tests.proxy import tcp_proxy
from tests.support import Console, ServerProcess, send, wait_until

CORE_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")
"""gRPC core's log format (severity, date, time), as in 'I1202 16:21:01.481 … Got goaway'."""


def test_a_console_before_its_server_says_so_once_then_waits_quietly(tmp_path: Path) -> None:
    """Bob starts his console while nothing answers at its address: one line says
    so and how to start a server; retries are silent; once the server answers he
    subscribes. He pings every second, more often than the server allows: the
    server's GOAWAY costs him a reconnect, told in one line, and no gRPC log lines."""
    server = ServerProcess(tmp_path / "home").start()
    host, port = server.address.rsplit(":", 1)
    try:
        with server.channel() as channel, tcp_proxy(host, int(port)) as proxy:
            tokens = server.admin(channel).create_group("team", ["alice", "bob"])
            token_file = tmp_path / "bob.token"
            token_file.write_text(tokens["bob"])
            proxy.cut()
            address = f"127.0.0.1:{proxy.port}"
            env = {key: value for key, value in server.env.items() if key != "GRPC_VERBOSITY"}
            env["CHATROOM_CLIENT_KEEPALIVE"] = "1"
            bob = Console("bob", "team", address, token_file, env)
            try:
                waiting = bob.expect(r"^\* waiting: .*")[0]
                assert waiting == (
                    f"* waiting: the server at {address} is not answering:"
                    " start one with 'chatctl server start' or point --server / CHATROOM_SERVER at it"
                )
                wait_until(lambda: proxy.accepted >= 6, what="six attempts to connect")
                assert bob.lines == [waiting]

                proxy.restore()
                bob.subscribed()
                send(channel, tokens["alice"], "team", "there you are")
                bob.wait_for_note("alice", "there you are")
                bob.expect(r"^\* connection lost \(UNAVAILABLE: Too many pings\)")
                bob.expect_count("* subscribed", 2)
                assert [line for line in bob.lines if CORE_LOG_LINE.match(line)] == []
            finally:
                bob.stop()
    finally:
        server.stop()
