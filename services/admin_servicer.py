"""AdminService: the control plane, for holders of the admin token."""

from __future__ import annotations

import grpc

from chatroom.v1 import admin_pb2, admin_pb2_grpc
from services import wire
from services.core.chatroom import Chatroom
from services.status import maps_errors


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):  # type: ignore[misc]
    def __init__(self, chatroom: Chatroom) -> None:
        self._chatroom = chatroom

    async def _admit(self, context: grpc.aio.ServicerContext) -> None:
        await self._chatroom.authenticate_admin(wire.bearer_token(context))

    @maps_errors
    async def CreateGroup(
        self, request: admin_pb2.CreateGroupRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.CreateGroupResponse:
        await self._admit(context)
        result = await self._chatroom.create_group(request.group, request.members)
        return admin_pb2.CreateGroupResponse(
            group=wire.group(result.group), credentials=wire.credentials(result.credentials)
        )

    @maps_errors
    async def GetGroup(
        self, request: admin_pb2.GetGroupRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetGroupResponse:
        await self._admit(context)
        info = await self._chatroom.get_group(request.group)
        return admin_pb2.GetGroupResponse(group=wire.group(info))

    @maps_errors
    async def ListGroups(
        self, request: admin_pb2.ListGroupsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListGroupsResponse:
        await self._admit(context)
        groups = await self._chatroom.list_groups()
        return admin_pb2.ListGroupsResponse(groups=[wire.group(info) for info in groups])

    @maps_errors
    async def DeleteGroup(
        self, request: admin_pb2.DeleteGroupRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.DeleteGroupResponse:
        await self._admit(context)
        await self._chatroom.delete_group(request.group)
        return admin_pb2.DeleteGroupResponse()

    @maps_errors
    async def AddMembers(
        self, request: admin_pb2.AddMembersRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.AddMembersResponse:
        await self._admit(context)
        result = await self._chatroom.add_members(request.group, request.members)
        return admin_pb2.AddMembersResponse(
            group=wire.group(result.group), credentials=wire.credentials(result.credentials)
        )

    @maps_errors
    async def RemoveMembers(
        self, request: admin_pb2.RemoveMembersRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RemoveMembersResponse:
        await self._admit(context)
        info = await self._chatroom.remove_members(request.group, request.members)
        return admin_pb2.RemoveMembersResponse(group=wire.group(info))

    @maps_errors
    async def ListUnread(
        self, request: admin_pb2.ListUnreadRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListUnreadResponse:
        await self._admit(context)
        return wire.delivery(await self._chatroom.list_unread(request.group))

    @maps_errors
    async def IssueToken(
        self, request: admin_pb2.IssueTokenRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.IssueTokenResponse:
        await self._admit(context)
        credential = await self._chatroom.issue_token(request.member)
        return admin_pb2.IssueTokenResponse(member=credential.member, token=credential.token)
