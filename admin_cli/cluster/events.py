"""The cluster's events, one JSON object a line in events.jsonl.

Process events say what the supervisor did and saw (started, ready, exited
with a code or a signal, restarting in N s, failed, stopped); delivery events
say what only a delivery-aware supervisor knows: a client subscribed (and
through which replica), a client caught up to its group's head.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from admin_cli.cluster.logs import follow_lines

EventType = Literal["process", "delivery"]


class EventLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()

    def record(
        self, name: str, event: str, detail: str = "", type: EventType = "process", **fields: Any
    ) -> None:
        entry = {
            "time": datetime.now(UTC).isoformat(),
            "type": type,
            "name": name,
            "event": event,
            "detail": detail,
            **fields,
        }
        with self._lock, open(self._path, "a") as file:
            file.write(json.dumps(entry) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path) as file:
            return [entry for line in file if (entry := _parse(line)) is not None]
    except FileNotFoundError:
        return []


def follow(path: Path) -> Iterator[dict[str, Any]]:
    return (entry for line in follow_lines(path) if (entry := _parse(line)) is not None)


def _parse(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
