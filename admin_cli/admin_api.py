"""The calls chatctl makes to a server (admin, health, and one call as a member), whose
failures are one line for a person."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from admin_cli.output import CallFailed, fail
from admin_cli.settings import (
    admin_token,
    admin_token_source,
    client_tls,
    member_token,
    member_token_path,
    tls_flags,
)
from chatroom.v1 import admin_pb2, admin_pb2_grpc
from clients.channel import ClientTls, blocking_channel, is_connection_failure
from clients.chat_client import ChatClient
from clients.model import ChatError

CALL_TIMEOUT_S = 10.0
MEMBER_RETRY_S = 3.0
"""How long a member call retries a server that does not answer."""
T = TypeVar("T")


def member_call(server: str, member: str, call: Callable[[ChatClient], Awaitable[T]]) -> T:
    """One call with the member's saved token; a refusal is one line that speaks of that token."""
    token = member_token(member)

    async def run() -> T:
        async with ChatClient(server, token, send_retry_s=MEMBER_RETRY_S, tls=client_tls()) as client:
            return await call(client)

    try:
        return asyncio.run(run())
    except ChatError as error:
        fail(explain_status(error.code, error.details, server, member=member))


@contextmanager
def explained_errors(server: str) -> Iterator[None]:
    """Turns a failed call into `error: …` and a non-zero exit."""
    try:
        yield
    except grpc.RpcError as error:
        fail(explain_status(error.code(), error.details() or "", server))


def explain_status(code: grpc.StatusCode, details: str, server: str, member: str | None = None) -> str:
    """One line for a person; member: the call was made with that member's token, not the admin's."""
    if code == grpc.StatusCode.UNAVAILABLE and not is_connection_failure(details):
        return f"the chatroom server at {server} is unavailable: {details}"
    if code == grpc.StatusCode.UNAVAILABLE:
        hint = (
            " (with TLS: or it refused the handshake; check the CA and client certificate)"
            if tls_flags()
            else ""
        )
        return (
            f"cannot reach the chatroom server at {server}{hint}: start one with 'chatctl server start'"
            " or point --server / CHATROOM_SERVER at it"
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the chatroom server at {server} did not answer within {CALL_TIMEOUT_S:.0f} s"
    if code == grpc.StatusCode.UNAUTHENTICATED and member is not None:
        return (
            f"{server} refused {member}'s token ({details}); it was read from {member_token_path(member)}:"
            f" get a new one with 'chatctl token issue {member}'"
        )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (
            f"{server} refused the admin token ({details}); it was read from {admin_token_source()}:"
            " use the token of the server you talk to (its admin.token file or CHATROOM_ADMIN_TOKEN)"
        )
    return details or code.name


def connect_admin(server: str) -> AdminApi:
    """An AdminService client with chatctl's admin token and TLS settings."""
    return AdminApi(server, admin_token(), client_tls())


class AdminApi:
    def __init__(self, server: str, admin_token: str, tls: ClientTls | None) -> None:
        server = server.split(",")[0].strip()  # of several addresses, admin calls use the first
        self.server = server
        self._channel = blocking_channel(server, tls)
        self._stub = admin_pb2_grpc.AdminServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {admin_token}"),)
        self.raise_failures = False
        """True: a failed call raises CallFailed instead of printing its line and exiting."""

    def __enter__(self) -> AdminApi:
        return self

    def __exit__(self, *_: object) -> None:
        self._channel.close()

    def _call(self, method: Callable[..., Any], request: object) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as error:
            message = explain_status(error.code(), error.details() or "", self.server)
            if self.raise_failures:
                raise CallFailed(message) from None
            fail(message)

    def create_group(self, group: str, members: list[str]) -> admin_pb2.CreateGroupResponse:
        request = admin_pb2.CreateGroupRequest(group=group, members=members)
        response: admin_pb2.CreateGroupResponse = self._call(self._stub.CreateGroup, request)
        return response

    def get_group(self, group: str) -> admin_pb2.Group:
        response: admin_pb2.GetGroupResponse = self._call(
            self._stub.GetGroup, admin_pb2.GetGroupRequest(group=group)
        )
        return response.group

    def list_groups(self) -> list[admin_pb2.Group]:
        response: admin_pb2.ListGroupsResponse = self._call(
            self._stub.ListGroups, admin_pb2.ListGroupsRequest()
        )
        return list(response.groups)

    def delete_group(self, group: str) -> None:
        self._call(self._stub.DeleteGroup, admin_pb2.DeleteGroupRequest(group=group))

    def add_members(self, group: str, members: list[str]) -> admin_pb2.AddMembersResponse:
        request = admin_pb2.AddMembersRequest(group=group, members=members)
        response: admin_pb2.AddMembersResponse = self._call(self._stub.AddMembers, request)
        return response

    def remove_members(self, group: str, members: list[str]) -> admin_pb2.Group:
        request = admin_pb2.RemoveMembersRequest(group=group, members=members)
        response: admin_pb2.RemoveMembersResponse = self._call(self._stub.RemoveMembers, request)
        return response.group

    def list_unread(self, group: str) -> admin_pb2.ListUnreadResponse:
        request = admin_pb2.ListUnreadRequest(group=group)
        response: admin_pb2.ListUnreadResponse = self._call(self._stub.ListUnread, request)
        return response

    def issue_token(self, member: str) -> str:
        request = admin_pb2.IssueTokenRequest(member=member)
        response: admin_pb2.IssueTokenResponse = self._call(self._stub.IssueToken, request)
        return response.token


def health_status(
    server: str, service: str = "", tls: ClientTls | None = None, timeout_s: float = 3.0
) -> str:
    """SERVING, NOT_SERVING, … or UNREACHABLE; never raises."""
    with blocking_channel(server, tls) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError as error:
            return "UNREACHABLE" if error.code() == grpc.StatusCode.UNAVAILABLE else error.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
