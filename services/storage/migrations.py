"""Numbered schema deltas, shared by the engines: schema/NNN_name[.engine].sql.

Delta NNN is `NNN_name.sql` where one SQL text serves both engines, and
`NNN_name.sqlite.sql` / `NNN_name.postgres.sql` for what differs (both apply,
the shared part first). A database records the number of the last delta
applied; on start the server applies every later one, each in its own
transaction, so a schema only ever moves forward and an interrupted upgrade
leaves the previous version intact. A database newer than the code is refused:
an older server must not write to a schema it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from services.core.errors import Unavailable

Engine = Literal["sqlite", "postgres"]
ENGINES: tuple[Engine, ...] = ("sqlite", "postgres")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    sql: str


class SchemaTooNew(Unavailable):
    def __init__(self, database: object, version: int, known: int) -> None:
        super().__init__(
            f"the database {database} has schema version {version}, newer than this chatroom knows"
            f" ({known}): run a newer chatroom, or point --db at another database"
        )


def migrations(engine: Engine) -> list[Migration]:
    """Every delta for the engine, in order 1, 2, 3 … (a delta may hold nothing for an engine)."""
    shared: dict[int, str] = {}
    specific: dict[tuple[int, str], str] = {}
    for entry in resources.files("services.storage.schema").iterdir():
        name = Path(entry.name)
        if name.suffix != ".sql":
            continue
        number = int(name.stem.partition("_")[0])
        for_engine = Path(name.stem).suffix.lstrip(".")
        if for_engine in ENGINES:
            specific[(number, for_engine)] = entry.read_text()
        else:
            shared[number] = entry.read_text()
    numbers = sorted({*shared, *(number for number, _ in specific)})
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"schema deltas are not numbered 1..n: {numbers}")
    return [
        Migration(number, shared.get(number, "") + "\n" + specific.get((number, engine), ""))
        for number in numbers
    ]
