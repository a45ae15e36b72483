"""Delivery semantics on a real server: seqs, cursors, unread counts, who gets what."""

from __future__ import annotations

import grpc
import pytest

from chatroom.v1 import admin_pb2, chat_pb2
from tests.support import TIMEOUT_S, Admin, ServerProcess, Stream, send, storage_rows, wait_until


@pytest.fixture
def trio(admin: Admin, name: str) -> tuple[str, dict[str, str]]:
    """Group `name` with alice, bob and chad (named after the test), and their tokens."""
    tokens = admin.create_group(name, [f"{name}-alice", f"{name}-bob", f"{name}-chad"])
    return name, {member.split("-", 1)[1]: token for member, token in tokens.items()}


def test_seqs_are_gapless_per_group(channel, trio) -> None:
    group, tokens = trio
    seqs = [send(channel, tokens[who], group, f"note {i}").seq for i, who in enumerate(["alice", "bob"] * 5)]
    assert seqs == list(range(1, 11))


def test_the_same_client_msg_id_stores_one_note(server: ServerProcess, channel, admin, trio) -> None:
    group, tokens = trio
    first = send(channel, tokens["alice"], group, "hello", client_msg_id="m-1")
    again = send(channel, tokens["alice"], group, "hello, edited", client_msg_id="m-1")
    assert (again.seq, again.text, again.sent_at) == (first.seq, "hello", first.sent_at)
    assert admin.group(group).head_seq == 1
    notes = [row for row in storage_rows(server)["notes"] if row[0] == group]
    assert notes == [(group, 1, f"{group}-alice", "hello", "m-1")]


def test_client_msg_id_is_scoped_to_the_sender(channel, trio) -> None:
    group, tokens = trio
    alice = send(channel, tokens["alice"], group, "from alice", client_msg_id="same")
    bob = send(channel, tokens["bob"], group, "from bob", client_msg_id="same")
    assert (alice.seq, bob.seq) == (1, 2)


def test_an_empty_client_msg_id_never_deduplicates(channel, trio) -> None:
    group, tokens = trio
    assert [send(channel, tokens["alice"], group, "again").seq for _ in range(3)] == [1, 2, 3]


def test_sender_comes_from_the_token(channel, trio) -> None:
    group, tokens = trio
    assert send(channel, tokens["bob"], group, "who am i").sender == f"{group}-bob"


def test_backlog_then_live_in_one_ordered_stream(channel, trio) -> None:
    group, tokens = trio
    for i in range(3):
        send(channel, tokens["alice"], group, f"before {i}")
    bob = Stream(channel, tokens["bob"], group).subscribed()
    assert [n.text for n in bob.notes(3)] == ["before 0", "before 1", "before 2"]
    send(channel, tokens["chad"], group, "live")
    (live,) = bob.notes(1)
    assert (live.seq, live.sender, live.text) == (4, f"{group}-chad", "live")
    bob.close()


def test_own_notes_are_never_sent_back(channel, trio) -> None:
    group, tokens = trio
    bob = Stream(channel, tokens["bob"], group).subscribed()
    send(channel, tokens["bob"], group, "mine")
    send(channel, tokens["alice"], group, "theirs")
    (first,) = bob.notes(1)
    assert (first.seq, first.text) == (2, "theirs")
    bob.close()


def test_unread_counts_follow_acks(channel, admin, trio) -> None:
    group, tokens = trio
    for i in range(3):
        send(channel, tokens["alice"], group, f"n{i}")
    unread = admin.unread(group)
    assert {m: (d.last_acked_seq, d.unread_count) for m, d in unread.items()} == {
        f"{group}-alice": (0, 0),
        f"{group}-bob": (0, 3),
        f"{group}-chad": (0, 3),
    }
    bob = Stream(channel, tokens["bob"], group).subscribed()
    bob.notes(3)
    bob.ack(2)
    wait_until(lambda: admin.unread(group)[f"{group}-bob"].last_acked_seq == 2, what="bob's ack of 2")
    assert admin.unread(group)[f"{group}-bob"].unread_count == 1
    bob.ack(3)
    wait_until(lambda: admin.unread(group)[f"{group}-bob"].unread_count == 0, what="bob's ack of 3")
    after = admin.unread(group)
    assert (after[f"{group}-chad"].unread_count, after[f"{group}-bob"].online_sessions) == (3, 1)
    bob.close()


def test_own_notes_do_not_count_as_unread(channel, admin, trio) -> None:
    group, tokens = trio
    send(channel, tokens["bob"], group, "mine")
    send(channel, tokens["alice"], group, "theirs")
    assert admin.unread(group)[f"{group}-bob"].unread_count == 1


def test_an_ack_is_clamped_to_what_was_sent(channel, admin, trio) -> None:
    group, tokens = trio
    send(channel, tokens["alice"], group, "one")
    bob = Stream(channel, tokens["bob"], group).subscribed()
    bob.notes(1)
    bob.ack(1000)
    send(channel, tokens["alice"], group, "two")
    bob.notes(1)  # the ack was read before this note was sent to bob
    wait_until(lambda: admin.unread(group)[f"{group}-bob"].last_acked_seq == 1, what="clamped ack")
    assert admin.unread(group)[f"{group}-bob"].unread_count == 1
    bob.close()


def test_an_ack_below_the_cursor_changes_nothing(channel, admin, trio) -> None:
    group, tokens = trio
    for text in ("one", "two"):
        send(channel, tokens["alice"], group, text)
    bob = Stream(channel, tokens["bob"], group).subscribed()
    bob.notes(2)
    bob.ack(2)
    wait_until(lambda: admin.unread(group)[f"{group}-bob"].last_acked_seq == 2, what="ack of 2")
    bob.ack(1)
    send(channel, tokens["alice"], group, "three")
    bob.notes(1)
    assert admin.unread(group)[f"{group}-bob"].last_acked_seq == 2
    bob.close()


