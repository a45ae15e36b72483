"""Every transaction of the SQL stores, one SQL text each for SQLite and PostgreSQL.

The tables (schema/): members with their token hash; groups with head_seq,
the seq of their newest note, and first_seq, their oldest kept note; a
membership per (group, member) holding the member's cursor; notes keyed by
(group, seq). A deleted group keeps its row, so that a group created again
under its name continues after the old head and no client ever sees a seq go
backwards. Unread is never stored: it is the notes above a cursor that the
member did not send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.core.errors import GroupExists, GroupNotFound
from services.core.model import (
    CursorUpdate,
    Delivery,
    GroupInfo,
    History,
    MemberDelivery,
    Membership,
    NewNote,
    Note,
    now_us,
)
from services.core.store import Appended, AppendResult, GroupChange, Rejected, Trimmed
from services.storage.sql import Query, Row, Txn, chunks, count, many, placeholders, rows

MEMBERS_PER_STATEMENT = 500
TRIM_BATCH_NOTES = 1000
"""Notes one retention transaction deletes at most, so that it never holds the write lock long."""

NOTE_COLUMNS = "seq, sender, text, sent_at_us, client_msg_id"


def _note(group: str, row: Row) -> Note:
    seq, sender, text, sent_at_us, client_msg_id = row
    return Note(group, int(seq), sender, text, int(sent_at_us), client_msg_id)


# -- members and groups -------------------------------------------------------


def token_hash(member: str) -> Txn[bytes | None]:
    found = yield rows("SELECT token_hash FROM members WHERE name = ?", member)
    return bytes(found[0][0]) if found else None


def set_token(member: str, token_hash: bytes) -> Txn[None]:
    yield count(
        "INSERT INTO members (name, token_hash, created_us) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash",
        member,
        token_hash,
        now_us(),
    )


def _create_members(members: Sequence[str], token_hashes: Mapping[str, bytes]) -> Txn[tuple[str, ...]]:
    """Inserts the members that do not exist yet; says which those were."""
    created: set[str] = set()
    now = now_us()
    for chunk in chunks(members, MEMBERS_PER_STATEMENT):
        values = [value for member in chunk for value in (member, token_hashes[member], now)]
        inserted = yield rows(
            f"INSERT INTO members (name, token_hash, created_us) VALUES {placeholders(len(chunk), 3)}"
            " ON CONFLICT (name) DO NOTHING RETURNING name",
            *values,
        )
        created.update(row[0] for row in inserted)
    return tuple(member for member in members if member in created)


def _live_group(group: str) -> Txn[tuple[int, int, int]]:
    """head_seq, first_seq and incarnation of a group that exists."""
    found = yield rows(
        "SELECT head_seq, first_seq, created_us FROM groups WHERE name = ? AND NOT deleted", group
    )
    if not found:
        raise GroupNotFound(group)
    head_seq, first_seq, incarnation = found[0]
    return int(head_seq), int(first_seq), int(incarnation)


def _group_info(group: str) -> Txn[GroupInfo]:
    head_seq, first_seq, _ = yield from _live_group(group)
    found = yield rows("SELECT member FROM memberships WHERE group_name = ? ORDER BY member", group)
    return GroupInfo(group, tuple(row[0] for row in found), head_seq, first_seq)


def _join(group: str, members: Sequence[str], head_seq: int) -> Txn[None]:
    """New members start at the head: what was said before they came is not unread for them."""
    yield many(
        "INSERT INTO memberships (group_name, member, last_acked_seq, lost_to_retention)"
        " VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING",
        [(group, member, head_seq) for member in members],
    )


def create_group(group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]) -> Txn[GroupChange]:
    now = now_us()
    created = yield rows(
        "INSERT INTO groups (name, head_seq, first_seq, deleted, created_us) VALUES (?, 0, 1, false, ?)"
        " ON CONFLICT (name) DO NOTHING RETURNING head_seq",
        group,
        now,
    )
    if not created:  # it existed: created again if it was deleted (also under concurrent writers)
        created = yield rows(
            "UPDATE groups SET deleted = false, created_us = ?, first_seq = head_seq + 1"
            " WHERE name = ? AND deleted RETURNING head_seq",
            now,
            group,
        )
        if not created:
            raise GroupExists(group)
    new_members = yield from _create_members(members, token_hashes)
    yield from _join(group, members, int(created[0][0]))
    return GroupChange((yield from _group_info(group)), new_members)


def add_members(group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]) -> Txn[GroupChange]:
    head_seq, _, _ = yield from _live_group(group)
    new_members = yield from _create_members(members, token_hashes)
    yield from _join(group, members, head_seq)
    return GroupChange((yield from _group_info(group)), new_members)


def remove_members(group: str, members: Sequence[str]) -> Txn[GroupInfo]:
    yield from _live_group(group)
    yield many(
        "DELETE FROM memberships WHERE group_name = ? AND member = ?", [(group, member) for member in members]
    )
    return (yield from _group_info(group))


def delete_group(group: str) -> Txn[None]:
    yield from _live_group(group)
    yield count("DELETE FROM memberships WHERE group_name = ?", group)
    yield count("DELETE FROM notes WHERE group_name = ?", group)
    yield count("UPDATE groups SET deleted = true WHERE name = ?", group)


def get_group(group: str) -> Txn[GroupInfo | None]:
    try:
        return (yield from _group_info(group))
    except GroupNotFound:
        return None


def list_groups() -> Txn[list[GroupInfo]]:
    found = yield rows(
        "SELECT g.name, g.head_seq, g.first_seq, m.member FROM groups g"
        " LEFT JOIN memberships m ON m.group_name = g.name"
        " WHERE NOT g.deleted ORDER BY g.name, m.member"
    )
    groups: dict[str, tuple[int, int, list[str]]] = {}
    for name, head_seq, first_seq, member in found:
        entry = groups.setdefault(name, (int(head_seq), int(first_seq), []))
        if member is not None:
            entry[2].append(member)
    return [GroupInfo(name, tuple(members), head, first) for name, (head, first, members) in groups.items()]


def count_groups() -> Txn[int]:
    found = yield rows("SELECT count(*) FROM groups WHERE NOT deleted")
    return int(found[0][0])


def membership(group: str, member: str) -> Txn[Membership | None]:
    found = yield rows(
        "SELECT m.last_acked_seq, g.head_seq, g.first_seq, u.token_hash, g.created_us FROM memberships m"
        " JOIN groups g ON g.name = m.group_name JOIN members u ON u.name = m.member"
        " WHERE m.group_name = ? AND m.member = ?",
        group,
        member,
    )
    if not found:
        return None
    acked, head, first, token_hash, incarnation = found[0]
    return Membership(group, member, int(acked), int(head), int(first), bytes(token_hash), int(incarnation))


def group_access(group: str) -> Txn[tuple[int, dict[str, bytes]] | None]:
    try:
        _, _, incarnation = yield from _live_group(group)
    except GroupNotFound:
        return None
    found = yield rows(
        "SELECT m.member, u.token_hash FROM memberships m JOIN members u ON u.name = m.member"
        " WHERE m.group_name = ?",
        group,
    )
    return incarnation, {member: bytes(token_hash) for member, token_hash in found}


# -- notes and cursors ----------------------------------------------------------


def append_notes(batch: Sequence[NewNote]) -> Txn[list[AppendResult]]:
    """A commit costs the same few statements however many notes it holds: one reads
    every sender's token (as stored now, so that a token replaced meanwhile stores
    nothing) and group head, one inserts every note, one moves the heads. A retried
    client_msg_id makes the insert store fewer notes than it was given; then the
    insert is undone and the notes are written one at a time, which finds the original."""
    access = yield from _senders(batch)
    refusals = [_refusal(new, access) for new in batch]
    accepted = [new for new, refusal in zip(batch, refusals, strict=True) if refusal is None]
    heads = {new.group: access[new.group, new.sender][1] for new in accepted}
    stored = yield from _insert_all(accepted, heads)
    if stored is None:
        stored = []
        for new in accepted:
            stored.append((yield from _insert_one(new, heads)))
    yield many(
        "UPDATE groups SET head_seq = ? WHERE name = ?", [(head, group) for group, head in heads.items()]
    )
    appended = iter(stored)
    return [next(appended) if refusal is None else refusal for refusal in refusals]


def _senders(batch: Sequence[NewNote]) -> Txn[dict[tuple[str, str], tuple[bytes, int]]]:
    """(group, sender) -> (the sender's token hash, the group's head) for the members of live groups."""
    groups = sorted({new.group for new in batch})
    senders = sorted({new.sender for new in batch})
    found = yield rows(
        "SELECT m.group_name, m.member, u.token_hash, g.head_seq FROM memberships m"
        " JOIN members u ON u.name = m.member JOIN groups g ON g.name = m.group_name"
        f" WHERE m.group_name IN ({placeholders(len(groups))}) AND m.member IN ({placeholders(len(senders))})"
        " AND NOT g.deleted",
        *groups,
        *senders,
    )
    return {(group, member): (bytes(token), int(head)) for group, member, token, head in found}


def _refusal(new: NewNote, access: Mapping[tuple[str, str], tuple[bytes, int]]) -> Rejected | None:
    found = access.get((new.group, new.sender))
    if found is None:
        return Rejected("not a member")
    return None if found[0] == new.token_hash else Rejected("token replaced")


def _insert_all(accepted: Sequence[NewNote], heads: dict[str, int]) -> Txn[list[AppendResult] | None]:
    """Every note in one statement, numbered after heads (then moved on); None, with
    nothing inserted and heads as they were, if any note was already stored."""
    if not accepted:
        return []
    numbered = dict(heads)
    notes: list[Note] = []
    for new in accepted:
        numbered[new.group] += 1
        notes.append(_numbered(new, numbered[new.group]))
    if (yield _insert(notes)) < len(notes):
        yield many("DELETE FROM notes WHERE group_name = ? AND seq > ?", list(heads.items()))
        return None
    heads.update(numbered)
    return [Appended(note, created=True) for note in notes]


def _insert_one(new: NewNote, heads: dict[str, int]) -> Txn[AppendResult]:
    note = _numbered(new, heads[new.group] + 1)
    if not (yield _insert([note])):
        return Appended((yield from _original(new)), created=False)
    heads[new.group] = note.seq
    return Appended(note, created=True)


def _numbered(new: NewNote, seq: int) -> Note:
    return Note(new.group, seq, new.sender, new.text, new.sent_at_us, new.client_msg_id)


def _insert(notes: Sequence[Note]) -> Query:
    """Inserts the notes that are not stored yet; its count is how many those were."""
    values = [v for n in notes for v in (n.group, n.seq, n.sender, n.text, n.sent_at_us, n.client_msg_id)]
    return count(
        "INSERT INTO notes (group_name, seq, sender, text, sent_at_us, client_msg_id)"
        f" VALUES {placeholders(len(notes), 6)} ON CONFLICT DO NOTHING",
        *values,
    )


def _original(new: NewNote) -> Txn[Note]:
    """The note an earlier send with this client_msg_id stored."""
    # The last condition lets both engines use the partial index notes_by_client_msg_id.
    found = yield rows(
        f"SELECT {NOTE_COLUMNS} FROM notes"
        " WHERE group_name = ? AND sender = ? AND client_msg_id = ? AND client_msg_id <> ''",
        new.group,
        new.sender,
        new.client_msg_id,
    )
    return _note(new.group, found[0])


def read_notes(group: str, after_seq: int, until_seq: int, limit: int) -> Txn[list[Note]]:
    found = yield rows(
        f"SELECT {NOTE_COLUMNS} FROM notes"
        " WHERE group_name = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        group,
        after_seq,
        until_seq,
        limit,
    )
    return [_note(group, row) for row in found]


def history(group: str, before_seq: int, limit: int) -> Txn[History]:
    """A backward scan of the (group, seq) primary key: as cheap on a million notes as on ten."""
    head_seq, first_seq, _ = yield from _live_group(group)
    found = yield rows(
        f"SELECT {NOTE_COLUMNS} FROM notes WHERE group_name = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        group,
        min(before_seq, head_seq + 1),
        limit,
    )
    notes = tuple(_note(group, row) for row in reversed(found))
    return History(notes, first_seq, bool(notes) and notes[0].seq > first_seq)


def save_cursors(updates: Sequence[CursorUpdate]) -> Txn[None]:
    yield many(
        "UPDATE memberships SET"
        " last_acked_seq = CASE WHEN ? > last_acked_seq THEN ? ELSE last_acked_seq END,"
        " last_seen_us = CASE WHEN last_seen_us IS NULL OR ? > last_seen_us THEN ? ELSE last_seen_us END"
        " WHERE group_name = ? AND member = ?",
        [
            (u.last_acked_seq, u.last_acked_seq, u.last_seen_us, u.last_seen_us, u.group, u.member)
            for u in updates
        ],
    )


UNREAD = (
    "(SELECT count(*) FROM notes n WHERE n.group_name = m.group_name"
    " AND n.seq > m.last_acked_seq AND n.sender <> m.member)"
)


def delivery(group: str) -> Txn[Delivery]:
    head_seq, _, _ = yield from _live_group(group)
    found = yield rows(
        f"SELECT m.member, m.last_acked_seq, m.last_seen_us, m.lost_to_retention, {UNREAD}"
        " FROM memberships m WHERE m.group_name = ? ORDER BY m.member",
        group,
    )
    members = tuple(
        MemberDelivery(member, int(acked), int(unread), 0, None if seen is None else int(seen), int(lost))
        for member, acked, seen, lost, unread in found
    )
    return Delivery(group, head_seq, members)


def unread_totals(limit: int) -> Txn[dict[str, int]]:
    found = yield rows(
        f"SELECT m.group_name, sum({UNREAD}) AS unread FROM memberships m"
        " GROUP BY m.group_name ORDER BY unread DESC LIMIT ?",
        limit,
    )
    return {group: int(unread) for group, unread in found}


# -- retention ----------------------------------------------------------------


def retention_candidates(keep_notes: int, older_than_us: int) -> Txn[list[str]]:
    found = yield rows(
        "SELECT g.name FROM groups g WHERE NOT g.deleted AND g.head_seq - g.first_seq + 1 > ?"
        " UNION SELECT g.name FROM groups g JOIN notes n ON n.group_name = g.name AND n.seq = g.first_seq"
        " WHERE NOT g.deleted AND n.sent_at_us < ?",
        keep_notes,
        older_than_us,
    )
    return sorted(row[0] for row in found)


def trim(group: str, keep_notes: int | None, older_than_us: int | None, hard: bool) -> Txn[Trimmed]:
    """Deletes a batch of the group's oldest notes past a limit: the newest keep_notes
    are kept, and of the rest those sent before older_than_us (either limit is enough).

    Deletion only ever takes a prefix, so that the notes a group keeps are always
    first_seq..head_seq without holes, and a member whose cursor lies below
    first_seq - 1 lost exactly the notes in between."""
    try:
        head_seq, first_seq, _ = yield from _live_group(group)
    except GroupNotFound:
        return Trimmed(group, 0, 0, 0)
    window_end = min(head_seq, first_seq + TRIM_BATCH_NOTES - 1)
    end = yield from _past_limits(group, first_seq, window_end, head_seq, keep_notes, older_than_us)
    if not hard:
        end = min(end, (yield from _read_by_all(group, first_seq, end)))
    if end < first_seq:
        return Trimmed(group, 0, first_seq, 0)
    behind = yield rows(
        "SELECT m.member, (SELECT count(*) FROM notes n WHERE n.group_name = m.group_name"
        "  AND n.seq > m.last_acked_seq AND n.seq <= ? AND n.sender <> m.member)"
        " FROM memberships m WHERE m.group_name = ? AND m.last_acked_seq < ?",
        end,
        group,
        end,
    )
    deleted = yield count(
        "DELETE FROM notes WHERE group_name = ? AND seq >= ? AND seq <= ?", group, first_seq, end
    )
    yield count("UPDATE groups SET first_seq = ? WHERE name = ?", end + 1, group)
    # Members whose deleted unread notes were all their own lose nothing: move them past.
    yield many(
        "UPDATE memberships SET last_acked_seq = ? WHERE group_name = ? AND member = ?",
        [(end, group, member) for member, lost in behind if not lost],
    )
    yield many(
        "UPDATE memberships SET lost_to_retention = lost_to_retention + ?"
        " WHERE group_name = ? AND member = ?",
        [(int(lost), group, member) for member, lost in behind if lost],
    )
    return Trimmed(group, int(deleted), end + 1, sum(int(lost) for _, lost in behind))


def _past_limits(
    group: str,
    first_seq: int,
    window_end: int,
    head_seq: int,
    keep_notes: int | None,
    older_than_us: int | None,
) -> Txn[int]:
    """The last seq of the window's longest prefix that is past a limit."""
    end = first_seq - 1
    if keep_notes is not None:
        end = max(end, min(window_end, head_seq - keep_notes))
    if older_than_us is not None:
        found = yield rows(
            "SELECT min(seq) FROM notes WHERE group_name = ? AND seq >= ? AND seq <= ? AND sent_at_us >= ?",
            group,
            first_seq,
            window_end,
            older_than_us,
        )
        young = found[0][0]
        end = max(end, window_end if young is None else int(young) - 1)
    return end


def _read_by_all(group: str, first_seq: int, end: int) -> Txn[int]:
    """The last seq of first_seq..end that no member has unread (JetStream's interest policy).

    Notes up to the slowest cursor are read by all. Past it, only the slowest
    member (if it alone is that slow) has them unread, and only its own notes
    are not unread to it: the prefix goes on while they are its own, up to the
    second-slowest cursor."""
    slowest = yield rows(
        "SELECT member, last_acked_seq FROM memberships WHERE group_name = ? ORDER BY last_acked_seq LIMIT 2",
        group,
    )
    if not slowest:
        return end
    member, cursor = slowest[0][0], int(slowest[0][1])
    if cursor >= end:
        return end
    upto = min(end, int(slowest[1][1])) if len(slowest) > 1 else end
    found = yield rows(
        "SELECT min(seq) FROM notes WHERE group_name = ? AND seq > ? AND seq <= ? AND sender <> ?",
        group,
        max(cursor, first_seq - 1),
        upto,
        member,
    )
    unread = found[0][0]
    return upto if unread is None else int(unread) - 1
