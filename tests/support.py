"""Servers and clients for tests: in-process servers, real server and console processes.

Servicer tests use an in-process `ChatServer` on port 0 (the same server a
process runs, minus signal handling); tests that kill, restart or stop a
server, and end-to-end tests, use real processes. Waiting is always for an
event (a line appearing, a process exiting) with a generous timeout, never a
fixed sleep.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from admin_cli.processes import Watched
from chatroom.v1 import admin_pb2, admin_pb2_grpc, chat_pb2, chat_pb2_grpc, metadata
from clients.lines import NOTE_LINE
from services.config import config_from_options
from services.server import ChatServer

TIMEOUT_S = 30.0
LISTENING = re.compile(r"listening on (\S+)")
ADMIN_TOKEN = "test-admin-token"
FLOODS = {"notes_per_second": 1_000_000.0, "note_burst": 1_000_000}
"""Tests send in floods; the rate limit has tests of its own."""


class Process(Watched):
    """A watched child whose waits fail the test, with its output, when they time out."""

    def expect(self, pattern: str, timeout_s: float = TIMEOUT_S) -> re.Match[str]:
        match = self.wait_for(pattern, timeout_s)
        if match is None:
            raise AssertionError(
                f"no line matching {pattern!r} from {self.argv[2:5]}; output:\n{self.output}"
            )
        return match

    def expect_count(self, prefix: str, count: int, timeout_s: float = TIMEOUT_S) -> None:
        """Waits until `count` lines start with prefix."""
        found = self.wait_for_line(
            lambda _: sum(line.startswith(prefix) for line in self.lines) >= count, timeout_s
        )
        if found is None:
            raise AssertionError(f"fewer than {count} lines {prefix!r}; output:\n{self.output}")


class Console(Process):
    """A console client process (python -m clients), typed into through stdin."""

    def __init__(self, member: str, group: str, server: str, token_file: Path, env: dict[str, str]) -> None:
        self.member = member
        argv = [
            sys.executable,
            "-m",
            "clients",
            member,
            f"--group={group}",
            f"--server={server}",
            f"--token-file={token_file}",
            "--plain",
        ]
        super().__init__(argv, env, stdin=True)

    def subscribed(self) -> Console:
        self.expect(r"^\* subscribed to ")
        return self

    def type(self, text: str) -> int:
        """Types a line and returns its seq once the console reports it sent."""
        self.write_line(text)
        return int(self.expect(rf"^\* sent #(\d+): {re.escape(text)}$")[1])

    def notes(self) -> list[tuple[int, str, str]]:
        """(seq, sender, text) of every note printed so far."""
        found = [NOTE_LINE.match(line) for line in list(self.lines)]
        return [(int(m["seq"]), m["sender"], m["text"]) for m in found if m]

    def wait_for_note(self, sender: str, text: str, timeout_s: float = TIMEOUT_S) -> int:
        match = self.expect(rf"^\[\S+ #(\d+) [\d:]+\] {re.escape(sender)}: {re.escape(text)}$", timeout_s)
        return int(match[1])


class Server:
    """What every test server offers: an address, the admin token, channels."""

    home: Path
    db: str
    address: str
    admin_token = ADMIN_TOKEN

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CHATROOM_HOME": str(self.home), "CHATROOM_ADMIN_TOKEN": self.admin_token}

    @contextmanager
    def channel(self) -> Iterator[grpc.Channel]:
        with grpc.insecure_channel(self.address) as channel:
            yield channel

    def admin(self, channel: grpc.Channel) -> Admin:
        return Admin(admin_pb2_grpc.AdminServiceStub(channel), self.admin_token)


class InProcessServer(Server):
    """A ChatServer in this process, on its own event loop in a thread of its own."""

    def __init__(self, home: Path, db: str | None = None, **options: Any) -> None:
        self.home = home
        self.db = db or str(home / "chatroom.db")
        values = {"db": self.db, "listen": "127.0.0.1:0", **FLOODS, **options}
        self.server = ChatServer(config_from_options(ADMIN_TOKEN, values))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="in-process-server", daemon=True)

    def start(self) -> InProcessServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        self.address = self.run(self.server.start())
        return self

    def run(self, coroutine: Any) -> Any:
        """Runs a coroutine on the server's loop and returns its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(TIMEOUT_S)

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                self.run(self.server.stop(grace_s=0))
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(TIMEOUT_S)
                self._loop.close()