def test_a_reconnect_resends_what_was_not_acked(channel, admin, trio) -> None:
    group, tokens = trio
    for text in ("one", "two", "three"):
        send(channel, tokens["alice"], group, text)
    first = Stream(channel, tokens["bob"], group).subscribed()
    first.notes(3)
    first.ack(1)
    wait_until(lambda: admin.unread(group)[f"{group}-bob"].last_acked_seq == 1, what="ack of 1")
    first.close()
    again = Stream(channel, tokens["bob"], group).subscribed()
    assert [n.seq for n in again.notes(2)] == [2, 3]
    again.close()


def test_a_backlog_arrives_packed_in_order(channel, admin, trio) -> None:
    group, tokens = trio
    for i in range(300):
        send(channel, tokens["alice"], group, f"n{i}")
    bob = Stream(channel, tokens["bob"], group).subscribed()
    batches: list[list[chat_pb2.Note]] = []
    while sum(len(b) for b in batches) < 300:
        batches.append(bob.batch())
        bob.ack(batches[-1][-1].seq)
    assert [n.seq for batch in batches for n in batch] == list(range(1, 301))
    assert len(batches) < 30, "a backlog should travel many notes per message"
    wait_until(lambda: admin.unread(group)[f"{group}-bob"].unread_count == 0, what="acks of the backlog")
    bob.close()


def test_every_session_of_a_member_gets_live_notes(channel, admin, trio) -> None:
    group, tokens = trio
    laptop = Stream(channel, tokens["bob"], group).subscribed()
    phone = Stream(channel, tokens["bob"], group).subscribed()
    wait_until(lambda: admin.unread(group)[f"{group}-bob"].online_sessions == 2, what="two sessions")
    send(channel, tokens["alice"], group, "to both")
    assert laptop.notes(1)[0].text == phone.notes(1)[0].text == "to both"
    phone.ack(1)
    wait_until(lambda: admin.unread(group)[f"{group}-bob"].last_acked_seq == 1, what="the phone's ack")
    laptop.close()
    phone.close()
    wait_until(lambda: admin.unread(group)[f"{group}-bob"].online_sessions == 0, what="sessions to end")


def test_a_new_member_starts_at_the_head(channel, admin, trio, name) -> None:
    group, tokens = trio
    send(channel, tokens["alice"], group, "before doug")
    request = admin_pb2.AddMembersRequest(group=group, members=[f"{name}-doug"])
    added = admin.stub.AddMembers(request, metadata=admin.metadata, timeout=TIMEOUT_S)
    doug_token = {c.member: c.token for c in added.credentials}[f"{name}-doug"]
    assert admin.unread(group)[f"{name}-doug"].unread_count == 0
    doug = Stream(channel, doug_token, group).subscribed()
    send(channel, tokens["alice"], group, "after doug")
    assert [n.text for n in doug.notes(1)] == ["after doug"]
    doug.close()


def test_removing_a_member_ends_its_streams(channel, admin, trio) -> None:
    group, tokens = trio
    bob = Stream(channel, tokens["bob"], group).subscribed()
    request = admin_pb2.RemoveMembersRequest(group=group, members=[f"{group}-bob"])
    admin.stub.RemoveMembers(request, metadata=admin.metadata, timeout=TIMEOUT_S)
    assert bob.ended_with() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as refused:
        send(channel, tokens["bob"], group, "still here?")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_deleting_a_group_ends_streams_and_a_new_one_continues_its_seq(channel, admin, trio) -> None:
    group, tokens = trio
    for text in ("one", "two"):
        send(channel, tokens["alice"], group, text)
    bob = Stream(channel, tokens["bob"], group).subscribed()
    admin.stub.DeleteGroup(
        admin_pb2.DeleteGroupRequest(group=group), metadata=admin.metadata, timeout=TIMEOUT_S
    )
    assert bob.ended_with() == grpc.StatusCode.PERMISSION_DENIED
    admin.create_group(group, [f"{group}-alice", f"{group}-bob"])
    assert admin.group(group).head_seq == 2
    bob = Stream(channel, tokens["bob"], group).subscribed()
    assert send(channel, tokens["alice"], group, "reborn").seq == 3
    assert [(n.seq, n.text) for n in bob.notes(1)] == [(3, "reborn")]
    bob.close()


def test_a_new_token_ends_streams_on_the_old_one(channel, admin, trio) -> None:
    group, tokens = trio
    bob = Stream(channel, tokens["bob"], group).subscribed()
    new_token = admin.issue_token(f"{group}-bob")
    assert bob.ended_with() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as refused:
        send(channel, tokens["bob"], group, "old token")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert send(channel, new_token, group, "new token").sender == f"{group}-bob"


def test_a_session_that_does_not_ack_waits_at_max_unacked(tmp_path) -> None:
    server = ServerProcess(tmp_path, extra_args=["--max-unacked=5"]).start()
    try:
        with server.channel() as channel:
            admin = server.admin(channel)
            tokens = admin.create_group("team", ["alice", "bob"])
            for i in range(12):
                send(channel, tokens["alice"], "team", f"n{i}")
            bob = Stream(channel, tokens["bob"], "team").subscribed()
            assert [n.seq for n in bob.notes(5)] == [1, 2, 3, 4, 5]
            send(channel, tokens["alice"], "team", "a live note while bob is at his limit")
            bob.ack(3)
            assert [n.seq for n in bob.notes(3)] == [6, 7, 8]
            bob.ack(8)
            assert [n.seq for n in bob.notes(5)] == [9, 10, 11, 12, 13]
            bob.close()
    finally:
        server.stop()
