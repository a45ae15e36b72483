"""Stores to test against: SQLite in a temporary directory, PostgreSQL when configured."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.storage.base import Store
from services.storage.sqlite import SqliteStore

StoreFactory = Callable[[], Store]


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes stores (not yet opened) that all share one database."""
    yield lambda: SqliteStore(tmp_path / "chatroom.db")
