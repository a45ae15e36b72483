"""Databases for tests: SQLite files, or throwaway PostgreSQL databases when
CHATROOM_TEST_POSTGRES names a server the tests may create databases on."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

POSTGRES_URL = os.environ.get("CHATROOM_TEST_POSTGRES")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not POSTGRES_URL, reason="set CHATROOM_TEST_POSTGRES=postgresql://… to test PostgreSQL"
            ),
        ],
    ),
]


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database for one test (or one module); dropped afterwards."""
    assert POSTGRES_URL is not None
    name = f"chatroom_t_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(POSTGRES_URL, name)
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
