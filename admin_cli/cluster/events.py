"""The cluster's events, one JSON object a line in events.jsonl.

Process events say what the supervisor did and saw (started, ready, exited
with a code or a signal, restarting in N s, failed, stopped); delivery events
say what only a delivery-aware supervisor knows: a client subscribed (and
through which replica), a client caught up to its group's head.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

EventType = Literal["process", "delivery"]
FOLLOW_POLL_S = 0.2


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
    with open(path) as file:
        file.seek(0, 2)
        pending = ""
        while True:
            chunk = file.read()
            if not chunk:
                time.sleep(FOLLOW_POLL_S)
                continue
            pending += chunk
            *complete, pending = pending.split("\n")
            yield from (entry for line in complete if (entry := _parse(line)) is not None)


def _parse(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
