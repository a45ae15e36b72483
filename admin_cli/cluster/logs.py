"""The cluster's merged log: every process's output, one file, in the order it was written.

The supervisor reads each child's output and writes every line twice: raw to
the process's own log (a console's log is its memory of what it showed, read
back by `--resume-log` and by verify) and, stamped with the time and the
process name, to the merged log that `chatctl cluster logs` reads, so that
lines of all processes come out in time order without sorting files.

A merged line is `<ISO time> <name> | <text>`. Text from the network (notes)
is in it; it is made harmless (control characters shown escaped) before it
reaches a terminal.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import typer

COLOURS = ("cyan", "yellow", "green", "magenta", "blue", "bright_red", "bright_green", "bright_cyan")
FOLLOW_POLL_S = 0.2


def sanitize(text: str) -> str:
    """Control characters (escape sequences, carriage returns, …) as visible escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode() for c in text)


@dataclass(frozen=True, slots=True)
class LogLine:
    at: datetime
    name: str
    text: str

    @classmethod
    def parse(cls, line: str) -> LogLine | None:
        stamp, _, rest = line.rstrip("\n").partition(" ")
        name, separator, text = rest.partition(" | ")
        if not separator:
            return None
        try:
            return cls(datetime.fromisoformat(stamp), name, text)
        except ValueError:
            return None

    def render(self, width: int, colour: bool) -> str:
        prefix = f"{self.name:<{width}} |"
        if colour:
            prefix = typer.style(prefix, fg=COLOURS[zlib.crc32(self.name.encode()) % len(COLOURS)])
        return f"{prefix} {sanitize(self.text)}"


class MergedLog:
    """Appends the lines of every process, from their reader threads, whole lines at a time."""

    def __init__(self, path: Path, echo: IO[str] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", buffering=1, errors="replace")  # noqa: SIM115 (open until close())
        self._lock = threading.Lock()
        self._echo = echo
        self._colour = echo is not None and echo.isatty()

    def write(self, name: str, text: str) -> None:
        line = LogLine(datetime.now(UTC), name, text)
        with self._lock:
            self._file.write(f"{line.at.isoformat()} {name} | {text}\n")
            if self._echo is not None:
                self._echo.write(line.render(10, self._colour) + "\n")
                self._echo.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def matches(name: str, wanted: Iterable[str]) -> bool:
    """NAME is a process, or all of a name: "server" is server-1, server-2 …; "alice" also alice-2."""
    wanted = list(wanted)
    return not wanted or any(name == each or re.fullmatch(rf"{re.escape(each)}-\d+", name) for each in wanted)


def read(path: Path, names: list[str], tail: int | None, since_s: float | None) -> list[LogLine]:
    cutoff = datetime.now(UTC).timestamp() - since_s if since_s is not None else None
    kept: deque[LogLine] = deque(maxlen=tail)
    try:
        with open(path, errors="replace") as file:
            for raw in file:
                line = LogLine.parse(raw)
                if line is None or not matches(line.name, names):
                    continue
                if cutoff is not None and line.at.timestamp() < cutoff:
                    continue
                kept.append(line)
    except FileNotFoundError:
        return []
    return list(kept)


def follow_lines(path: Path) -> Iterator[str]:
    """Whole lines appended to a file from now on, until interrupted (like `tail -f`)."""
    with open(path, errors="replace") as file:
        file.seek(0, 2)
        pending = ""
        while True:
            chunk = file.read()
            if not chunk:
                time.sleep(FOLLOW_POLL_S)
                continue
            pending += chunk
            *complete, pending = pending.split("\n")
            yield from complete


def follow(path: Path, names: list[str]) -> Iterator[LogLine]:
    """New lines as they are written, until interrupted."""
    for raw in follow_lines(path):
        line = LogLine.parse(raw)
        if line is not None and matches(line.name, names):
            yield line


def print_lines(lines: Iterable[LogLine], width: int) -> None:
    colour = sys.stdout.isatty()
    for line in lines:
        sys.stdout.write(line.render(width, colour) + "\n")
        sys.stdout.flush()
