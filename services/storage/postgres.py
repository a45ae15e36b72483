"""The scale-out store: PostgreSQL shared by several server replicas.

What differs from SQLite is only this module. Transactions run on a pool
(asyncpg), with `?` rewritten to `$n`. Seqs stay gapless under concurrent
writers because a writer increments its group's head_seq inside its
transaction: writers of one group queue on that row and commit in seq order,
and a rolled-back write gives its seq back. A batch of sends is one call of
the chatroom_append function (one round trip).

Replicas hear of each other's changes through LISTEN/NOTIFY, sent inside the
transaction that made the change, so a notification means "committed". The
listening connection is watched: when it drops, the listener says so
(ListenerLost) and, once it listens again, asks for a Resync, so that the core
re-reads from the tables — which remain the only source of truth — whatever it
may have missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from services.core.errors import ChatroomError, InvalidRequest, Unavailable
from services.core.model import GroupInfo, NewNote, Note, now_us
from services.core.store import (
    Appended,
    AppendResult,
    GroupDeleted,
    ListenerLost,
    MembersRemoved,
    NotesCommitted,
    Rejected,
    Resync,
    StoreEvent,
    TokenReplaced,
    Trimmed,
)
from services.storage import transactions as txn
from services.storage.migrations import SchemaTooNew, migrations
from services.storage.sql import Query, Txn, count, many, rows
from services.storage.sql_store import SqlStore

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Any  # asyncpg ships no type information

NOTES_CHANNEL = "chatroom_notes"
EVENTS_CHANNEL = "chatroom_events"
MAX_NOTIFY_BYTES = 7900
"""PostgreSQL refuses NOTIFY payloads of 8,000 bytes and more."""
MIGRATION_LOCK = 0x63686174  # any constants shared by every replica
RETENTION_LOCK = 0x63686175
LISTENER_NAME = "chatroom-listener"
LISTEN_PING_INTERVAL_S = 5.0
LISTEN_RETRY_S = 1.0
REPLICA_EXPIRY_S = 10.0
"""A replica whose heartbeat is older than this no longer counts as online."""
PING_TIMEOUT_S = 2.0


class PostgresStore(SqlStore):
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
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise Unavailable(f"cannot connect to PostgreSQL at {self!r}: {error}") from error
        await self._write(_migrate(self))

    async def close(self) -> None:
        if self._pool is None:
            return
        with contextlib.suppress(Unavailable):  # else the others expire this replica on their own
            await self._write(_leave(self.replica_id))
        await self._pool.close()
        self._pool = None

    async def ping(self) -> None:
        try:
            await asyncio.wait_for(super().ping(), PING_TIMEOUT_S)
        except TimeoutError:
            raise Unavailable(f"PostgreSQL did not answer within {PING_TIMEOUT_S:g} s") from None

    # -- what PostgreSQL does differently -----------------------------------

    async def set_token(self, member: str, token_hash: bytes) -> None:
        await self._write(self._notifying(txn.set_token(member, token_hash), "token", member=member))

    async def remove_members(self, group: str, members: Sequence[str]) -> GroupInfo:
        change = txn.remove_members(group, members)
        return await self._write(self._notifying(change, "removed", group=group, members=list(members)))

    async def delete_group(self, group: str) -> None:
        await self._write(self._notifying(txn.delete_group(group), "deleted", group=group))

    async def append_notes(self, batch: Sequence[NewNote]) -> list[AppendResult]:
        return await self._write(_append(self.replica_id, batch))

    async def trim(
        self, group: str, keep_notes: int | None, older_than_us: int | None, hard: bool
    ) -> Trimmed | None:
        return await self._write(_one_deleter(txn.trim(group, keep_notes, older_than_us, hard)))

    def _notifying(self, transaction: Txn[T], kind: str, **fields: object) -> Txn[T]:
        """The transaction, then a notification to the other replicas when it commits."""
        result = yield from transaction
        payload = json.dumps({"replica": self.replica_id, "kind": kind, **fields})
        if len(payload.encode()) > MAX_NOTIFY_BYTES:  # too many names: "look for yourselves"
            payload = json.dumps({"replica": self.replica_id, "kind": kind, **fields, "members": []})
        yield rows("SELECT pg_notify(?, ?)", EVENTS_CHANNEL, payload)
        return result

    # -- running transactions ---------------------------------------------

    async def _read(self, transaction: Txn[T]) -> T:
        return await self._transaction(transaction)

    async def _write(self, transaction: Txn[T]) -> T:
        return await self._transaction(transaction)

    async def _transaction(self, transaction: Txn[T]) -> T:
        if self._pool is None:
            raise Unavailable("storage is closed")
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                return await _drive(connection, transaction)
        except (ChatroomError, asyncio.CancelledError):
            raise
        except Exception as error:
            raise _storage_error(error) from error

    # -- replication ----------------------------------------------------------

    async def group_heads(self, groups: Sequence[str]) -> dict[str, int]:
        return await self._read(_group_heads(list(groups)))

    async def report_presence(self, sessions: Mapping[tuple[str, str], int]) -> None:
        await self._write(_report_presence(self.replica_id, sessions))

    async def online_sessions(self, group: str) -> dict[str, int]:
        return await self._read(_online_sessions(self.replica_id, group))

    async def listen(self, handler: Callable[[StoreEvent], None]) -> None:
        while True:
            try:
                connection = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": LISTENER_NAME}
                )
            except Exception as error:  # any failure to connect is retried
                log.warning("cannot listen for other replicas, retrying: %s", error)
                await asyncio.sleep(LISTEN_RETRY_S)
                continue
            try:
                await self._listen_on(connection, handler)
            except Exception as error:
                log.warning("lost the connection that listens for other replicas: %s", error)
            finally:
                handler(ListenerLost())
                await _close_quietly(connection)

    async def _listen_on(self, connection: Connection, handler: Callable[[StoreEvent], None]) -> None:
        def on_notification(_: object, _pid: int, channel: str, payload: str) -> None:
            event = self._decode(channel, payload)
            if event is not None:
                handler(event)

        closed = asyncio.Event()
        connection.add_termination_listener(lambda _: closed.set())
        await connection.add_listener(NOTES_CHANNEL, on_notification)
        await connection.add_listener(EVENTS_CHANNEL, on_notification)
        handler(Resync())  # whatever changed before this moment is read from the tables
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


def _storage_error(error: Exception) -> ChatroomError:
    """Data the database refuses is the request's fault; anything else is the database's."""
    if isinstance(error, asyncpg.PostgresError) and str(getattr(error, "sqlstate", "")).startswith(
        ("22", "23")
    ):
        return InvalidRequest(f"storage refused the data: {error}")
    if not isinstance(error, OSError | asyncio.TimeoutError | asyncpg.PostgresError | asyncpg.InterfaceError):
        log.warning("storage failed with %s: %s", type(error).__name__, error)
    return Unavailable(f"storage failed: {error}; retry")


async def _drive(connection: Connection, transaction: Txn[T]) -> T:
    try:
        query = next(transaction)
        while True:
            query = transaction.send(await _execute(connection, query))
    except StopIteration as done:
        result: T = done.value
        return result


async def _execute(connection: Connection, query: Query) -> Any:
    sql = _numbered(query.sql)
    if query.returns == "nothing":
        if query.many:
            await connection.executemany(sql, query.many)
        return None
    if query.returns == "count":
        status: str = await connection.execute(sql, *query.args)  # "UPDATE 3", "INSERT 0 1"
        changed = status.rpartition(" ")[2]
        return int(changed) if changed.isdigit() else 0
    return await connection.fetch(sql, *query.args)


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, …`."""
    numbers = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


