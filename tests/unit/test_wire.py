"""The stream's encoding: live notes encoded once for every reader, stored batches as one message."""

from __future__ import annotations

import asyncio

from chatroom.v1 import chat_pb2
from services import wire
from services.core.model import Note
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
