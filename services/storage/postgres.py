"""The scale-out store: PostgreSQL shared by several server replicas.

Seqs stay gapless under concurrent writers because a writer increments its
group's head_seq inside its transaction: writers of one group queue on that
row and commit in seq order, and a rolled-back write gives its seq back. A
batch of sends is one call of the chatroom_append function (one round trip).

Replicas hear of each other's changes through LISTEN/NOTIFY, sent inside the
transaction that made the change, so a notification means "committed". The
listening connection is watched; when it drops, the listener reconnects and
reports Resync so that the core catches up from the tables, which remain the
only source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from services.core.errors import ChatroomError, GroupExists, GroupNotFound, Unavailable
from services.core.model import (
    CursorUpdate,
    Delivery,
    GroupInfo,
    MemberDelivery,
    Membership,
    NewNote,
    Note,
    now_us,
)
from services.metrics import STORAGE_ERRORS
from services.storage.base import (
    Appended,
    AppendResult,
    GroupChange,
    GroupDeleted,
    MembersRemoved,
    NotesCommitted,
    Rejected,
    Resync,
    StoreEvent,
    TokenReplaced,
)
from services.storage.migrations import migrations

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Any  # asyncpg ships no type information

NOTES_CHANNEL = "chatroom_notes"
EVENTS_CHANNEL = "chatroom_events"
MIGRATION_LOCK = 0x63686174  # any constant shared by every replica
LISTENER_NAME = "chatroom-listener"
LISTEN_PING_INTERVAL_S = 5.0
LISTEN_RETRY_S = 1.0
REPLICA_EXPIRY_S = 10.0
"""A replica whose heartbeat is older than this no longer counts as online."""

_CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


class PostgresStore:
    def __init__(self, dsn: str, *, pool_size: int = 10) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self.replica_id = uuid.uuid4().hex[:12]
        self.replication = self

    def __repr__(self) -> str:
        host = self._dsn.split("@")[-1]  # never show the password
        return f"postgresql://…@{host} (replica {self.replica_id})"

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._pool_size, command_timeout=30
            )
        except _CONNECTION_ERRORS as error:
            raise Unavailable(f"cannot connect to PostgreSQL at {self!r}: {error}") from error
        await self._transaction(_migrate_txn)

    async def close(self) -> None:
        if self._pool is None:
            return
        with contextlib.suppress(Unavailable):  # else the others expire this replica on their own
            await self._transaction(_leave_txn, self.replica_id)
        await self._pool.close()
        self._pool = None

    async def _transaction(self, txn: Callable[..., Awaitable[T]], *args: object) -> T:
        if self._pool is None:
            raise Unavailable("storage is closed")
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                return await txn(connection, *args)
        except ChatroomError:
            raise
        except _CONNECTION_ERRORS as error:
            STORAGE_ERRORS.inc()
            raise Unavailable(f"storage failed: {error}; nothing was written, retry") from error

    # -- members and groups -------------------------------------------------

    async def token_hash(self, member: str) -> bytes | None:
        return await self._transaction(_token_hash_txn, member)

    async def set_token(self, member: str, token_hash: bytes) -> None:
        await self._transaction(_set_token_txn, self.replica_id, member, token_hash)

    async def create_group(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange:
        return await self._transaction(_create_group_txn, group, members, token_hashes)

    async def add_members(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange:
        return await self._transaction(_add_members_txn, group, members, token_hashes)

    async def remove_members(self, group: str, members: Sequence[str]) -> GroupInfo:
        return await self._transaction(_remove_members_txn, self.replica_id, group, members)

    async def delete_group(self, group: str) -> None:
        await self._transaction(_delete_group_txn, self.replica_id, group)

    async def get_group(self, group: str) -> GroupInfo | None:
        return await self._transaction(_group_txn, group)

    async def list_groups(self) -> list[GroupInfo]:
        return await self._transaction(_list_groups_txn)

    async def count_groups(self) -> int:
        return await self._transaction(_count_groups_txn)

    async def membership(self, group: str, member: str) -> Membership | None:
        return await self._transaction(_membership_txn, group, member)

    # -- notes and cursors --------------------------------------------------

    async def append_notes(self, batch: Sequence[NewNote]) -> list[AppendResult]:
        return await self._transaction(_append_notes_txn, self.replica_id, batch)

    async def read_notes(self, group: str, after_seq: int, until_seq: int, limit: int) -> list[Note]:
        return await self._transaction(_read_notes_txn, group, after_seq, until_seq, limit)

    async def save_cursors(self, updates: Sequence[CursorUpdate]) -> None:
        await self._transaction(_save_cursors_txn, updates)

    async def delivery(self, group: str) -> Delivery:
        return await self._transaction(_delivery_txn, group)

    async def unread_totals(self, limit: int) -> dict[str, int]:
        return await self._transaction(_unread_totals_txn, limit)

    # -- replication ----------------------------------------------------------

    async def group_heads(self, groups: Sequence[str]) -> dict[str, int]:
        return await self._transaction(_group_heads_txn, list(groups))

    async def report_presence(self, sessions: Mapping[tuple[str, str], int]) -> None:
        await self._transaction(_report_presence_txn, self.replica_id, sessions)

    async def online_sessions(self, group: str) -> dict[str, int]:
        return await self._transaction(_online_sessions_txn, self.replica_id, group)

    async def listen(self, handler: Callable[[StoreEvent], None]) -> None:
        first = True
        while True:
            try:
                connection = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": LISTENER_NAME}
                )
            except _CONNECTION_ERRORS as error:
                log.warning("cannot listen for other replicas, retrying: %s", error)
                await asyncio.sleep(LISTEN_RETRY_S)
                continue
            try:
                await self._listen_on(connection, handler, resync=not first)
            except _CONNECTION_ERRORS as error:
                log.warning("lost the connection that listens for other replicas: %s", error)
            finally:
                first = False
                await _close_quietly(connection)

    async def _listen_on(
        self, connection: Connection, handler: Callable[[StoreEvent], None], resync: bool
    ) -> None:
        def on_notification(_: object, _pid: int, channel: str, payload: str) -> None:
            event = self._decode(channel, payload)
            if event is not None:
                handler(event)

        closed = asyncio.Event()
        connection.add_termination_listener(lambda _: closed.set())
        await connection.add_listener(NOTES_CHANNEL, on_notification)
        await connection.add_listener(EVENTS_CHANNEL, on_notification)
        if resync:
            handler(Resync())
        while True:  # a connection that dies quietly is found by its next ping
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), LISTEN_PING_INTERVAL_S)
            if closed.is_set():
                raise ConnectionError("the listening connection was closed")
            await connection.fetchval("SELECT 1", timeout=LISTEN_PING_INTERVAL_S)

    def _decode(self, channel: str, payload: str) -> StoreEvent | None:
        if channel == NOTES_CHANNEL:
            replica, group, head = payload.split(" ")
            return None if replica == self.replica_id else NotesCommitted(group, int(head))
        event = json.loads(payload)
        if event["replica"] == self.replica_id:
            return None
        match event["kind"]:
            case "token":
                return TokenReplaced(event["member"])
            case "removed":
                return MembersRemoved(event["group"], tuple(event["members"]))
            case "deleted":
                return GroupDeleted(event["group"])
        return None


async def _close_quietly(connection: Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), LISTEN_RETRY_S)
    except (*_CONNECTION_ERRORS, asyncio.CancelledError):
        connection.terminate()


async def _migrate_txn(db: Connection) -> None:
    await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    version = await db.fetchval("SELECT max(version) FROM schema_version") or 0
    for migration in migrations("postgres"):
        if migration.version > version:
            await db.execute(migration.sql)
            await db.execute("INSERT INTO schema_version (version) VALUES ($1)", migration.version)


async def _leave_txn(db: Connection, replica_id: str) -> None:
    await db.execute("DELETE FROM replicas WHERE id = $1", replica_id)


async def _token_hash_txn(db: Connection, member: str) -> bytes | None:
    value = await db.fetchval("SELECT token_hash FROM members WHERE name = $1", member)
    return None if value is None else bytes(value)


async def _set_token_txn(db: Connection, replica_id: str, member: str, token_hash: bytes) -> None:
    await db.execute(
        "INSERT INTO members (name, token_hash, created_us) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash",
        member,
        token_hash,
        now_us(),
    )
    await _notify(db, replica_id, "token", member=member)


async def _notify(db: Connection, replica_id: str, kind: str, **fields: object) -> None:
    """Tells the other replicas, when this transaction commits."""
    payload = json.dumps({"replica": replica_id, "kind": kind, **fields})
    await db.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, payload)


async def _create_members(
    db: Connection, members: Sequence[str], token_hashes: Mapping[str, bytes]
) -> tuple[str, ...]:
    rows = await db.fetch(
        "INSERT INTO members (name, token_hash, created_us)"
        " SELECT name, token_hash, $3 FROM unnest($1::text[], $2::bytea[]) AS t (name, token_hash)"
        " ON CONFLICT (name) DO NOTHING RETURNING name",
        list(members),
        [token_hashes[member] for member in members],
        now_us(),
    )
    created = {row["name"] for row in rows}
    return tuple(member for member in members if member in created)


async def _live_head(db: Connection, group: str) -> int:
    head = await db.fetchval("SELECT head_seq FROM groups WHERE name = $1 AND NOT deleted", group)
    if head is None:
        raise GroupNotFound(group)
    return int(head)


async def _group_info(db: Connection, group: str, head_seq: int) -> GroupInfo:
    rows = await db.fetch("SELECT member FROM memberships WHERE group_name = $1 ORDER BY member", group)
    return GroupInfo(group, tuple(row["member"] for row in rows), head_seq)


async def _join(db: Connection, group: str, members: Sequence[str], head_seq: int) -> None:
    await db.execute(
        "INSERT INTO memberships (group_name, member, last_acked_seq)"
        " SELECT $1, member, $3 FROM unnest($2::text[]) AS t (member)"
        " ON CONFLICT DO NOTHING",
        group,
        list(members),
        head_seq,
    )


async def _create_group_txn(
    db: Connection, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
) -> GroupChange:
    row = await db.fetchrow("SELECT head_seq, deleted FROM groups WHERE name = $1 FOR UPDATE", group)
    if row is not None and not row["deleted"]:
        raise GroupExists(group)
    if row is None:
        head_seq = 0
        inserted = await db.fetchval(
            "INSERT INTO groups (name, head_seq, deleted, created_us) VALUES ($1, 0, false, $2)"
            " ON CONFLICT DO NOTHING RETURNING name",
            group,
            now_us(),
        )
        if inserted is None:  # created by another replica at the same moment
            raise GroupExists(group)
    else:
        head_seq = int(row["head_seq"])
        await db.execute(
            "UPDATE groups SET deleted = false, created_us = $2 WHERE name = $1", group, now_us()
        )
    created = await _create_members(db, members, token_hashes)
    await _join(db, group, members, head_seq)
    return GroupChange(await _group_info(db, group, head_seq), created)


async def _add_members_txn(
    db: Connection, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
) -> GroupChange:
    head_seq = await _live_head(db, group)
    created = await _create_members(db, members, token_hashes)
    await _join(db, group, members, head_seq)
    return GroupChange(await _group_info(db, group, head_seq), created)


async def _remove_members_txn(
    db: Connection, replica_id: str, group: str, members: Sequence[str]
) -> GroupInfo:
    head_seq = await _live_head(db, group)
    await db.execute(
        "DELETE FROM memberships WHERE group_name = $1 AND member = ANY($2::text[])", group, list(members)
    )
    await _notify(db, replica_id, "removed", group=group, members=list(members))
    return await _group_info(db, group, head_seq)


async def _delete_group_txn(db: Connection, replica_id: str, group: str) -> None:
    await _live_head(db, group)
    await db.execute("DELETE FROM memberships WHERE group_name = $1", group)
    await db.execute("DELETE FROM notes WHERE group_name = $1", group)
    await db.execute("UPDATE groups SET deleted = true WHERE name = $1", group)
    await _notify(db, replica_id, "deleted", group=group)


async def _group_txn(db: Connection, group: str) -> GroupInfo | None:
    try:
        return await _group_info(db, group, await _live_head(db, group))
    except GroupNotFound:
        return None


async def _list_groups_txn(db: Connection) -> list[GroupInfo]:
    rows = await db.fetch("SELECT name, head_seq FROM groups WHERE NOT deleted ORDER BY name")
    return [await _group_info(db, row["name"], int(row["head_seq"])) for row in rows]


async def _count_groups_txn(db: Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM groups WHERE NOT deleted"))


async def _membership_txn(db: Connection, group: str, member: str) -> Membership | None:
    row = await db.fetchrow(
        "SELECT m.last_acked_seq, g.head_seq FROM memberships m"
        " JOIN groups g ON g.name = m.group_name"
        " WHERE m.group_name = $1 AND m.member = $2",
        group,
        member,
    )
    return None if row is None else Membership(group, member, int(row[0]), int(row[1]))


async def _append_notes_txn(db: Connection, replica_id: str, batch: Sequence[NewNote]) -> list[AppendResult]:
    rows = await db.fetch(
        "SELECT seq, text, sent_at_us, outcome FROM chatroom_append($1, $2, $3, $4, $5, $6)",
        replica_id,
        [new.group for new in batch],
        [new.sender for new in batch],
        [new.text for new in batch],
        [new.sent_at_us for new in batch],
        [new.client_msg_id for new in batch],
    )
    results: list[AppendResult] = []
    for new, row in zip(batch, rows, strict=True):
        if row["outcome"] == "rejected":
            results.append(Rejected())
            continue
        note = Note(
            new.group, int(row["seq"]), new.sender, row["text"], int(row["sent_at_us"]), new.client_msg_id
        )
        results.append(Appended(note, created=row["outcome"] == "created"))
    return results


async def _read_notes_txn(
    db: Connection, group: str, after_seq: int, until_seq: int, limit: int
) -> list[Note]:
    rows = await db.fetch(
        "SELECT seq, sender, text, sent_at_us, client_msg_id FROM notes"
        " WHERE group_name = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        group,
        after_seq,
        until_seq,
        limit,
    )
    return [Note(group, int(r[0]), r[1], r[2], int(r[3]), r[4]) for r in rows]


async def _save_cursors_txn(db: Connection, updates: Sequence[CursorUpdate]) -> None:
    await db.executemany(
        "UPDATE memberships SET last_acked_seq = greatest(last_acked_seq, $1),"
        " last_seen_us = greatest(last_seen_us, $2)"
        " WHERE group_name = $3 AND member = $4",
        [(u.last_acked_seq, u.last_seen_us, u.group, u.member) for u in updates],
    )


async def _delivery_txn(db: Connection, group: str) -> Delivery:
    head_seq = await _live_head(db, group)
    rows = await db.fetch(
        "SELECT m.member, m.last_acked_seq, m.last_seen_us,"
        " (SELECT count(*) FROM notes n WHERE n.group_name = m.group_name"
        "  AND n.seq > m.last_acked_seq AND n.sender <> m.member) AS unread"
        " FROM memberships m WHERE m.group_name = $1 ORDER BY m.member",
        group,
    )
    members = tuple(
        MemberDelivery(r["member"], int(r["last_acked_seq"]), int(r["unread"]), 0, r["last_seen_us"])
        for r in rows
    )
    return Delivery(group, head_seq, members)


async def _unread_totals_txn(db: Connection, limit: int) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT m.group_name, sum((SELECT count(*) FROM notes n WHERE n.group_name = m.group_name"
        "  AND n.seq > m.last_acked_seq AND n.sender <> m.member)) AS unread"
        " FROM memberships m GROUP BY m.group_name ORDER BY unread DESC LIMIT $1",
        limit,
    )
    return {row["group_name"]: int(row["unread"]) for row in rows}


async def _group_heads_txn(db: Connection, groups: list[str]) -> dict[str, int]:
    rows = await db.fetch("SELECT name, head_seq FROM groups WHERE name = ANY($1::text[])", groups)
    return {row["name"]: int(row["head_seq"]) for row in rows}


async def _report_presence_txn(
    db: Connection, replica_id: str, sessions: Mapping[tuple[str, str], int]
) -> None:
    now = now_us()
    await db.execute(
        "INSERT INTO replicas (id, heartbeat_us) VALUES ($1, $2)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_us = excluded.heartbeat_us",
        replica_id,
        now,
    )
    await db.execute("DELETE FROM presence WHERE replica_id = $1", replica_id)
    await db.executemany(
        "INSERT INTO presence (replica_id, group_name, member, sessions) VALUES ($1, $2, $3, $4)",
        [(replica_id, group, member, count) for (group, member), count in sessions.items()],
    )
    await db.execute("DELETE FROM replicas WHERE heartbeat_us < $1", now - int(REPLICA_EXPIRY_S * 4e6))


async def _online_sessions_txn(db: Connection, replica_id: str, group: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT p.member, sum(p.sessions) AS sessions FROM presence p"
        " JOIN replicas r ON r.id = p.replica_id"
        " WHERE p.group_name = $1 AND p.replica_id <> $2 AND r.heartbeat_us > $3"
        " GROUP BY p.member",
        group,
        replica_id,
        now_us() - int(REPLICA_EXPIRY_S * 1e6),
    )
    return {row["member"]: int(row["sessions"]) for row in rows}
