"""Databases for tests: SQLite files, and throwaway PostgreSQL databases on a real server.

The server is the one CHATROOM_TEST_POSTGRES names, else an embedded
PostgreSQL (the same that `chatctl cluster` runs) started once for the whole
test run, so that a plain `pytest` tests both backends.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from admin_cli.postgres import READY_LINE, EmbeddedPostgres
from admin_cli.processes import Watched

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
START_TIMEOUT_S = 60.0
TEST_SETTINGS = ("fsync=off", "max_connections=300")
"""Durability is tested against SQLite and in the storage-fault tests; here speed matters."""


@contextmanager
def embedded_postgres(home: Path, *settings: str) -> Iterator[tuple[EmbeddedPostgres, Watched]]:
    """A PostgreSQL server of the caller's own, running until the block ends."""
    server = EmbeddedPostgres(home)
    server.init()
    options = [item for setting in settings for item in ("-c", setting)]
    process = start_postgres(server, options)
    try:
        yield server, process
    finally:
        process.stop()


def start_postgres(server: EmbeddedPostgres, options: list[str]) -> Watched:
    process = Watched([*server.command(), *options], stop_signal=server.stop_signal)
    if process.wait_for(READY_LINE, START_TIMEOUT_S) is None:
        process.stop()
        raise RuntimeError(f"PostgreSQL did not start:\n{process.output}")
    return process


@contextmanager
def postgres_server(home: Path) -> Iterator[str]:
    """The URL of a server on which tests may create databases."""
    if url := os.environ.get("CHATROOM_TEST_POSTGRES"):
        yield url
        return
    with embedded_postgres(home, *TEST_SETTINGS) as (server, _):
        yield server.url()


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database for one test (or one module); dropped afterwards."""
    name = f"chatroom_t_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(server_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server_url, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_rows(url: str, queries: dict[str, str]) -> dict[str, list[tuple[object, ...]]]:
    async def fetch() -> dict[str, list[tuple[object, ...]]]:
        connection = await asyncpg.connect(url)
        try:
            return {table: [tuple(r) for r in await connection.fetch(q)] for table, q in queries.items()}
        finally:
            await connection.close()

    return asyncio.run(fetch())