class ServerProcess(Server):
    """`chatctl server start` as a process, on an ephemeral port with its own state directory."""

    def __init__(self, home: Path, db: str | None = None, extra_args: Sequence[str] = ()) -> None:
        self.home = home
        self.db = db or str(home / "chatroom.db")
        flags = [f"--{name.replace('_', '-')}={value}" for name, value in FLOODS.items()]
        self.extra_args = [*flags, *extra_args]
        self.address = ""
        self.watched: Process | None = None

    def start(self, listen: str = "127.0.0.1:0") -> ServerProcess:
        argv = [sys.executable, "-m", "admin_cli", "server", "start", f"--listen={listen}", f"--db={self.db}"]
        self.watched = Process([*argv, *self.extra_args], self.env)
        try:
            self.address = self.watched.expect(LISTENING.pattern)[1]
        except AssertionError:
            self.watched.stop()
            raise
        return self

    def restart(self) -> ServerProcess:
        """Starts again on the same address (so that clients reconnect to it)."""
        return self.start(listen=self.address)

    def terminate(self) -> int:
        assert self.watched is not None
        self.watched.send(signal.SIGTERM)
        return self.watched.wait(TIMEOUT_S)

    def kill(self) -> None:
        assert self.watched is not None
        self.watched.send(signal.SIGKILL)
        self.watched.wait(TIMEOUT_S)

    def stop(self) -> None:
        if self.watched is not None:
            self.watched.stop(TIMEOUT_S)

    @property
    def log(self) -> str:
        return self.watched.output if self.watched else ""


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class Admin:
    """AdminService calls with the admin token, for test set-up and inspection."""

    def __init__(self, stub: admin_pb2_grpc.AdminServiceStub, token: str) -> None:
        self.stub = stub
        self.metadata = bearer(token)

    def create_group(self, group: str, members: Sequence[str]) -> dict[str, str]:
        """Creates a group; returns the new members' tokens."""
        request = admin_pb2.CreateGroupRequest(group=group, members=list(members))
        response = self.stub.CreateGroup(request, metadata=self.metadata, timeout=TIMEOUT_S)
        return {c.member: c.token for c in response.credentials}

    def issue_token(self, member: str) -> str:
        request = admin_pb2.IssueTokenRequest(member=member)
        response = self.stub.IssueToken(request, metadata=self.metadata, timeout=TIMEOUT_S)
        return str(response.token)

    def unread(self, group: str) -> dict[str, admin_pb2.MemberDelivery]:
        request = admin_pb2.ListUnreadRequest(group=group)
        response = self.stub.ListUnread(request, metadata=self.metadata, timeout=TIMEOUT_S)
        return {m.member: m for m in response.members}

    def group(self, group: str) -> admin_pb2.Group:
        request = admin_pb2.GetGroupRequest(group=group)
        response: admin_pb2.GetGroupResponse = self.stub.GetGroup(
            request, metadata=self.metadata, timeout=TIMEOUT_S
        )
        return response.group


def send(channel: grpc.Channel, token: str, group: str, text: str, client_msg_id: str = "") -> chat_pb2.Note:
    request = chat_pb2.SendNoteRequest(group=group, text=text, client_msg_id=client_msg_id)
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    response: chat_pb2.SendNoteResponse = stub.SendNote(request, metadata=bearer(token), timeout=TIMEOUT_S)
    return response.note


def wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S, what: str = "condition") -> None:
    """Re-checks a condition on the server's state until it holds (acks land within 100 ms)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def storage_rows(server: Server) -> dict[str, list[tuple[object, ...]]]:
    """Every stored row (except last-seen times, which move on their own), by table."""
    import sqlite3

    from tests.databases import postgres_rows

    columns = {
        "members": "name, token_hash",
        "groups": "name, head_seq, deleted",
        "memberships": "group_name, member, last_acked_seq",
        "notes": "group_name, seq, sender, text, client_msg_id",
    }
    queries = {table: f"SELECT {cols} FROM {table} ORDER BY 1, 2" for table, cols in columns.items()}
    if server.db.startswith("postgresql://"):
        return postgres_rows(server.db, queries)
    connection = sqlite3.connect(f"file:{server.db}?mode=ro", uri=True)
    try:
        return {table: connection.execute(query).fetchall() for table, query in queries.items()}
    finally:
        connection.close()


class Stream:
    """A raw ChatStream: subscribe (at once, or later with group=None), read batches, ack by hand."""

    def __init__(self, channel: grpc.Channel, token: str, group: str | None) -> None:
        import queue

        self._requests: queue.Queue[chat_pb2.ChatStreamRequest | None] = queue.Queue()
        self._responses = chat_pb2_grpc.ChatServiceStub(channel).ChatStream(
            iter(self._requests.get, None), metadata=bearer(token), timeout=120
        )
        if group is not None:
            self.subscribe(group)

    def subscribe(self, group: str) -> None:
        self._requests.put(chat_pb2.ChatStreamRequest(subscribe=chat_pb2.Subscribe(group=group)))

    def done(self) -> bool:
        return bool(self._responses.done())

    def initial_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._responses.initial_metadata())

    def subscribed(self) -> Stream:
        """Waits until the server has accepted the subscription."""
        headers = dict(self.initial_metadata())
        assert metadata.SUBSCRIBED in headers, self._responses.details()
        return self

    def response(self) -> chat_pb2.ChatStreamResponse:
        """The next stream message whole: notes, or a gap."""
        response: chat_pb2.ChatStreamResponse = next(self._responses)
        return response

    def batch(self) -> list[chat_pb2.Note]:
        return list(self.response().notes)

    def notes(self, count: int) -> list[chat_pb2.Note]:
        """Reads batches until `count` notes have arrived."""
        received: list[chat_pb2.Note] = []
        while len(received) < count:
            received.extend(self.batch())
        assert len(received) == count, [n.seq for n in received]
        return received

    def ack(self, seq: int) -> None:
        self._requests.put(chat_pb2.ChatStreamRequest(ack=chat_pb2.Ack(seq=seq)))

    def read_to_end(self) -> None:
        """Reads until the server ends the stream; an error ending raises its RpcError."""
        for _ in self._responses:
            pass

    def ended_with(self) -> grpc.StatusCode:
        """Reads until the server ends the stream and returns its status code."""
        try:
            self.read_to_end()
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    def close(self) -> None:
        self._requests.put(None)
        self._responses.cancel()
