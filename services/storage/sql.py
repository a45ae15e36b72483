"""Transactions written once for every SQL engine.

A transaction is a generator: it yields the statements it wants run, one at
a time, and is sent back each one's result; its return value is the
transaction's. SQLite drives it synchronously on its writer or reader thread,
PostgreSQL asynchronously on a pooled connection, inside one database
transaction either way. The SQL is one text with `?` placeholders, which the
PostgreSQL engine rewrites to `$1, $2, …` (as Synapse does), so the only code
that differs between the engines is how they run it::

    def token_hash(member: str) -> Txn[bytes | None]:
        found = yield rows("SELECT token_hash FROM members WHERE name = ?", member)
        return bytes(found[0][0]) if found else None
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Row = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    args: tuple[object, ...] = ()
    returns: Literal["rows", "count", "nothing"] = "rows"
    """rows: a list of rows; count: the number of rows changed; nothing: for `many`."""
    many: tuple[tuple[object, ...], ...] = ()
    """For returns="nothing": the statement runs once per tuple of arguments."""


Txn = Generator[Query, Any, T]


def rows(sql: str, *args: object) -> Query:
    return Query(sql, args)


def count(sql: str, *args: object) -> Query:
    return Query(sql, args, "count")


def many(sql: str, argsets: Iterable[tuple[object, ...]]) -> Query:
    return Query(sql, returns="nothing", many=tuple(argsets))


def placeholders(rows_: int, width: int = 1) -> str:
    """`(?, ?), (?, ?)` for rows_ rows of width values (or `?, ?` when width is 1)."""
    if width == 1:
        return ", ".join("?" * rows_)
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * rows_)


def chunks(values: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    """Pieces small enough for one statement's placeholder limit (SQLite: 32,766)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
