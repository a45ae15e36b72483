"""The Store contract, one transaction per method, against a real database."""

from __future__ import annotations

import asyncio

import pytest

from services.core.errors import GroupExists, GroupNotFound
from services.core.model import CursorUpdate, NewNote, now_us
from services.storage.base import Appended, Rejected, Store
from tests.unit.conftest import StoreFactory

HASHES = {name: name.encode() * 4 for name in ("alice", "bob", "chad", "doug")}


def new(group: str, sender: str, text: str, client_msg_id: str = "") -> NewNote:
    return NewNote(group, sender, text, now_us(), client_msg_id)


async def opened(make_store: StoreFactory) -> Store:
    store = make_store()
    await store.open()
    return store


def test_a_group_starts_empty_and_only_new_members_get_tokens(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = await opened(make_store)
        await store.set_token("alice", b"alice's own")
        change = await store.create_group("team", ["alice", "bob"], HASHES)
        assert (change.group.members, change.group.head_seq, change.new_members) == (
            ("alice", "bob"),
            0,
            ("bob",),
        )
        assert await store.token_hash("alice") == b"alice's own"
        with pytest.raises(GroupExists):
            await store.create_group("team", ["chad"], HASHES)
        await store.close()

    asyncio.run(scenario())


def test_appends_are_gapless_idempotent_and_members_only(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = await opened(make_store)
        await store.create_group("team", ["alice", "bob"], HASHES)
        await store.set_token("doug", HASHES["doug"])
        results = await store.append_notes(
            [
                new("team", "alice", "one", "a-1"),
                new("team", "bob", "two"),
                new("team", "alice", "retry", "a-1"),
                new("team", "doug", "intruder"),
                new("team", "bob", "three", "a-1"),
            ]
        )
        assert [(r.note.seq, r.note.text, r.created) if isinstance(r, Appended) else r for r in results] == [
            (1, "one", True),
            (2, "two", True),
            (1, "one", False),
            Rejected(),
            (3, "three", True),
        ]
        notes = await store.read_notes("team", 0, 100, 100)
        assert [(n.seq, n.sender) for n in notes] == [(1, "alice"), (2, "bob"), (3, "bob")]
        assert [n.seq for n in await store.read_notes("team", 1, 2, 100)] == [2]
        assert [n.seq for n in await store.read_notes("team", 0, 3, 2)] == [1, 2]
        await store.close()

    asyncio.run(scenario())


def test_cursors_only_move_forward_and_unread_excludes_own_notes(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = await opened(make_store)
        await store.create_group("team", ["alice", "bob"], HASHES)
        await store.append_notes(
            [new("team", "alice", "a"), new("team", "bob", "b"), new("team", "alice", "c")]
        )
        await store.save_cursors([CursorUpdate("team", "bob", 3, now_us())])
        await store.save_cursors(
            [CursorUpdate("team", "bob", 1, now_us()), CursorUpdate("team", "zed", 9, 0)]
        )
        delivery = await store.delivery("team")
        assert delivery.head_seq == 3
        assert {m.member: (m.last_acked_seq, m.unread_count) for m in delivery.members} == {
            "alice": (0, 1),
            "bob": (3, 0),
        }
        await store.close()

    asyncio.run(scenario())


def test_members_join_at_the_head_and_removal_revokes(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = await opened(make_store)
        await store.create_group("team", ["alice"], HASHES)
        await store.append_notes([new("team", "alice", "before chad")])
        change = await store.add_members("team", ["chad", "alice"], HASHES)
        assert change.group.members == ("alice", "chad")
        membership = await store.membership("team", "chad")
        assert membership is not None and membership.last_acked_seq == membership.head_seq == 1
        removed = await store.remove_members("team", ["chad"])
        assert removed.members == ("alice",)
        assert await store.membership("team", "chad") is None
        assert await store.append_notes([new("team", "chad", "still here?")]) == [Rejected()]
        await store.close()

    asyncio.run(scenario())


def test_a_recreated_group_continues_after_the_old_head(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = await opened(make_store)
        await store.create_group("team", ["alice", "bob"], HASHES)
        await store.append_notes([new("team", "alice", "old"), new("team", "alice", "older")])
        await store.delete_group("team")
        assert await store.get_group("team") is None
        assert await store.list_groups() == []
        with pytest.raises(GroupNotFound):
            await store.delivery("team")
        change = await store.create_group("team", ["bob"], HASHES)
        assert change.group.head_seq == 2
        (result,) = await store.append_notes([new("team", "bob", "new")])
        assert isinstance(result, Appended) and result.note.seq == 3
        assert [n.text for n in await store.read_notes("team", 0, 10, 10)] == ["new"]
        await store.close()

    asyncio.run(scenario())


def test_unknown_groups_are_not_found(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = await opened(make_store)
        for change in (
            store.add_members("ghost", ["alice"], HASHES),
            store.remove_members("ghost", ["alice"]),
            store.delete_group("ghost"),
        ):
            with pytest.raises(GroupNotFound):
                await change
        await store.close()

    asyncio.run(scenario())


def test_data_survives_reopening(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = await opened(make_store)
        await store.create_group("team", ["alice"], HASHES)
        await store.append_notes([new("team", "alice", "kept")])
        await store.close()
        store = await opened(make_store)
        assert [n.text for n in await store.read_notes("team", 0, 10, 10)] == ["kept"]
        await store.close()

    asyncio.run(scenario())
