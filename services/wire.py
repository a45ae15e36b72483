"""Conversions between the core's values and chatroom.v1 messages."""

from __future__ import annotations

import itertools

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from chatroom.v1 import admin_pb2, chat_pb2
from services.core.chatroom import Credential
from services.core.model import Delivery, GroupInfo, Note


def timestamp(us: int) -> Timestamp:
    seconds, micros = divmod(us, 1_000_000)
    return Timestamp(seconds=seconds, nanos=micros * 1000)


def note(value: Note) -> chat_pb2.Note:
    return chat_pb2.Note(
        group=value.group,
        seq=value.seq,
        sender=value.sender,
        text=value.text,
        sent_at=timestamp(value.sent_at_us),
        client_msg_id=value.client_msg_id,
    )


ENCODED_NOTES_KEPT = 8192
_encoded: dict[tuple[str, int], bytes] = {}


def stream_response(batch: list[Note]) -> bytes:
    """A serialized ChatStreamResponse, each note encoded once for all its readers.

    Repeated fields concatenate, so a response with many notes is the
    concatenation of one-note responses; fan-out to a thousand sessions
    thereby costs one encoding per note instead of a thousand."""
    return b"".join([_encoded_note(each) for each in batch])


def _encoded_note(value: Note) -> bytes:
    key = (value.group, value.seq)
    encoded = _encoded.get(key)
    if encoded is None:
        if len(_encoded) >= ENCODED_NOTES_KEPT:
            for stale in list(itertools.islice(_encoded, ENCODED_NOTES_KEPT // 2)):
                del _encoded[stale]
        encoded = _encoded[key] = chat_pb2.ChatStreamResponse(notes=[note(value)]).SerializeToString()
    return encoded


def group(value: GroupInfo) -> admin_pb2.Group:
    return admin_pb2.Group(group=value.group, members=value.members, head_seq=value.head_seq)


def credentials(values: tuple[Credential, ...]) -> list[admin_pb2.MemberCredential]:
    return [admin_pb2.MemberCredential(member=c.member, token=c.token) for c in values]


def delivery(value: Delivery) -> admin_pb2.ListUnreadResponse:
    return admin_pb2.ListUnreadResponse(
        group=value.group,
        head_seq=value.head_seq,
        members=[
            admin_pb2.MemberDelivery(
                member=m.member,
                last_acked_seq=m.last_acked_seq,
                unread_count=m.unread_count,
                online_sessions=m.online_sessions,
                last_seen=None if m.last_seen_us is None else timestamp(m.last_seen_us),
            )
            for m in value.members
        ],
    )


def bearer_token(context: grpc.aio.ServicerContext) -> str | None:
    """The token of an `authorization: Bearer <token>` header, if there is one."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
