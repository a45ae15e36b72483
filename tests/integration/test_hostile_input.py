"""Property-based: whatever arrives — arbitrary unicode, NUL characters, bytes
that are not UTF-8 at all, huge and empty fields, thousands of repeated
entries, random tokens — every RPC answers with a status code of DESIGN §4
(never INTERNAL, UNKNOWN or a retryable UNAVAILABLE), both backends accept and
refuse the same things, and the server keeps SERVING."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatroom.v1 import admin_pb2, admin_pb2_grpc, chat_pb2, chat_pb2_grpc, metadata
from tests.support import Admin, ServerProcess, bearer

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

names = st.one_of(
    st.sampled_from(["team", "alice", "bob", "", "a" * 63, "a" * 64, "-x", "Team"]),
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True),
    st.text(max_size=40),
    st.integers(5000, 20000).map(lambda n: "é" * n),
)
texts = st.one_of(st.text(max_size=50), st.integers(4000, 9000).map(lambda n: "x" * n), st.just(""))
name_lists = st.one_of(
    st.lists(names, max_size=5),
    st.integers(1000, 3000).map(lambda n: [f"m{i}" for i in range(n)]),  # thousands of entries
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
"""What an HTTP/2 header can carry at all (the client library refuses anything else)."""


@pytest.fixture(scope="module")
def identities(server: ServerProcess) -> dict[str, str]:
    """Tokens for the fuzzed calls, which may replace them (IssueToken) or remove their group."""
    with server.channel() as channel:
        tokens = server.admin(channel).create_group("team", ["alice", "bob"])
    return {"admin": server.admin_token, **tokens}


@pytest.fixture
def member_token(admin: Admin, name: str) -> str:
    """A token no fuzzed call can have replaced: a test that needs it valid mints its own."""
    return admin.create_group(name, [f"{name}-alice"])[f"{name}-alice"]


def tokens_from(identities: dict[str, str]) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.sampled_from([*identities.values(), None, "", "alice.", "alice.AAAA", "x" * 10000]),
        HEADER_TEXT,
    )


def answer(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return () if token is None else bearer(token)


ADMIN_CALLS: list[tuple[str, Callable[..., object]]] = [
    ("CreateGroup", lambda group, members: admin_pb2.CreateGroupRequest(group=group, members=members)),
    ("GetGroup", lambda group, members: admin_pb2.GetGroupRequest(group=group)),
    ("ListGroups", lambda group, members: admin_pb2.ListGroupsRequest()),
    ("DeleteGroup", lambda group, members: admin_pb2.DeleteGroupRequest(group=group)),
    ("AddMembers", lambda group, members: admin_pb2.AddMembersRequest(group=group, members=members)),
    ("RemoveMembers", lambda group, members: admin_pb2.RemoveMembersRequest(group=group, members=members)),
    ("ListUnread", lambda group, members: admin_pb2.ListUnreadRequest(group=group)),
    ("IssueToken", lambda group, members: admin_pb2.IssueTokenRequest(member=group)),
]


@pytest.mark.parametrize(("method", "make"), ADMIN_CALLS, ids=[m for m, _ in ADMIN_CALLS])
def test_admin_calls_answer_only_documented_codes(server, channel, identities, method, make) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(channel)

    @PROPERTY
    @given(token=tokens_from(identities), group=names, members=name_lists)
    def check(token: str | None, group: str, members: list[str]) -> None:
        request = make(group, members)
        code = answer(lambda: getattr(stub, method)(request, metadata=token_metadata(token), timeout=30))
        assert code in ALLOWED, code

    check()
    assert_serving(channel)


def test_send_note_answers_only_documented_codes(server, channel, identities) -> None:
    stub = chat_pb2_grpc.ChatServiceStub(channel)

    @PROPERTY
    @given(token=tokens_from(identities), group=names, text=texts, msg_id=st.text(max_size=300))
    def check(token: str | None, group: str, text: str, msg_id: str) -> None:
        request = chat_pb2.SendNoteRequest(group=group, text=text, client_msg_id=msg_id)
        code = answer(lambda: stub.SendNote(request, metadata=token_metadata(token), timeout=30))
        assert code in ALLOWED, code

    check()
    assert_serving(channel)


def test_chat_stream_answers_only_documented_codes(server, channel, identities) -> None:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    firsts = st.one_of(
        names.map(lambda group: chat_pb2.ChatStreamRequest(subscribe=chat_pb2.Subscribe(group=group))),
        st.integers(0, 2**64 - 1).map(lambda seq: chat_pb2.ChatStreamRequest(ack=chat_pb2.Ack(seq=seq))),
        st.just(chat_pb2.ChatStreamRequest()),
    )
    acks = st.lists(st.integers(0, 2**64 - 1), max_size=5)

    @PROPERTY
    @given(token=tokens_from(identities), first=firsts, later=acks)
    def check(token: str | None, first: chat_pb2.ChatStreamRequest, later: list[int]) -> None:
        requests = [first, *(chat_pb2.ChatStreamRequest(ack=chat_pb2.Ack(seq=seq)) for seq in later)]
        call = stub.ChatStream(iter(requests), metadata=token_metadata(token), timeout=30)

        def open_then_leave() -> None:
            if metadata.SUBSCRIBED in dict(call.initial_metadata()):
                call.cancel()  # accepted: a live stream, which we leave
                return
            for _ in call:
                pass

        code = answer(open_then_leave)
        assert code in ALLOWED | {grpc.StatusCode.CANCELLED}, code

    check()
    assert_serving(channel)


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, written by hand so that it may hold any bytes."""
    length, size = b"", len(payload)
    while True:
        byte, size = size & 0x7F, size >> 7
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            return bytes([number << 3 | 2]) + length + payload


