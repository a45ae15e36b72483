"""History and retention on a real server: paging back, soft and hard limits, gaps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from chatroom.v1 import admin_pb2, chat_pb2, chat_pb2_grpc
from tests.support import TIMEOUT_S, Admin, InProcessServer, ServerProcess, Stream, bearer, send, wait_until

HARD_LIMIT = 5
SOFT_LIMIT = 2


def list_notes(
    channel: grpc.Channel, token: str, group: str, before: int, limit: int
) -> chat_pb2.ListNotesResponse:
    request = chat_pb2.ListNotesRequest(group=group, before_seq=before, limit=limit)
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    response: chat_pb2.ListNotesResponse = stub.ListNotes(request, metadata=bearer(token), timeout=TIMEOUT_S)
    return response


def send_many(channel: grpc.Channel, token: str, group: str, count: int) -> None:
    """Sends concurrently, a few hundred calls in flight at a time."""
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    for start in range(0, count, 250):
        calls = [
            stub.SendNote.future(
                chat_pb2.SendNoteRequest(group=group, text=f"n{i}"), metadata=bearer(token), timeout=TIMEOUT_S
            )
            for i in range(start, min(count, start + 250))
        ]
        for call in calls:
            call.result()


@pytest.fixture
def hard(fresh_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """A server that keeps at most HARD_LIMIT notes per group, on a database of its own
    (retention applies to every group in it)."""
    running = InProcessServer(
        tmp_path_factory.mktemp("hard"), db=fresh_database, retention_max_notes=HARD_LIMIT
    ).start()
    yield running
    running.stop()


@pytest.fixture
def soft(fresh_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """A server that keeps the newest SOFT_LIMIT notes, and older ones while someone has them unread."""
    running = InProcessServer(
        tmp_path_factory.mktemp("soft"), db=fresh_database, retention_notes=SOFT_LIMIT
    ).start()
    yield running
    running.stop()


def test_paging_back_through_ten_thousand_notes_gets_each_once(channel, admin: Admin, name: str) -> None:
    tokens = admin.create_group(name, [f"{name}-alice", f"{name}-bob"])
    send_many(channel, tokens[f"{name}-alice"], name, 10_000)
    seen: list[int] = []
    before = 0
    while True:
        page = list_notes(channel, tokens[f"{name}-bob"], name, before, 500)
        seqs = [note.seq for note in page.notes]
        assert seqs == sorted(seqs) and page.first_seq == 1
        seen = seqs + seen
        assert page.has_more == (seqs[0] > 1)
        if not page.has_more:
            break
        before = seqs[0]
    assert seen == list(range(1, 10_001))
    own = list_notes(channel, tokens[f"{name}-alice"], name, 0, 0)  # the sender sees its own; 50 by default
    assert [n.seq for n in own.notes] == list(range(9951, 10_001)) and own.has_more


def test_history_is_for_members_and_limits_its_page(channel, admin: Admin, name: str) -> None:
    tokens = admin.create_group(name, [f"{name}-alice"])
    outsider = admin.issue_token(f"{name}-doug")
    for token, group, limit, code in (
        (outsider, name, 10, grpc.StatusCode.PERMISSION_DENIED),
        (tokens[f"{name}-alice"], f"{name}-ghost", 10, grpc.StatusCode.PERMISSION_DENIED),
        (tokens[f"{name}-alice"], name, 501, grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            list_notes(channel, token, group, 0, limit)
        assert refused.value.code() == code
    empty = list_notes(channel, tokens[f"{name}-alice"], name, 0, 10)
    assert (list(empty.notes), empty.first_seq, empty.has_more) == ([], 1, False)


def test_soft_retention_waits_for_the_slowest_reader_not_for_a_sender(
    soft: InProcessServer, name: str
) -> None:
    with soft.channel() as channel:
        admin = soft.admin(channel)
        tokens = admin.create_group(name, [f"{name}-alice", f"{name}-bob", f"{name}-chad"])
        for i in range(5):
            send(channel, tokens[f"{name}-alice"], name, f"n{i}")  # alice never reads
        bob = Stream(channel, tokens[f"{name}-bob"], name).subscribed()
        bob.ack(bob.notes(5)[-1].seq)
        chad = Stream(channel, tokens[f"{name}-chad"], name).subscribed()
        chad.notes(5)
        chad.ack(2)
        # Notes 1..3 are past the limit; chad still has 3 unread, so only 1..2 go.
        wait_until(lambda: admin.group(name).first_seq == 3, what="notes 1..2 deleted")
        assert [n.seq for n in list_notes(channel, tokens[f"{name}-bob"], name, 0, 50).notes] == [3, 4, 5]
        chad.ack(5)
        wait_until(lambda: admin.group(name).first_seq == 4, what="note 3 deleted once chad read it")
        assert admin.unread(name)[f"{name}-alice"].lost_to_retention == 0
        assert send(channel, tokens[f"{name}-bob"], name, "after").seq == 6
        bob.close()
        chad.close()


def test_hard_retention_tells_a_reader_once_what_it_lost(hard: InProcessServer, name: str) -> None:
    with hard.channel() as channel:
        admin = hard.admin(channel)
        tokens = admin.create_group(name, [f"{name}-alice", f"{name}-bob"])
        for i in range(20):
            send(channel, tokens[f"{name}-alice"], name, f"n{i}")
        wait_until(lambda: admin.group(name).first_seq == 16, what="the hard limit to delete 1..15")
        group = admin.group(name)
        assert (group.first_seq, group.head_seq) == (16, 20)
        delivery = admin.unread(name)[f"{name}-bob"]
        assert (delivery.lost_to_retention, delivery.unread_count) == (15, 5)
        bob = Stream(channel, tokens[f"{name}-bob"], name).subscribed()
        first = bob.response()
        assert first.HasField("gap") and not first.notes
        assert (first.gap.first_seq, first.gap.last_seq) == (1, 15)
        assert str(HARD_LIMIT) in first.gap.reason
        assert [n.seq for n in bob.notes(5)] == [16, 17, 18, 19, 20]
        send(channel, tokens[f"{name}-alice"], name, "live")
        (live,) = bob.notes(1)
        assert (live.seq, live.text) == (21, "live")
        bob.ack(21)
        wait_until(lambda: admin.unread(name)[f"{name}-bob"].last_acked_seq == 21, what="bob's ack")
        bob.close()
        again = Stream(channel, tokens[f"{name}-bob"], name).subscribed()
        send(channel, tokens[f"{name}-alice"], name, "next")
        second = again.response()
        assert not second.HasField("gap") and [n.seq for n in second.notes] == [22]
        again.close()


def test_a_gap_survives_a_restart_until_acked(fresh_database: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home", db=fresh_database, extra_args=["--retention-max-notes=3"])
    server.start()
    try:
        with server.channel() as channel:
            admin = server.admin(channel)
            tokens = admin.create_group("team", ["alice", "bob"])
            for i in range(10):
                send(channel, tokens["alice"], "team", f"n{i}")
            wait_until(lambda: admin.group("team").first_seq == 8, what="the hard limit to delete 1..7")
        assert server.terminate() == 0
        server.restart()
        with server.channel() as channel:
            bob = Stream(channel, tokens["bob"], "team").subscribed()
            gap = bob.response().gap
            assert (gap.first_seq, gap.last_seq) == (1, 7)
            bob.close()  # not acked: told again
            bob = Stream(channel, tokens["bob"], "team").subscribed()
            gap = bob.response().gap
            assert (gap.first_seq, gap.last_seq) == (1, 7)
            assert [n.seq for n in bob.notes(3)] == [8, 9, 10]
            bob.ack(10)
            admin = server.admin(channel)
            wait_until(lambda: admin.unread("team")["bob"].last_acked_seq == 10, what="bob's ack")
        assert server.terminate() == 0
        server.restart()
        with server.channel() as channel:
            bob = Stream(channel, tokens["bob"], "team").subscribed()
            send(channel, tokens["alice"], "team", "after the restart")
            response = bob.response()
            assert not response.HasField("gap") and [n.seq for n in response.notes] == [11]
            bob.close()
    finally:
        server.stop()


def test_seq_continues_after_deletions_and_a_group_created_again(hard: InProcessServer, name: str) -> None:
    with hard.channel() as channel:
        admin = hard.admin(channel)
        tokens = admin.create_group(name, [f"{name}-alice"])
        for i in range(8):
            send(channel, tokens[f"{name}-alice"], name, f"n{i}")
        wait_until(lambda: admin.group(name).first_seq == 4, what="the hard limit to delete 1..3")
        admin.stub.DeleteGroup(admin_pb2.DeleteGroupRequest(group=name), metadata=admin.metadata)
        admin.create_group(name, [f"{name}-alice"])
        group = admin.group(name)
        assert (group.first_seq, group.head_seq) == (9, 8)
        assert send(channel, tokens[f"{name}-alice"], name, "reborn").seq == 9
        page = list_notes(channel, tokens[f"{name}-alice"], name, 0, 50)
        assert ([n.text for n in page.notes], page.first_seq, page.has_more) == (["reborn"], 9, False)
