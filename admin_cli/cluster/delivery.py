"""What the supervisor asks the cluster's servers, through the Admin API like any chatctl command.

Groups and tokens of the cluster file are made to exist (and member tokens
saved in the cluster's state directory, as `group create` does); ListUnread
gives ps its cursor and unread columns and tells when a client caught up.
Each call goes to the first replica that answers, so one replica down or
draining changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from admin_cli.cluster.config import Group
from admin_cli.settings import member_token_path, save_member_token
from chatroom.v1 import admin_pb2, admin_pb2_grpc
from clients.channel import aio_channel

CALL_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 1.0


class ClusterAdmin:
    def __init__(self, admin_token: str, addresses: Callable[[], Sequence[str]]) -> None:
        self._metadata = (("authorization", f"Bearer {admin_token}"),)
        self._addresses = addresses
        """The replicas to try, those SERVING first."""
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = aio_channel(address, None)
        return self._channels[address]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def health(self, address: str) -> str:
        """SERVING, NOT_SERVING, … or UNREACHABLE; never raises."""
        stub = health_pb2_grpc.HealthStub(self._channel(address))
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT_S)
        except grpc.RpcError as error:
            code = error.code()
            unreachable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            return "UNREACHABLE" if unreachable else str(code.name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    async def _call(self, method: str, request: Any) -> Any:
        """The first answer of a replica; the last failure if none answers."""
        failure: grpc.RpcError | None = None
        for address in self._addresses():
            stub = admin_pb2_grpc.AdminServiceStub(self._channel(address))
            try:
                return await getattr(stub, method)(request, metadata=self._metadata, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                failure = error
        if failure is None:
            raise ConnectionError("no server replica is running")
        raise failure

    async def ensure_groups(self, groups: Sequence[Group]) -> list[str]:
        """Creates missing groups and members, saves new tokens; returns the members it saved tokens for."""
        saved: list[str] = []
        for group in groups:
            try:
                created = await self._call(
                    "CreateGroup", admin_pb2.CreateGroupRequest(group=group.name, members=list(group.members))
                )
                saved += _save(created.credentials)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                found = await self._call("GetGroup", admin_pb2.GetGroupRequest(group=group.name))
                missing = [member for member in group.members if member not in found.group.members]
                if missing:
                    request = admin_pb2.AddMembersRequest(group=group.name, members=missing)
                    saved += _save((await self._call("AddMembers", request)).credentials)
        for member in dict.fromkeys(member for group in groups for member in group.members):
            if not member_token_path(member).exists():
                issued = await self._call("IssueToken", admin_pb2.IssueTokenRequest(member=member))
                save_member_token(member, issued.token)
                saved.append(member)
        return saved

    async def unread(self, group: str) -> admin_pb2.ListUnreadResponse:
        response: admin_pb2.ListUnreadResponse = await self._call(
            "ListUnread", admin_pb2.ListUnreadRequest(group=group)
        )
        return response


def _save(credentials: Sequence[admin_pb2.MemberCredential]) -> list[str]:
    for credential in credentials:
        save_member_token(credential.member, credential.token)
    return [credential.member for credential in credentials]
