"""The stream's encoding: live notes encoded once for every reader, stored batches as one message."""

from __future__ import annotations

import asyncio

from google.protobuf.timestamp_pb2 import Timestamp

from chatroom.v1 import chat_pb2
from services import wire
from services.core.model import History, Note
from services.core.session import Stored
from tests.unit.core.conftest import WAIT_S, members, started, subscribe

NOTES = [
    Note("team", seq, "alice", f"note {seq} ✓", 1_700_000_000_000_000 + seq, f"id-{seq}") for seq in (1, 2, 3)
]


def test_a_live_batch_and_a_stored_batch_of_the_same_notes_read_back_alike() -> None:
    encoder = wire.NoteEncoder()
    live = chat_pb2.ChatStreamResponse.FromString(encoder.response(list(NOTES)))
    stored = chat_pb2.ChatStreamResponse.FromString(encoder.response(Stored(NOTES)))
    assert live == stored
    assert [(n.seq, n.text, n.sent_at.ToMicroseconds(), n.client_msg_id) for n in stored.notes] == [
        (n.seq, n.text, n.sent_at_us, n.client_msg_id) for n in NOTES
    ]


def _built(value: Note) -> chat_pb2.Note:
    seconds, micros = divmod(value.sent_at_us, 1_000_000)
    return chat_pb2.Note(
        group=value.group,
        seq=value.seq,
        sender=value.sender,
        text=value.text,
        sent_at=Timestamp(seconds=seconds, nanos=micros * 1000),
        client_msg_id=value.client_msg_id,
    )


def test_notes_filled_in_place_equal_notes_built_field_by_field() -> None:
    expected = [_built(each) for each in NOTES]
    assert wire.sent(NOTES[0]).note == expected[0]
    page = wire.history(History(tuple(NOTES), first_seq=1, has_more=True))
    assert list(page.notes) == expected and page.first_seq == 1 and page.has_more
    streamed = chat_pb2.ChatStreamResponse.FromString(wire.NoteEncoder().response(Stored(NOTES)))
    assert list(streamed.notes) == expected


def test_a_session_marks_what_it_read_from_storage_and_not_what_was_pushed_to_it() -> None:
    async def scenario() -> None:
        chatroom = await started()
        who = await members(chatroom, "team", "alice", "bob")
        await chatroom.send_note(who["alice"], "team", "before bob subscribed", "")
        bob = await subscribe(chatroom, who["bob"], "team")
        items = bob.items()
        backlog = await asyncio.wait_for(anext(items), WAIT_S)
        assert isinstance(backlog, Stored) and [n.seq for n in backlog] == [1]
        await chatroom.send_note(who["alice"], "team", "live", "")
        live = await asyncio.wait_for(anext(items), WAIT_S)
        assert isinstance(live, list) and not isinstance(live, Stored)
        assert [n.seq for n in live] == [2]
        await chatroom.close()

    asyncio.run(scenario())
