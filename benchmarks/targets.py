"""A server under test as the load generator sees it: an address, a pid, and groups with members.

The chatroom server needs groups and member tokens (made through its
AdminService); the baseline has no identities, so its "members" carry no
metadata. The ceiling is a baseline server whose readers use its
server-streaming call and never ack. Everything else in the benchmark treats
them alike.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import grpc

from benchmarks import servers
from chatroom.v1 import admin_pb2, admin_pb2_grpc

Metadata = tuple[tuple[str, str], ...]
ADMIN_TIMEOUT_S = 120.0


class Target(Protocol):
    kind: str
    server: servers.ServerProcess
    acks: bool
    """Whether its readers hold a ChatStream and ack on it (else: a server-streaming call)."""

    async def create_group(self, group: str, members: Sequence[str]) -> dict[str, Metadata]:
        """Creates a group; returns the call metadata each member sends."""
        ...

    async def close(self) -> None: ...


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


class ChatroomTarget:
    kind = "chatroom"
    acks = True

    def __init__(self, server: servers.ServerProcess, home: tempfile.TemporaryDirectory[str]) -> None:
        self.server = server
        self._home = home
        self._channel = grpc.aio.insecure_channel(server.address)
        self._admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        self._metadata = bearer(servers.ADMIN_TOKEN)

    async def create_group(self, group: str, members: Sequence[str]) -> dict[str, Metadata]:
        request = admin_pb2.CreateGroupRequest(group=group, members=list(members))
        response = await self._admin.CreateGroup(request, metadata=self._metadata, timeout=ADMIN_TIMEOUT_S)
        tokens = {c.member: c.token for c in response.credentials}
        missing = set(members) - set(tokens)
        if missing:
            raise RuntimeError(f"CreateGroup returned no token for {sorted(missing)[:5]}")
        return {member: bearer(tokens[member]) for member in members}

    async def close(self) -> None:
        await self._channel.close()
        await self.server.stop()
        self._home.cleanup()


class BaselineTarget:
    kind = "baseline"
    acks = True

    def __init__(self, server: servers.ServerProcess) -> None:
        self.server = server

    async def create_group(self, group: str, members: Sequence[str]) -> dict[str, Metadata]:
        return {member: () for member in members}

    async def close(self) -> None:
        await self.server.stop()


class CeilingTarget(BaselineTarget):
    kind = "ceiling"
    acks = False


KINDS = ("chatroom", "baseline", "ceiling")


async def start(kind: str, core: int | None) -> Target:
    """Starts a fresh server of that kind (chatroom: in a new state directory)."""
    if kind == "chatroom":
        home = tempfile.TemporaryDirectory(prefix="chatroom-bench-")
        try:
            server = await servers.chatroom_server(Path(home.name), core).start()
        except BaseException:
            home.cleanup()
            raise
        return ChatroomTarget(server, home)
    if kind == "baseline":
        return BaselineTarget(await servers.baseline_server(core).start())
    if kind == "ceiling":
        return CeilingTarget(await servers.baseline_server(core).start())
    raise ValueError(f"unknown server kind {kind!r}")
