"""Everything chatctl prints: tables for people, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clients.display import visible

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CallFailed(Exception):
    """A failed call, explained in one line, for callers that say it themselves (after a live view)."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Prints one line to stderr and exits non-zero."""
    err.print(Text.assemble(("error:", "bold red"), " ", _plain(message)))
    raise typer.Exit(code)


def info(message: str) -> None:
    out.print(_plain(message), soft_wrap=True)


def note(message: str) -> None:
    """A side remark for people, on stderr so that stdout stays parseable."""
    err.print(_plain(message, style="dim"))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    caption = None if title is None else _plain(title)
    result = Table(title=caption, title_justify="left", box=None, header_style="bold")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*(_plain("" if cell is None else str(cell)) for cell in row))
    return result


def ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    return f"{duration(seconds)} ago"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _plain(text: str, style: str = "") -> Text:
    """Text that rich prints as it is (never read as markup), with control characters made visible."""
    return Text(visible(text), style=style)
