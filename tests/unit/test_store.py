"""The Store contract, one transaction per method: the same suite on every engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from services.core.errors import GroupExists, GroupNotFound
from services.core.model import CursorUpdate, NewNote, now_us
from services.core.note_writer import MAX_NOTES_PER_COMMIT
from services.core.store import Appended, Rejected, Store
from services.storage.transactions import TRIM_BATCH_NOTES
from tests.unit.conftest import StoreFactory

HASHES = {name: name.encode() * 4 for name in ("alice", "bob", "chad", "doug")}


def new(
    group: str, sender: str, text: str, client_msg_id: str = "", sent_at_us: int | None = None
) -> NewNote:
    return NewNote(group, sender, text, sent_at_us or now_us(), client_msg_id, HASHES[sender])


def run(make_store: StoreFactory, scenario: Callable[[Store], Awaitable[None]]) -> None:
    async def opened() -> None:
        store = make_store()
        await store.open()
        try:
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(opened())


async def cursors(store: Store, group: str) -> dict[str, tuple[int, int, int]]:
    """(cursor, unread, lost to retention) by member."""
    delivery = await store.delivery(group)
    return {m.member: (m.last_acked_seq, m.unread_count, m.lost_to_retention) for m in delivery.members}


def test_a_group_starts_empty_and_only_new_members_get_tokens(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.set_token("alice", b"alice's own")
        change = await store.create_group("team", ["alice", "bob"], HASHES)
        assert (change.group.members, change.group.head_seq, change.group.first_seq, change.new_members) == (
            ("alice", "bob"),
            0,
            1,
            ("bob",),
        )
        assert await store.token_hash("alice") == b"alice's own"
        with pytest.raises(GroupExists):
            await store.create_group("team", ["chad"], HASHES)

    run(make_store, scenario)


def test_appends_are_gapless_idempotent_and_members_only(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
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
            Rejected("not a member"),
            (3, "three", True),
        ]
        notes = await store.read_notes("team", 0, 100, 100)
        assert [(n.seq, n.sender) for n in notes] == [(1, "alice"), (2, "bob"), (3, "bob")]
        assert [n.seq for n in await store.read_notes("team", 1, 2, 100)] == [2]
        assert [n.seq for n in await store.read_notes("team", 0, 3, 2)] == [1, 2]

    run(make_store, scenario)


def test_one_commit_over_several_groups_stores_each_gaplessly_beside_a_retry_and_a_refusal(
    make_store: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice", "bob"], HASHES)
        await store.create_group("ops", ["alice", "chad"], HASHES)
        await store.create_group("gone", ["alice"], HASHES)
        await store.append_notes([new("team", "alice", "one", "a-1")])
        await store.delete_group("gone")
        results = await store.append_notes(
            [
                new("ops", "chad", "c1", "c-1"),
                new("team", "bob", "b1", "b-1"),
                new("team", "alice", "retry of one", "a-1"),
                new("gone", "alice", "into a deleted group"),
                new("ops", "alice", "a2", "a-2"),
                new("team", "bob", "b2", "b-2"),
            ]
        )
        assert [
            (r.note.group, r.note.seq, r.note.text, r.created) if isinstance(r, Appended) else r
            for r in results
        ] == [
            ("ops", 1, "c1", True),
            ("team", 2, "b1", True),
            ("team", 1, "one", False),
            Rejected("not a member"),
            ("ops", 2, "a2", True),
            ("team", 3, "b2", True),
        ]
        assert [(n.seq, n.text) for n in await store.read_notes("team", 0, 100, 100)] == [
            (1, "one"),
            (2, "b1"),
            (3, "b2"),
        ]
        heads = {info.group: info.head_seq for info in await store.list_groups()}
        assert (heads["team"], heads["ops"]) == (3, 2)

    run(make_store, scenario)


def test_a_send_with_a_replaced_token_stores_nothing(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice", "bob"], HASHES)
        await store.set_token("alice", b"alice's new token")
        assert await store.append_notes([new("team", "alice", "with the old token")]) == [
            Rejected("token replaced")
        ]
        results = await store.append_notes(
            [new("team", "bob", "bob's is fine"), new("team", "alice", "again"), new("team", "bob", "and on")]
        )
        assert [(r.note.seq, r.note.text) if isinstance(r, Appended) else r for r in results] == [
            (1, "bob's is fine"),
            Rejected("token replaced"),
            (2, "and on"),
        ]

    run(make_store, scenario)


def test_the_largest_commit_the_writer_makes_fits_in_one_statement(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice", "bob"], HASHES)
        batch = [new("team", "alice", f"n{i}", f"a-{i}") for i in range(MAX_NOTES_PER_COMMIT)]
        results = await store.append_notes(batch)
        assert all(isinstance(r, Appended) and r.created for r in results)
        assert (await cursors(store, "team"))["bob"] == (0, MAX_NOTES_PER_COMMIT, 0)

    run(make_store, scenario)


def test_cursors_only_move_forward_and_unread_excludes_own_notes(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
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
        assert await cursors(store, "team") == {"alice": (0, 1, 0), "bob": (3, 0, 0)}

    run(make_store, scenario)


def test_members_join_at_the_head_and_removal_revokes(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice"], HASHES)
        await store.append_notes([new("team", "alice", "before chad")])
        change = await store.add_members("team", ["chad", "alice"], HASHES)
        assert change.group.members == ("alice", "chad")
        membership = await store.membership("team", "chad")
        assert membership is not None and membership.last_acked_seq == membership.head_seq == 1
        assert membership.token_hash == HASHES["chad"]
        access = await store.group_access("team")
        assert access is not None and access[1] == {"alice": HASHES["alice"], "chad": HASHES["chad"]}
        removed = await store.remove_members("team", ["chad"])
        assert removed.members == ("alice",)
        assert await store.membership("team", "chad") is None
        assert await store.append_notes([new("team", "chad", "still here?")]) == [Rejected("not a member")]

    run(make_store, scenario)


def test_a_recreated_group_continues_after_the_old_head_as_another_incarnation(
    make_store: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice", "bob"], HASHES)
        await store.append_notes([new("team", "alice", "old"), new("team", "alice", "older")])
        before = await store.group_access("team")
        await store.delete_group("team")
        assert await store.get_group("team") is None
        assert await store.group_access("team") is None
        assert await store.list_groups() == []
        with pytest.raises(GroupNotFound):
            await store.delivery("team")
        change = await store.create_group("team", ["bob"], HASHES)
        assert (change.group.head_seq, change.group.first_seq) == (2, 3)
        (result,) = await store.append_notes([new("team", "bob", "new")])
        assert isinstance(result, Appended) and result.note.seq == 3
        assert [n.text for n in await store.read_notes("team", 0, 10, 10)] == ["new"]
        after = await store.group_access("team")
        assert before is not None and after is not None and after[0] != before[0]

    run(make_store, scenario)


def test_unknown_groups_are_not_found(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        for change in (
            store.add_members("ghost", ["alice"], HASHES),
            store.remove_members("ghost", ["alice"]),
            store.delete_group("ghost"),
            store.history("ghost", 10, 10),
        ):
            with pytest.raises(GroupNotFound):
                await change

    run(make_store, scenario)


def test_data_survives_reopening(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice"], HASHES)
        await store.append_notes([new("team", "alice", "kept")])

    run(make_store, scenario)

    async def reopened(store: Store) -> None:
        assert [n.text for n in await store.read_notes("team", 0, 10, 10)] == ["kept"]

    run(make_store, reopened)


def test_paging_back_through_ten_thousand_notes_finds_each_once(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice", "bob"], HASHES)
        for start in range(0, 10_000, 500):
            await store.append_notes([new("team", "alice", f"n{i}") for i in range(start, start + 500)])
        seen: list[int] = []
        before = 10_001
        while True:
            page = await store.history("team", before, 500)
            seen = [note.seq for note in page.notes] + seen
            assert page.first_seq == 1
            assert [n.seq for n in page.notes] == sorted(n.seq for n in page.notes)
            if not page.has_more:
                break
            before = page.notes[0].seq
        assert seen == list(range(1, 10_001))
        newest = await store.history("team", 1 << 62, 3)
        assert ([n.seq for n in newest.notes], newest.has_more) == ([9998, 9999, 10_000], True)

    run(make_store, scenario)


def test_soft_retention_waits_for_the_slowest_reader_but_not_for_a_senders_own_notes(
    make_store: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice", "bob", "chad"], HASHES)
        await store.append_notes([new("team", "alice", f"a{i}") for i in range(6)])  # 1..6 by alice
        await store.save_cursors(
            [CursorUpdate("team", "bob", 6, now_us()), CursorUpdate("team", "chad", 2, now_us())]
        )
        # Keep 1 note: 1..5 are past the limit. Alice never read but sent them all; chad read to 2.
        trimmed = await store.trim("team", 1, None, hard=False)
        assert trimmed is not None and (trimmed.deleted, trimmed.first_seq, trimmed.lost) == (2, 3, 0)
        assert await cursors(store, "team") == {"alice": (2, 0, 0), "bob": (6, 0, 0), "chad": (2, 4, 0)}
        assert (await store.trim("team", 1, None, hard=False)).deleted == 0  # type: ignore[union-attr]
        await store.save_cursors([CursorUpdate("team", "chad", 6, now_us())])
        trimmed = await store.trim("team", 1, None, hard=False)
        assert trimmed is not None and (trimmed.deleted, trimmed.first_seq) == (3, 6)
        group = await store.get_group("team")
        assert group is not None and (group.first_seq, group.head_seq) == (6, 6)
        (result,) = await store.append_notes([new("team", "bob", "after the deletions")])
        assert isinstance(result, Appended) and result.note.seq == 7

    run(make_store, scenario)


def test_soft_retention_by_age_deletes_only_old_notes(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice"], HASHES)
        old, young = now_us() - 10_000_000, now_us()
        await store.append_notes(
            [new("team", "alice", "old", sent_at_us=old), new("team", "alice", "young", sent_at_us=young)]
        )
        assert await store.retention_candidates(1 << 62, old + 1) == ["team"]
        trimmed = await store.trim("team", None, old + 1, hard=False)
        assert trimmed is not None and (trimmed.deleted, trimmed.first_seq) == (1, 2)
        assert await store.retention_candidates(1 << 62, old + 1) == []

    run(make_store, scenario)


def test_hard_retention_deletes_unread_notes_and_counts_them_lost(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice", "bob", "chad"], HASHES)
        await store.append_notes([new("team", "alice" if i % 2 else "bob", f"n{i}") for i in range(10)])
        await store.save_cursors([CursorUpdate("team", "chad", 10, now_us())])
        assert await store.retention_candidates(4, 0) == ["team"]
        trimmed = await store.trim("team", 4, None, hard=True)
        # 1..6 go: bob sent 1, 3, 5 and lost alice's 2, 4, 6; alice lost bob's 1, 3, 5.
        assert trimmed is not None and (trimmed.deleted, trimmed.first_seq, trimmed.lost) == (6, 7, 6)
        assert await cursors(store, "team") == {"alice": (0, 2, 3), "bob": (0, 2, 3), "chad": (10, 0, 0)}
        assert [n.seq for n in await store.read_notes("team", 0, 10, 10)] == [7, 8, 9, 10]

    run(make_store, scenario)


def test_retention_deletes_in_bounded_batches(make_store: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.create_group("team", ["alice"], HASHES)
        total = TRIM_BATCH_NOTES * 2 + 10
        for start in range(0, total, 500):
            await store.append_notes(
                [new("team", "alice", "x") for _ in range(start, min(total, start + 500))]
            )
        batches = []
        while (trimmed := await store.trim("team", 5, None, hard=True)) is not None and trimmed.deleted:
            batches.append(trimmed.deleted)
        assert batches == [TRIM_BATCH_NOTES, TRIM_BATCH_NOTES, 5]

    run(make_store, scenario)