malformed_strings = st.tuples(
    st.text(max_size=20), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\0"]), st.text(max_size=20)
).map(lambda parts: parts[0].encode() + parts[1] + parts[2].encode())
"""Bytes that are not UTF-8 (a stray byte, a cut sequence, a surrogate), or UTF-8 with a NUL."""


def raw_call(channel: grpc.Channel, method: str) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def test_malformed_strings_in_send_note_are_invalid_argument(channel, name, member_token) -> None:
    """A retry can never succeed, so such a send must not look retryable, nor fail its neighbours."""
    send_note = raw_call(channel, "/chatroom.v1.ChatService/SendNote")
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    alice = bearer(member_token)
    before = stub.SendNote(chat_pb2.SendNoteRequest(group=name, text="before"), metadata=alice, timeout=30)

    @PROPERTY
    @given(value=malformed_strings, number=st.sampled_from([2, 3]))
    def check(value: bytes, number: int) -> None:
        fields = {1: name.encode(), 2: b"fine", number: value}
        request = b"".join(field(n, payload) for n, payload in sorted(fields.items()))
        code = answer(lambda: send_note(request, metadata=alice, timeout=30))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, code

    check()
    after = stub.SendNote(chat_pb2.SendNoteRequest(group=name, text="after"), metadata=alice, timeout=30)
    assert after.note.seq == before.note.seq + 1
    assert_serving(channel)


MALFORMED = pytest.mark.parametrize(
    "payload", [b"te\xffam", b"te\0am", b"\xc3"], ids=["bad-utf8", "nul", "cut"]
)


@MALFORMED
@pytest.mark.parametrize(
    ("method", "number"),
    [("AdminService/CreateGroup", 1), ("AdminService/CreateGroup", 2), ("AdminService/GetGroup", 1)]
    + [("AdminService/IssueToken", 1), ("AdminService/RemoveMembers", 2), ("ChatService/ListNotes", 1)],
)
def test_malformed_strings_in_calls_are_invalid_argument(
    server, channel, member_token, method, number, payload
) -> None:
    token = member_token if method.startswith("Chat") else server.admin_token
    call = raw_call(channel, f"/chatroom.v1.{method}")
    code = answer(lambda: call(field(number, payload), metadata=bearer(token), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, code


@MALFORMED
def test_a_malformed_subscribe_is_invalid_argument(server, channel, member_token, payload) -> None:
    stream = channel.stream_stream(
        "/chatroom.v1.ChatService/ChatStream", request_serializer=None, response_deserializer=None
    )
    call = stream(iter([field(1, field(1, payload))]), metadata=bearer(member_token), timeout=30)
    assert answer(lambda: list(call)) == grpc.StatusCode.INVALID_ARGUMENT


def assert_serving(channel: grpc.Channel) -> None:
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_the_server_still_works_for_real_members_afterwards(channel, name, member_token) -> None:
    request = chat_pb2.SendNoteRequest(group=name, text="still here")
    response = chat_pb2_grpc.ChatServiceStub(channel).SendNote(
        request, metadata=bearer(member_token), timeout=10
    )
    assert response.note.sender == f"{name}-alice"
