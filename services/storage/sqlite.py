"""The embedded store: one SQLite file in WAL mode.

All SQL runs in worker threads, never on the event loop. Writes go through one
thread and one connection, because SQLite admits one writer at a time anyway
and a single writer never waits on a lock; reads use their own connections,
which WAL lets run beside the writer on a consistent snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal, TypeVar

from services.core.errors import InvalidRequest, Unavailable
from services.core.store import Trimmed
from services.storage.migrations import SchemaTooNew, migrations
from services.storage.sql import Query, Txn
from services.storage.sql_store import SqlStore
from services.storage.threads import Threads

T = TypeVar("T")

Synchronous = Literal["NORMAL", "FULL"]
READER_THREADS = 2
VACUUM_PAGES_PER_TRIM = 256
"""Free pages handed back to the file system after each retention batch."""


class SqliteStore(SqlStore):
    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = Threads(1, "sqlite-write")
        self._readers = Threads(READER_THREADS, "sqlite-read")

    def __repr__(self) -> str:
        return f"sqlite:{self.path}"

    async def open(self) -> None:
        try:
            await self._writer.run(self._migrate)
        except BaseException as error:
            await self.close()
            if isinstance(error, (OSError, sqlite3.Error)):
                raise Unavailable(f"cannot open the database {self.path}: {error}") from error
            raise

    async def close(self) -> None:
        """Off the event loop: the threads finish the calls already queued first."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._writer.close()
        self._readers.close()
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    async def trim(
        self, group: str, keep_notes: int | None, older_than_us: int | None, hard: bool
    ) -> Trimmed | None:
        trimmed = await super().trim(group, keep_notes, older_than_us, hard)
        if trimmed is not None and trimmed.deleted:
            await self._writer.run(self._vacuum)
        return trimmed

    # -- running transactions ---------------------------------------------

    async def _write(self, transaction: Txn[T]) -> T:
        return await self._writer.run(self._run, "BEGIN IMMEDIATE", transaction)

    async def _read(self, transaction: Txn[T]) -> T:
        return await self._readers.run(self._run, "BEGIN", transaction)

    def _run(self, begin: str, transaction: Txn[T]) -> T:
        connection = self._connection()
        try:
            connection.execute(begin)
            result = _drive(connection, transaction)
            connection.execute("COMMIT")
            return result
        except sqlite3.DataError as error:
            self._rollback(connection)
            raise InvalidRequest(f"storage refused the data: {error}") from error
        except sqlite3.Error as error:
            self._rollback(connection)
            raise Unavailable(f"storage failed: {error}; nothing was written, retry") from error
        except BaseException:
            self._rollback(connection)
            raise

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

    @staticmethod
    def _rollback(connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            connection.execute("ROLLBACK")

    def _vacuum(self) -> None:
        """Gives freed pages back (a no-op on files made before incremental vacuum was set)."""
        with contextlib.suppress(sqlite3.Error):  # space is reused by later notes anyway
            self._connection().execute(f"PRAGMA incremental_vacuum({VACUUM_PAGES_PER_TRIM})").fetchall()

    def _migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Notes are private: the file (and its -wal and -shm, which SQLite creates
        # with the same mode) is the owner's alone, like the token files.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = self._connection()
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        known = migrations("sqlite")
        if version > len(known):
            raise SchemaTooNew(self.path, version, len(known))
        if version == 0:
            # Must precede the first table; lets retention hand deleted space back.
            connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        for migration in known[version:]:
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


def _drive(connection: sqlite3.Connection, transaction: Txn[T]) -> T:
    try:
        query = next(transaction)
        while True:
            query = transaction.send(_execute(connection, query))
    except StopIteration as done:
        result: T = done.value
        return result


def _execute(connection: sqlite3.Connection, query: Query) -> Any:
    if query.returns == "nothing":
        connection.executemany(query.sql, query.many)
        return None
    cursor = connection.execute(query.sql, query.args)
    return cursor.rowcount if query.returns == "count" else cursor.fetchall()