async def _close_quietly(connection: Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), LISTEN_RETRY_S)
    except (Exception, asyncio.CancelledError):
        connection.terminate()


def _migrate(store: PostgresStore) -> Txn[None]:
    yield rows("SELECT pg_advisory_xact_lock(?)", MIGRATION_LOCK)
    yield rows("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    found = yield rows("SELECT max(version) FROM schema_version")
    version = found[0][0] or 0
    known = migrations("postgres")
    if version > len(known):
        raise SchemaTooNew(repr(store), version, len(known))
    for migration in known[version:]:
        if migration.sql.strip():
            yield count(migration.sql)  # without arguments: several statements may run at once
        yield rows("INSERT INTO schema_version (version) VALUES (?)", migration.version)


def _one_deleter(transaction: Txn[Trimmed]) -> Txn[Trimmed | None]:
    """With several replicas, one deletes at a time; the others skip this round."""
    locked = yield rows("SELECT pg_try_advisory_xact_lock(?)", RETENTION_LOCK)
    if not locked[0][0]:
        return None
    return (yield from transaction)


def _append(replica_id: str, batch: Sequence[NewNote]) -> Txn[list[AppendResult]]:
    found = yield rows(
        "SELECT seq, text, sent_at_us, outcome FROM chatroom_append(?, ?, ?, ?, ?, ?, ?)",
        replica_id,
        [new.group for new in batch],
        [new.sender for new in batch],
        [new.token_hash for new in batch],
        [new.text for new in batch],
        [new.sent_at_us for new in batch],
        [new.client_msg_id for new in batch],
    )
    results: list[AppendResult] = []
    for new, (seq, text, sent_at_us, outcome) in zip(batch, found, strict=True):
        if outcome in ("not a member", "token replaced"):
            results.append(Rejected(outcome))
            continue
        note = Note(new.group, int(seq), new.sender, text, int(sent_at_us), new.client_msg_id)
        results.append(Appended(note, created=outcome == "created"))
    return results


def _leave(replica_id: str) -> Txn[None]:
    yield rows("DELETE FROM replicas WHERE id = ?", replica_id)


def _group_heads(groups: list[str]) -> Txn[dict[str, int]]:
    found = yield rows("SELECT name, head_seq FROM groups WHERE name = ANY(?::text[])", groups)
    return {name: int(head) for name, head in found}


def _report_presence(replica_id: str, sessions: Mapping[tuple[str, str], int]) -> Txn[None]:
    now = now_us()
    yield rows(
        "INSERT INTO replicas (id, heartbeat_us) VALUES (?, ?)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_us = excluded.heartbeat_us",
        replica_id,
        now,
    )
    yield rows("DELETE FROM presence WHERE replica_id = ?", replica_id)
    yield many(
        "INSERT INTO presence (replica_id, group_name, member, sessions) VALUES (?, ?, ?, ?)",
        [(replica_id, group, member, n) for (group, member), n in sessions.items()],
    )
    yield rows("DELETE FROM replicas WHERE heartbeat_us < ?", now - int(REPLICA_EXPIRY_S * 4e6))


def _online_sessions(replica_id: str, group: str) -> Txn[dict[str, int]]:
    found = yield rows(
        "SELECT p.member, sum(p.sessions) FROM presence p JOIN replicas r ON r.id = p.replica_id"
        " WHERE p.group_name = ? AND p.replica_id <> ? AND r.heartbeat_us > ? GROUP BY p.member",
        group,
        replica_id,
        now_us() - int(REPLICA_EXPIRY_S * 1e6),
    )
    return {member: int(sessions) for member, sessions in found}
