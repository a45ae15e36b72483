"""Storage backends behind one interface (see base.Store)."""

from __future__ import annotations

from pathlib import Path

from services.storage.base import Store
from services.storage.sqlite import SqliteStore

__all__ = ["Store", "open_store"]


def open_store(db: str) -> Store:
    """A store for a SQLite path (not yet connected)."""
    return SqliteStore(Path(db).expanduser())
