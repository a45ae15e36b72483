"""Stores to test against: the same suite on memory, SQLite and PostgreSQL; the core on memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.core.store import Store
from services.storage import open_store
from services.storage.memory import MemoryStore
from tests.databases import postgres_database

StoreFactory = Callable[[], Store]

ENGINES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes stores (not yet opened) that all share one new database."""
    if request.param == "memory":
        shared = MemoryStore()
        yield lambda: shared
        return
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_database(request.getfixturevalue("postgres_url")))
        else:
            url = str(tmp_path / "chatroom.db")
        yield lambda: open_store(url)
