"""Stores to test against: SQLite in a temporary directory, and PostgreSQL when configured."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.storage import open_store
from services.storage.base import Store
from tests.databases import BACKENDS, postgres_database

StoreFactory = Callable[[], Store]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes stores (not yet opened) that all share one new database."""
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_database(request.getfixturevalue("postgres_url")))
        else:
            url = str(tmp_path / "chatroom.db")
        yield lambda: open_store(url)
