"""Conversions between the core's values and chatroom.v1 messages."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from chatroom.v1 import admin_pb2, chat_pb2
from services.core.chatroom import Credential
from services.core.model import Delivery, GroupInfo, History, Note
from services.core.session import Gap, Stored


def timestamp(us: int) -> Timestamp:
    value = Timestamp()
    _set_time(value, us)
    return value


def _set_time(target: Timestamp, us: int) -> None:
    seconds, micros = divmod(us, 1_000_000)
    target.seconds = seconds
    target.nanos = micros * 1000


def sent(value: Note) -> chat_pb2.SendNoteResponse:
    response = chat_pb2.SendNoteResponse()
    _fill_note(response.note, value)
    return response


def history(value: History) -> chat_pb2.ListNotesResponse:
    response = chat_pb2.ListNotesResponse(first_seq=value.first_seq, has_more=value.has_more)
    _fill_notes(response, value.notes)
    return response


def gap(value: Gap) -> bytes:
    message = chat_pb2.Gap(first_seq=value.first_seq, last_seq=value.last_seq, reason=value.reason)
    return chat_pb2.ChatStreamResponse(gap=message).SerializeToString()


class NoteEncoder:
    """Serialized ChatStreamResponses, each live note encoded once for all its readers.

    Repeated fields concatenate, so a response with many notes is the
    concatenation of one-note responses; fan-out to a thousand sessions
    thereby costs one encoding per note instead of a thousand. A batch a
    session read from storage for itself is encoded as one message, which
    costs less than encoding and keeping each of its notes. So readers that
    reconnect together after a restart encode their backlogs each on its own:
    about 2 us a note, less than reading the note from storage costs."""

    KEPT = 8192

    def __init__(self) -> None:
        self._encoded: dict[tuple[str, int], bytes] = {}

    def response(self, batch: list[Note]) -> bytes:
        if isinstance(batch, Stored):
            return _encoded(batch)
        return b"".join([self._encoded_note(each) for each in batch])

    def _encoded_note(self, value: Note) -> bytes:
        key = (value.group, value.seq)
        encoded = self._encoded.get(key)
        if encoded is None:
            if len(self._encoded) >= self.KEPT:
                for stale in list(itertools.islice(self._encoded, self.KEPT // 2)):
                    del self._encoded[stale]
            encoded = self._encoded[key] = _encoded((value,))
        return encoded


def _encoded(notes: Iterable[Note]) -> bytes:
    response = chat_pb2.ChatStreamResponse()
    _fill_notes(response, notes)
    return response.SerializeToString()


def _fill_notes(
    response: chat_pb2.ListNotesResponse | chat_pb2.ChatStreamResponse, notes: Iterable[Note]
) -> None:
    add = response.notes.add
    for each in notes:
        _fill_note(add(), each)


def _fill_note(message: chat_pb2.Note, value: Note) -> None:
    """Sets a Note in its place in a parent message: building one and copying it
    into the parent, with its Timestamp, costs three times as much."""
    message.group = value.group
    message.seq = value.seq
    message.sender = value.sender
    message.text = value.text
    message.client_msg_id = value.client_msg_id
    _set_time(message.sent_at, value.sent_at_us)


def group(value: GroupInfo) -> admin_pb2.Group:
    return admin_pb2.Group(
        group=value.group, members=value.members, head_seq=value.head_seq, first_seq=value.first_seq
    )


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
                lost_to_retention=m.lost_to_retention,
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
