"""The embedded store: one SQLite file in WAL mode.

All SQL runs in worker threads, never on the event loop. Writes go through one
thread and one connection, because SQLite admits one writer at a time anyway
and a single writer never waits on a lock; reads use their own connections,
which WAL lets run beside the writer on a consistent snapshot. Each `_txn`
function below is one transaction.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from services.core.errors import GroupExists, GroupNotFound, Unavailable
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
from services.storage.base import Appended, AppendResult, GroupChange, Rejected, Replication
from services.storage.migrations import migrations

T = TypeVar("T")

Synchronous = Literal["NORMAL", "FULL"]
READER_THREADS = 2


class SqliteStore:
    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = path
        self.replication: Replication | None = None  # one process owns the file
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="sqlite-read")

    def __repr__(self) -> str:
        return f"sqlite:{self.path}"

    async def open(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._migrate)
        except (OSError, sqlite3.Error) as error:
            raise Unavailable(f"cannot open the database {self.path}: {error}") from error

    async def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    # -- running transactions ---------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA busy_timeout = 10000")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def _run(self, begin: str, txn: Callable[..., T], args: tuple[object, ...]) -> T:
        connection = self._connection()
        try:
            connection.execute(begin)
            result = txn(connection, *args)
            connection.execute("COMMIT")
            return result
        except sqlite3.Error as error:
            self._rollback(connection)
            STORAGE_ERRORS.inc()
            raise Unavailable(f"storage failed: {error}; nothing was written, retry") from error
        except BaseException:
            self._rollback(connection)
            raise

    @staticmethod
    def _rollback(connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            connection.execute("ROLLBACK")

    async def _write(self, txn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._run, "BEGIN IMMEDIATE", txn, args)

    async def _read(self, txn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run, "BEGIN", txn, args)

    def _migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Notes are private: the file (and its -wal and -shm, which SQLite creates
        # with the same mode) is the owner's alone, like the token files.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = self._connection()
        for migration in migrations("sqlite"):
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version >= migration.version:
                continue
            try:
                connection.executescript(
                    f"BEGIN IMMEDIATE;\n{migration.sql}\nPRAGMA user_version = {migration.version};\nCOMMIT;"
                )
            except sqlite3.Error:
                self._rollback(connection)
                # Another process may have applied it meanwhile; if not, fail.
                (version,) = connection.execute("PRAGMA user_version").fetchone()
                if version < migration.version:
                    raise

    # -- members and groups -------------------------------------------------

    async def token_hash(self, member: str) -> bytes | None:
        return await self._read(_token_hash_txn, member)

    async def set_token(self, member: str, token_hash: bytes) -> None:
        await self._write(_set_token_txn, member, token_hash)

    async def create_group(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange:
        return await self._write(_create_group_txn, group, members, token_hashes)

    async def add_members(
        self, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
    ) -> GroupChange:
        return await self._write(_add_members_txn, group, members, token_hashes)

    async def remove_members(self, group: str, members: Sequence[str]) -> GroupInfo:
        return await self._write(_remove_members_txn, group, members)

    async def delete_group(self, group: str) -> None:
        await self._write(_delete_group_txn, group)

    async def get_group(self, group: str) -> GroupInfo | None:
        return await self._read(_group_txn, group)

    async def list_groups(self) -> list[GroupInfo]:
        return await self._read(_list_groups_txn)

    async def count_groups(self) -> int:
        return await self._read(_count_groups_txn)

    async def membership(self, group: str, member: str) -> Membership | None:
        return await self._read(_membership_txn, group, member)

    # -- notes and cursors --------------------------------------------------

    async def append_notes(self, batch: Sequence[NewNote]) -> list[AppendResult]:
        return await self._write(_append_notes_txn, batch)

    async def read_notes(self, group: str, after_seq: int, until_seq: int, limit: int) -> list[Note]:
        return await self._read(_read_notes_txn, group, after_seq, until_seq, limit)

    async def save_cursors(self, updates: Sequence[CursorUpdate]) -> None:
        await self._write(_save_cursors_txn, updates)

    async def delivery(self, group: str) -> Delivery:
        return await self._read(_delivery_txn, group)

    async def unread_totals(self, limit: int) -> dict[str, int]:
        return await self._read(_unread_totals_txn, limit)


def _token_hash_txn(db: sqlite3.Connection, member: str) -> bytes | None:
    row = db.execute("SELECT token_hash FROM members WHERE name = ?", (member,)).fetchone()
    return None if row is None else bytes(row[0])


def _set_token_txn(db: sqlite3.Connection, member: str, token_hash: bytes) -> None:
    db.execute(
        "INSERT INTO members (name, token_hash, created_us) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash",
        (member, token_hash, now_us()),
    )


def _create_members(
    db: sqlite3.Connection, members: Sequence[str], token_hashes: Mapping[str, bytes]
) -> tuple[str, ...]:
    created = []
    for member in members:
        cursor = db.execute(
            "INSERT INTO members (name, token_hash, created_us) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (member, token_hashes[member], now_us()),
        )
        if cursor.rowcount == 1:
            created.append(member)
    return tuple(created)


def _live_head(db: sqlite3.Connection, group: str) -> int:
    row = db.execute("SELECT head_seq FROM groups WHERE name = ? AND NOT deleted", (group,)).fetchone()
    if row is None:
        raise GroupNotFound(group)
    return int(row[0])


def _group_info(db: sqlite3.Connection, group: str, head_seq: int) -> GroupInfo:
    rows = db.execute(
        "SELECT member FROM memberships WHERE group_name = ? ORDER BY member", (group,)
    ).fetchall()
    return GroupInfo(group, tuple(row[0] for row in rows), head_seq)


def _join(db: sqlite3.Connection, group: str, members: Sequence[str], head_seq: int) -> None:
    db.executemany(
        "INSERT INTO memberships (group_name, member, last_acked_seq) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        [(group, member, head_seq) for member in members],
    )


def _create_group_txn(
    db: sqlite3.Connection, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
) -> GroupChange:
    row = db.execute("SELECT head_seq, deleted FROM groups WHERE name = ?", (group,)).fetchone()
    if row is not None and not row[1]:
        raise GroupExists(group)
    if row is None:
        head_seq = 0
        db.execute(
            "INSERT INTO groups (name, head_seq, deleted, created_us) VALUES (?, 0, 0, ?)",
            (group, now_us()),
        )
    else:
        head_seq = int(row[0])
        db.execute("UPDATE groups SET deleted = 0, created_us = ? WHERE name = ?", (now_us(), group))
    created = _create_members(db, members, token_hashes)
    _join(db, group, members, head_seq)
    return GroupChange(_group_info(db, group, head_seq), created)


def _add_members_txn(
    db: sqlite3.Connection, group: str, members: Sequence[str], token_hashes: Mapping[str, bytes]
) -> GroupChange:
    head_seq = _live_head(db, group)
    created = _create_members(db, members, token_hashes)
    _join(db, group, members, head_seq)
    return GroupChange(_group_info(db, group, head_seq), created)


def _remove_members_txn(db: sqlite3.Connection, group: str, members: Sequence[str]) -> GroupInfo:
    head_seq = _live_head(db, group)
    db.executemany(
        "DELETE FROM memberships WHERE group_name = ? AND member = ?",
        [(group, member) for member in members],
    )
    return _group_info(db, group, head_seq)


def _delete_group_txn(db: sqlite3.Connection, group: str) -> None:
    _live_head(db, group)
    db.execute("DELETE FROM memberships WHERE group_name = ?", (group,))
    db.execute("DELETE FROM notes WHERE group_name = ?", (group,))
    db.execute("UPDATE groups SET deleted = 1 WHERE name = ?", (group,))


def _group_txn(db: sqlite3.Connection, group: str) -> GroupInfo | None:
    try:
        return _group_info(db, group, _live_head(db, group))
    except GroupNotFound:
        return None


def _list_groups_txn(db: sqlite3.Connection) -> list[GroupInfo]:
    rows = db.execute("SELECT name, head_seq FROM groups WHERE NOT deleted ORDER BY name").fetchall()
    return [_group_info(db, name, head_seq) for name, head_seq in rows]


def _count_groups_txn(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM groups WHERE NOT deleted").fetchone()[0])


def _membership_txn(db: sqlite3.Connection, group: str, member: str) -> Membership | None:
    row = db.execute(
        "SELECT m.last_acked_seq, g.head_seq FROM memberships m"
        " JOIN groups g ON g.name = m.group_name"
        " WHERE m.group_name = ? AND m.member = ?",
        (group, member),
    ).fetchone()
    return None if row is None else Membership(group, member, row[0], row[1])


def _append_notes_txn(db: sqlite3.Connection, batch: Sequence[NewNote]) -> list[AppendResult]:
    """One statement per new note in the usual case: heads are read once per group
    and written back once, and a retried client_msg_id is found by the unique
    index refusing the insert."""
    results: list[AppendResult] = []
    members: dict[tuple[str, str], bool] = {}
    heads: dict[str, int] = {}
    for new in batch:
        key = (new.group, new.sender)
        if key not in members:
            members[key] = (
                db.execute("SELECT 1 FROM memberships WHERE group_name = ? AND member = ?", key).fetchone()
                is not None
            )
        if not members[key]:
            results.append(Rejected())
            continue
        if new.group not in heads:
            heads[new.group] = _live_head(db, new.group)
        seq = heads[new.group] + 1
        inserted = db.execute(
            "INSERT INTO notes (group_name, seq, sender, text, sent_at_us, client_msg_id)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (new.group, seq, new.sender, new.text, new.sent_at_us, new.client_msg_id),
        ).rowcount
        if inserted:
            heads[new.group] = seq
            note = Note(new.group, seq, new.sender, new.text, new.sent_at_us, new.client_msg_id)
            results.append(Appended(note, created=True))
        else:
            results.append(Appended(_original(db, new), created=False))
    db.executemany("UPDATE groups SET head_seq = ? WHERE name = ?", [(h, g) for g, h in heads.items()])
    return results


def _original(db: sqlite3.Connection, new: NewNote) -> Note:
    """The note an earlier send with this client_msg_id stored."""
    # The last condition lets SQLite use the partial index notes_by_client_msg_id.
    seq, text, sent_at_us = db.execute(
        "SELECT seq, text, sent_at_us FROM notes"
        " WHERE group_name = ? AND sender = ? AND client_msg_id = ? AND client_msg_id != ''",
        (new.group, new.sender, new.client_msg_id),
    ).fetchone()
    return Note(new.group, seq, new.sender, text, sent_at_us, new.client_msg_id)


def _read_notes_txn(
    db: sqlite3.Connection, group: str, after_seq: int, until_seq: int, limit: int
) -> list[Note]:
    rows = db.execute(
        "SELECT seq, sender, text, sent_at_us, client_msg_id FROM notes"
        " WHERE group_name = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        (group, after_seq, until_seq, limit),
    ).fetchall()
    return [Note(group, *row) for row in rows]


def _save_cursors_txn(db: sqlite3.Connection, updates: Sequence[CursorUpdate]) -> None:
    db.executemany(
        "UPDATE memberships SET last_acked_seq = max(last_acked_seq, ?),"
        " last_seen_us = max(coalesce(last_seen_us, 0), ?)"
        " WHERE group_name = ? AND member = ?",
        [(u.last_acked_seq, u.last_seen_us, u.group, u.member) for u in updates],
    )


def _delivery_txn(db: sqlite3.Connection, group: str) -> Delivery:
    head_seq = _live_head(db, group)
    rows = db.execute(
        "SELECT m.member, m.last_acked_seq, m.last_seen_us,"
        " (SELECT count(*) FROM notes n WHERE n.group_name = m.group_name"
        "  AND n.seq > m.last_acked_seq AND n.sender != m.member)"
        " FROM memberships m WHERE m.group_name = ? ORDER BY m.member",
        (group,),
    ).fetchall()
    members = tuple(
        MemberDelivery(member, acked, unread, 0, last_seen) for member, acked, last_seen, unread in rows
    )
    return Delivery(group, head_seq, members)


def _unread_totals_txn(db: sqlite3.Connection, limit: int) -> dict[str, int]:
    rows = db.execute(
        "SELECT m.group_name, sum((SELECT count(*) FROM notes n WHERE n.group_name = m.group_name"
        "  AND n.seq > m.last_acked_seq AND n.sender != m.member)) AS unread"
        " FROM memberships m GROUP BY m.group_name ORDER BY unread DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return {group: int(unread) for group, unread in rows}
