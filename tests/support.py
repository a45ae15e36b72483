"""Real processes for tests: a chatroom server and console clients, watched line by line.

Waiting is always for an event (a line appearing, a process exiting) with a
generous timeout, never a fixed sleep.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import grpc

from chatroom.v1 import admin_pb2, admin_pb2_grpc, chat_pb2, chat_pb2_grpc, metadata

TIMEOUT_S = 30.0
NOTE_LINE = re.compile(r"^\[(?P<group>\S+) #(?P<seq>\d+) [\d:]+\] (?P<sender>[^:]+): (?P<text>.*)$")
LISTENING = re.compile(r"listening on (\S+)")


class WatchedProcess:
    """A subprocess whose combined output is collected as lines, with waits on them."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], stdin: bool = False) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout_s: float = TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"no matching line from {self.argv[2:5]}; output:\n{self.output}")
                self._changed.wait(remaining)

    def wait_for_count(self, prefix: str, count: int, timeout_s: float = TIMEOUT_S) -> None:
        """Waits until `count` lines start with prefix."""
        self.wait_for_line(lambda _: sum(line.startswith(prefix) for line in self.lines) >= count, timeout_s)

    def wait_for(self, pattern: str, timeout_s: float = TIMEOUT_S) -> re.Match[str]:
        regex = re.compile(pattern)
        line = self.wait_for_line(lambda text: regex.search(text) is not None, timeout_s)
        match = regex.search(line)
        assert match is not None
        return match

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout_s: float = TIMEOUT_S) -> int:
        code = self.process.wait(timeout_s)
        self._reader.join(timeout_s)
        self._close_pipes()
        return code

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                with suppress(BrokenPipeError):
                    pipe.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(TIMEOUT_S)
        self._close_pipes()


class Console(WatchedProcess):
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
        self.wait_for(r"^\* subscribed to ")
        return self

    def type(self, text: str) -> int:
        """Types a line and returns its seq once the console reports it sent."""
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return int(self.wait_for(rf"^\* sent #(\d+): {re.escape(text)}$")[1])

    def notes(self) -> list[tuple[int, str, str]]:
        """(seq, sender, text) of every note printed so far."""
        with self._changed:
            found = [NOTE_LINE.match(line) for line in self.lines]
        return [(int(m["seq"]), m["sender"], m["text"]) for m in found if m]

    def wait_for_note(self, sender: str, text: str, timeout_s: float = TIMEOUT_S) -> int:
        match = self.wait_for(rf"^\[\S+ #(\d+) [\d:]+\] {re.escape(sender)}: {re.escape(text)}$", timeout_s)
        return int(match[1])


class ServerProcess:
    """`chatctl server start` on an ephemeral port with its own state directory."""

    def __init__(self, home: Path, db: str | None = None, extra_args: Sequence[str] = ()) -> None:
        self.home = home
        self.admin_token = "test-admin-token"
        self.db = db or str(home / "chatroom.db")
        # Tests send in floods; the rate limit has tests of its own.
        self.extra_args = ["--notes-per-second=1000000", "--note-burst=1000000", *extra_args]
        self.address = ""
        self.watched: WatchedProcess | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CHATROOM_HOME": str(self.home), "CHATROOM_ADMIN_TOKEN": self.admin_token}

    def start(self, listen: str = "127.0.0.1:0") -> ServerProcess:
        argv = [sys.executable, "-m", "admin_cli", "server", "start", f"--listen={listen}", f"--db={self.db}"]
        self.watched = WatchedProcess([*argv, *self.extra_args], self.env)
        try:
            self.address = self.watched.wait_for(LISTENING.pattern)[1]
        except AssertionError:
            self.watched.stop()
            raise
        return self

    def restart(self) -> ServerProcess:
        """Starts again on the same address (so that clients reconnect to it)."""
        return self.start(listen=self.address)

    def terminate(self) -> int:
        assert self.watched is not None
        self.watched.signal(signal.SIGTERM)
        return self.watched.wait()

    def kill(self) -> None:
        assert self.watched is not None
        self.watched.signal(signal.SIGKILL)
        self.watched.wait()

    def stop(self) -> None:
        if self.watched is not None:
            self.watched.stop()

    @property
    def log(self) -> str:
        return self.watched.output if self.watched else ""

    # -- gRPC access -------------------------------------------------------

    @contextmanager
    def channel(self) -> Iterator[grpc.Channel]:
        with grpc.insecure_channel(self.address) as channel:
            yield channel

    def admin(self, channel: grpc.Channel) -> Admin:
        return Admin(admin_pb2_grpc.AdminServiceStub(channel), self.admin_token)


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


def storage_rows(server: ServerProcess) -> dict[str, list[tuple[object, ...]]]:
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
    """A raw ChatStream: subscribe, read batches, ack by hand."""

    def __init__(self, channel: grpc.Channel, token: str, group: str) -> None:
        import queue

        self._requests: queue.Queue[chat_pb2.ChatStreamRequest | None] = queue.Queue()
        self._requests.put(chat_pb2.ChatStreamRequest(subscribe=chat_pb2.Subscribe(group=group)))
        self._responses = chat_pb2_grpc.ChatServiceStub(channel).ChatStream(
            iter(self._requests.get, None), metadata=bearer(token), timeout=120
        )

    def subscribed(self) -> Stream:
        """Waits until the server has accepted the subscription."""
        headers = dict(self._responses.initial_metadata())
        assert metadata.SUBSCRIBED in headers, self._responses.details()
        return self

    def batch(self) -> list[chat_pb2.Note]:
        return list(next(self._responses).notes)

    def notes(self, count: int) -> list[chat_pb2.Note]:
        """Reads batches until `count` notes have arrived."""
        received: list[chat_pb2.Note] = []
        while len(received) < count:
            received.extend(self.batch())
        assert len(received) == count, [n.seq for n in received]
        return received

    def ack(self, seq: int) -> None:
        self._requests.put(chat_pb2.ChatStreamRequest(ack=chat_pb2.Ack(seq=seq)))

    def ended_with(self) -> grpc.StatusCode:
        """Reads until the server ends the stream and returns its status code."""
        try:
            for _ in self._responses:
                pass
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    def close(self) -> None:
        self._requests.put(None)
        self._responses.cancel()
