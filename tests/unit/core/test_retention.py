"""Retention through the core: soft limits wait for readers, the hard limit does not, seqs go on."""

from __future__ import annotations

import asyncio

from tests.unit.core.conftest import members, started, subscribe, take


def test_soft_retention_keeps_a_note_until_the_slowest_reader_acks_it() -> None:
    async def scenario() -> None:
        chatroom = await started(retention_notes=2)
        who = await members(chatroom, "team", "alice", "bob", "chad")
        for i in range(5):
            await chatroom.send_note(who["alice"], "team", f"n{i + 1}", "")  # alice never reads
        bob = await subscribe(chatroom, who["bob"], "team")
        await take(bob.items(), 5)
        bob.ack(5)
        await chatroom.list_unread("team")  # writes the ack
        await chatroom.retention.run_once()
        assert (await chatroom.get_group("team")).first_seq == 1  # chad has read nothing
        chad = await subscribe(chatroom, who["chad"], "team")
        await take(chad.items(), 2)
        chad.ack(2)
        await chatroom.list_unread("team")
        await chatroom.retention.run_once()
        group = await chatroom.get_group("team")
        assert (group.first_seq, group.head_seq) == (3, 5)  # alice's own unread notes held nothing back
        assert chatroom.retention.deleted["soft_limit"] == 2
        assert (await chatroom.send_note(who["bob"], "team", "next", "")).seq == 6
        await chatroom.close()

    asyncio.run(scenario())


def test_the_hard_limit_bounds_a_group_whatever_readers_do_and_seqs_go_on() -> None:
    async def scenario() -> None:
        chatroom = await started(retention_max_notes=10)
        who = await members(chatroom, "team", "alice", "bob")
        for i in range(35):
            await chatroom.send_note(who["alice"], "team", f"n{i + 1}", "")
        await chatroom.retention.run_once()
        group = await chatroom.get_group("team")
        assert (group.first_seq, group.head_seq) == (26, 35)
        assert chatroom.retention.lost == 25  # bob read none of them
        history = await chatroom.list_notes(who["alice"], "team", 0, 100)
        assert ([n.seq for n in history.notes], history.first_seq, history.has_more) == (
            list(range(26, 36)),
            26,
            False,
        )
        await chatroom.delete_group("team")
        await chatroom.create_group("team", ["alice"])
        alice = await chatroom.authenticate((await chatroom.issue_token("alice")).token)
        assert (await chatroom.send_note(alice, "team", "again", "")).seq == 36
        await chatroom.close()

    asyncio.run(scenario())
