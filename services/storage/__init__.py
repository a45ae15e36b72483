"""Storage engines behind the core's Store interface (services/core/store.py).

Engines are imported when a database of theirs is opened, so that what does
not use PostgreSQL never loads its driver.
"""

from __future__ import annotations

from pathlib import Path

from services.core.store import Store

__all__ = ["check_db", "open_store"]


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def check_db(db: str) -> str:
    """A SQLite file path or a PostgreSQL URL; anything else is refused with what to give instead."""
    if db.startswith(POSTGRES_SCHEMES):
        return db
    scheme, separator, _ = db.partition(":")
    if scheme == "sqlite":
        raise ValueError(
            f"cannot use --db {db!r}: give SQLite as a file path, such as /var/lib/chatroom/chatroom.db"
        )
    if separator and scheme.isalpha() and len(scheme) > 1:
        raise ValueError(
            f"cannot use --db {db!r}: {scheme} is not supported;"
            " give a SQLite file path or a postgresql:// URL"
        )
    return db


def open_store(db: str) -> Store:
    """A store for a SQLite path or a postgresql:// URL (not yet connected)."""
    if check_db(db).startswith(POSTGRES_SCHEMES):
        from services.storage.postgres import PostgresStore

        return PostgresStore(db)
    from services.storage.sqlite import SqliteStore

    return SqliteStore(Path(db).expanduser())
