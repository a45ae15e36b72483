"""Numbered schema deltas per engine: schema/<engine>/NNN_name.sql.

A database records the number of the last delta applied; on start the server
applies every later one, each in its own transaction, so a schema only ever
moves forward and an interrupted upgrade leaves the previous version intact.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal

Engine = Literal["sqlite", "postgres"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(engine: Engine) -> list[Migration]:
    folder = resources.files("services.storage.schema") / engine
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(number), name, entry.read_text()))
    found.sort(key=lambda migration: migration.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"schema deltas for {engine} are not numbered 1..n")
    return found
