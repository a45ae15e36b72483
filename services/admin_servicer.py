"""AdminService: the control plane, for holders of the admin token."""

from __future__ import annotations

from typing import TypeVar

import grpc
from google.protobuf.message import Message

from chatroom.v1 import admin_pb2
from services import wire
from services.core.chatroom import Chatroom
from services.handlers import Malformed, add_service, parsed
from services.status import maps_errors

SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
M = TypeVar("M", bound=Message)


class AdminServicer:
    def __init__(self, chatroom: Chatroom) -> None:
        self._chatroom = chatroom

    def add_to(self, server: grpc.aio.Server) -> None:
        add_service(server, self, SERVICE)

    async def _admit(self, request: M | Malformed, context: grpc.aio.ServicerContext) -> M:
        """Identity first, then syntax: an unparsable request from a stranger says nothing."""
        await self._chatroom.authenticate_admin(wire.bearer_token(context))
        return parsed(request)

    @maps_errors
    async def CreateGroup(
        self, request: admin_pb2.CreateGroupRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> admin_pb2.CreateGroupResponse:
        request = await self._admit(request, context)
        result = await self._chatroom.create_group(request.group, request.members)
        return admin_pb2.CreateGroupResponse(
            group=wire.group(result.group), credentials=wire.credentials(result.credentials)
        )

    @maps_errors
    async def GetGroup(
        self, request: admin_pb2.GetGroupRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetGroupResponse:
        request = await self._admit(request, context)
        info = await self._chatroom.get_group(request.group)
        return admin_pb2.GetGroupResponse(group=wire.group(info))

    @maps_errors
    async def ListGroups(
        self, request: admin_pb2.ListGroupsRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListGroupsResponse:
        request = await self._admit(request, context)
        groups = await self._chatroom.list_groups()
        return admin_pb2.ListGroupsResponse(groups=[wire.group(info) for info in groups])

    @maps_errors
    async def DeleteGroup(
        self, request: admin_pb2.DeleteGroupRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> admin_pb2.DeleteGroupResponse:
        request = await self._admit(request, context)
        await self._chatroom.delete_group(request.group)
        return admin_pb2.DeleteGroupResponse()

    @maps_errors
    async def AddMembers(
        self, request: admin_pb2.AddMembersRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> admin_pb2.AddMembersResponse:
        request = await self._admit(request, context)
        result = await self._chatroom.add_members(request.group, request.members)
        return admin_pb2.AddMembersResponse(
            group=wire.group(result.group), credentials=wire.credentials(result.credentials)
        )

    @maps_errors
    async def RemoveMembers(
        self, request: admin_pb2.RemoveMembersRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RemoveMembersResponse:
        request = await self._admit(request, context)
        info = await self._chatroom.remove_members(request.group, request.members)
        return admin_pb2.RemoveMembersResponse(group=wire.group(info))

    @maps_errors
    async def ListUnread(
        self, request: admin_pb2.ListUnreadRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListUnreadResponse:
        request = await self._admit(request, context)
        return wire.delivery(await self._chatroom.list_unread(request.group))

    @maps_errors
    async def IssueToken(
        self, request: admin_pb2.IssueTokenRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> admin_pb2.IssueTokenResponse:
        request = await self._admit(request, context)
        credential = await self._chatroom.issue_token(request.member)
        return admin_pb2.IssueTokenResponse(member=credential.member, token=credential.token)
