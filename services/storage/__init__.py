"""Storage backends behind one interface (see base.Store)."""

from __future__ import annotations

from pathlib import Path

from services.storage.base import Store
from services.storage.postgres import PostgresStore
from services.storage.sqlite import SqliteStore

__all__ = ["Store", "open_store"]


def open_store(db: str) -> Store:
    """A store for a SQLite path or a postgresql:// URL (not yet connected)."""
    if db.startswith(("postgresql://", "postgres://")):
        return PostgresStore(db)
    return SqliteStore(Path(db).expanduser())
