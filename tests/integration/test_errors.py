"""Every refusal of DESIGN §4: the right status code, a message a person can act on,
and storage exactly as it was before the call."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from chatroom.v1 import admin_pb2, admin_pb2_grpc, chat_pb2, chat_pb2_grpc
from tests.support import TIMEOUT_S, Admin, ServerProcess, bearer, send, storage_rows

Code = grpc.StatusCode


@pytest.fixture
def team(admin: Admin, name: str) -> tuple[str, dict[str, str]]:
    """A group with alice-like members named after the test, and their tokens."""
    members = [f"{name}-alice", f"{name}-bob"]
    return name, admin.create_group(name, members)


def refused(server: ServerProcess, call: Callable[[], object]) -> grpc.RpcError:
    """Runs a call that must fail, and checks that storage did not change."""
    before = storage_rows(server)
    with pytest.raises(grpc.RpcError) as failure:
        call()
    assert storage_rows(server) == before
    return failure.value


def stream(channel: grpc.Channel, token: str | None, *requests: chat_pb2.ChatStreamRequest) -> None:
    """Opens a ChatStream, sends requests, and reads until the server ends it."""
    metadata = bearer(token) if token else ()
    responses = chat_pb2_grpc.ChatServiceStub(channel).ChatStream(
        iter(requests), metadata=metadata, timeout=TIMEOUT_S
    )
    for _ in responses:
        pass


def subscribe(group: str) -> chat_pb2.ChatStreamRequest:
    return chat_pb2.ChatStreamRequest(subscribe=chat_pb2.Subscribe(group=group))


def admin_call(channel: grpc.Channel, method: str, request: object, token: str) -> object:
    stub = admin_pb2_grpc.AdminServiceStub(channel)
    return getattr(stub, method)(request, metadata=bearer(token), timeout=TIMEOUT_S)


# -- identity ---------------------------------------------------------------------


def test_send_without_a_token_is_unauthenticated(server, channel, team) -> None:
    group, _ = team
    request = chat_pb2.SendNoteRequest(group=group, text="hi")
    error = refused(
        server, lambda: chat_pb2_grpc.ChatServiceStub(channel).SendNote(request, timeout=TIMEOUT_S)
    )
    assert error.code() == Code.UNAUTHENTICATED
    assert "Bearer" in error.details()


def test_stream_with_a_bad_token_is_unauthenticated(server, channel, team) -> None:
    group, tokens = team
    forged = next(iter(tokens.values()))[:-4] + "AAAA"
    error = refused(server, lambda: stream(channel, forged, subscribe(group)))
    assert error.code() == Code.UNAUTHENTICATED


def test_send_with_a_token_of_no_member_is_unauthenticated(server, channel, team) -> None:
    group, _ = team
    error = refused(server, lambda: send(channel, "nobody.c2VjcmV0", group, "hi"))
    assert error.code() == Code.UNAUTHENTICATED


def test_identity_is_checked_before_syntax(server, channel) -> None:
    error = refused(server, lambda: send(channel, "garbage", "Not A Name", ""))
    assert error.code() == Code.UNAUTHENTICATED


def test_member_token_on_an_admin_call_is_permission_denied(server, channel, team) -> None:
    _, tokens = team
    member_token = next(iter(tokens.values()))
    request = admin_pb2.CreateGroupRequest(group="stolen", members=["mallory"])
    error = refused(server, lambda: admin_call(channel, "CreateGroup", request, member_token))
    assert error.code() == Code.PERMISSION_DENIED
    assert "admin token" in error.details()


def test_admin_call_with_a_wrong_token_is_unauthenticated(server, channel) -> None:
    error = refused(server, lambda: admin_call(channel, "ListGroups", admin_pb2.ListGroupsRequest(), "wrong"))
    assert error.code() == Code.UNAUTHENTICATED


# -- membership -------------------------------------------------------------------


def test_non_member_and_unknown_group_look_the_same(server, channel, admin, team, name) -> None:
    group, _ = team
    outsider = admin.issue_token(f"{name}-doug")
    not_member = refused(server, lambda: send(channel, outsider, group, "let me in"))
    no_group = refused(server, lambda: send(channel, outsider, f"{group}-nope", "anyone?"))
    assert not_member.code() == no_group.code() == Code.PERMISSION_DENIED
    assert not_member.details().replace(group, "G") == no_group.details().replace(f"{group}-nope", "G")


def test_non_member_cannot_subscribe(server, channel, admin, team, name) -> None:
    group, _ = team
    outsider = admin.issue_token(f"{name}-doug")
    error = refused(server, lambda: stream(channel, outsider, subscribe(group)))
    assert error.code() == Code.PERMISSION_DENIED


def test_unknown_group_on_subscribe_is_permission_denied(server, channel, team) -> None:
    _, tokens = team
    token = next(iter(tokens.values()))
    error = refused(server, lambda: stream(channel, token, subscribe("no-such-group")))
    assert error.code() == Code.PERMISSION_DENIED
    assert "does not exist or you are not a member" in error.details()


# -- syntax -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_invalid(server, channel, team, text) -> None:
    group, tokens = team
    error = refused(server, lambda: send(channel, next(iter(tokens.values())), group, text))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "empty" in error.details()


def test_text_over_the_limit_is_invalid(server, channel, team) -> None:
    group, tokens = team
    error = refused(server, lambda: send(channel, next(iter(tokens.values())), group, "é" * 2049))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "4098 bytes; the limit is 4096" in error.details()


def test_text_at_the_limit_is_stored(channel, team) -> None:
    group, tokens = team
    assert send(channel, next(iter(tokens.values())), group, "é" * 2048).seq == 1


def test_oversized_client_msg_id_is_invalid(server, channel, team) -> None:
    group, tokens = team
    error = refused(server, lambda: send(channel, next(iter(tokens.values())), group, "hi", "x" * 129))
    assert error.code() == Code.INVALID_ARGUMENT


@pytest.mark.parametrize("bad", ["", "Team", "-team", "te am", "t" * 64, "tëam"])
def test_bad_group_name_is_invalid(server, channel, team, bad) -> None:
    _, tokens = team
    error = refused(server, lambda: send(channel, next(iter(tokens.values())), bad, "hi"))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "invalid group name" in error.details()


def test_syntax_is_checked_before_membership(server, channel, admin, name) -> None:
    outsider = admin.issue_token(f"{name}-doug")
    error = refused(server, lambda: send(channel, outsider, "Bad Name", "hi"))
    assert error.code() == Code.INVALID_ARGUMENT


@pytest.mark.parametrize("bad", ["Alice", "", "a" * 64, "bob!"])
def test_bad_member_name_is_invalid_and_creates_nothing(server, channel, admin, name, bad) -> None:
    request = admin_pb2.CreateGroupRequest(group=name, members=["alice-ok", bad])
    error = refused(server, lambda: admin_call(channel, "CreateGroup", request, server.admin_token))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "invalid member name" in error.details()


def test_first_stream_message_must_be_a_subscribe(server, channel, team) -> None:
    _, tokens = team
    ack = chat_pb2.ChatStreamRequest(ack=chat_pb2.Ack(seq=1))
    error = refused(server, lambda: stream(channel, next(iter(tokens.values())), ack))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "subscribe" in error.details()


def test_stream_without_any_message_is_invalid(server, channel, team) -> None:
    _, tokens = team
    error = refused(server, lambda: stream(channel, next(iter(tokens.values()))))
    assert error.code() == Code.INVALID_ARGUMENT


# -- admin ------------------------------------------------------------------------


UNKNOWN_GROUP_CALLS = [
    ("GetGroup", admin_pb2.GetGroupRequest(group="missing")),
    ("DeleteGroup", admin_pb2.DeleteGroupRequest(group="missing")),
    ("AddMembers", admin_pb2.AddMembersRequest(group="missing", members=["alice"])),
    ("RemoveMembers", admin_pb2.RemoveMembersRequest(group="missing", members=["alice"])),
    ("ListUnread", admin_pb2.ListUnreadRequest(group="missing")),
]


@pytest.mark.parametrize(("method", "request_"), UNKNOWN_GROUP_CALLS, ids=[m for m, _ in UNKNOWN_GROUP_CALLS])
def test_admin_call_on_an_unknown_group_is_not_found(server, channel, method, request_) -> None:
    error = refused(server, lambda: admin_call(channel, method, request_, server.admin_token))
    assert error.code() == Code.NOT_FOUND
    assert error.details() == "group 'missing' does not exist"


def test_creating_an_existing_group_is_already_exists(server, channel, team) -> None:
    group, _ = team
    request = admin_pb2.CreateGroupRequest(group=group, members=["someone-new"])
    error = refused(server, lambda: admin_call(channel, "CreateGroup", request, server.admin_token))
    assert error.code() == Code.ALREADY_EXISTS
    assert error.details() == f"group {group!r} already exists"
